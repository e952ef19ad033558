# The pen's command handling as a long-lived process for the fuzz test
# (tests/host/test_protocol_fuzz.py):
#   micropython -X heapsize=190K tests/mp/fuzz_server.py      (cwd = the repository root)
# Reads frames on stdin: 4-byte little-endian length, then that many bytes (0xFFFFFFFF ends).
# Each frame's bytes go through the link's LineAssembler into the protocol (real Settings on
# littlefs on a RAM block device, real Auth, Telemetry, a fake state machine), exactly as the
# SerialService does: one reply line per line, `~S` for `?`, pen.stop() for `!`. After each
# frame: `@@END <settings fingerprint> <unlocked 0/1>`. The host unlocks with ordinary `unlock`
# lines.
import sys

sys.path[:] = ["", "tests/mp", "sim", ".frozen"]

import simrt  # noqa: E402

SIM = simrt.install(realtime=False)

import json  # noqa: E402
from binascii import crc32, hexlify  # noqa: E402

from protofake import TEST_SECRET, FakeApp  # noqa: E402
from ramfs import RamFlash, format_and_mount  # noqa: E402

from firmware.link import LineAssembler  # noqa: E402
from firmware.protocol import error  # noqa: E402

format_and_mount(RamFlash(512, 24))
with open("/flash/pen_secret.key", "w") as _f:
    _f.write(hexlify(TEST_SECRET).decode() + "\n")
app = FakeApp(root="/flash", capacity=500, ctx=32)
for _i in range(300):
    app.telemetry.record(5 * _i, 200, 5, 1000, 100, 3000, 500, 500, 200, 3800, 0)

out = sys.stdout


class Sink:
    def line(self, b):
        r = app.protocol.handle(b)
        if isinstance(r, str):
            out.write(r)
        else:
            for p in r:
                out.write(p)
        out.write("\n")

    def line_error(self, code, msg, tag):
        r = error(code, msg)
        out.write(r if tag is None else "#%s %s" % (tag, r))
        out.write("\n")

    def realtime(self, c):
        if c == 33:
            try:  # as SerialService.stop_now
                app.pen.stop()
            except Exception:  # noqa: BLE001
                pass
        else:
            out.write("~S " + json.dumps(app.protocol.status()) + "\n")


sink = Sink()
asm = LineAssembler()
inp = sys.stdin.buffer
head = bytearray(4)
buf = bytearray(2048)  # preallocated: the harness must not fragment the heap it tests
mv = memoryview(buf)
while True:
    if inp.readinto(head) < 4:
        break
    n = head[0] | (head[1] << 8) | (head[2] << 16) | (head[3] << 24)
    if n == 0xFFFFFFFF:
        break
    while n:
        k = n if n < len(buf) else len(buf)
        inp.readinto(mv[:k])
        asm.feed(buf, k, sink)
        n -= k
    SIM.advance(10_000)
    fp = crc32(app.settings.as_json().encode())
    out.write("@@END %d %d\n" % (fp, 1 if app.auth.unlocked() else 0))
