"""The records database: SQLite schema with numbered migrations.

Each migration takes the database from version N-1 to N inside one transaction; the applied
versions are kept in `records_schema` (one row per migration, with the time it ran). Opening a
database runs whatever migrations it lacks; a file database is first copied to
`<file>.v<N>.bak` so an upgrade can always be undone. A database newer than this code is refused.

Version 1: clients, the contraindication checklist, treatment sessions (answers kept as a JSON
           column on the session), passes and faults.
Version 2: treatment plans (series), overrides (who and why), per-session answer rows (moved out
           of the JSON column), the clinic's aftercare text, and per-session snapshots of the
           preset range, the clinician, the aftercare text and the pen's own session id.

Migrations are history: never edit one that has shipped; add the next one instead. Table names
avoid the generic `sessions`/`samples` so the file can sit beside the telemetry log's tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from .timeutil import now_iso

SCHEMA_TABLE = "records_schema"
SQLITE_MAGIC = b"SQLite format 3\x00"


class DatabaseRefused(Exception):
    """A database file the pen tools will not open (missing for a reading command, or
    damaged): the message says which file, why, and what to do. Nothing was written to it."""


def check_database(path: str | Path, what: str, option: str) -> None:
    """Refuse (DatabaseRefused) unless `path` is a sound SQLite database: its header, then
    SQLite's `PRAGMA quick_check` on a read-only connection (nothing is written, not even a
    journal). `what` names the database ("records"), `option` the command-line option."""
    path = Path(path)
    restore = (f"keep the file as it is for inspection and restore the last backup: "
               f"pen db restore BACKUP {option} {path} (pen db backup makes one)")  # fmt: skip
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise DatabaseRefused(f"cannot read the {what} database {path}: {exc.strerror}") from exc
    if head[:16] != SQLITE_MAGIC:
        raise DatabaseRefused(f"{path} is not a {what} database (no SQLite header): it is "
                              f"damaged or another file; nothing was written to it; {restore}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DatabaseRefused(f"the {what} database {path} is damaged ({exc}); nothing was "
                              f"written to it; {restore}") from exc
    if rows != [("ok",)]:
        detail = "; ".join(str(r[0]) for r in rows[:3])
        raise DatabaseRefused(f"the {what} database {path} is damaged (integrity check: "
                              f"{detail}); nothing was written to it; {restore}")


def backup_database(src: str | Path, dest: str | Path) -> None:
    """Copy a live database with SQLite's online backup API (consistent even while another
    process writes to it). `dest` must not exist."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists: choose a new backup file")
    s = sqlite3.connect(f"{Path(src).resolve().as_uri()}?mode=ro", uri=True)
    try:
        d = sqlite3.connect(str(dest))
        try:
            s.backup(d)
        finally:
            d.close()
    finally:
        s.close()

BUILTIN_CHECKLIST = (
    ("active_acne", "Active acne (inflamed papules, pustules or cysts) in the treatment area?"),
    ("eczema", "Eczema (atopic or other dermatitis) in or near the treatment area?"),
    ("rosacea", "Rosacea (flushing, papules or visible vessels) in the treatment area?"),
)

