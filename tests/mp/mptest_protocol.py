"""The command protocol against a fake state-machine facade (SP- requirements): one reply per
line, tags, numbered errors, help for every command, the facade's refusals passed through,
and nothing changed by a bad line."""

import json

from mphelp import check, req
from protofake import FakeApp

from firmware import errors as E
from firmware.help import HELP
from firmware.protocol import Protocol
from firmware.schema import schema_hash
from firmware.version import FIRMWARE_VERSION, PROTOCOL_VERSION


def _one_line(r):
    check("\n" not in r and "\r" not in r, "one line: %r" % r)
    check(r == "ok" or r.startswith("ok ") or r.startswith("error:"), r)


@req("SP-30")
def test_every_command_has_help():
    """SP-30: every `cmd_X` has a help entry (generated from its docstring), and `help` lists
    them all."""
    names = sorted(n[4:] for n in dir(Protocol) if n.startswith("cmd_"))
    helped = sorted(u.split()[0] for u, _ in HELP)
    check(names == helped, "%r != %r" % (names, helped))
    app = FakeApp()
    lst = app.ok("help")
    check(len(lst) == len(names) and all(d["help"] for d in lst))


@req("SP-31")
def test_hello_reports_versions_and_schema():
    """SP-31: the handshake reports firmware version, protocol version and schema hash."""
    app = FakeApp()
    h = app.ok("hello")
    check(h["firmware_version"] == FIRMWARE_VERSION and h["protocol_version"] == PROTOCOL_VERSION)
    check(h["schema_hash"] == schema_hash() and len(h["schema_hash"]) == 64)


@req("SP-32")
def test_tags_are_echoed():
    """SP-32: a `#N ` tag is echoed on the reply, ok or error; a bad tag is an error."""
    app = FakeApp()
    check(app.cmd("#17 hello").startswith("#17 ok {"))
    check(app.cmd("#18 frobnicate").startswith("#18 error:%d " % E.UNKNOWN_COMMAND))
    check(app.cmd("#19").startswith("#19 error:%d " % E.BAD_LINE))
    r = app.cmd("#19 telemetry fetch 0 2")
    check(r.startswith("#19 ok ["), r)
    for bad in ("#x hello", "#1234567890 hello", "# hello", "#-1 hello"):
        check(app.cmd(bad).startswith("error:%d " % E.BAD_LINE), bad)


@req("SP-33")
def test_bad_lines_get_one_error_and_change_nothing():
    """SP-33: malformed lines (not UTF-8, empty, unknown, wrong arguments) each get exactly one
    `error:N` line; no setting and no pen call changes."""
    app = FakeApp()
    fp = app.settings.as_json()
    bad = [b"\xff\xfe", b"", b"   ", b"frobnicate", b"HELLO", b"hello extra", b"status 1",
           b"get", b"get a b", b"set depth", b"run fast", b"run 1.5", b"depth",
           b"depth 1.00 please", b"telemetry sideways", b"telemetry fetch", b"telemetry fetch x",
           b"telemetry fetch 0 0", b"telemetry fetch 0 101", b"telemetry on 0",
           b"telemetry on 201", b"cartridge", b"cartridge old", b"move_steps", b"move_steps x",
           b"calib", b"calib set", b"session", b"session get x", b"preset", b"preset delete",
           b"unlock a b", b"service", b"set depth 1.00 overdrive", b"cmd_hello",
           b"__init__", b"_dispatch", b"\xc3\x28", "d\u00e9pth 1".encode()]  # fmt: skip
    for line in bad:
        r = app.cmd(line)
        _one_line(r)
        check(r.startswith("error:"), "%r -> %r" % (line, r))
    check(app.settings.as_json() == fp, "settings unchanged")
    check(app.pen.calls == [], "no pen call: %r" % app.pen.calls)


@req("SP-34")
def test_commands_drive_the_facade_and_pass_refusals():
    """SP-34: the pen commands call the state machine's facade; its refusals come back as
    their numbered errors."""
    app = FakeApp()
    pen = app.pen
    check(app.err("run") == E.NOT_ARMED)
    check(app.cmd("arm") == "ok" and pen.state == "ARMED")
    check(app.err("run 200") == E.OUT_OF_RANGE)
    check(app.cmd("run 120") == "ok" and pen.state == "RUNNING")
    check(app.err("home") == E.MOTOR_RUNNING)
    check(app.err("depth 1.00") == E.MOTOR_RUNNING, "depth only while stopped")
    check(app.cmd("stop") == "ok" and pen.state == "STOPPING")
    check(app.cmd("stop") == "ok" and ("coast",) in pen.calls, "second stop coasts")
    check(app.cmd("disarm") == "ok" and pen.state == "READY")
    check(app.ok("cartridge new") == {"cartridge": 1})
    check(app.ok("depth 1.25") == {"target_depth_mm": 1.25} and pen.targets.depth_um == 1250)
    check(app.cmd("clear") == "ok" and app.cmd("home") == "ok")
    check(app.err("move_steps 10") == E.BUSY)
    check(app.err("service enter") == E.LOCKED, "service needs unlock")
    app.auth.unlocked = lambda: True
    check(app.cmd("service enter") == "ok" and app.cmd("move_steps -40") == "ok")
    check(app.cmd("service exit") == "ok")
    names = [c[0] for c in pen.calls]
    check(pen.depth.target_um == 1250, "the depth axis commanded")
    for n in ("arm", "run", "stop", "disarm", "confirm_cartridge", "clear_fault", "home",
              "enter_service", "move_steps", "exit_service"):  # fmt: skip
        check(n in names, n)
    check(("run", 120) in pen.calls and ("move_steps", -40) in pen.calls)


