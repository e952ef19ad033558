"""The pen application: asyncio tasks for the serial link, the UI and housekeeping."""

import asyncio

from firmware.protocol import Protocol
from firmware.version import FIRMWARE_VERSION, PROTOCOL_VERSION

_MAX_LINE = 256


class App:
    def __init__(self, board):
        self.board = board
        self.protocol = Protocol(self)
        self.state = "LOCKED"

    def status(self):
        return {
            "state": self.state,
            "homed": False,
            "depth_mm": 0.0,
            "target_depth_mm": 0.0,
            "stroke_hz": 0.0,
            "target_hz": 0,
            "fault": None,
            "firmware_version": FIRMWARE_VERSION,
            "protocol_version": PROTOCOL_VERSION,
        }

    async def serial_task(self):
        link = self.board.serial
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
                reply = self.protocol.handle(line)
                link.write(reply.encode() + b"\n")

    async def main(self):
        await self.serial_task()


def main(board=None):
    if board is None:
        import drivers.board

        board = drivers.board.build()
    app = App(board)
    asyncio.run(app.main())
