"""The clinic's databases as files that can be damaged, mistyped or lost: every `pen` command
refuses a damaged file clearly and never writes into it; a reading command never creates a
database where the path is wrong; `pen db backup` / `pen db restore` bring a copy back."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from datetime import datetime, timezone

import pytest

from pen import logger as lg
from pen.cli import main

NO = "active_acne=no,eczema=no,rosacea=no"
DAY0 = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)
OFFSETS = 50
BURST = 4096  # random bytes written at each offset (a sector-sized burst, at least one page)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("PEN_DB", "PEN_LOG_DB", "PEN_PRESETS", "PEN_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PEN_CLINICIAN", "dr-test")
    monkeypatch.setattr("builtins.input", lambda prompt="": (_ for _ in ()).throw(EOFError))


def run(capsys, *argv):
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records_db(tmp_path, capsys):
    db = tmp_path / "records.sqlite3"
    for i in range(40):
        assert run(capsys, "client", "add", f"C-{100 + i}", "--records-db", db)[0] == 0
        rc, _, err = run(capsys, "treat", "start", "--client", f"C-{100 + i}", "--indication",
                         "acne_scars", "--area", "cheeks", "--answers", NO, "--at",
                         DAY0.isoformat(), "--no-pen", "--records-db", db)  # fmt: skip
        assert rc == 0, err
    return db


def _telemetry_db(tmp_path):
    path = tmp_path / "telemetry.sqlite3"
    db = lg.open_db(path)
    for s in range(1, 6):
        db.execute("INSERT INTO sessions (id, started_at, ended_at, samples) VALUES (?, ?, ?, ?)",
                   (s, "2025-03-03T10:00:00+00:00", "2025-03-03T10:01:00+00:00", 400))
        db.executemany(
            "INSERT INTO samples (session_id, boot, seq, t_ms, state, stroke_hz, depth_mm, "
            "source) VALUES (?, 1, ?, ?, 'RUNNING', 100.0, 1.5, 'live')",
            [(s, q, 5 * q) for q in range(400)],
        )
    db.commit()
    db.close()
    return path


def _corruptions(path, seed):
    """Yield after writing BURST random bytes at each of OFFSETS random offsets in the middle of
    the file (the pristine file put back before each)."""
    pristine = path.read_bytes()
    rnd = random.Random(seed)
    size = len(pristine)
    assert size >= 6 * BURST, "a database of a few pages"
    for _ in range(OFFSETS):
        at = rnd.randrange(size // 8, size - BURST)
        data = bytearray(pristine)
        data[at : at + BURST] = rnd.randbytes(BURST)
        path.write_bytes(bytes(data))
        yield at


def _refused(rc, err, path):
    assert rc != 0, "a damaged database was used"
    assert "Traceback" not in err
    assert str(path) in err and ("damaged" in err or "not a" in err), err
    assert "pen db restore" in err, "the message says what to do"


@pytest.mark.req("HT-80", "HT-81")
def test_damaged_records_database_is_refused_and_never_written(tmp_path, capsys):
    """HT-80, HT-81: random bytes (a 4 KiB burst) written at 50 random offsets in the middle
    of the records database: client list / show / export, treat due, client add and treat
    start each refuse with the file's name, the damage and what to do (pen db restore), never
    a traceback; the file's bytes and its folder are unchanged (nothing written)."""
    db = _records_db(tmp_path, capsys)
    commands = (
        ("client", "list"),
        ("client", "show", "C-100"),
        ("client", "export"),
        ("treat", "due"),
        ("client", "add", "C-999"),
        ("treat", "start", "--client", "C-100", "--indication", "acne_scars", "--area",
         "forehead", "--answers", NO, "--no-pen", "--yes"),
    )  # fmt: skip
    _all_refused_unchanged(capsys, tmp_path, db, "--records-db", commands, seed=80)


@pytest.mark.req("HT-80", "HT-81")
def test_damaged_telemetry_database_is_refused_and_never_written(tmp_path, capsys):
    """HT-80, HT-81: the same for the telemetry database: pen sessions, pen report and pen log
    (refused before it connects to any pen) refuse each damaged copy; nothing is written."""
    db = _telemetry_db(tmp_path)
    out = tmp_path / "out"
    commands = (
        ("sessions", "--no-pen"),
        ("report", "1", "--out", out),
        ("--port", tmp_path / "no-such-port", "log", "--duration", "1"),
    )
    _all_refused_unchanged(capsys, tmp_path, db, "--telemetry-db", commands, seed=81)