@req("SP-35")
def test_status_faults_and_settings_are_json():
    """SP-35: status, faults, settings, dump, get and calib get answer one JSON payload."""
    app = FakeApp()
    st = app.ok("status")
    for k in ("state", "homed", "depth_mm", "target_depth_mm", "measured_hz", "target_hz", "duty",
              "current_ma", "battery_mv", "fault", "firmware_version", "protocol_version"):
        check(k in st, k)
    app.pen.fault_code = 1
    f = app.ok("faults")
    check(f["fault"] == "stall" and f["log"] == [{"t_ms": 1234, "fault": "stall"}])
    s = app.ok("settings")
    check(s["depth"] == 0.5 and s["calib"] == [0, -100, 1440, 3680], repr(s))
    check(isinstance(app.ok("dump"), list))
    check(app.ok("calib get") == [0, -100, 1440, 3680])
    check(app.ok("get preset.active") == {"preset.active": "none"})
    check(app.err("get preset.nope.stroke_hz") == E.UNKNOWN_SETTING)


@req("TM-10")
def test_telemetry_commands():
    """TM-10: `telemetry on/off` drive the stream; `telemetry fetch SEQ N` returns the kept
    samples from SEQ (from the oldest kept if SEQ is older), at most N."""
    app = FakeApp(capacity=500, ctx=32)
    tm = app.telemetry
    for i in range(800):
        tm.record(1000 + 5 * i, 200, 5, 1000, 100, 3200, 1000, 1000, 200, 3800, 0)
    check(app.ok("telemetry on 200") == {"stream_hz": 200, "next_seq": 800})
    check(app.link.stream_hz == 200)
    check(app.ok("telemetry on")["stream_hz"] == 50, "default: telemetry_hz")
    check(app.cmd("telemetry off") == "ok" and app.link.stream_hz == 0)
    info = app.ok("telemetry")
    check(info["next_seq"] == 800 and info["oldest_seq"] == 300 and info["capacity"] == 500)
    got = app.ok("telemetry fetch 0 5")
    check([s["seq"] for s in got] == [300, 301, 302, 303, 304], repr(got[:1]))
    s = got[0]
    check(s["t_ms"] == 1000 + 5 * 300 and s["state"] == "RUNNING" and s["stroke_hz"] == 100.0)
    check(s["depth_mm"] == 1.0 and s["current_ma"] == 200 and s["battery_mv"] == 3800)
    check(len(app.ok("telemetry fetch 790")) == 10)
    check(app.ok("telemetry fetch 800") == [])
    got = app.fetch("telemetry fetch 400 50")
    check([s["seq"] for s in got] == list(range(400, 450)))
    check(app.cmd("telemetry fetch 400 51").startswith("error:"))  # FETCH_MAX: bounded reply


@req("TM-11")
def test_session_commands():
    """TM-11, TM-21: session summaries are listed (bounded: the newest 32 or N from FIRST) and
    fetched; a missing one is NOT_FOUND; `session ack N` / `session info` reach the store."""
    app = FakeApp()
    check(app.ok("session list") == [{"id": 1, "start": "2026-03-01T10:00:00",
                                      "duration_s": 60.0}])  # fmt: skip
    check(app.ok("session get 1")["id"] == 1)
    check(app.ok("session summary last")["id"] == 1)
    check(app.err("session get 2") == E.NOT_FOUND)
    app.ok("session list 5 3")
    check(app.sessions.listed == (5, 3), "FIRST and N reach the store")
    check(app.err("session list 1 33") == E.OUT_OF_RANGE, "a listing is at most 32")
    check(app.err("session list x") == E.BAD_ARGUMENT)
    check(app.ok("session ack 1")["acked"] == 1 and app.ok("session info")["kept"] == 1)
    app.sessions.recs = []
    check(app.err("session summary last") == E.NOT_FOUND)


@req("SP-36")
def test_an_internal_error_still_gets_one_reply():
    """SP-36: an unexpected exception in a command is answered `error:19` (one line), and the
    protocol keeps working."""
    app = FakeApp()

    def broken():
        raise ValueError("bug")

    app.pen.home = broken
    check(app.err("home") == E.INTERNAL)
    check(app.ok("hello")["protocol_version"] == PROTOCOL_VERSION)
    json.dumps(app.ok("status"))
