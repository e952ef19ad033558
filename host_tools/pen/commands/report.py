"""`pen report SESSION`: figures (PNG) and a summary of a logged session."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="PNG and summary of a logged session (pen log)",
        description="Plots stroke rate vs target, depth vs target, duty, current and faults over "
        "time, and prints duration, passes, mean and worst stroke-rate error, depth used, "
        "strokes and faults.",
    )
    p.add_argument("session", help="session number (see pen sessions), or 'last'")
    p.add_argument("--telemetry-db", "--db", dest="db", metavar="FILE",
                   help="telemetry database (read; default: $PEN_LOG_DB, else "
                   "telemetry.sqlite3 in the user's data folder for pen); --db is the old name")
    p.add_argument("--out", metavar="PNG", help="figure file (default: session-N.png here)")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds after a pass starts not counted in the rate error (soft start)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_report)


def make_report(db, sid: int, out: Path | None, settle: float = 1.0) -> tuple[dict, Path]:
    from .. import logger as lg
    from .. import report as rp

    row = db.execute("SELECT * FROM sessions WHERE id=?", (sid,)).fetchone()
    if row is None:
        raise CliError(f"no session {sid} in the database (see pen sessions)")
    samples = lg.session_samples(db, sid)
    if not samples:
        raise CliError(f"session {sid} has no samples")
    a = rp.analyse(samples, lg.session_events(db, sid), lg.session_gaps(db, sid), settle)
    a["session"] = sid
    a["started_at"] = row["started_at"]
    a["pen_serial"] = row["pen_serial"]
    out = Path(out) if out else Path(f"session-{sid}.png")
    title = f"session {sid}  {row['started_at']}  pen {row['pen_serial'] or '?'}"
    rp.plot(samples, a, out, title)
    a["png"] = str(out)
    return a, out


def cmd_report(args) -> int:
    from .. import logger as lg
    from .. import report as rp
    from ..records.schema import DatabaseRefused

    path = lg.resolve_db_path(args.db)
    if not path.exists():
        raise CliError(f"no telemetry database at {path} (record one with pen log)")
    try:
        db = lg.open_db(path, create=False)
    except DatabaseRefused as exc:
        raise CliError(str(exc)) from exc
    try:
        if args.session == "last":
            row = db.execute("SELECT MAX(id) AS id FROM sessions").fetchone()
            if row["id"] is None:
                raise CliError("no sessions recorded yet (pen log)")
            sid = row["id"]
        else:
            try:
                sid = int(args.session)
            except ValueError:
                raise CliError("SESSION is a session number or 'last'") from None
        a, out = make_report(db, sid, Path(args.out) if args.out else None, args.settle)
    finally:
        db.close()
    if args.json:
        print(json.dumps(a))
    else:
        print("\n".join(rp.summary_lines(sid, a)))
        print(f"figure: {out}")
    return 0
