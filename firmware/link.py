"""The serial link service: assembles received bytes into lines, hands each line to the
protocol, writes the one reply; streams telemetry. Runs as an asyncio task."""

import asyncio

_MAX_LINE = 256


class SerialService:
    def __init__(self, app, serial):
        self.app = app
        self.serial = serial

    async def run(self):
        link = self.serial
        buf = bytearray()
        while True:
            # Polling every few ms keeps the link simple; replies are not timing-critical.
            await asyncio.sleep_ms(5)
            link.read_ready(buf, _MAX_LINE)
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    break
                line = bytes(buf[:i])
                buf = buf[i + 1 :]
                reply = self.app.protocol.handle(line)
                link.write(reply.encode() + b"\n")
