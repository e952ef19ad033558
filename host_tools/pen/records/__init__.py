"""Treatment records: clients (pseudonymous IDs only), the contraindication checklist, plans,
sessions with their passes, faults and overrides, the clinic's aftercare text; export and reports.

The database is SQLite at `default_db_path()` unless `--db FILE` or `$PEN_DB` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .schema import LATEST as SCHEMA_VERSION
from .store import ContraindicationBlocked, Records, RecordsError

DB_ENV = "PEN_DB"
DB_FILENAME = "records.sqlite3"

__all__ = [
    "SCHEMA_VERSION",
    "ContraindicationBlocked",
    "Records",
    "RecordsError",
    "default_db_path",
    "resolve_db_path",
]


def default_db_path() -> Path:
    """The records database in the user's data folder (e.g. ~/.local/share/pen on Linux)."""
    return platformdirs.user_data_path("pen", appauthor=False) / DB_FILENAME


def resolve_db_path(option: str | os.PathLike | None = None) -> Path:
    """`--db FILE` if given, else `$PEN_DB`, else the default under the user's data folder."""
    if option:
        return Path(option)
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env)
    return default_db_path()
