"""100,000 random byte strings into the running application's serial link (SF-07), in process:
the whole application (firmware/app.py on the virtual board, deterministic clock, homed and
READY, its tasks running between batches), each string fed through the link's own line
assembler and answered by the protocol exactly as the link's receive loop does
(SerialService._reply_for). Through the pseudo-terminal the same is shown end to end on a
smaller scale (tests/test_port_security.py); 100,000 strings through the pty would take many
minutes of wall time.

For every string: nothing raises (the application is never left), exactly one reply per line
the string ends (`\\n`, `\\r`, `\\r\\n` once) plus one `~S` line per `?`, every reply `ok ...`
or `error:N ...`, and no setting changes (none of these lines can pass the clinician lock, and
a stray `set` of an open setting would show as an `ok` and be reported)."""

# mp-timeout: 600
# mp-heap: 576K
# (the simulator, this harness and the application's bytecode besides the firmware's data)

from app_rig import AppRig
from mphelp import Rand, check, info, req

N_STRINGS = 100_000


class Sink:
    """The link's sink, counting what SerialService would send."""

    def __init__(self, svc):
        self.svc = svc
        self.replies = 0
        self.status = 0
        self.oks = 0
        self.bad = None

    def line(self, b):
        self._reply(self.svc._reply_for(b))

    def line_error(self, code, message, tag):
        self._reply(self.svc._reply_for((code, message, tag)))

    def realtime(self, c):
        if c == 33:
            self.svc.stop_now()
        else:
            self.status += 1

    def _reply(self, r):
        first = r if isinstance(r, str) else r[0]
        if first.startswith("#"):
            first = first[first.index(" ") + 1:]
        if first.startswith("ok"):
            self.oks += 1
        elif not (first.startswith("error:") and first[6:7].isdigit()):
            self.bad = first
        self.replies += 1


def _expected(data, n, cr):
    lines = queries = 0
    for i in range(n):
        b = data[i]
        if b == 10 and cr:
            cr = False
            continue
        cr = b == 13
        if b == 10 or b == 13:
            lines += 1
        elif b == 63:
            queries += 1
    return lines, queries, cr


@req("SF-07", "SP-33")
def test_100k_random_byte_strings_change_nothing():
    """SF-07, SP-33: 100,000 random byte strings (1..120 bytes; every byte value, line ends,
    0x03, `!` and `?` among them) into the running, homed application: one reply per line, one
    `~S` per `?`, every reply `ok`/`error:N`, no exception, no setting changed, the pen still
    READY and homed with no fault."""
    r = AppRig()
    out = {}

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "the stop at its depth")
        app = r.app
        before = app.settings.as_json()
        svc = app.link
        asm = svc.asm
        sink = Sink(svc)
        rnd = Rand(0x14F022)
        buf = bytearray(120)
        cr = asm.cr
        want_lines = want_q = 0
        ctrl_c = 0
        specials = b"\n\r\x03!?#  \x00\xff"
        for k in range(N_STRINGS):
            x = rnd.u32()
            n = 1 + x % 120
            for i in range(n):
                v = rnd.u32()
                if v & 7 == 0:
                    buf[i] = specials[(v >> 3) % len(specials)]
                else:
                    buf[i] = (v >> 8) & 0xFF
                if buf[i] == 3:
                    ctrl_c += 1
            lines, q, cr = _expected(buf, n, cr)
            want_lines += lines
            want_q += q
            asm.feed(buf, n, sink)
            check(sink.bad is None, "reply %r" % sink.bad)
            if k % 2000 == 1999:
                check(sink.replies == want_lines and sink.status == want_q,
                      "replies %d/%d, status %d/%d after %d strings" % (
                          sink.replies, want_lines, sink.status, want_q, k + 1))  # fmt: skip
                check(app.settings.as_json() == before, "a setting changed by string %d" % k)
                await r.sleep(5)  # the application's tasks run on between batches
        check(sink.replies == want_lines and sink.status == want_q, "reply count")
        check(app.settings.as_json() == before, "a setting changed")
        st = app.pen.status()
        check(st["state"] == "READY" and st["homed"] and not st["fault"], repr(st))
        out.update(lines=want_lines, ok=sink.oks, status=sink.status, ctrl_c=ctrl_c)

    try:
        r.run(scenario, max_ms=600_000)
    finally:
        r.close()
    info("strings %d, lines %r" % (N_STRINGS, out))
