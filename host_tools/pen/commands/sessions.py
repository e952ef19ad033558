"""`pen sessions`: the sessions logged on this computer and the ones the pen keeps."""

from __future__ import annotations

import json
import sqlite3

from ..errors import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sessions",
        help="list logged sessions (this computer's, and the pen's own)",
        description="Lists the sessions `pen log` recorded in the telemetry database and, when a "
        "pen is connected (or --port/$PEN_PORT is given), the session summaries the pen keeps.",
    )
    p.add_argument("--telemetry-db", "--db", dest="db", metavar="FILE",
                   help="telemetry database (read; default: $PEN_LOG_DB, else "
                   "telemetry.sqlite3 in the user's data folder for pen); --db is the old name")
    p.add_argument("--no-pen", action="store_true", help="only this computer's sessions")
    p.add_argument("--json", action="store_true", help="print {host: [...], pen: [...]} as JSON")
    p.set_defaults(func=cmd_sessions)


def _pen_sessions(args) -> tuple[list | None, dict | None, str | None]:
    """The pen's own session list, its store's counters (kept, dropped, dropped before the
    host fetched them) apart from the list, and the problem when the pen could not be asked."""
    from ..link import LinkError, PortNotFound, session

    try:
        with session(args, check=False, timeout=3.0) as link:
            listed = link.call("session list")
            info = link.call("session info")
        store = None
        if isinstance(info, dict):
            store = {"kept": info.get("kept"), "of": info.get("keep"),
                     "dropped": info.get("dropped"),
                     "dropped_before_fetched": info.get("unfetched")}  # fmt: skip
        return listed, store, None
    except PortNotFound:
        return None, None, "no pen connected"
    except LinkError as exc:
        return None, None, str(exc)


def cmd_sessions(args) -> int:
    from .. import logger as lg
    from ..records.schema import DatabaseRefused

    path = lg.resolve_db_path(args.db)
    host: list[dict] = []
    if path.exists() or args.db:
        try:
            db = lg.open_db(path, create=False)
            host = lg.list_sessions(db)
            db.close()
        except DatabaseRefused as exc:
            raise CliError(str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise CliError(f"the telemetry database {path} is damaged ({exc})") from exc
    pen, store, problem = ((None, None, "not asked (--no-pen)") if args.no_pen
                           else _pen_sessions(args))  # fmt: skip
    if args.json:
        print(json.dumps({"db": str(path), "host": host, "pen": pen, "pen_store": store,
                          "pen_problem": problem}))  # fmt: skip
        return 0
    print(f"logged on this computer ({path}):")
    if not host:
        print("  none yet (record one with pen log)")
    for s in host:
        miss = s["missing_samples"]
        print(f"  {s['id']:>4}  {s['started_at']}  {s['duration_s']:8.1f} s  "
              f"{s['samples']:>7} samples  pen {s['pen_serial'] or '?'}  "
              f"pen session {s.get('pen_sessions') or '-'}"
              + (f"  {miss} missing" if miss else ""))  # fmt: skip
    if pen is None:
        print(f"on the pen: {problem}")
    else:
        print("on the pen:")
        if not pen:
            print("  none")
        for s in pen if isinstance(pen, list) else []:
            if isinstance(s, dict):
                print("  " + "  ".join(f"{k}={v}" for k, v in s.items()))
            else:
                print(f"  {s}")
        if store is not None:
            print("  store: " + "  ".join(f"{k}={v}" for k, v in store.items()))
    if pen is None and not args.no_pen and args.port:
        # The pen was asked for by --port/$PEN_PORT and did not answer: that is a failure.
        raise CliError(f"the pen's sessions could not be read: {problem}")
    return 0