def _all_refused_unchanged(capsys, tmp_path, db, option, commands, seed):
    """Every command refuses each damaged copy of `db`; the file and its folder stay as they
    were."""
    for at in _corruptions(db, seed=seed):
        before = _digest(db)
        for argv in commands:
            rc, _, err = run(capsys, *argv, option, db)
            _refused(rc, err, db)
        assert _digest(db) == before, f"the file changed (burst at {at})"
        assert sorted(p.name for p in tmp_path.iterdir()) == [db.name]


@pytest.mark.req("HT-82")
@pytest.mark.parametrize("seed", range(6))
def test_mistyped_database_path_creates_nothing(tmp_path, capsys, seed):
    """HT-82: a mistyped --records-db / --telemetry-db (random typos in a real path): reading
    commands refuse, naming the path and how to create one; nothing is created (no file, no
    folder); a writing command creates the database and says so."""
    real = _records_db(tmp_path, capsys)
    rnd = random.Random(seed)
    name = str(real)
    k = rnd.randrange(len(str(tmp_path)) + 1, len(name))
    typo = tmp_path / ("sub" + str(seed)) / (name[k:] + "x") if seed % 2 else \
        real.with_name(real.name[:-3] + rnd.choice("abcxyz") + real.name[-2:])  # fmt: skip
    listing = sorted(tmp_path.rglob("*"))
    for argv in (("client", "list", "--records-db", typo), ("treat", "due", "--records-db", typo),
                 ("client", "show", "C-100", "--records-db", typo),
                 ("sessions", "--no-pen", "--telemetry-db", typo),
                 ("report", "1", "--telemetry-db", typo)):  # fmt: skip
        rc, _, err = run(capsys, *argv)
        assert rc != 0 and str(typo) in err and "Traceback" not in err, err
        assert "no " in err and "database" in err
    assert sorted(tmp_path.rglob("*")) == listing, "a reading command created something"
    rc, _, err = run(capsys, "client", "add", "C-1", "--records-db", typo)
    assert rc == 0 and f"creating a new records database at {typo}" in err
    assert typo.exists()


@pytest.mark.req("HT-83")
def test_backup_and_restore_bring_back_the_records(tmp_path, capsys):
    """HT-83: pen db backup copies the records database with SQLite's online backup API;
    after damage, pen db restore checks the backup, keeps the damaged file aside and puts the
    copy in place: the clients are back. A damaged backup is refused; a backup never
    overwrites an existing file."""
    db = _records_db(tmp_path, capsys)
    bak = tmp_path / "backup.sqlite3"
    assert run(capsys, "db", "check", "--records-db", db)[0] == 0
    assert run(capsys, "db", "backup", bak, "--records-db", db)[0] == 0
    rc, _, err = run(capsys, "db", "backup", bak, "--records-db", db)
    assert rc != 0 and "exists" in err
    data = bytearray(db.read_bytes())
    data[len(data) // 2 : len(data) // 2 + BURST] = b"\x5a" * BURST
    db.write_bytes(bytes(data))
    rc, _, err = run(capsys, "db", "check", "--records-db", db)
    _refused(rc, err, db)
    bad = tmp_path / "bad.sqlite3"
    shutil.copy(db, bad)
    rc, _, err = run(capsys, "db", "restore", bad, "--records-db", db)
    assert rc != 0 and "damaged" in err
    rc, _, err = run(capsys, "db", "restore", bak, "--records-db", db)
    assert rc == 0 and "kept as" in err, err
    rc, out, _ = run(capsys, "client", "list", "--records-db", db)
    assert rc == 0 and "C-139" in out
    kept = [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(data)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


@pytest.mark.req("HT-82")
def test_init_creates_and_reads_refuse_before_it(tmp_path, capsys):
    """HT-82: pen db init creates the records database (and says so); before it, a reading
    command refuses."""
    db = tmp_path / "clinic" / "records.sqlite3"
    rc, _, err = run(capsys, "client", "list", "--records-db", db)
    assert rc != 0 and "pen db init" in err and not db.parent.exists()
    rc, out, _ = run(capsys, "db", "init", "--records-db", db)
    assert rc == 0 and "created" in out and db.exists()
    rc, out, _ = run(capsys, "client", "list", "--records-db", db)
    assert rc == 0
