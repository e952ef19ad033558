"""Reading and writing treatment records: clients, checklist, plans, sessions, aftercare.

The rules live here, not only in the CLI: a session cannot be stored without an answer to every
active checklist item, and a positive answer is stored only together with an override and its
reason.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..presets import Preset
from . import schema
from .checklist import KEY_PATTERN, ChecklistItem
from .series import Plan, PlanStatus, SpacingCheck, check_spacing, plan_status
from .summary import SessionSummary
from .timeutil import now, now_iso, parse_iso, to_iso

CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


class RecordsError(Exception):
    """A request the records cannot satisfy, with a message for the user."""


class ContraindicationBlocked(RecordsError):
    """A positive checklist answer without an override reason."""

    status = 3  # the exit status of `pen treat start`, so scripts can tell a block apart

    def __init__(self, positives: list[ChecklistItem]):
        self.positives = positives
        names = ", ".join(item.key for item in positives)
        super().__init__(
            f"session blocked: contraindication present ({names}); nothing was recorded. "
            "A clinician may override with --override-reason TEXT (stored with the session)."
        )


@dataclass
class SessionRecord:
    """One session with everything recorded about it."""

    row: dict[str, Any]
    answers: list[dict[str, Any]] = field(default_factory=list)
    passes: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.row["id"]

    def __getitem__(self, key: str) -> Any:
        return self.row[key]

    def preset_text(self) -> str | None:
        """The preset the session used, with its range, default depth and rate, or None."""
        s = self.row
        if not s["preset"]:
            return None
        if s["preset_depth_min_mm"] is None:
            return s["preset"]
        return (
            f"{s['preset']} ({s['preset_depth_min_mm']:.2f}-{s['preset_depth_max_mm']:.2f} mm, "
            f"default {s['preset_depth_default_mm']:.2f} mm, {s['preset_stroke_hz']} Hz)"
        )

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.row)
        data["answers"] = self.answers
        data["passes"] = self.passes
        data["faults"] = self.faults
        data["overrides"] = self.overrides
        return data


def _plan(row: sqlite3.Row) -> Plan:
    return Plan(
        id=row["id"],
        client_id=row["client_id"],
        indication=row["indication"],
        sessions=row["sessions"],
        interval_weeks=row["interval_weeks"],
        maintenance_weeks=row["maintenance_weeks"],
        created_at=row["created_at"],
    )


def _day(text: str) -> date:
    return parse_iso(text).date()


class Records:
    """The records database (see `schema` for the tables)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> Records:
        return cls(schema.connect(path, create=create))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params).fetchall()]

    # -- clients -------------------------------------------------------------------------

    def _new_client_id(self) -> str:
        while True:
            candidate = "C-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
            if self.get_client(candidate) is None:
                return candidate

    def add_client(self, client_id: str | None = None) -> str:
        """Add a client under a pseudonymous ID (generated when not given)."""
        if client_id is None:
            client_id = self._new_client_id()
        elif not CLIENT_ID_PATTERN.match(client_id):
            raise RecordsError(
                f"client ID {client_id!r} must be 1-32 letters, digits, '.', '_' or '-' "
                "(a pseudonym such as C-7F3K2Q; never a name)"
            )
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO clients (id, created_at) VALUES (?, ?)", (client_id, now_iso())
                )
        except sqlite3.IntegrityError:
            raise RecordsError(f"client {client_id} already exists") from None
        return client_id

    def get_client(self, client_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM clients WHERE id = ?", (client_id,)).fetchone()
        return dict(row) if row else None

    def require_client(self, client_id: str) -> dict[str, Any]:
        client = self.get_client(client_id)
        if client is None:
            raise RecordsError(f"no client {client_id!r} (add one with: pen client add)")
        return client

    def list_clients(self) -> list[dict[str, Any]]:
        clients = self._all(
            """SELECT c.id, c.created_at, COUNT(s.id) AS sessions
               FROM clients c LEFT JOIN treatment_sessions s ON s.client_id = c.id
               GROUP BY c.id ORDER BY c.created_at, c.id"""
        )
        for client in clients:
            starts = [
                r[0]
                for r in self.conn.execute(
                    "SELECT started_at FROM treatment_sessions WHERE client_id = ?",
                    (client["id"],),
                )
            ]
            client["last_session"] = max(starts, key=parse_iso) if starts else None
        return clients

    # -- checklist -----------------------------------------------------------------------

    def checklist(self, include_inactive: bool = False) -> list[ChecklistItem]:
        sql = "SELECT key, question, builtin FROM checklist_items"
        if not include_inactive:
            sql += " WHERE active = 1"
        sql += " ORDER BY builtin DESC, created_at, key"
        return [
            ChecklistItem(r["key"], r["question"], bool(r["builtin"]))
            for r in self.conn.execute(sql)
        ]

    def add_checklist_item(self, key: str, question: str) -> ChecklistItem:
        if not KEY_PATTERN.match(key):
            raise RecordsError(
                f"checklist key {key!r} must be lower-case letters, digits and '_' "
                "(at most 32), starting with a letter"
            )
        question = question.strip()
        if not question:
            raise RecordsError("the checklist question must not be empty")
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT active FROM checklist_items WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and row["active"]:
                raise RecordsError(f"checklist item {key} already exists")
            if row is not None:
                conn.execute(
                    "UPDATE checklist_items SET question = ?, active = 1 WHERE key = ?",
                    (question, key),
                )
            else:
                conn.execute(
                    "INSERT INTO checklist_items (key, question, builtin, active, created_at) "
                    "VALUES (?, ?, 0, 1, ?)",
                    (key, question, now_iso()),
                )
        return ChecklistItem(key, question, False)

    def remove_checklist_item(self, key: str) -> None:
        """Retire a clinic-added item (past answers to it stay in the records)."""
        row = self.conn.execute(
            "SELECT builtin, active FROM checklist_items WHERE key = ?", (key,)
        ).fetchone()
        if row is None or not row["active"]:
            raise RecordsError(f"no checklist item {key}")
        if row["builtin"]:
            raise RecordsError(f"{key} is a built-in contraindication and cannot be removed")
        with self.transaction() as conn:
            conn.execute("UPDATE checklist_items SET active = 0 WHERE key = ?", (key,))

    # -- plans ---------------------------------------------------------------------------

    def create_plan(
        self,
        client_id: str,
        indication: str,
        sessions: int,
        interval_weeks: int,
        maintenance_weeks: int | None = None,
    ) -> Plan:
        """A new plan for client + indication; it replaces the active one, if any."""
        self.require_client(client_id)
        if sessions < 1 or interval_weeks < 1:
            raise RecordsError("a plan needs at least 1 session and an interval of >= 1 week")
        if maintenance_weeks is not None and maintenance_weeks < 1:
            raise RecordsError("the maintenance interval must be at least 1 week")
        with self.transaction() as conn:
            conn.execute(
                "UPDATE plans SET active = 0 WHERE client_id = ? AND indication = ?",
                (client_id, indication),
            )
            cur = conn.execute(
                "INSERT INTO plans (client_id, indication, sessions, interval_weeks, "
                "maintenance_weeks, created_at, active) VALUES (?, ?, ?, ?, ?, ?, 1)",
                (client_id, indication, sessions, interval_weeks, maintenance_weeks, now_iso()),
            )
            plan_id = cur.lastrowid
        return self.plan(plan_id)

    def plan(self, plan_id: int) -> Plan:
        row = self.conn.execute("SELECT * FROM plans WHERE id = ?", (plan_id,)).fetchone()
        if row is None:
            raise RecordsError(f"no plan {plan_id}")
        return _plan(row)

    def active_plan(self, client_id: str, indication: str) -> Plan | None:
        row = self.conn.execute(
            "SELECT * FROM plans WHERE client_id = ? AND indication = ? AND active = 1",
            (client_id, indication),
        ).fetchone()
        return _plan(row) if row else None

    def plans(self, client_id: str | None = None) -> list[Plan]:
        sql = "SELECT * FROM plans WHERE active = 1"
        params: tuple = ()
        if client_id is not None:
            sql += " AND client_id = ?"
            params = (client_id,)
        return [
            _plan(r) for r in self.conn.execute(sql + " ORDER BY client_id, indication", params)
        ]

    def plan_rows(self, client_id: str) -> list[dict[str, Any]]:
        """Every plan of a client, replaced ones included (`active` = 0), oldest first."""
        return self._all("SELECT * FROM plans WHERE client_id = ? ORDER BY id", (client_id,))

    def _days(self, client_id: str, indication: str, plan_id: int | None = None) -> list[date]:
        sql = "SELECT started_at FROM treatment_sessions WHERE client_id = ? AND indication = ?"
        params: tuple = (client_id, indication)
        if plan_id is not None:
            sql += " AND plan_id = ?"
            params += (plan_id,)
        return [_day(r[0]) for r in self.conn.execute(sql, params)]

    def plan_status(self, plan: Plan) -> PlanStatus:
        return plan_status(
            plan,
            self._days(plan.client_id, plan.indication, plan.id),
            self._days(plan.client_id, plan.indication),
        )

    def check_spacing(self, client_id: str, indication: str, when: datetime) -> SpacingCheck | None:
        """None without a plan; otherwise how a visit at `when` fits the plan's interval."""
        plan = self.active_plan(client_id, indication)
        if plan is None:
            return None
        return check_spacing(
            plan,
            self._days(client_id, indication, plan.id),
            self._days(client_id, indication),
            parse_iso(to_iso(when)).date(),
        )

    # -- sessions ------------------------------------------------------------------------

    def start_session(
        self,
        client_id: str,
        indication: str,
        area: str,
        answers: dict[str, bool],
        *,
        preset: Preset | None = None,
        started_at: datetime | None = None,
        clinician: str | None = None,
        cartridge: str | None = None,
        override_reason: str | None = None,
        early: SpacingCheck | None = None,
        early_reason: str = "went ahead before the plan's interval",
    ) -> int:
        """Store a new session after its checklist; return its number.

        Every active checklist item must be answered. A positive answer raises
        ContraindicationBlocked unless `override_reason` is given, in which case the override
        (who, why, which items) is stored with the session. `early`, when the visit comes
        before the plan allows and the clinician went ahead, is stored as an interval override
        with `early_reason`.
        """
        self.require_client(client_id)
        items = self.checklist()
        known = {item.key: item for item in items}
        unknown = sorted(set(answers) - set(known))
        if unknown:
            raise RecordsError(
                f"unknown checklist item(s): {', '.join(unknown)} "
                f"(the checklist is: {', '.join(known)})"
            )
        missing = [key for key in known if key not in answers]
        if missing:
            raise RecordsError(f"checklist not answered: {', '.join(missing)}")
        positives = [known[key] for key in known if answers[key]]
        reason = (override_reason or "").strip()
        if positives and not reason:
            raise ContraindicationBlocked(positives)
        started = to_iso(started_at or now())
        plan = self.active_plan(client_id, indication)
        created = now_iso()
        with self.transaction() as conn:
            cur = conn.execute(
                """INSERT INTO treatment_sessions (client_id, plan_id, indication, area, preset,
                       preset_depth_min_mm, preset_depth_max_mm, preset_depth_default_mm,
                       preset_stroke_hz, started_at, cartridge, clinician, status,
                       aftercare_text, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)""",
                (
                    client_id,
                    plan.id if plan else None,
                    indication,
                    area,
                    preset.name if preset else None,
                    preset.depth_min_mm if preset else None,
                    preset.depth_max_mm if preset else None,
                    preset.depth_default_mm if preset else None,
                    preset.stroke_hz if preset else None,
                    started,
                    cartridge,
                    clinician,
                    self.aftercare(),
                    created,
                ),
            )
            session_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO session_answers (session_id, item_key, question, answer) "
                "VALUES (?, ?, ?, ?)",
                [(session_id, i.key, i.question, int(answers[i.key])) for i in items],
            )
            if positives:
                conn.execute(
                    "INSERT INTO overrides (session_id, kind, source, by_whom, reason, at, detail) "
                    "VALUES (?, 'contraindication', 'host', ?, ?, ?, ?)",
                    (
                        session_id,
                        clinician,
                        reason,
                        created,
                        json.dumps({"items": [i.key for i in positives]}),
                    ),
                )
            if early is not None and early.early:
                conn.execute(
                    "INSERT INTO overrides (session_id, kind, source, by_whom, reason, at, detail) "
                    "VALUES (?, 'interval', 'host', ?, ?, ?, ?)",
                    (
                        session_id,
                        clinician,
                        early_reason,
                        created,
                        json.dumps(
                            {
                                "previous_visit": early.previous_visit.isoformat(),
                                "due_from": early.due_from.isoformat(),
                                "days_early": early.days_early,
                            }
                        ),
                    ),
                )
        return session_id

    def sessions_bound_to_pen_session(self, pen_session: str, exclude: int) -> list[dict]:
        """Other treatment sessions already holding the pen's session `pen_session`."""
        return self._all(
            "SELECT id, client_id FROM treatment_sessions WHERE pen_session = ? AND id != ?",
            (str(pen_session), exclude),
        )

    def record_binding_override(self, session_id: int, reason: str, by: str | None,
                                detail: dict[str, Any]) -> None:  # fmt: skip
        """The clinician bound a pen session to this treatment despite the checks (kept with
        who, why and what did not match)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO overrides (session_id, kind, source, by_whom, reason, at, detail) "
                "VALUES (?, 'pen_binding', 'host', ?, ?, ?, ?)",
                (session_id, by, reason, now_iso(), json.dumps(detail)),
            )

    def record_summary(
        self, session_id: int, summary: SessionSummary, *, replace: bool = False
    ) -> list[str]:
        """Store the pen's summary (passes, faults, pen overrides) in a session.

        Returns warnings for the user: a preset other than the session's, passes outside the
        preset range with no override from the pen, a start on another day by the pen's clock
        (the record's time is then kept). A cartridge given at the start (lot or serial) is
        kept; otherwise the pen's cartridge number is stored.
        """
        session = self.session(session_id)
        if session.passes and not replace:
            raise RecordsError(
                f"session {session_id} already has {len(session.passes)} passes recorded; "
                "use --replace to overwrite them"
            )
        warnings: list[str] = []
        row = session.row
        if summary.preset and row["preset"] and summary.preset != row["preset"]:
            warnings.append(
                f"the pen ran preset {summary.preset}, the session was started with {row['preset']}"
            )
        started_at = to_iso(summary.start)
        if _day(row["started_at"]) != summary.start.date():
            # A pen without a set clock (no RTC battery) counts from its own epoch: the day the
            # session was started on the computer is the one the plan's spacing relies on.
            warnings.append(
                f"the pen's session started {started_at} by its clock, the record says "
                f"{row['started_at']}; the record's time is kept"
            )
            started_at = row["started_at"]
        lo, hi = row["preset_depth_min_mm"], row["preset_depth_max_mm"]
        pen_depth_overrides = [o for o in summary.overrides if o.kind.startswith("depth")]
        if lo is not None and hi is not None and not pen_depth_overrides:
            for n, p in enumerate(summary.passes, 1):
                if not lo - 0.005 <= p.depth_mm <= hi + 0.005:
                    warnings.append(
                        f"pass {n} at {p.depth_mm:.2f} mm is outside the preset range "
                        f"{lo:.2f}-{hi:.2f} mm and the pen reported no override"
                    )
        with self.transaction() as conn:
            if replace:
                conn.execute("DELETE FROM passes WHERE session_id = ?", (session_id,))
                conn.execute("DELETE FROM session_faults WHERE session_id = ?", (session_id,))
                conn.execute(
                    "DELETE FROM overrides WHERE session_id = ? AND source = 'pen'", (session_id,)
                )
            conn.executemany(
                "INSERT INTO passes (session_id, seq, start_s, duration_s, depth_mm, stroke_hz, "
                "strokes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (session_id, n, p.start_s, p.duration_s, p.depth_mm, p.stroke_hz, p.strokes)
                    for n, p in enumerate(summary.passes, 1)
                ],
            )
            conn.executemany(
                "INSERT INTO session_faults (session_id, code, at_s, detail) VALUES (?, ?, ?, ?)",
                [(session_id, f.code, f.at_s, f.detail) for f in summary.faults],
            )
            conn.executemany(
                "INSERT INTO overrides (session_id, kind, source, by_whom, reason, at, detail) "
                "VALUES (?, ?, 'pen', ?, ?, ?, ?)",
                [
                    (session_id, o.kind, o.by, o.reason, o.at, json.dumps(o.detail))
                    for o in summary.overrides
                ],
            )
            conn.execute(
                """UPDATE treatment_sessions SET started_at = ?, duration_s = ?,
                       cartridge = COALESCE(cartridge, ?), pen_session = COALESCE(?, pen_session),
                       status = 'recorded', recorded_at = ?
                   WHERE id = ?""",
                (
                    started_at,
                    summary.duration_s,
                    summary.cartridge,
                    summary.pen_session,
                    now_iso(),
                    session_id,
                ),
            )
        return warnings

    def session(self, session_id: int) -> SessionRecord:
        row = self.conn.execute(
            "SELECT * FROM treatment_sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise RecordsError(f"no session {session_id}")
        overrides = self._all(
            "SELECT kind, source, by_whom, reason, at, detail FROM overrides "
            "WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        for o in overrides:
            o["detail"] = json.loads(o["detail"]) if o["detail"] else {}
        return SessionRecord(
            row=dict(row),
            answers=self._all(
                "SELECT item_key, question, answer FROM session_answers WHERE session_id = ? "
                "ORDER BY rowid",
                (session_id,),
            ),
            passes=self._all(
                "SELECT seq, start_s, duration_s, depth_mm, stroke_hz, strokes FROM passes "
                "WHERE session_id = ? ORDER BY seq",
                (session_id,),
            ),
            faults=self._all(
                "SELECT code, at_s, detail FROM session_faults WHERE session_id = ? ORDER BY id",
                (session_id,),
            ),
            overrides=overrides,
        )

    def history(self, client_id: str) -> list[SessionRecord]:
        """Every session of a client, oldest first."""
        self.require_client(client_id)
        rows = self.conn.execute(
            "SELECT id, started_at FROM treatment_sessions WHERE client_id = ?", (client_id,)
        ).fetchall()
        ordered = sorted(rows, key=lambda r: (parse_iso(r["started_at"]), r["id"]))
        return [self.session(r["id"]) for r in ordered]

    def session_ids(self, client_id: str | None = None) -> list[int]:
        if client_id is None:
            return [
                r[0] for r in self.conn.execute("SELECT id FROM treatment_sessions ORDER BY id")
            ]
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT id FROM treatment_sessions WHERE client_id = ? ORDER BY id", (client_id,)
            )
        ]

    # -- aftercare -----------------------------------------------------------------------

    def aftercare(self) -> str:
        row = self.conn.execute("SELECT text FROM aftercare WHERE id = 1").fetchone()
        return row[0] if row else schema.DEFAULT_AFTERCARE

    def set_aftercare(self, text: str | None) -> str:
        """Replace the clinic's aftercare text (None restores the default)."""
        text = schema.DEFAULT_AFTERCARE if text is None else text.strip() + "\n"
        if not text.strip():
            raise RecordsError("the aftercare text must not be empty")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO aftercare (id, text, updated_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET text = excluded.text, "
                "updated_at = excluded.updated_at",
                (text, now_iso()),
            )
        return text
