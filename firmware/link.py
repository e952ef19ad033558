"""The serial link service: bytes -> lines -> the protocol -> one reply each; real-time bytes;
the `~T` telemetry stream, `~S` status and `~E` event lines. Two asyncio tasks.

Line assembly (`LineAssembler`, docs/protocol.md "Framing"):
  - a line ends at `\\n`, `\\r` or `\\r\\n` (one end); it gets exactly one reply;
  - `!` and `?` are real-time bytes wherever they appear: never part of a line, acted on at
    once (`!`: app.pen.stop(), whose second call during the stop ramp coasts the motor; `?`: a
    `~S {status}` line);
  - a line longer than MAX_LINE bytes is discarded up to its end and answered error:3
    (LINE_TOO_LONG); a line holding control bytes is answered error:2 (BAD_LINE); the next
    line starts clean, so garbage or a half line left by a reconnect costs one error reply.

Writing never blocks the pen: a reply waits for the port (up to REPLY_WAIT_MS, reading input
meanwhile so `!` still acts) and is then dropped; unsolicited lines are written only when the
port can take them now and no reply is half-written. The telemetry stream sends from the ring
(firmware/telemetry.py), so a short stall sends the backlog without a gap; a longer one skips
ahead (the host sees the gap in `seq` and fetches it with `telemetry fetch`).

Sampling: while the stream is on (`telemetry on [HZ]`, any state) at its rate, else while the
needle motor runs at the `telemetry_hz` setting, one sample per period on a drift-free schedule,
into app.telemetry. Each sample comes from app.pen.telemetry_into(buf) (fills an
array('i', 9) with state code (firmware/telemetry.py STATES), stroke rate in 0.1 Hz, target
Hz, duty_u16, depth µm, target depth µm, current mA, battery mV, fault code: no garbage 200
times a second).

For the application: `SerialService(app, serial)`, `await service.run()`; `service.event(d)`
sends `~E {json}` (register it as a pen listener); `service.set_stream(hz)`.
"""

import asyncio
import json
import time
from array import array

from micropython import const

from firmware import errors as E
from firmware.protocol import error

# 420: the longest documented command, `calib set` with a 32-point table at the table's bounds
# ("calib set [" + 32 x "-1000,-2000," + "]" = 395 bytes), fits one line (the line buffer is
# preallocated: 220 bytes more than the 200 before).
MAX_LINE = const(420)
REPLY_WAIT_MS = const(2000)
_POLL_MS = const(4)
_IDLE_MS = const(20)
_QUEUE = const(16)
_OUTBOX = const(16)
_RX = const(256)


class LineAssembler:
    """Bytes -> lines, with the framing rules above. Calls sink.line(bytes),
    sink.line_error(code, message, tag) and sink.realtime(byte)."""

    def __init__(self, maxlen=MAX_LINE):
        self.buf = bytearray(maxlen)
        self.maxlen = maxlen
        self.n = 0
        self.long = False
        self.bad = False
        self.cr = False

    def feed(self, data, n, sink):
        buf = self.buf
        for i in range(n):
            c = data[i]
            if c == 10 and self.cr:
                self.cr = False
                continue
            self.cr = c == 13
            if c == 10 or c == 13:
                self._end(sink)
            elif c == 33 or c == 63:  # '!' '?'
                sink.realtime(c)
            elif self.n >= self.maxlen:
                self.long = True
            elif (c < 32 and c != 9) or c == 127:
                self.bad = True
            else:
                buf[self.n] = c
                self.n += 1

    def _tag(self):
        """The '#N ' tag at the start of the held bytes, or None."""
        b = self.buf
        if self.n < 3 or b[0] != 35:
            return None
        i = 1
        while i < self.n and 48 <= b[i] <= 57 and i <= 9:
            i += 1
        if i == 1 or i >= self.n or b[i] != 32:
            return None
        return bytes(b[1:i]).decode()

    def _end(self, sink):
        if self.long:
            sink.line_error(E.LINE_TOO_LONG, "line longer than %d bytes" % self.maxlen,
                            self._tag())  # fmt: skip
        elif self.bad:
            sink.line_error(E.BAD_LINE, "control bytes in line", self._tag())
        else:
            sink.line(bytes(self.buf[: self.n]))
        self.n = 0
        self.long = False
        self.bad = False


