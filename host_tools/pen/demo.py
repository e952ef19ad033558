"""`make demo` (python -m pen.demo): the virtual pen driven through the `pen` commands.

Starts a virtual pen (`pen sim`), then: handshake and status, homing, a quick depth
calibration with the virtual gauge, a depth, arming and a new cartridge, the needle at a set
stroke rate for a few seconds under skin load with live figures (the `pen log` engine), stop,
and the session's summary and report PNG (`pen report`). Every step is a `pen` command, as
typed by hand (README); while the log records, the commands go through its link.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_SECRET_HEX = b"virtual-pen-test-secret-not-real".hex()  # the virtual pen's test secret


def say(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def pen(*argv: str) -> int:
    """Run one `pen` command in this process, as typed on the command line."""
    from .cli import main

    print("$ pen " + " ".join(argv), flush=True)
    rc = main(list(argv))
    if rc:
        raise SystemExit(f"demo: `pen {' '.join(argv)}` failed (exit status {rc})")
    return rc


def start_sim(speed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pen.cli", "sim", "--speed", str(speed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    port = proc.stdout.readline().strip()
    if not port.startswith("/dev/"):
        proc.kill()
        raise SystemExit("demo: the virtual pen did not start")
    return proc, port


def wait_status(link, ok, what: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = link.call("status")
        if ok(st):
            return st
        if st.get("fault"):
            raise SystemExit(f"demo: the pen faulted ({st['fault']}) while {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out while {what} (state {st.get('state')})")
        time.sleep(0.1)


def run_session(port: str, out: Path, hz: int, depth: float, seconds: float, load: float):
    """Arm, new cartridge, run under skin load with live figures, stop. Returns the session."""
    from rich.console import Console
    from rich.live import Live

    from . import logger as lg
    from .commands.log import live_view
    from .link import session
    from .sim import ctl_command

    pen("--port", port, "arm")
    pen("--port", port, "cartridge", "new")
    db = lg.open_db(out / "telemetry.sqlite3")
    # The log's link, lent to the `pen` commands below (as `pen log` lends it).
    with session(argparse.Namespace(port=port), share=True) as link:
        # the depth stop moves to its depth, and its position is checked at the endstop
        wait_status(link, lambda s: s.get("depth_settled"),
                    "moving the depth stop, checking its position")  # fmt: skip
        logger = lg.TelemetryLogger(link, db, rate_hz=50, note="make demo")
        sid = logger.start()
        pen("--port", port, "run", str(hz))
        print(f"(after {seconds / 3:.1f} s: pen sim-ctl load {load})", flush=True)
        t_load = logger.elapsed() + seconds / 3
        t_end = logger.elapsed() + seconds
        with Live(live_view(logger, t_end), console=Console(), refresh_per_second=4) as live:
            while logger.elapsed() < t_end:
                logger.pump(0.1)
                if t_load is not None and logger.elapsed() >= t_load:
                    ctl_command(port, f"load {load}")  # the needles meet the skin
                    t_load = None
                live.update(live_view(logger, t_end))
            pen("--port", port, "stop", "--no-wait")
            ctl_command(port, "load 0")
            t_stop = time.monotonic() + 10
            while time.monotonic() < t_stop:
                logger.pump(0.1)
                live.update(live_view(logger, None))
                if logger.stats.last.get("state") not in ("RUNNING", "STOPPING"):
                    break
        stats = logger.finish()
        pen("--port", port, "disarm")
        return sid, stats, db


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pen.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/demo", help="folder for the database, reports")
    ap.add_argument("--speed", type=int, default=1, help="virtual seconds per real second")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the needle runs")
    ap.add_argument("--hz", type=int, default=100, help="stroke rate")
    ap.add_argument("--depth", type=float, default=1.0, help="depth in mm")
    ap.add_argument("--no-calibrate", action="store_true", help="skip the quick calibration")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say("starting the virtual pen")
    proc, port = start_sim(args.speed)
    print(f"virtual pen on {port}")
    try:
        say("handshake and status")
        pen("--port", port, "status")
        say("homing the depth axis (the pen homes by itself after boot)")
        pen("--port", port, "home")
        if not args.no_calibrate:
            say("quick depth calibration with the virtual gauge (pitch error, offset, backlash)")
            # The key file lives only as long as the command that reads it.
            with tempfile.TemporaryDirectory(prefix="pen-demo-") as keydir:
                key = Path(keydir) / "pen.key"
                key.write_text(TEST_SECRET_HEX + "\n")
                key.chmod(0o600)
                pen("--port", port, "calibrate", "depth", "--gauge", "virtual", "--points",
                    "6", "--repeats", "1", "--verify-step", "0.5", "--yes", "--secret-file",
                    str(key), "--report", str(out / "calibration"))  # fmt: skip
        say(f"set a depth of {args.depth:.2f} mm")
        pen("--port", port, "set", "depth", f"{args.depth:.2f}")
        say(f"arm, confirm a cartridge, run at {args.hz} Hz for {args.seconds:g} s under skin "
            "load 0.8")  # fmt: skip
        sid, stats, db = run_session(port, out, args.hz, args.depth, args.seconds, 0.8)
        db.close()
        print(f"session {sid}: {stats.samples} samples, {stats.missing} missing")
        say("report")
        pen("report", str(sid), "--telemetry-db", str(out / "telemetry.sqlite3"), "--out",
            str(out / f"session-{sid}.png"))  # fmt: skip
        # HT-50 is judged on the pen's own clock (its uptime since it booted for the demo): the
        # host's wall time depends on the machine and its load.
        from .link import open_link

        with open_link(port) as link:
            pen_s = link.call("status")["uptime_ms"] / 1000
        say(f"done in {pen_s:.0f} s of the pen's time ({time.monotonic() - t0:.0f} s of the "
            f"host's); files in {out}/")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
