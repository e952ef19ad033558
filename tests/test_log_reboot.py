"""`pen log` as a user runs it (a separate process) on the virtual pen, through the events that
used to lose data: the pen rebooting mid-run (a power cut), and `pen log` itself being killed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pen.link import PenRefused, open_link

SPEED = 4
PEN = str(Path(sys.executable).with_name("pen"))


def wait(link, ok, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = link.call("status")
            if ok(st):
                return st
        except Exception:  # noqa: BLE001 -- the pen is rebooting
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _open(port: str):
    deadline = time.monotonic() + 30
    while True:
        try:
            return open_link(port)
        except Exception:  # noqa: BLE001 -- the pen is still starting
            assert time.monotonic() < deadline, "the pen's port does not open"
            time.sleep(0.2)


def run_needle(port: str) -> None:
    with _open(port) as link:
        wait(link, lambda s: s["homed"] and s["state"] in ("READY", "ARMED"))
        if link.call("status")["state"] == "READY":
            link.call("arm")
        link.call("cartridge new")
        deadline = time.monotonic() + 10
        while True:  # refused (BUSY) while the depth stop still settles
            try:
                link.call("run 100")
                break
            except PenRefused:
                assert time.monotonic() < deadline, "run refused"
                time.sleep(0.1)
        wait(link, lambda s: s["state"] == "RUNNING")


def screen_shows(pen, words: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    shown = ""
    while words not in shown:
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
        try:
            shown = " ".join(json.loads(pen.ctl("screen"))["lines"])
        except RuntimeError:  # the display is not up yet (the pen is booting)
            shown = ""


def stored(db: Path) -> int:
    """Samples stored so far (0 while pen log is still creating the database)."""
    try:
        return rows(db, "SELECT COUNT(*) FROM samples")[0][0] if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def rows(db: Path, sql: str, *params):
    con = sqlite3.connect(db, timeout=15)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


@pytest.mark.req("HT-84", "HT-88")
def test_log_survives_a_pen_reboot(vpen_factory, tmp_path):
    """HT-84, HT-88: `pen log --duration` with a power cut mid-run: the logger notices the
    reboot (the pen's new boot / its uptime going back), records the gap and a reboot event,
    subscribes again and stores the new boot's samples once the pen runs again; the log's
    record names the pen's own session numbers it saw."""
    pen = vpen_factory(speed=SPEED)
    db = tmp_path / "t.sqlite3"
    run_needle(pen.port)
    log = subprocess.Popen([PEN, "--port", pen.port, "log", "--telemetry-db", str(db),
                            "--duration", "14", "--rate", "100", "--quiet", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while stored(db) <= 100:
            assert time.monotonic() < deadline and log.poll() is None, log.stderr.read()
            time.sleep(0.1)
        pen.ctl("power", "cut")
        # The user waits for READY on the display, then arms, confirms a cartridge and runs
        # with the buttons (pen log holds the serial port).
        screen_shows(pen, "READY")
        pen.ctl("press", "start", "--hold-ms", "1200")
        screen_shows(pen, "ARMED")
        pen.ctl("press", "plus+minus", "--hold-ms", "1200")
        screen_shows(pen, "CARTRIDGE")
        time.sleep(0.5)
        pen.ctl("press", "start", "--hold-ms", "100")
        screen_shows(pen, "RUNNING")
        out, err = log.communicate(timeout=60)
    finally:
        if log.poll() is None:
            log.kill()
    assert log.returncode == 0, err
    summ = json.loads(out)
    assert summ["boots"] == 2, summ
    reasons = [g["reason"] for g in summ["gaps"]]
    assert any("rebooted" in r for r in reasons), reasons
    per_boot = dict(rows(db, "SELECT boot, COUNT(*) FROM samples GROUP BY boot"))
    assert per_boot.get(1, 0) > 100 and per_boot.get(2, 0) > 50, per_boot
    ev = rows(db, "SELECT data FROM events WHERE kind='R'")
    assert len(ev) == 1 and json.loads(ev[0][0])["event"] == "reboot"
    assert rows(db, "SELECT ended_at IS NOT NULL FROM sessions")[0][0] == 1
    # The pen's own session numbers (one before the cut, one after) are on the log's record.
    assert rows(db, "SELECT pen_sessions FROM sessions")[0][0] == "1,2"


@pytest.mark.req("HT-85")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killed_log_finishes_its_session(vpen_factory, tmp_path, sig):
    """HT-85: `pen log` (no --duration) killed with SIGINT or SIGTERM while samples flow: the
    session's record is finished (end time and counts written) and pen exits."""
    pen = vpen_factory(speed=SPEED)
    db = tmp_path / "t.sqlite3"
    run_needle(pen.port)
    log = subprocess.Popen([PEN, "--port", pen.port, "log", "--telemetry-db", str(db),
                            "--rate", "100", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while stored(db) <= 50:
            assert time.monotonic() < deadline and log.poll() is None, log.stderr.read()
            time.sleep(0.1)
        log.send_signal(sig)
        log.communicate(timeout=20)
    finally:
        if log.poll() is None:
            log.kill()
    ended, samples = rows(db, "SELECT ended_at, samples FROM sessions")[0]
    kept = rows(db, "SELECT COUNT(*) FROM samples")[0][0]
    assert ended is not None, "the session has no end time"
    assert samples == kept > 50
