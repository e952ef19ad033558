"""The USB port is not a back door (SF-07..SF-10), end to end on the virtual pen through its
pseudo-terminal, as a hostile user with the cable alone would try it: every byte value
0x00..0xFF (Ctrl-C included) while the needle runs, Ctrl-C on its own, random byte strings;
service mode (the REPL) only with the unlock and a START hold on the pen; the unlock's back-off
across a reboot; the secret never in any reply."""

from __future__ import annotations

import hashlib
import hmac
import random
import time

import pytest
from test_device_scenarios import SPEED, Console

SECRET = b"virtual-pen-test-secret-not-real"


def unlock(pen: Console, secret: bytes = SECRET) -> str:
    ch = pen.ok("unlock")["challenge"]
    return pen.cmd("unlock " + hmac.new(secret, ch.encode(), hashlib.sha256).hexdigest())


def settings_of(pen: Console) -> dict:
    return pen.ok("settings")


def read_lines(pen: Console, until, timeout: float = 20.0) -> list[str]:
    """Lines from the port (without `~` lines) until `until(lines)` holds."""
    out: list[str] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        buf += pen.port.read(4096)
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            line = raw.decode(errors="replace").strip()
            if line and not line.startswith("~"):
                out.append(line)
    return out


def start_running(pen: Console) -> None:
    """Arm, confirm a cartridge and run over the protocol, waiting on the pen's own state."""
    pen.ok("arm")
    pen.ok("cartridge new")
    deadline = time.monotonic() + 20
    while not pen.cmd("run 100").startswith("ok"):  # the stop may still be moving
        assert time.monotonic() < deadline, "run refused"
        time.sleep(0.1)
    pen.wait(lambda s: s["state"] == "RUNNING" and s["measured_hz"] > 90, 20, "running")


@pytest.fixture
def pen(vpen_factory):
    c = Console(vpen_factory(speed=SPEED))
    c.wait_state("READY", timeout=30)
    yield c
    c.close()


@pytest.mark.req("SF-07", "SP-33")
def test_every_byte_value_while_the_needle_runs(pen):
    """SF-07, SP-33: with the needle running, every byte value 0x00..0xFF (0x03 included) is
    sent in lines, in a random order: the application never leaves (no REPL, no
    KeyboardInterrupt), each line gets exactly one reply, no setting changes, the needle runs
    on; `!` (0x21, the real-time stop byte) is sent last and stops it, as documented."""
    before = settings_of(pen)
    start_running(pen)
    values = [b for b in range(256) if b not in (0x21, 0x0A, 0x0D, 0x3F)]
    random.Random(14).shuffle(values)
    data = b""
    lines = 0
    for i in range(0, len(values), 8):
        data += b"#%d x" % i + bytes(values[i:i + 8]) + b"\n"
        lines += 1
    data += b"\r\x03\r\n"  # CR ends a line, LF after it does not: 2 more lines (one with 0x03)
    lines += 2
    pen.port.reset_input_buffer()
    pen.port.write(data)
    got = read_lines(pen, lambda out: len(out) >= lines)
    assert len(got) == lines, got
    assert all(r.startswith("#") or r.startswith("error:") for r in got), got
    assert not any("Traceback" in r or ">>>" in r or "KeyboardInterrupt" in r for r in got)
    time.sleep(0.3)
    st = pen.status()  # the application still answers, one reply per line
    assert st["state"] == "RUNNING" and st["measured_hz"] > 90, st
    assert settings_of(pen) == before
    pen.port.write(b"!")
    st = pen.wait(lambda s: s["state"] in ("STOPPING", "ARMED"), 5, "stopped by `!`")
    assert settings_of(pen) == before


@pytest.mark.req("SF-07", "SF-08", "PS-18")
def test_ctrl_c_never_reaches_the_repl(pen):
    """SF-07, SF-08, PS-18: Ctrl-C alone, repeated, and mpremote's raw-REPL request
    (Ctrl-C, Ctrl-A) while running: the application keeps running and answering; no REPL."""
    start_running(pen)
    pen.port.reset_input_buffer()
    pen.port.write(b"\x03\x03\x03\r\x03\x01\r\n")
    time.sleep(1.0)
    out = pen.port.read(8192)
    assert b">>>" not in out and b"raw REPL" not in out and b"KeyboardInterrupt" not in out
    st = pen.status()
    assert st["state"] == "RUNNING", st
    pen.ok("stop")