# The default aftercare text installed by migration 2 (the clinic edits it with
# `pen treat aftercare --set-file FILE`).
DEFAULT_AFTERCARE = """\
Aftercare after microneedling

- For 24-48 hours: no make-up, and keep out of the sun; also avoid saunas, swimming pools,
  heavy exercise and other heat or sweating.
- Wash with a gentle, fragrance-free cleanser and lukewarm water; pat dry, do not rub.
- Apply a plain, fragrance-free moisturiser several times a day while the skin feels tight.
- Protect the treated skin with a broad-spectrum sunscreen (SPF 30 or higher) every day, and
  reapply when outdoors, for at least the next weeks.
- For several days (about a week, or until the skin has fully settled): no active products -
  no retinoids (retinol, tretinoin), acids (AHA, BHA), vitamin C serums, scrubs or peels.
- Redness and tightness like a mild sunburn for 1-3 days are expected. Contact the clinic if
  redness, swelling or pain increase after 48 hours, or if you notice pus, fever or blisters.
"""


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the tools."""


def _migrate_v1(conn: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE clients (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE checklist_items (
            key TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            builtin INTEGER NOT NULL DEFAULT 0,
            active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE treatment_sessions (
            id INTEGER PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients(id),
            indication TEXT NOT NULL,
            area TEXT NOT NULL,
            preset TEXT,
            started_at TEXT NOT NULL,
            duration_s REAL,
            cartridge TEXT,
            checklist_json TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX treatment_sessions_client ON treatment_sessions(client_id, started_at)",
        """CREATE TABLE passes (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES treatment_sessions(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            start_s REAL,
            duration_s REAL NOT NULL,
            depth_mm REAL NOT NULL,
            stroke_hz REAL NOT NULL,
            strokes INTEGER NOT NULL,
            UNIQUE (session_id, seq)
        )""",
        """CREATE TABLE session_faults (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES treatment_sessions(id) ON DELETE CASCADE,
            code TEXT NOT NULL,
            at_s REAL,
            detail TEXT
        )""",
    ]
    for sql in statements:
        conn.execute(sql)
    created = now_iso()
    conn.executemany(
        "INSERT INTO checklist_items (key, question, builtin, active, created_at) "
        "VALUES (?, ?, 1, 1, ?)",
        [(key, question, created) for key, question in BUILTIN_CHECKLIST],
    )


def _migrate_v2(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE plans (
            id INTEGER PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients(id),
            indication TEXT NOT NULL,
            sessions INTEGER NOT NULL CHECK (sessions >= 1),
            interval_weeks INTEGER NOT NULL CHECK (interval_weeks >= 1),
            maintenance_weeks INTEGER CHECK (maintenance_weeks IS NULL OR maintenance_weeks >= 1),
            created_at TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1
        )"""
    )
    conn.execute(
        "CREATE UNIQUE INDEX plans_one_active ON plans(client_id, indication) WHERE active = 1"
    )
    # The session table is rebuilt (the SQLite way to drop a column): the answers leave the
    # JSON column for rows of their own, and the new columns arrive.
    conn.execute(
        """CREATE TABLE treatment_sessions_v2 (
            id INTEGER PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients(id),
            plan_id INTEGER REFERENCES plans(id),
            indication TEXT NOT NULL,
            area TEXT NOT NULL,
            preset TEXT,
            preset_depth_min_mm REAL,
            preset_depth_max_mm REAL,
            preset_depth_default_mm REAL,
            preset_stroke_hz INTEGER,
            started_at TEXT NOT NULL,
            duration_s REAL,
            cartridge TEXT,
            clinician TEXT,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'recorded')),
            pen_session TEXT,
            aftercare_text TEXT,
            created_at TEXT NOT NULL,
            recorded_at TEXT
        )"""
    )
    conn.execute(
        """INSERT INTO treatment_sessions_v2 (id, client_id, indication, area, preset,
               started_at, duration_s, cartridge, status, created_at, recorded_at)
           SELECT s.id, s.client_id, s.indication, s.area, s.preset, s.started_at, s.duration_s,
               s.cartridge,
               CASE WHEN EXISTS (SELECT 1 FROM passes p WHERE p.session_id = s.id)
                    THEN 'recorded' ELSE 'open' END,
               s.created_at,
               CASE WHEN EXISTS (SELECT 1 FROM passes p WHERE p.session_id = s.id)
                    THEN s.created_at END
           FROM treatment_sessions s"""
    )
    conn.execute(
        """CREATE TABLE session_answers (
            session_id INTEGER NOT NULL REFERENCES treatment_sessions(id) ON DELETE CASCADE,
            item_key TEXT NOT NULL,
            question TEXT NOT NULL,
            answer INTEGER NOT NULL CHECK (answer IN (0, 1)),
            PRIMARY KEY (session_id, item_key)
        )"""
    )
    questions = dict(conn.execute("SELECT key, question FROM checklist_items").fetchall())
    rows = conn.execute("SELECT id, checklist_json FROM treatment_sessions").fetchall()
    for session_id, answers_json in rows:
        try:
            answers = json.loads(answers_json or "{}")
        except json.JSONDecodeError as exc:
            raise SchemaError(
                f"session {session_id}: checklist answers are not JSON ({exc}); nothing was changed"
            ) from exc
        for key, answer in answers.items():
            conn.execute(
                "INSERT INTO session_answers (session_id, item_key, question, answer) "
                "VALUES (?, ?, ?, ?)",
                (session_id, key, questions.get(key, key), 1 if answer else 0),
            )
    conn.execute("DROP INDEX treatment_sessions_client")
    conn.execute("DROP TABLE treatment_sessions")
    conn.execute("ALTER TABLE treatment_sessions_v2 RENAME TO treatment_sessions")
    conn.execute(
        "CREATE INDEX treatment_sessions_client ON treatment_sessions(client_id, started_at)"
    )
    conn.execute(
        """CREATE TABLE overrides (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES treatment_sessions(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('host', 'pen')),
            by_whom TEXT,
            reason TEXT,
            at TEXT,
            detail TEXT
        )"""
    )
    conn.execute(
        """CREATE TABLE aftercare (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            text TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    conn.execute(
        "INSERT INTO aftercare (id, text, updated_at) VALUES (1, ?, ?)",
        (DEFAULT_AFTERCARE, now_iso()),
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_v1,
    2: _migrate_v2,
}
LATEST = max(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0 for an empty one)."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SCHEMA_TABLE,)
    ).fetchone()
    if not has_table:
        return 0
    row = conn.execute(f"SELECT MAX(version) FROM {SCHEMA_TABLE}").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> list[int]:
    """Apply the missing migrations up to `target`; return the versions applied.

    `conn` must be in autocommit mode (isolation_level=None): each migration runs in its own
    explicit transaction, with foreign-key enforcement off while tables are rebuilt and a
    foreign-key check before it commits.
    """
    if target not in MIGRATIONS:
        raise SchemaError(f"no schema version {target} (known: 1-{LATEST})")
    version = current_version(conn)
    if version > LATEST:
        raise SchemaError(
            f"the records database has schema version {version}, newer than this pen tool "
            f"understands (up to {LATEST}); update the pen tools"
        )
    applied: list[int] = []
    fk_was_on = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for step in range(version + 1, target + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                if step == 1:
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} ("
                        "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                    )
                MIGRATIONS[step](conn)
                bad = conn.execute("PRAGMA foreign_key_check").fetchall()
                if bad:
                    raise SchemaError(
                        f"migration to version {step} would leave broken references: {bad[:3]}"
                    )
                conn.execute(
                    f"INSERT INTO {SCHEMA_TABLE} (version, applied_at) VALUES (?, ?)",
                    (step, now_iso()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            applied.append(step)
    finally:
        if fk_was_on:
            conn.execute("PRAGMA foreign_keys = ON")
    return applied


def connect(path: str | Path, *, target: int = LATEST, backup: bool = True,
            create: bool = True, option: str = "--records-db") -> sqlite3.Connection:  # fmt: skip
    """Open the records database at `path`, migrated to `target`. A file that exists is
    checked first (`check_database`: a damaged one is refused, untouched); one that does not
    exist is created only with `create` (else DatabaseRefused: a mistyped path never makes a
    new empty database)."""
    path = str(path)
    in_memory = path == ":memory:" or path.startswith("file::memory:")
    if not in_memory:
        if Path(path).exists():
            check_database(path, "records", option)
        elif not create:
            raise DatabaseRefused(
                f"no records database at {path}: check the path ({option} or $PEN_DB); "
                f"`pen db init {option} {path}` creates a new one"
            )
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        version = current_version(conn)
        if version > LATEST:
            raise SchemaError(
                f"{path} has records schema version {version}, newer than this pen tool "
                f"understands (up to {LATEST}); update the pen tools"
            )
        if 0 < version < target and backup and not in_memory:
            backup_path = f"{path}.v{version}.bak"
            with sqlite3.connect(backup_path) as dst:
                conn.backup(dst)
            dst.close()
        migrate(conn, target)
    except BaseException:
        conn.close()
        raise
    return conn
