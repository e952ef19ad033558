"""Telemetry logging: the pen's `~T` samples into SQLite, with gaps backfilled.

Every sample carries `seq` (+1 per sample since the pen's boot). The logger stores each sample
once (primary key: session, boot, seq); a jump in `seq` is a gap, fetched back from the pen's
ring buffer with `telemetry fetch SEQ N`. A gap the ring no longer holds (or a reboot of the pen)
is recorded in the `gaps` table with its reason, so a report can say what is missing.

A pulled cable: the link's reads fail, the logger reconnects (same pen, checked by its serial),
turns telemetry on again, and the next live sample's `seq` shows what to backfill.
`simulate_disconnect=[(at_s, for_s), ...]` closes the port on purpose (a test aid).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import platformdirs

from .link import DifferentPen, LinkError, LinkLost, PenLink, PenRefused

DB_ENV = "PEN_LOG_DB"
DB_FILENAME = "telemetry.sqlite3"
FETCH_CHUNK = 50  # samples per `telemetry fetch` (one reply line each time)
FIELDS = ("seq", "t_ms", "state", "stroke_hz", "target_hz", "duty", "depth_mm",
          "target_depth_mm", "current_ma", "battery_mv", "fault")  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    port TEXT,
    pen_serial TEXT,
    firmware_version TEXT,
    protocol_version INTEGER,
    telemetry_hz REAL,
    samples INTEGER NOT NULL DEFAULT 0,
    live_samples INTEGER NOT NULL DEFAULT 0,
    backfilled_samples INTEGER NOT NULL DEFAULT 0,
    missing_samples INTEGER NOT NULL DEFAULT 0,
    reconnects INTEGER NOT NULL DEFAULT 0,
    boots INTEGER NOT NULL DEFAULT 1,
    note TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    boot INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t_ms INTEGER,
    state TEXT,
    stroke_hz REAL,
    target_hz REAL,
    duty INTEGER,
    depth_mm REAL,
    target_depth_mm REAL,
    current_ma REAL,
    battery_mv REAL,
    fault TEXT,
    source TEXT NOT NULL,
    extra TEXT,
    PRIMARY KEY (session_id, boot, seq)
);
CREATE TABLE IF NOT EXISTS gaps (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    boot INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    boot INTEGER NOT NULL,
    t_host REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


def default_db_path() -> Path:
    return platformdirs.user_data_path("pen", appauthor=False) / DB_FILENAME


def resolve_db_path(option: str | os.PathLike | None = None) -> Path:
    """`--db FILE`, else $PEN_LOG_DB, else telemetry.sqlite3 in the user's data folder."""
    if option:
        return Path(option)
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    return default_db_path()


def open_db(path: Path, create: bool = True) -> sqlite3.Connection:
    """The telemetry database. A file that exists is checked first (a damaged one is refused
    with DatabaseRefused, untouched); one that does not exist is created only with `create`."""
    from .records.schema import DatabaseRefused, check_database

    path = Path(path)
    if path.exists():
        check_database(path, "telemetry", "--telemetry-db")
    elif not create:
        raise DatabaseRefused(
            f"no telemetry database at {path}: check the path (--telemetry-db or "
            f"${DB_ENV}); pen log creates one"
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path))
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    cols = [r[1] for r in db.execute("PRAGMA table_info(sessions)")]
    if "pen_sessions" not in cols:  # a database from before the pen's own session ids
        db.execute("ALTER TABLE sessions ADD COLUMN pen_sessions TEXT")
        db.commit()
    return db



def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Stats:
    samples: int = 0
    live: int = 0
    backfilled: int = 0
    missing: int = 0
    gaps_filled: int = 0
    gaps_unfilled: int = 0
    reconnects: int = 0
    boots: int = 1
    connected: bool = True
    last: dict = field(default_factory=dict)
    events: int = 0
    status: str = ""
    backfill_s: float = 0.0  # time spent fetching from the ring buffer


