"""The serial link service on a fake port, on the virtual clock (SP-/TM- requirements): line
assembly and resync, real-time bytes acting at once, replies that never block the pen, and the
200 Hz telemetry stream with its gaps backfilled from the ring."""

# mp-timeout: 300

import asyncio
import json

from mphelp import check, info, req
from protofake import FakeApp

from firmware import errors as E
from firmware.link import MAX_LINE, REPLY_WAIT_MS, LineAssembler, SerialService


class FakeSerial:
    """The USB port as the link sees it. Output is parsed as it is written (a long stream is
    not kept): the `~T` seqs are marked in `have`, gaps in the stream and bad time steps are
    counted; other lines are kept in `replies` (fetch replies parsed into `have`)."""

    def __init__(self, max_seq=4000):
        self.inbox = bytearray()
        self.open = True  # False: the host does not read, the port takes nothing
        self.partial = []
        self.have = bytearray(max_seq)
        self.first = None
        self.last = None
        self.count = 0
        self.gaps = []  # (first missing, last missing) in the stream
        self.bad_dt = 0
        self.t_last = None
        self.replies = []
        self.status_lines = 0
        self.fetched = 0

    def send(self, data):
        self.inbox += data

    def read_into(self, buf, limit=None):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def writable(self):
        return self.open

    def write(self, data):
        if not self.open:
            return False
        data = data.encode() if isinstance(data, str) else bytes(data)
        while True:
            i = data.find(b"\n")
            if i < 0:
                break
            self.partial.append(data[:i])
            self._line(b"".join(self.partial).decode())
            self.partial = []
            data = data[i + 1 :]
        if data:
            self.partial.append(data)
        return True

    def _line(self, line):
        if line.startswith("~T "):
            d = json.loads(line[3:])
            q = d["seq"]
            if self.last is not None and q != self.last + 1:
                self.gaps.append((self.last + 1, q - 1))
            elif self.t_last is not None and d["t_ms"] - self.t_last != 5:
                self.bad_dt += 1
            if self.first is None:
                self.first = q
            self.last = q
            self.t_last = d["t_ms"]
            self.count += 1
            self.have[q] = 1
        elif line.startswith("~S "):
            self.status_lines += 1
        elif line.startswith("ok ["):
            for d in json.loads(line[3:]):
                self.have[d["seq"]] = 1
                self.fetched += 1
            self.replies.append("ok [...]")
        elif line:
            self.replies.append(line)


def _service(capacity=2400):
    port = FakeSerial()  # first: its buffer needs a hole the app's objects would break up
    app = FakeApp(capacity=capacity, ctx=64)
    svc = SerialService(app, port)
    app.link = svc
    return app, port, svc


def _run(svc, driver):
    async def main():
        task = asyncio.create_task(svc.run())
        try:
            await driver()
        finally:
            task.cancel()
        await asyncio.sleep_ms(0)

    asyncio.run(main())


class _Sink:
    def __init__(self):
        self.ev = []

    def line(self, b):
        self.ev.append(("line", b))

    def line_error(self, code, msg, tag):
        self.ev.append(("error", code, tag))

    def realtime(self, c):
        self.ev.append(("rt", chr(c)))


@req("SP-40")
def test_line_assembly_rules():
    """SP-40: lines end at LF, CR or CRLF (one end each); `!` and `?` are taken out wherever
    they are; an over-long line is one LINE_TOO_LONG (tag kept), control bytes one BAD_LINE;
    the next line starts clean."""
    a = LineAssembler()
    s = _Sink()
    data = b"hello\r\nstatus\rget depth\n" + b"st!a?tus\n"
    data += b"#5 " + b"x" * (MAX_LINE + 100) + b"\n"
    data += b"bad\x00byte\n" + b"\n" + b"hel"
    a.feed(data, len(data), s)
    a.feed(b"lo\n", 3, s)
    ev = s.ev
    check(ev[0] == ("line", b"hello") and ev[1] == ("line", b"status"), repr(ev[:2]))
    check(ev[2] == ("line", b"get depth"))
    check(ev[3] == ("rt", "!") and ev[4] == ("rt", "?") and ev[5] == ("line", b"status"))
    check(ev[6] == ("error", E.LINE_TOO_LONG, "5"), repr(ev[6]))
    check(ev[7] == ("error", E.BAD_LINE, None))
    check(ev[8] == ("line", b"") and ev[9] == ("line", b"hello") and len(ev) == 10)
    long_ok = b"x" * MAX_LINE + b"\n"
    a.feed(long_ok, len(long_ok), s)
    check(s.ev[-1] == ("line", b"x" * MAX_LINE), "exactly MAX_LINE bytes is a line")


@req("SP-41")
def test_garbage_and_half_lines_cost_one_error_each():
    """SP-41: after binary garbage or a half line (a reconnect), the next command is answered
    normally; each bad line got exactly one error reply."""
    app, port, svc = _service()

    async def driver():
        port.send(b"sta")  # a half line, then the host reconnects and starts again
        await asyncio.sleep_ms(20)
        port.send(b"\x00\x01\xfe\xff garbage\n\nhello\n")
        await asyncio.sleep_ms(50)

    _run(svc, driver)
    r = port.replies
    check(len(r) == 3, repr(r))
    check(r[0].startswith("error:%d " % E.BAD_LINE) and r[1].startswith("error:%d " % E.BAD_LINE))
    check(r[2].startswith("ok {") and json.loads(r[2][3:])["protocol_version"] == 1)


