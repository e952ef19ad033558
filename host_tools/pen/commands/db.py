"""`pen db`: create, check, back up and restore the clinic's databases (records, telemetry)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

from ..cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "db",
        help="create, check, back up and restore the records and telemetry databases",
        description="The records database (clients, treatments: --records-db, $PEN_DB) and the "
        "telemetry database (pen log: --telemetry-db, $PEN_LOG_DB). Without an option, the "
        "records database. `init` creates it; `check` runs SQLite's integrity check; `backup "
        "DEST` copies it with SQLite's online backup API (safe while pen log writes); `restore "
        "SRC` checks SRC, moves the current file aside (never deletes it) and puts a copy of "
        "SRC in its place.",
    )
    p.add_argument("action", choices=("init", "check", "backup", "restore"))
    p.add_argument("file", nargs="?", metavar="FILE", help="backup: the new backup file; "
                   "restore: the backup to restore")  # fmt: skip
    g = p.add_mutually_exclusive_group()
    g.add_argument("--records-db", "--db", dest="records_db", metavar="FILE",
                   help="the records database (default: $PEN_DB, else the user's data folder)")
    g.add_argument("--telemetry-db", dest="telemetry_db", metavar="FILE",
                   help="the telemetry database (default: $PEN_LOG_DB, else the user's data "
                   "folder)")  # fmt: skip
    p.set_defaults(func=cmd_db)


def _target(args: argparse.Namespace) -> tuple[str, Path, str]:
    if args.telemetry_db:
        from ..logger import resolve_db_path

        return "telemetry", resolve_db_path(args.telemetry_db), "--telemetry-db"
    from ..records import resolve_db_path

    return "records", resolve_db_path(args.records_db), "--records-db"


def cmd_db(args: argparse.Namespace) -> int:
    from ..records.schema import DatabaseRefused, backup_database, check_database, connect

    what, path, opt = _target(args)
    try:
        if args.action == "init":
            if path.exists():
                check_database(path, what, opt)
                print(f"{what} database {path} exists and is sound")
                return 0
            if what == "records":
                connect(path, create=True).close()
            else:
                from ..logger import open_db

                open_db(path, create=True).close()
            print(f"{what} database created at {path}")
            return 0
        if not path.exists() and args.action != "restore":
            raise CliError(f"no {what} database at {path}: check the path ({opt})")
        if args.action == "check":
            check_database(path, what, opt)
            print(f"{what} database {path}: ok (integrity check passed)")
            return 0
        if not args.file:
            raise CliError(f"usage: pen db {args.action} FILE [{opt} DB]")
        src = Path(args.file)
        if args.action == "backup":
            check_database(path, what, opt)
            backup_database(path, src)
            print(f"{what} database {path} backed up to {src}")
            return 0
        # restore
        if not src.exists():
            raise CliError(f"no backup at {src}")
        check_database(src, f"{what} backup", opt)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tmp = path.with_name(path.name + ".restoring")
        if tmp.exists():
            tmp.unlink()
        backup_database(src, tmp)
        kept = path.with_name(f"{path.name}.replaced-{stamp}")
        if path.exists():
            os.replace(path, kept)
        for suffix in ("-journal", "-wal", "-shm"):  # never replay the old file's journal
            side = Path(str(path) + suffix)
            if side.exists():
                os.replace(side, Path(str(kept) + suffix))
        os.replace(tmp, path)
        print(f"{what} database {path} restored from {src}; the file it replaced is kept as "
              f"{kept}", file=sys.stderr)  # fmt: skip
        return 0
    except DatabaseRefused as exc:
        raise CliError(str(exc)) from exc
    except FileExistsError as exc:
        raise CliError(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"{args.action} failed: {exc}") from exc