class TelemetryLogger:
    """Record one session. Use: `start()`, then `pump()` often, then `finish()`.

    The link stays usable for commands between pumps (the demo runs the pen through it): the
    samples that arrive while a command waits are queued by the link and taken at the next
    pump."""

    def __init__(self, link: PenLink, db: sqlite3.Connection, *, rate_hz: float | None = None,
                 simulate_disconnect: list[tuple[float, float]] | None = None,
                 note: str | None = None, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.link = link
        self.db = db
        self.rate_hz = rate_hz
        self.note = note
        self.clock = clock
        self.plan = sorted(simulate_disconnect or [])
        self.stats = Stats()
        self.session_id: int | None = None
        self.boot = 1
        self.next_seq: int | None = None
        self.last_t_ms: int | None = None
        self.t0 = 0.0
        self._down_until: float | None = None
        self._pending_commit = 0
        self.patience_s = 120.0  # how long to wait for a pulled cable to come back
        self.silence_s = 1.0  # no sample for this long: ask the pen (rebooted? stream off?)
        self._last_rx = 0.0
        self._last_probe = 0.0
        self._finished = False
        self._unannounced = 0  # reboots found from uptime / seq whose BOOT event is not seen

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> int:
        h = self.link.hello
        cur = self.db.execute(
            "INSERT INTO sessions (started_at, port, pen_serial, firmware_version, "
            "protocol_version, telemetry_hz, note) VALUES (?,?,?,?,?,?,?)",
            (_now_iso(), self.link.port, h.get("serial"), h.get("firmware_version"),
             h.get("protocol_version"), self.rate_hz, self.note),
        )  # fmt: skip
        self.session_id = cur.lastrowid
        self.db.commit()
        self.pen_sessions: list[int] = []
        try:
            st = self.link.call("status")
            if isinstance(st, dict) and st.get("cartridge"):
                self._pen_session(int(st["cartridge"]))
        except (LinkError, TypeError, ValueError):
            pass
        self.link.take_unsolicited()  # what came before the session is not part of it
        self._telemetry_on()
        self.t0 = self._last_rx = self.clock()
        return self.session_id

    def _pen_session(self, n: int) -> None:
        """The pen's own session (its cartridge number) seen during this log."""
        if n and n not in self.pen_sessions:
            self.pen_sessions.append(n)
            self.db.execute("UPDATE sessions SET pen_sessions=? WHERE id=?",
                            (",".join(map(str, self.pen_sessions)), self.session_id))
            self._pending_commit += 1

    def _telemetry_on(self) -> None:
        cmd = "telemetry on" if not self.rate_hz else f"telemetry on {self.rate_hz:g}"
        self.link.call(cmd)

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def finish(self) -> Stats:
        """Close the session: its end time is written whatever happens on the link (a second
        call does nothing)."""
        if self._finished:
            return self.stats
        try:
            if self._down_until is not None:
                self._come_back()
            if self.link.is_open:
                self.link.call("telemetry off")
                self.link.poll(0.05)
                self._ingest()
        except (LinkError, OSError):
            pass
        finally:
            self._finished = True
            self._update_session(ended=True)
        return self.stats

    # -- the work -----------------------------------------------------------------------------
    def pump(self, wait: float = 0.05) -> None:
        """Read what arrived (waiting up to `wait` s), store it, fill gaps, handle a pulled
        cable (real or simulated)."""
        now = self.elapsed()
        if self._down_until is not None:
            if self.clock() < self._down_until:
                time.sleep(min(wait, self._down_until - self.clock()))
                return
            self._come_back()
            return
        if self.plan and now >= self.plan[0][0]:
            _, seconds = self.plan.pop(0)
            self.link.close()  # the cable is pulled
            self.stats.connected = False
            self.stats.status = f"disconnected on purpose for {seconds:g} s"
            self._down_until = self.clock() + seconds
            return
        try:
            self.link.poll(wait)
        except LinkLost as exc:
            self.stats.connected = False
            self.stats.status = f"connection lost: {exc}"
            self._ingest()
            self._come_back()
            return
        self._ingest()
        t = self.clock()
        if t - self._last_rx > self.silence_s and t - self._last_probe > self.silence_s:
            self._last_probe = t
            self._probe()

    def _probe(self) -> None:
        """No sample for a while: a pen that rebooted (its uptime went back) or whose stream
        stopped. Either way it is subscribed again; a reboot is recorded."""
        try:
            st = self.link.call("status", timeout=3)
        except LinkLost:
            return  # the next pump reconnects
        except LinkError:
            return
        self._ingest()
        up = st.get("uptime_ms") if isinstance(st, dict) else None
        if isinstance(up, int) and self.last_t_ms is not None and up < self.last_t_ms:
            self._rebooted(f"uptime went back from {self.last_t_ms} to {up} ms")
        try:
            self._telemetry_on()
        except LinkError:
            pass

    def _rebooted(self, why: str, announced: bool = False) -> None:
        """The pen restarted: the rest of the previous boot's samples are a gap, the reboot an
        event; the next samples belong to the next boot."""
        after = self.next_seq
        if after is not None:
            self._gap(after, None, f"the pen rebooted ({why}): samples after this are lost")
        self.db.execute(
            "INSERT INTO events VALUES (?,?,?,?,?)",
            (self.session_id, self.boot, time.time(), "R",
             json.dumps({"event": "reboot", "why": why, "after_seq": after,
                         "last_t_ms": self.last_t_ms})),
        )  # fmt: skip
        self.stats.events += 1
        self.boot += 1
        self.stats.boots = self.boot
        self.next_seq = None
        self.last_t_ms = None
        self.stats.status = "the pen rebooted: logging its new boot"
        self._pending_commit += 1
        if not announced:
            self._unannounced += 1  # its BOOT event may still come: not a second reboot

    def _come_back(self) -> None:
        self._down_until = None
        give_up = self.clock() + self.patience_s
        while True:
            try:
                self.link.reconnect()
                self._telemetry_on()
                break
            except DifferentPen:
                raise
            except LinkLost as exc:
                self.stats.status = f"waiting for the pen: {exc}"
            except LinkError as exc:
                self.stats.status = f"waiting for the pen: {exc}"
                self.link.close()
            if self.clock() > give_up:
                self._update_session(ended=True)
                raise LinkLost(f"the pen did not come back within {self.patience_s:g} s")
        self.stats.reconnects += 1
        self.stats.connected = True
        self.stats.status = "reconnected"

    def _ingest(self) -> None:
        resubscribe = False
        for u in self.link.take_unsolicited():
            if u.kind == "T" and isinstance(u.data, dict) and "seq" in u.data:
                self._live(u.data)
            elif u.kind in ("E", "S"):
                d = u.data
                if isinstance(d, dict) and d.get("event") == "cartridge" and d.get("what") == "new":
                    try:
                        self._pen_session(int(d.get("cartridge") or 0))
                    except (TypeError, ValueError):
                        pass
                if isinstance(d, dict) and d.get("event") == "state" and d.get("from") == "BOOT":
                    if self._unannounced:
                        self._unannounced -= 1  # that reboot was seen already (uptime, seq)
                    elif self.last_t_ms is not None:
                        self._rebooted("it announced a new boot", announced=True)
                        resubscribe = True
                self.db.execute(
                    "INSERT INTO events VALUES (?,?,?,?,?)",
                    (self.session_id, self.boot, u.t_host, u.kind, json.dumps(u.data)),
                )
                self.stats.events += 1
        if resubscribe:
            try:
                self._telemetry_on()
            except LinkError:
                pass
        if self._pending_commit:
            self._update_session()

    def _live(self, s: dict) -> None:
        seq = int(s["seq"])
        t_ms = s.get("t_ms")
        if self.next_seq is not None and seq < self.next_seq:
            rebooted = (
                isinstance(t_ms, (int, float)) and self.last_t_ms is not None
                and t_ms < self.last_t_ms
            )  # fmt: skip
            if not rebooted:
                return  # already stored (by a backfill)
            self._rebooted("its sequence numbers and clock started again")
        if self.next_seq is not None and seq > self.next_seq:
            self._backfill(self.next_seq, seq - 1)
        if self._store(s, "live"):
            self.stats.live += 1
        self._last_rx = self.clock()
        self.stats.last = s
        self.next_seq = seq + 1
        if isinstance(t_ms, (int, float)):
            self.last_t_ms = t_ms

    def _store(self, s: dict, source: str) -> bool:
        extra = {k: v for k, v in s.items() if k not in FIELDS}
        fault = s.get("fault")
        cur = self.db.execute(
            "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (self.session_id, self.boot, int(s["seq"]), s.get("t_ms"), s.get("state"),
             s.get("stroke_hz"), s.get("target_hz"), s.get("duty"), s.get("depth_mm"),
             s.get("target_depth_mm"), s.get("current_ma"), s.get("battery_mv"),
             None if fault is None else str(fault), source,
             json.dumps(extra) if extra else None),
        )  # fmt: skip
        if cur.rowcount:
            self.stats.samples += 1
            self._pending_commit += 1
            return True
        return False

    def _backfill(self, first: int, last: int) -> None:
        """Fetch samples first..last (inclusive) from the pen's ring buffer."""
        t0 = time.monotonic()
        try:
            self._fetch(first, last)
        finally:
            self.stats.backfill_s += time.monotonic() - t0

    def _fetch(self, first: int, last: int) -> None:
        seq = first
        filled = 0
        while seq <= last:
            n = min(FETCH_CHUNK, last - seq + 1)
            try:
                rows = self.link.call(f"telemetry fetch {seq} {n}", timeout=10)
            except PenRefused as exc:
                self._gap(seq, last, f"the pen's ring buffer does not have them ({exc.message})")
                break
            except LinkError as exc:
                self._gap(seq, last, f"backfill failed: {exc}")
                break
            rows = [r for r in (rows or []) if isinstance(r, dict) and "seq" in r]
            rows = sorted((r for r in rows if seq <= int(r["seq"]) <= last),
                          key=lambda r: int(r["seq"]))  # fmt: skip
            if not rows:
                self._gap(seq, last, "the pen's ring buffer no longer holds them")
                break
            if int(rows[0]["seq"]) > seq:
                self._gap(seq, int(rows[0]["seq"]) - 1, "overwritten in the pen's ring buffer")
            for r in rows:
                if self._store(r, "backfill"):
                    self.stats.backfilled += 1
                    filled += 1
            seq = int(rows[-1]["seq"]) + 1
        if filled:
            self.stats.gaps_filled += 1

    def _gap(self, first: int, last: int | None, reason: str) -> None:
        self.db.execute(
            "INSERT INTO gaps VALUES (?,?,?,?,?)",
            (self.session_id, self.boot, first, last if last is not None else -1, reason),
        )
        self.stats.gaps_unfilled += 1
        if last is not None:
            self.stats.missing += last - first + 1
        self._pending_commit += 1

    def _update_session(self, ended: bool = False) -> None:
        st = self.stats
        self.db.execute(
            "UPDATE sessions SET samples=?, live_samples=?, backfilled_samples=?, "
            "missing_samples=?, reconnects=?, boots=?" + (", ended_at=?" if ended else "")
            + " WHERE id=?",
            (st.samples, st.live, st.backfilled, st.missing, st.reconnects, st.boots)
            + ((_now_iso(),) if ended else ()) + (self.session_id,),
        )  # fmt: skip
        self.db.commit()
        self._pending_commit = 0


