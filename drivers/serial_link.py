"""The USB serial link (the REPL's CDC port) as a line transport that never blocks the pen.

Reads: bytes that are ready, assembled into lines by the caller. Writes: only what the port
can take now (select.POLLOUT); a line that does not fit is dropped and counted, because the
pen must keep running when no host drains the port (telemetry carries sequence numbers and a
ring buffer on the pen lets the host fetch what it missed).

Ctrl-C (0x03) raises KeyboardInterrupt, as MicroPython's USB CDC does with kbd_intr: the app
never swallows it, so mpremote can always reach the REPL.
"""

import select

_CTRL_C = 3


class SerialLink:
    def __init__(self, stream_in, stream_out):
        self._in = stream_in
        self._out = stream_out
        self._pin = select.poll()
        self._pin.register(stream_in, select.POLLIN)
        self._pout = select.poll()
        self._pout.register(stream_out, select.POLLOUT)
        self._b1 = bytearray(1)
        self.dropped = 0

    def read_ready(self, buf, limit):
        """Copy up to `limit` ready bytes into bytearray `buf` (appended); return the count."""
        n = 0
        b1 = self._b1
        while n < limit and self._pin.poll(0):
            if not self._in.readinto(b1):
                break
            if b1[0] == _CTRL_C:
                raise KeyboardInterrupt
            buf.append(b1[0])
            n += 1
        return n

    def poller_object(self):
        return self._in

    def write(self, data):
        """Write all of `data` if the port can take it now; else drop it. Returns True if sent."""
        if not self._pout.poll(0):
            self.dropped += 1
            return False
        self._out.write(data)
        return True
