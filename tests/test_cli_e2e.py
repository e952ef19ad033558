"""The `pen` command end to end: every host-tool command's --help and failure behaviour, and
status/settings/unlock against the virtual pen through pyserial on its pseudo-terminal."""

from __future__ import annotations

import json

import pytest

from pen.cli import build_parser
from pen.cli import main as pen_main

HOST_COMMANDS = ("status", "get", "set", "settings", "unlock", "lock", "deploy", "calibrate",
                 "log", "sessions", "report")  # fmt: skip
NESTED = (("settings", "save"), ("settings", "load"), ("calibrate", "depth"))
TEST_SECRET = "virtual-pen-test-secret-not-real"  # the virtual pen's documented test secret


def run_pen(capsys, *argv) -> tuple[int, str, str]:
    try:
        rc = pen_main(list(argv))
    except SystemExit as exc:  # argparse: --help, usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.req("HT-7")
def test_every_command_has_help(capsys):
    """HT-7: every host-tool command (and sub-action) answers --help with its usage."""
    choices = None
    for action in build_parser()._actions:
        if getattr(action, "choices", None) and "status" in action.choices:
            choices = action.choices
    assert choices is not None
    for name in HOST_COMMANDS:
        assert name in choices, name
        rc, out, _ = run_pen(capsys, name, "--help")
        assert rc == 0 and out.startswith("usage: pen " + name), name
    for words in NESTED:
        rc, out, _ = run_pen(capsys, *words, "--help")
        assert rc == 0 and out.startswith("usage: pen " + " ".join(words)), words