# -- reading back ------------------------------------------------------------------------------
def list_sessions(db: sqlite3.Connection) -> list[dict]:
    rows = db.execute(
        "SELECT s.*, (SELECT MIN(t_ms) FROM samples WHERE session_id=s.id) AS t0_ms, "
        "(SELECT MAX(t_ms) FROM samples WHERE session_id=s.id) AS t1_ms, "
        "(SELECT COUNT(*) FROM gaps WHERE session_id=s.id) AS gaps FROM sessions s ORDER BY s.id"
    ).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        t0, t1 = d.pop("t0_ms"), d.pop("t1_ms")
        d["duration_s"] = (t1 - t0) / 1000 if t0 is not None and t1 is not None else 0.0
        out.append(d)
    return out


def session_samples(db: sqlite3.Connection, session_id: int) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM samples WHERE session_id=? ORDER BY boot, seq", (session_id,)
    ).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        extra = d.pop("extra")
        if extra:
            d.update(json.loads(extra))
        out.append(d)
    return out


def session_gaps(db: sqlite3.Connection, session_id: int) -> list[dict]:
    rows = db.execute("SELECT * FROM gaps WHERE session_id=?", (session_id,)).fetchall()
    return [dict(r) for r in rows]


def session_events(db: sqlite3.Connection, session_id: int) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM events WHERE session_id=? ORDER BY t_host", (session_id,)
    ).fetchall()
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


