"""What `pen client` and `pen treat` share: options, opening the database, prompts."""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import CliError
from ..presets import PresetError, PresetTable, load_presets
from . import resolve_db_path
from .schema import DatabaseRefused, SchemaError
from .store import Records, RecordsError

PRESETS_ENV = "PEN_PRESETS"
CLINICIAN_ENV = "PEN_CLINICIAN"


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--records-db",
        "--db",
        dest="db",
        metavar="FILE",
        help="the clinic's records database (default: $PEN_DB, else records.sqlite3 in the "
        "user's data folder for pen); --db is the old name. Reading commands refuse a file "
        "that does not exist; `pen db init` creates one",
    )


def add_presets_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presets",
        metavar="FILE",
        help="the clinic's preset table, JSON (default: $PEN_PRESETS, else the shipped table "
        "documented in docs/presets.md)",
    )


@contextmanager
def open_records(args: argparse.Namespace, create: bool = False) -> Iterator[Records]:
    """The records database for one command. `create`: a command that writes may create it
    (saying so); any other refuses a path where there is none (a typo never makes a new empty
    database). A damaged file is refused before anything touches it."""
    path = resolve_db_path(getattr(args, "db", None))
    if create and not path.exists():
        print(f"pen: creating a new records database at {path}", file=sys.stderr)
    try:
        records = Records.open(path, create=create)
    except DatabaseRefused as exc:
        raise CliError(str(exc)) from exc
    except (SchemaError, sqlite3.Error, OSError) as exc:
        raise CliError(f"cannot open the records database {path}: {exc}") from exc
    try:
        yield records
    except RecordsError as exc:
        raise CliError(str(exc), status=getattr(exc, "status", 1)) from exc
    except sqlite3.DatabaseError as exc:
        raise CliError(f"the records database {path} is damaged ({exc}); restore the last "
                       f"backup: pen db restore BACKUP --records-db {path}") from exc  # fmt: skip
    finally:
        records.close()


def presets_of(args: argparse.Namespace) -> PresetTable:
    path = getattr(args, "presets", None) or os.environ.get(PRESETS_ENV) or None
    try:
        return load_presets(path)
    except PresetError as exc:
        raise CliError(str(exc)) from exc


def clinician_of(args: argparse.Namespace) -> str | None:
    if getattr(args, "clinician", None):
        return args.clinician
    if os.environ.get(CLINICIAN_ENV):
        return os.environ[CLINICIAN_ENV]
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers and services
        return None


def warn(message: str) -> None:
    print(f"pen: warning: {message}", file=sys.stderr)


def ask(prompt: str) -> str | None:
    """One line typed by the user, or None when there is nobody to type (end of input)."""
    try:
        return input(prompt)
    except EOFError:
        return None


def confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    reply = ask(f"{question} [y/N] ")
    if reply is None:
        raise CliError(f"{question} - no answer (give --yes to confirm in scripts)")
    return reply.strip().lower() in ("y", "yes")