@pytest.mark.req("HT-7", "HT-21")
@pytest.mark.parametrize(
    "argv, words",
    [
        (["--port", "/dev/nonexistent-pen", "status"], "cannot open the pen's port"),
        (["set", "no_such_setting", "1"], "unknown setting"),
        (["set", "depth", "9"], "depth must be"),
        (["set", "stroke_hz", "fast"], "stroke_hz"),
        (["report", "7", "--db", "{tmp}/none.sqlite3"], "no telemetry database"),
        (["log", "--simulate-disconnect", "5", "--db", "{tmp}/t.sqlite3"], "AT:SECONDS"),
        (["unlock"], "no secret"),
    ],
)
def test_failures_are_one_clear_line(capsys, tmp_path, monkeypatch, argv, words):
    """HT-7, HT-21: a failure exits non-zero with one line that says what is wrong; a bad
    setting is refused from the schema before any port is opened."""
    monkeypatch.delenv("PEN_SECRET", raising=False)
    monkeypatch.setenv("PEN_PORT", "/dev/nonexistent-pen")
    rc, out, err = run_pen(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert rc not in (0, None)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("pen: error: "), err
    assert words in lines[0], lines[0]


@pytest.mark.req("HT-20", "HT-2")
def test_status_over_the_virtual_pen(vpen, capsys):
    """HT-20, HT-2: `pen status --json` handshakes with the virtual pen and reports its state;
    the versions match this checkout."""
    rc, out, err = run_pen(capsys, "--port", vpen.port, "status", "--json")
    assert rc == 0, err
    st = json.loads(out)
    assert st["handshake_ok"] is True and st["hello"]["protocol_version"] == 1
    assert st["status"]["state"] in ("BOOT", "LOCKED", "HOMING", "READY")
    rc, out, err = run_pen(capsys, "--port", vpen.port, "status")
    assert rc == 0 and out.startswith(f"pen on {vpen.port}: firmware ")


def _wait_ready(port: str, capsys) -> None:
    """`pen home` returns once the pen reports itself homed (it homes by itself after boot)."""
    rc, out, err = run_pen(capsys, "--port", port, "home", "--json")
    assert rc == 0, err
    assert json.loads(out)["status"]["state"] == "READY"


@pytest.mark.req("HT-60", "HT-61", "SF-14")
def test_the_demo_by_hand(vpen, capsys):
    """HT-60, HT-61, SF-14: `pen home/arm/cartridge new/run/stop/disarm/clear/reset` do what the
    buttons do, through the pen's protocol; a refusal names the command that gets past it; the
    pen after `pen reset` (a watchdog reboot, as machine.reset() is on the RP2040) reports no
    fault."""
    port = vpen.port
    _wait_ready(port, capsys)

    def pen(*argv):
        rc, out, err = run_pen(capsys, "--port", port, *argv, "--json")
        assert rc == 0, (argv, err)
        return json.loads(out)

    def refused(*argv):
        rc, out, err = run_pen(capsys, "--port", port, *argv)
        assert rc == 1 and out == "", (argv, out)
        return err

    assert "`pen arm`" in refused("run", "100")
    assert pen("arm")["status"]["state"] == "ARMED"
    assert "`pen cartridge new`" in refused("run", "100")
    assert pen("cartridge", "new")["reply"]["cartridge"] >= 1
    def settled():
        for _ in range(200):  # the depth stop's position checked (SF-13), in the pen's time
            if pen("status")["status"]["depth_settled"]:
                return
            vpen.ctl("wait", "50")
        raise AssertionError("the depth stop's position was never checked")

    settled()
    got = pen("run", "100")["status"]
    assert got["state"] == "RUNNING" and got["target_hz"] == 100
    assert pen("stop")["status"]["state"] == "ARMED"
    assert pen("disarm")["status"]["state"] == "READY"
    assert pen("clear")["status"]["state"] == "READY"
    assert pen("arm")["status"]["state"] == "ARMED"
    assert pen("cartridge", "new")["reply"]["cartridge"] >= 1
    settled()
    pen("run", "100")
    # `pen reset` is refused while the needle runs, and says what to do; then it restarts the
    # pen as at power-up: a new boot (uptime from zero), homed again, arming and cartridge gone.
    assert "`pen stop`" in refused("reset")
    assert pen("stop")["status"]["state"] == "ARMED"
    up = pen("status")["status"]["uptime_ms"]
    rc, out, err = run_pen(capsys, "--port", port, "reset", "--json")
    assert rc == 0, err
    st = json.loads(out)["status"]
    assert st["uptime_ms"] < up and st["state"] in ("HOMING", "READY") and not st["cartridge_ok"]
    assert st["fault"] is None, st  # an intended reset is no watchdog reset (SF-14)
    _wait_ready(port, capsys)


@pytest.mark.req("HT-62")
def test_other_commands_work_while_a_log_runs(vpen, capsys, tmp_path):
    """HT-62: while `pen log` holds the port, other `pen` commands go through its link (a local
    socket) instead of failing to open the port; what only the port's holder can do (the
    telemetry stream, a reset) is refused with what to do."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pen.link.share import socket_path

    port = vpen.port
    _wait_ready(port, capsys)
    log = subprocess.Popen(
        [str(Path(sys.executable).with_name("pen")), "--port", port, "log", "--db",
         str(tmp_path / "t.sqlite3"), "--quiet", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):  # until the logger lends its link (or ends)
            if socket_path(port).exists() or log.poll() is not None:
                break
            time.sleep(0.05)
        assert log.poll() is None and socket_path(port).exists(), log.stderr.read()
        rc, out, err = run_pen(capsys, "--port", port, "status", "--json")
        assert rc == 0 and json.loads(out)["status"]["state"] == "READY", err
        rc, out, err = run_pen(capsys, "--port", port, "arm", "--json")
        assert rc == 0 and json.loads(out)["status"]["state"] == "ARMED", err
        rc, out, err = run_pen(capsys, "--port", port, "get", "stroke_hz")
        assert rc == 0 and out.strip(), err
        rc, out, err = run_pen(capsys, "--port", port, "sessions", "--db",
                               str(tmp_path / "t.sqlite3"), "--json")  # fmt: skip
        assert rc == 0 and isinstance(json.loads(out)["pen"], list), err
        rc, out, err = run_pen(capsys, "--port", port, "reset")
        assert rc == 1 and "stop the log" in err
    finally:
        os.kill(log.pid, signal.SIGINT)  # Ctrl-C: the logger ends its session
        out, err = log.communicate(timeout=60)
    assert log.returncode == 0, err
    assert json.loads(out)["samples"] > 0
    assert not socket_path(port).exists()


@pytest.mark.req("HT-20", "HT-21", "HT-22")
def test_settings_unlock_save_and_load(vpen, tmp_path, capsys, monkeypatch):
    """HT-20, HT-21, HT-22: get/set/settings on the virtual pen; a protected setting needs the
    unlock (HMAC of the pen's challenge with the secret; a wrong secret fails); `settings save`
    writes a file that `settings load` validates in full and applies in an order the pen
    accepts; an invalid file, or protected changes on a locked pen, send nothing; a
    calibration saved from another pen is never loaded."""
    monkeypatch.delenv("PEN_SECRET", raising=False)
    port = vpen.port
    _wait_ready(port, capsys)
    secret = tmp_path / "secret.key"
    secret.write_text(TEST_SECRET.encode().hex() + "\n")

    rc, out, err = run_pen(capsys, "--port", port, "get", "depth", "--json")
    assert rc == 0 and json.loads(out) == {"depth": 0.5}, err
    rc, out, err = run_pen(capsys, "--port", port, "set", "depth_limit", "2.00")
    assert rc == 1 and "unlock" in err
    rc, out, err = run_pen(capsys, "--port", port, "unlock", "--secret-file", str(secret), "--json")
    assert rc == 0 and json.loads(out)["unlocked"] is True, err
    rc, out, err = run_pen(capsys, "--port", port, "set", "depth_limit", "2.00")
    assert rc == 0 and out.strip() == "2.0", err
    rc, out, err = run_pen(capsys, "--port", port, "settings")
    assert rc == 0 and "depth_limit" in out and "P" in out

    saved = tmp_path / "saved.json"
    rc, out, err = run_pen(capsys, "--port", port, "settings", "save", str(saved))
    assert rc == 0, err
    doc = json.loads(saved.read_text())
    assert doc["settings"]["depth_limit"] == 2.0 and doc["pen_serial"]
    rc, _, err = run_pen(capsys, "--port", port, "lock")
    assert rc == 0, err

    def pen_settings() -> dict:
        rc, out, err = run_pen(capsys, "--port", port, "settings", "--json")
        assert rc == 0, err
        return json.loads(out)

    before = pen_settings()
    # A new limit, a preset and a depth inside it: the depth only fits once the preset exists
    # and the preset only fits under the new limit -- the order matters.
    target = dict(doc["settings"], depth_limit=2.4, depth=2.2, stroke_hz=120,
                  **{"preset.body.depth_min": 2.0, "preset.body.depth_max": 2.3,
                     "preset.body.depth_default": 2.1, "preset.body.stroke_hz": 110,
                     "preset.active": "body"})  # fmt: skip
    new = tmp_path / "new.json"
    new.write_text(json.dumps(dict(doc, settings=target)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(doc, settings=dict(target, depth=9))))
    rc, out, err = run_pen(capsys, "--port", port, "settings", "load", str(bad))
    assert rc == 1 and "depth" in err
    rc, out, err = run_pen(capsys, "--port", port, "settings", "load", str(new))
    assert rc == 1 and "locked" in err and "nothing was sent" in err
    assert pen_settings() == before

    rc, out, err = run_pen(capsys, "--port", port, "settings", "load", str(new), "--secret-file",
                           str(secret), "--json")  # fmt: skip
    assert rc == 0, err
    res = json.loads(out)
    assert res["sent"] == len(res["steps"])
    i = res["steps"].index("set preset.active body")  # selecting it loads its depth and rate:
    assert {"set depth 2.2", "set stroke_hz 120"} <= set(res["steps"][i:])  # then these
    after = pen_settings()
    for k, v in target.items():
        if k != "calib":
            assert after[k] == v, (k, after[k], v)

    other = tmp_path / "other.json"
    foreign = dict(target, calib=[0, -90, 1440, 3600])
    other.write_text(json.dumps(dict(doc, pen_serial="another-pen", settings=foreign)))
    rc, out, err = run_pen(capsys, "--port", port, "settings", "load", str(other),
                           "--with-calibration", "--secret-file", str(secret))  # fmt: skip
    assert rc == 1 and "another pen" in err
    assert pen_settings()["calib"] == after["calib"]

    # A wrong secret is refused (last: failures make the next attempt wait).
    monkeypatch.setenv("PEN_SECRET", "00" * 32)
    rc, out, err = run_pen(capsys, "--port", port, "unlock")
    assert rc == 1 and "unlock refused" in err