def missing_in_store(db: sqlite3.Connection, session_id: int) -> int:
    """Samples absent from the stored sequence (holes between each boot's first and last)."""
    rows = db.execute(
        "SELECT boot, MIN(seq) AS a, MAX(seq) AS b, COUNT(*) AS n FROM samples "
        "WHERE session_id=? GROUP BY boot", (session_id,)
    ).fetchall()  # fmt: skip
    return sum(r["b"] - r["a"] + 1 - r["n"] for r in rows)


def parse_disconnects(specs: list[str] | None) -> list[tuple[float, float]]:
    """`AT:SECONDS` -> (at, seconds)."""
    out = []
    for spec in specs or []:
        try:
            at, secs = spec.split(":")
            out.append((float(at), float(secs)))
        except ValueError:
            raise ValueError(
                f"--simulate-disconnect wants AT:SECONDS, e.g. 5:3 (got {spec!r})"
            ) from None
    return out


def summary(stats: Stats, session_id: int, db: sqlite3.Connection) -> dict[str, Any]:
    return {
        "session": session_id,
        "samples": stats.samples,
        "live": stats.live,
        "backfilled": stats.backfilled,
        "missing": stats.missing,
        "missing_in_store": missing_in_store(db, session_id),
        "gaps_filled": stats.gaps_filled,
        "gaps_unfilled": stats.gaps_unfilled,
        "gaps": session_gaps(db, session_id),
        "reconnects": stats.reconnects,
        "boots": stats.boots,
        "events": stats.events,
    }