class SerialService:
    def __init__(self, app, serial):
        self.app = app
        self.serial = serial
        self.asm = LineAssembler()
        self._rx = bytearray(_RX)
        self._lines = []
        self._overflow = 0
        self._outbox = []
        self._busy = False
        self._broken = False
        self.stream_hz = 0
        self._cursor = 0
        self._v = array("i", bytes(4 * 11))
        self._tv = array("i", bytes(4 * 9))
        self.replies = 0
        self.dropped_replies = 0
        self.dropped_unsolicited = 0
        self.gaps = 0

    # -- the assembler's sink --------------------------------------------------------------------
    def line(self, b):
        if len(self._lines) < _QUEUE:
            self._lines.append(b)
        else:
            self._overflow += 1

    def line_error(self, code, message, tag):
        if len(self._lines) < _QUEUE:
            self._lines.append((code, message, tag))
        else:
            self._overflow += 1

    def realtime(self, c):
        if c == 33:
            self.stop_now()
        else:
            try:
                st = json.dumps(self.app.protocol.status())
            except Exception as e:  # noqa: BLE001
                st = '{"error": "%s"}' % type(e).__name__
            self.unsolicited("~S " + st)

    def stop_now(self):
        try:
            self.app.pen.stop()
        except Exception:  # noqa: BLE001 -- a refusal must not break the link
            pass

    # -- writing ----------------------------------------------------------------------------------
    def unsolicited(self, text):
        """Send one `~` line now if the port takes it, else keep it (a few) for later."""
        if not self._busy and not self._outbox and self._put_now(text):
            return
        if len(self._outbox) >= _OUTBOX:
            self._outbox.pop(0)
            self.dropped_unsolicited += 1
        self._outbox.append(text)

    def event(self, ev):
        """A state-machine event (dict) as a `~E` line; usable as a pen listener."""
        try:
            self.unsolicited("~E " + json.dumps(ev))
        except Exception:  # noqa: BLE001
            pass

    def _put_now(self, text):
        s = self.serial
        if not s.writable():
            return False
        if self._broken:
            s.write(b"\n")
            self._broken = False
        s.write(text + "\n")  # a str is a buffer of its UTF-8 bytes in MicroPython
        return True

    def _flush_outbox(self):
        while self._outbox and not self._busy:
            if not self._put_now(self._outbox[0]):
                return
            self._outbox.pop(0)

    async def _send(self, reply):
        """Write one reply line (str or list of parts); waits for the port, reading input."""
        parts = [reply, "\n"] if isinstance(reply, str) else reply + ["\n"]
        self._busy = True
        written = False
        try:
            for p in parts:
                t0 = time.ticks_ms()
                while not self.serial.writable():
                    if time.ticks_diff(time.ticks_ms(), t0) > REPLY_WAIT_MS:
                        self.dropped_replies += 1
                        self._broken = self._broken or written
                        return False
                    self._pump()
                    await asyncio.sleep_ms(_POLL_MS)
                if self._broken:
                    self.serial.write(b"\n")
                    self._broken = False
                self.serial.write(p)  # a str is a buffer of its UTF-8 bytes in MicroPython
                written = True
            self.replies += 1
            return True
        finally:
            self._busy = False

    # -- reading ----------------------------------------------------------------------------------
    def _pump(self):
        n = self.serial.read_into(self._rx)
        if n:
            self.asm.feed(self._rx, n, self)
        return n

    def _reply_for(self, item):
        if isinstance(item, tuple):
            code, msg, tag = item
            r = error(code, msg)
            return r if tag is None else "#%s %s" % (tag, r)
        return self.app.protocol.handle(item)

    async def _rx_loop(self):
        while True:
            self._pump()
            while self._lines:
                item = self._lines.pop(0)
                await self._send(self._reply_for(item))
                self._pump()
            while self._overflow:
                self._overflow -= 1
                await self._send(error(E.BUSY, "input queue full: line dropped"))
            await asyncio.sleep_ms(_POLL_MS)

    # -- telemetry ---------------------------------------------------------------------------------
    def set_stream(self, hz):
        """Stream `~T` at hz (0: off). The stream starts with the next sample."""
        self.stream_hz = hz
        self._cursor = self.app.telemetry.next_seq

    def _sample_hz(self):
        if self.stream_hz:
            return self.stream_hz
        if self.app.pen.motor_running():
            return self.app.settings.get("telemetry_hz")
        return 0

    def _take(self, t, hz):
        v = self._tv
        try:
            self.app.pen.telemetry_into(v)  # ints only: no status dict 200 times a second
        except Exception:  # noqa: BLE001 -- no sample this period
            return
        self.app.telemetry.record(t, hz, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])

    def _stream(self):
        tm = self.app.telemetry
        nxt = tm.next_seq
        if not self.stream_hz:
            self._cursor = nxt
            return
        lag = self.stream_hz // 4
        if lag < 8:
            lag = 8
        if nxt - self._cursor > lag:
            self.gaps += 1
            self._cursor = nxt - 1
        v = self._v
        while self._cursor < nxt and not self._busy and not self._outbox:
            if not tm.read(self._cursor, v):
                self._cursor += 1
                continue
            if not self._put_now("~T " + tm.format(v)):
                return
            self._cursor += 1

    async def _telemetry_loop(self):
        due = 0
        rem = 0
        cur = 0
        while True:
            hz = self._sample_hz()
            if not hz:
                cur = 0
                self._flush_outbox()
                await asyncio.sleep_ms(_IDLE_MS)
                continue
            now = time.ticks_ms()
            if hz != cur:
                cur = hz
                due = now
                rem = 0
            wait = time.ticks_diff(due, now)
            if wait > 0:
                self._flush_outbox()
                self._stream()
                await asyncio.sleep_ms(wait)
                continue
            self._take(now, hz)
            step = 1000 // hz
            rem += 1000 % hz
            if rem >= hz:
                rem -= hz
                step += 1
            due = time.ticks_add(due, step)
            if time.ticks_diff(now, due) > 4 * step:
                due = time.ticks_add(now, step)  # fell behind: resume, no burst
            self._flush_outbox()
            self._stream()

    async def run(self):
        tm = asyncio.create_task(self._telemetry_loop())
        try:
            await self._rx_loop()
        except KeyboardInterrupt:
            self.stop_now()
            raise
        finally:
            tm.cancel()