@pytest.mark.req("SF-08")
def test_service_mode_needs_the_unlock_and_a_start_hold(pen):
    """SF-08: `service reboot` is refused without the unlock; with it, the pen waits in
    SERVICE for START held 2 s on the pen; then it restarts in service mode with the REPL on
    the port; a reset from there is a normal boot (the application answers again)."""
    err = pen.cmd("service reboot")
    assert err.startswith("error:"), err
    assert unlock(pen).startswith("ok")
    r = pen.ok("service reboot")
    assert r["hold_start_s"] == 2
    assert pen.status()["state"] == "SERVICE"
    pen.port.reset_input_buffer()
    # the hold ends in a reboot: answered at once (the press cannot be seen after its release)
    pen.vp.ctl("press", "start", "--hold-ms", "2600", "--no-wait")
    out = b""
    deadline = time.monotonic() + 20
    while b">>>" not in out and time.monotonic() < deadline:
        out += pen.port.read(4096)
    assert b"service mode" in out and b">>>" in out, out
    pen.port.write(b"\x04")  # Ctrl-D: soft reset -> normal boot
    pen.wait_state("READY", timeout=30)


@pytest.mark.req("SF-08")
def test_service_request_lapses_without_the_hold(pen):
    """SF-08: without the hold on the pen the request lapses: the pen leaves SERVICE, re-homes
    and the application stays (a short press does not count)."""
    assert unlock(pen).startswith("ok")
    pen.ok("service reboot")
    pen.press("start", 500)
    pen.virtual_sleep(16_000)
    st = pen.wait(lambda s: s["state"] in ("HOMING", "READY", "LOCKED"), 20, "left SERVICE")
    assert st["state"] != "SERVICE"


@pytest.mark.req("SF-09", "SF-10")
def test_unlock_backoff_survives_a_reboot_and_the_secret_is_never_sent(pen):
    """SF-09, SF-10: three wrong answers, then a power cut: after the reboot the next unlock
    attempt is still rate-limited; no reply of any command (help lists them) carries the
    secret."""
    for _ in range(3):
        deadline = time.monotonic() + 30
        while (r := pen.cmd("unlock")).startswith("error:13"):  # the wait after a failure
            assert time.monotonic() < deadline, r
            time.sleep(0.2)
        assert r.startswith("ok"), r
        assert pen.cmd("unlock " + "0" * 64).startswith("error:")
    pen.vp.ctl("power", "cut")
    pen.wait_state("READY", timeout=40)
    r = pen.cmd("unlock")
    assert r.startswith("error:") and "wait" in r, r
    secret_hex = SECRET.hex()
    names = sorted({c["command"].split()[0] for c in pen.ok("help")})
    assert "service" in names and "unlock" in names
    replies = []
    for name in names:
        if name in ("run", "arm", "home", "provision", "defaults", "save"):
            continue  # actions, not reads (provision is refused: a secret exists)
        for line in (name, f"{name} get", f"{name} list"):
            replies.append(pen.cmd(line))
    replies += [pen.cmd(x) for x in ("dump", "faults", "settings", "provision " + secret_hex)]
    blob = "\n".join(replies)
    assert secret_hex not in blob and SECRET.decode() not in blob, blob


def _lines_ended(data: bytes, cr: bool) -> tuple[int, bool]:
    n = 0
    for b in data:
        if b == 10 and cr:
            cr = False
            continue
        cr = b == 13
        if b in (10, 13):
            n += 1
    return n, cr


@pytest.mark.req("SF-07")
def test_random_byte_strings_through_the_port(pen):
    """SF-07: 400 random byte strings (every byte value; line ends, 0x03, `!`, `?` among them)
    through the pseudo-terminal, end to end (the 100,000-string run is in process:
    tests/mp/mptest_sf_fuzz.py): exactly one reply per line, every reply `ok`/`error:N`, no
    setting changed, the application still answering (never the REPL)."""
    before = settings_of(pen)
    rnd = random.Random(0x5F07)
    specials = b"\n\r\x03!?#"
    cr = False
    pen.port.reset_input_buffer()
    total = 0
    for _batch in range(20):
        data = b""
        for _ in range(20):
            n = rnd.randint(1, 80)
            data += bytes(rnd.choice(specials) if rnd.random() < 0.12 else rnd.randrange(256)
                          for _ in range(n))  # fmt: skip
        data += b"\n"
        lines, cr = _lines_ended(data, cr)
        pen.port.write(data)
        got = read_lines(pen, lambda out, k=lines: len(out) >= k)
        assert len(got) == lines, (data, got)
        for r in got:
            body = r.split(" ", 1)[1] if r.startswith("#") and " " in r else r
            assert body.startswith("ok") or (body.startswith("error:") and body[6].isdigit()), r
            assert ">>>" not in r and "Traceback" not in r, r
        total += lines
    time.sleep(0.3)
    pen.port.reset_input_buffer()
    assert settings_of(pen) == before
    assert pen.status()["state"] in ("READY", "SLEEP")
    assert total > 400