@req("SP-42")
def test_bang_stops_at_once_even_while_a_reply_waits():
    """SP-42: `!` stops the needle at once in every state, even while the link waits to write
    a reply to a host that does not read; `?` answers with a `~S` line."""
    app, port, svc = _service()
    app.pen.state = "RUNNING"

    async def driver():
        port.open = False
        port.send(b"status\n")
        await asyncio.sleep_ms(100)
        check(svc._busy, "the reply is waiting for the port")
        port.send(b"!")
        await asyncio.sleep_ms(10)
        check(app.pen.state == "STOPPING" and ("stop",) in app.pen.calls, "stopped at once")
        port.send(b"!")
        await asyncio.sleep_ms(10)
        check(("coast",) in app.pen.calls, "a second ! coasts")
        port.open = True
        await asyncio.sleep_ms(20)
        port.send(b"?")
        await asyncio.sleep_ms(20)

    _run(svc, driver)
    check(len(port.replies) == 1 and port.replies[0].startswith("ok {"), repr(port.replies))
    check(port.status_lines == 1)


@req("SP-43")
def test_a_reply_the_host_never_reads_is_dropped_not_blocking():
    """SP-43: a reply waits at most REPLY_WAIT_MS for the port, then is dropped; the pen keeps
    working and the next reply is a clean line."""
    app, port, svc = _service()

    async def driver():
        port.open = False
        port.send(b"hello\n")
        await asyncio.sleep_ms(REPLY_WAIT_MS + 200)
        port.open = True
        port.send(b"#4 get stroke_hz\n")
        await asyncio.sleep_ms(50)

    _run(svc, driver)
    check(svc.dropped_replies == 1)
    check(port.replies == ['#4 ok {"stroke_hz": 100}'], repr(port.replies))


@req("TM-12")
def test_stream_at_200_hz_has_no_gaps():
    """TM-12: `telemetry on 200` streams one `~T` line per sample, seq one by one, t_ms 5 ms
    apart, for 5 virtual seconds."""
    app, port, svc = _service()

    async def driver():
        port.send(b"telemetry on 200\n")
        await asyncio.sleep_ms(5000)

    _run(svc, driver)
    info("stream: %d samples in 5 s" % port.count)
    check(995 <= port.count <= 1001, "samples %d" % port.count)
    check(not port.gaps and port.last - port.first + 1 == port.count, "no gap %r" % port.gaps)
    check(port.bad_dt == 0, "t_ms steps of 5 ms")


@req("TM-13")
def test_a_stalled_host_gets_a_gap_then_backfills_it():
    """TM-13: while the host does not read, the pen keeps sampling (nothing blocks); when it
    reads again the stream skips ahead, and `telemetry fetch` returns every missing sample."""
    app, port, svc = _service()

    async def driver():
        port.send(b"telemetry on 200\n")
        await asyncio.sleep_ms(1000)
        port.open = False
        await asyncio.sleep_ms(2000)
        port.open = True
        await asyncio.sleep_ms(1000)
        check(len(port.gaps) == 1, "one gap %r" % port.gaps)
        a, b = port.gaps[0]
        check(b - a + 1 > 300, "a gap of %d" % (b - a + 1))
        q = a
        while q <= b:
            n = port.fetched
            port.send(b"telemetry fetch %d 10\n" % q)
            for _ in range(50):
                await asyncio.sleep_ms(5)
                if port.fetched > n:
                    break
            q += 10
        await asyncio.sleep_ms(100)

    _run(svc, driver)
    missing = [q for q in range(port.first, port.last + 1) if not port.have[q]]
    info("stream %d + fetched %d samples, missing after backfill: %d" % (
        port.count, port.fetched, len(missing)))  # fmt: skip
    check(not missing, "missing %r" % missing[:5])
    check(svc.gaps >= 1)


@req("TM-14")
def test_samples_from_the_facades_integer_fast_path():
    """TM-14: a facade with telemetry_into(buf) fills the sample as ints (no status dict per
    sample); the ring and the stream carry exactly those values."""
    app, port, svc = _service()

    def fill(v):
        v[0], v[1], v[2], v[3], v[4] = 5, 1234, 120, 3200, 1500
        v[5], v[6], v[7], v[8] = 1500, 300, 3750, 0

    app.pen.telemetry_into = fill

    async def driver():
        port.send(b"telemetry on 200\n")
        await asyncio.sleep_ms(200)

    _run(svc, driver)
    check(port.count >= 39, "samples %d" % port.count)
    s = app.fetch("telemetry fetch %d 1" % port.first)[0]
    check(s["state"] == "RUNNING" and s["stroke_hz"] == 123.4 and s["target_hz"] == 120, repr(s))
    check(s["duty"] == 3200 and s["depth_mm"] == 1.5 and s["current_ma"] == 300)
    check(s["battery_mv"] == 3750 and s["fault"] == 0)
