"""Telemetry logging benchmark: `pen log` over a 10-minute virtual session (needle running at
100 Hz under skin load, telemetry at 200 Hz) with the serial port closed for a while in the
middle, as a pulled cable would. Figures: samples lost (must be 0), samples backfilled from the
pen's ring buffer, the host's ingestion rate (samples stored per second, live and while
backfilling).

    .venv/bin/python bench/telemetry_log.py [--minutes 10] [--speed 4] [--disconnect-s 10]

The virtual pen runs `--speed` virtual seconds per real second (4: about 2.5 minutes of wall
time for 10 virtual minutes); the disconnect is in real seconds (10 s at speed 4 = 40 s of the
pen's time, inside its 60 s ring buffer). Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait(link, ok, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        st = link.call("status")
        if ok(st):
            return st
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out (state {st.get('state')}, fault {st.get('fault')})")
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="virtual minutes logged")
    ap.add_argument("--speed", type=int, default=4, help="virtual seconds per real second")
    ap.add_argument("--disconnect-s", type=float, default=10.0, help="real seconds unplugged")
    ap.add_argument("--rate", type=int, default=200, help="telemetry rate, Hz")
    args = ap.parse_args()

    from pen import logger as lg
    from pen.link import open_link
    from pen.sim import ctl_command

    sim = subprocess.Popen(
        [sys.executable, "-m", "pen.cli", "sim", "--speed", str(args.speed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    port = sim.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = lg.open_db(Path(tmp) / "bench.sqlite3")
            link = open_link(port, reconnect_timeout=30.0)
            wait(link, lambda s: s["homed"] and s["state"] == "READY")
            link.call("depth 1.00")
            link.call("arm")
            link.call("cartridge new")
            wait(link, lambda s: s["depth_settled"])  # its position checked (SF-13)
            link.call("run 100")
            ctl_command(port, "load 0.8")
            logger = lg.TelemetryLogger(link, db, rate_hz=args.rate)
            sid = logger.start()
            t0 = time.monotonic()
            last_print = 0.0
            first_ms = None
            pulled = False
            target_ms = args.minutes * 60_000
            while True:
                logger.pump(0.05)
                t_ms = logger.stats.last.get("t_ms")
                if t_ms is None:
                    continue
                first_ms = t_ms if first_ms is None else first_ms
                if not pulled and t_ms - first_ms >= target_ms / 2:
                    # The pen's half-time: pull the cable (close the port) for a while.
                    logger.plan = [(logger.elapsed(), args.disconnect_s)]
                    pulled = True
                if t_ms - first_ms >= target_ms:
                    break
                if logger.elapsed() - last_print >= 15:
                    last_print = logger.elapsed()
                    st = logger.stats
                    print(f"  {last_print:5.0f} s: {st.samples} samples "
                          f"({st.backfilled} backfilled), {st.reconnects} reconnect(s)",
                          flush=True)  # fmt: skip
            wall = time.monotonic() - t0
            link.call("stop")
            stats = logger.finish()
            summ = lg.summary(stats, sid, db)
            row = db.execute(
                "SELECT MIN(t_ms), MAX(t_ms) FROM samples WHERE session_id=?", (sid,)
            ).fetchone()
            virt_s = (row[1] - row[0]) / 1000 if row[0] is not None else 0.0
            link.close()
            db.close()
    finally:
        sim.terminate()
        try:
            sim.wait(5)
        except subprocess.TimeoutExpired:
            sim.kill()
    expected = int(virt_s * args.rate) + 1
    res = {
        "bench": "telemetry_log",
        "virtual_s": round(virt_s, 1),
        "wall_s": round(wall, 1),
        "speed": args.speed,
        "rate_hz": args.rate,
        "samples": summ["samples"],
        "expected_samples": expected,
        "lost": summ["missing_in_store"] + summ["missing"],
        "gaps_unfilled": summ["gaps_unfilled"],
        "backfilled": summ["backfilled"],
        "reconnects": summ["reconnects"],
        "disconnect_wall_s": args.disconnect_s,
        "ingest_rate_sps": round(summ["samples"] / wall, 1),
        "backfill_rate_sps": round(stats.backfilled / stats.backfill_s, 1)
        if stats.backfill_s else None,
    }
    if res["expected_samples"] != res["samples"]:
        res["lost"] = max(res["lost"], res["expected_samples"] - res["samples"])
    print(f"telemetry log: {res['samples']} samples over {res['virtual_s']} s of the pen's time "
          f"({res['wall_s']} s wall, speed {args.speed}); lost {res['lost']}; "
          f"{res['backfilled']} backfilled after {res['reconnects']} reconnect(s)")  # fmt: skip
    print(f"host ingestion: {res['ingest_rate_sps']} samples/s overall, backfill "
          f"{res['backfill_rate_sps']} samples/s")  # fmt: skip
    print(json.dumps(res))
    return 0 if res["lost"] == 0 and res["reconnects"] >= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
