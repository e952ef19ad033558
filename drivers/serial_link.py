"""The USB serial link (the REPL's CDC port) as a byte transport that never blocks the pen.

Reads: only bytes that are ready (select.POLLIN), one at a time into the caller's buffer.
Writes: only when the port can take data now (select.POLLOUT); otherwise the caller decides:
`write()` drops the data and counts it (telemetry: it carries sequence numbers, and a ring buffer
on the pen lets the host fetch what it missed), `writable()` lets a caller wait (replies).

The keyboard interrupt: MicroPython's USB CDC raises KeyboardInterrupt when the interrupt
character (0x03, Ctrl-C, by default) arrives. `kbd_intr(ch)` sets it, as
`micropython.kbd_intr(ch)` does (and calls it on the pen); the application turns it off
(`kbd_intr(-1)`, SF-07), so every byte is data. The virtual pen's stdin has no CDC interrupt:
`read_into` raises KeyboardInterrupt itself for the interrupt character, modelling it.
"""

import select

_CTRL_C = 3


def _set_kbd_intr(ch):
    try:
        import micropython

        micropython.kbd_intr(ch)
    except (ImportError, AttributeError):
        pass


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
        self.intr = _CTRL_C  # MicroPython's default until the application turns it off

    def kbd_intr(self, ch):
        """The byte that raises KeyboardInterrupt (-1: none), as micropython.kbd_intr."""
        self.intr = ch
        _set_kbd_intr(ch)

    def read_into(self, buf, limit=None):
        """Copy up to `limit` (default len(buf)) ready bytes into the preallocated `buf` from
        index 0; return how many."""
        if limit is None:
            limit = len(buf)
        n = 0
        b1 = self._b1
        while n < limit and self._pin.poll(0):
            if not self._in.readinto(b1):
                break
            if b1[0] == self.intr:
                raise KeyboardInterrupt
            buf[n] = b1[0]
            n += 1
        return n

    def writable(self):
        """True if the port can take data now."""
        return bool(self._pout.poll(0))

    def write(self, data):
        """Write all of `data` if the port can take it now; else drop it. Returns True if sent."""
        if not self._pout.poll(0):
            self.dropped += 1
            return False
        self._out.write(data)
        return True
