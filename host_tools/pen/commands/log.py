"""`pen log`: record the pen's telemetry into SQLite, with live figures; backfill after a pulled
cable; `--csv` export."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

from ..cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "log",
        help="record the pen's telemetry (SQLite; live figures; survives a pulled cable)",
        description="Turns the pen's telemetry stream on and stores every sample in a session "
        "(tables sessions, samples, gaps, events). After a pulled cable it reconnects and fetches "
        "the missed samples from the pen's ring buffer (telemetry fetch); a gap that cannot be "
        "filled is recorded with its reason. Stops after --duration or on Ctrl-C.",
    )
    p.add_argument("--telemetry-db", "--db", dest="db", metavar="FILE",
                   help="telemetry database (written by pen log; default: $PEN_LOG_DB, else "
                   "telemetry.sqlite3 in the user's data folder for pen); --db is the old name")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--rate", type=float, metavar="HZ", help="telemetry rate (default: the pen's)")
    p.add_argument("--csv", metavar="FILE", help="also export the session's samples as CSV")
    p.add_argument("--note", help="a note stored with the session")
    p.add_argument(
        "--simulate-disconnect",
        action="append",
        metavar="AT:SECONDS",
        help="test aid: close the serial port AT seconds into the session for SECONDS, as a "
        "pulled cable would (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no live display")
    p.add_argument("--json", action="store_true", help="print the session's summary as JSON")
    p.set_defaults(func=cmd_log)


def live_view(lg, duration: float | None):
    """A rich renderable: progress through the duration and the latest figures."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    st = lg.stats
    el = lg.elapsed()
    s = st.last
    t = Table.grid(padding=(0, 2))
    t.add_column(justify="right", style="bold")
    t.add_column()
    t.add_column(justify="right", style="bold")
    t.add_column()
    rate = st.samples / el if el > 0 else 0.0

    def f(key, fmt="{:.2f}"):
        v = s.get(key)
        return "-" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))

    t.add_row("state", f("state"), "session", str(lg.session_id))
    t.add_row("stroke", f"{f('stroke_hz', '{:.1f}')} / {f('target_hz', '{:.0f}')} Hz",
              "samples", f"{st.samples} ({rate:.0f}/s)")  # fmt: skip
    t.add_row("depth", f"{f('depth_mm')} / {f('target_depth_mm')} mm",
              "backfilled", str(st.backfilled))  # fmt: skip
    t.add_row("duty", f("duty", "{}"), "missing", str(st.missing))
    t.add_row("current", f"{f('current_ma', '{:.0f}')} mA", "reconnects", str(st.reconnects))
    t.add_row("battery", f"{f('battery_mv', '{:.0f}')} mV", "fault", f("fault", "{}"))
    link = "connected" if st.connected else "DISCONNECTED"
    head = f"{el:6.1f} s" + (f" / {duration:g} s" if duration else "") + f"  link {link}"
    if st.status:
        head += f"  ({st.status})"
    parts = [head]
    if duration:
        parts.append(ProgressBar(total=duration, completed=min(el, duration), width=50))
    parts.append(t)
    return Group(*parts)


def cmd_log(args) -> int:
    from .. import logger as lgmod
    from ..link import LinkError, session

    try:
        plan = lgmod.parse_disconnects(args.simulate_disconnect)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    from ..records.schema import DatabaseRefused

    db_path = lgmod.resolve_db_path(args.db)
    if not db_path.exists():
        print(f"pen: creating a new telemetry database at {db_path}", file=sys.stderr)
    try:
        db = lgmod.open_db(db_path)
    except DatabaseRefused as exc:
        raise CliError(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"cannot open the telemetry database {db_path}: {exc}") from exc
    with session(args, share=True) as link:  # other `pen` commands use it meanwhile
        lg = lgmod.TelemetryLogger(link, db, rate_hz=args.rate, simulate_disconnect=plan,
                                   note=args.note)  # fmt: skip
        sid = lg.start()
        print(f"session {sid}: logging {link.port} into {db_path}", file=sys.stderr)
        # Every way out finishes the session's record (its end time): the end of --duration,
        # Ctrl-C (SIGINT), a kill (SIGTERM, SIGHUP), a lost pen, an error.
        old = _on_signals(_stop)
        try:
            _run(lg, args)
        except KeyboardInterrupt:
            pass
        except LinkError as exc:
            raise CliError(f"logging stopped: {exc} (session {sid} kept)") from exc
        finally:
            try:
                stats = lg.finish()
            finally:
                _on_signals(old)
    summ = lgmod.summary(stats, sid, db)
    if args.csv:
        from ..report import export_samples_csv

        n = export_samples_csv(db, sid, Path(args.csv))
        summ["csv"] = args.csv
        print(f"{n} samples exported to {args.csv}", file=sys.stderr)
    db.close()
    if args.json:
        print(json.dumps(summ))
    else:
        print(
            f"session {sid}: {summ['samples']} samples ({summ['backfilled']} backfilled after "
            f"{summ['reconnects']} reconnect(s)); missing {summ['missing_in_store']}"
        )
        for g in summ["gaps"]:
            last = "?" if g["last_seq"] < 0 else g["last_seq"]
            print(f"  gap seq {g['first_seq']}..{last}: {g['reason']}")
        print(f"report: pen report {sid}" + (f" --telemetry-db {args.db}" if args.db else ""))
    return 0


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt  # handled like Ctrl-C: the session is finished, then pen exits


def _on_signals(handler):
    """Install `handler` (a function, or the dict returned before) for SIGTERM and SIGHUP."""
    import signal

    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, handler[sig] if isinstance(handler, dict) else handler)
        except (ValueError, OSError):  # not the main thread
            pass
    return old


def _run(lg, args) -> None:
    duration = args.duration
    if args.quiet or not sys.stderr.isatty():
        while duration is None or lg.elapsed() < duration:
            lg.pump(0.05)
        return
    from rich.console import Console
    from rich.live import Live

    with Live(live_view(lg, duration), console=Console(stderr=True), refresh_per_second=4,
              transient=False) as live:  # fmt: skip
        last = 0.0
        while duration is None or lg.elapsed() < duration:
            lg.pump(0.05)
            if time.monotonic() - last > 0.25:
                live.update(live_view(lg, duration))
                last = time.monotonic()
        live.update(live_view(lg, duration))
