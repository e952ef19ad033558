"""The pen's session summary, as JSON, checked before anything is stored.

    {"start": "2025-03-01T10:02:00+01:00",      # ISO 8601, required
     "duration_s": 745.0,                        # required, >= 0
     "cartridge": "C12-0042",                    # optional text (lot / serial)
     "pen_session": "17",                        # optional: the pen's own session id
     "preset": "acne_scars_cheeks",              # optional: the preset the pen ran
     "passes": [{"depth_mm": 1.5, "stroke_hz": 120, "strokes": 21600, "duration_s": 180,
                 "start_s": 0.0}],               # start_s (from session start) or start (ISO)
     "faults": ["stall", {"code": "overcurrent", "at_s": 312.5, "detail": "..."}],
     "overrides": [{"kind": "depth", "at_s": 400, "from_mm": 2.5, "to_mm": 2.7,
                    "by": "button", "reason": "..."}]}

Unknown keys are kept out of the record but do not fail the check, so a newer pen can add
fields. `SummaryError` lists every problem found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .timeutil import parse_iso, to_iso

DEPTH_MAX_MM = 3.0


class SummaryError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid session summary:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class PassRecord:
    depth_mm: float
    stroke_hz: float
    strokes: int
    duration_s: float
    start_s: float | None = None


@dataclass(frozen=True)
class FaultRecord:
    code: str
    at_s: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class OverrideRecord:
    kind: str
    by: str | None = None
    reason: str | None = None
    at: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionSummary:
    start: datetime
    duration_s: float
    cartridge: str | None
    passes: tuple[PassRecord, ...]
    faults: tuple[FaultRecord, ...] = ()
    overrides: tuple[OverrideRecord, ...] = ()
    preset: str | None = None
    pen_session: str | None = None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _opt_text(raw: Mapping, key: str, where: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        problems.append(f"{where}{key} must be text")
        return None
    return value


def _parse_pass(raw: Any, i: int, start: datetime | None, problems: list[str]):
    where = f"passes[{i}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object")
        return None
    before = len(problems)
    for key in ("depth_mm", "stroke_hz", "strokes", "duration_s"):
        if key not in raw:
            problems.append(f"{where}.{key} is missing")
    depth = raw.get("depth_mm")
    if "depth_mm" in raw and (not _number(depth) or not 0 <= depth <= DEPTH_MAX_MM):
        problems.append(f"{where}.depth_mm must be a number from 0 to {DEPTH_MAX_MM} mm")
    hz = raw.get("stroke_hz")
    if "stroke_hz" in raw and (not _number(hz) or hz < 0):
        problems.append(f"{where}.stroke_hz must be a number >= 0")
    strokes = raw.get("strokes")
    if "strokes" in raw and (
        not isinstance(strokes, int) or isinstance(strokes, bool) or strokes < 0
    ):
        problems.append(f"{where}.strokes must be a whole number >= 0")
    duration = raw.get("duration_s")
    if "duration_s" in raw and (not _number(duration) or duration < 0):
        problems.append(f"{where}.duration_s must be a number >= 0")
    start_s = raw.get("start_s")
    if start_s is not None and (not _number(start_s) or start_s < 0):
        problems.append(f"{where}.start_s must be a number >= 0")
    if start_s is None and raw.get("start") is not None:
        try:
            moment = parse_iso(raw["start"])
            if start is not None:
                start_s = (moment - start).total_seconds()
                if start_s < 0:
                    problems.append(f"{where}.start is before the session start")
        except ValueError as exc:
            problems.append(f"{where}.start: {exc}")
    if len(problems) > before:
        return None
    return PassRecord(
        depth_mm=float(depth),
        stroke_hz=float(hz),
        strokes=int(strokes),
        duration_s=float(duration),
        start_s=None if start_s is None else float(start_s),
    )


def _parse_fault(raw: Any, i: int, problems: list[str]) -> FaultRecord | None:
    where = f"faults[{i}]"
    if isinstance(raw, str) and raw:
        return FaultRecord(raw)
    if isinstance(raw, Mapping):
        code = raw.get("code", raw.get("fault"))
        if not isinstance(code, str) or not code:
            problems.append(f"{where}.code must be text")
            return None
        at_s = raw.get("at_s")
        if at_s is not None and not _number(at_s):
            problems.append(f"{where}.at_s must be a number")
            return None
        detail = raw.get("detail")
        return FaultRecord(
            code, None if at_s is None else float(at_s), None if detail is None else str(detail)
        )
    problems.append(f"{where} must be a fault code or an object with 'code'")
    return None


def _parse_override(raw: Any, i: int, problems: list[str]) -> OverrideRecord | None:
    where = f"overrides[{i}]"
    if isinstance(raw, str) and raw:
        return OverrideRecord(kind=raw)
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an object")
        return None
    before = len(problems)
    kind = raw.get("kind", "depth")
    if not isinstance(kind, str) or not kind:
        problems.append(f"{where}.kind must be text")
    by = _opt_text(raw, "by", f"{where}.", problems)
    reason = _opt_text(raw, "reason", f"{where}.", problems)
    at = raw.get("at")
    if at is not None:
        try:
            at = to_iso(parse_iso(at))
        except ValueError as exc:
            problems.append(f"{where}.at: {exc}")
    if len(problems) > before:
        return None
    detail = {k: v for k, v in raw.items() if k not in ("kind", "by", "reason", "at")}
    return OverrideRecord(kind=kind, by=by, reason=reason, at=at, detail=detail)


def parse_summary(data: Any) -> SessionSummary:
    """Check a session summary (parsed JSON) and return it typed; raise SummaryError if bad."""
    if not isinstance(data, Mapping):
        raise SummaryError(["the summary must be a JSON object"])
    problems: list[str] = []
    start = None
    if "start" not in data:
        problems.append("start is missing")
    else:
        try:
            start = parse_iso(data["start"])
        except ValueError as exc:
            problems.append(f"start: {exc}")
    duration = data.get("duration_s")
    if not _number(duration) or duration < 0:
        problems.append("duration_s must be a number >= 0")
    cartridge = _opt_text(data, "cartridge", "", problems)
    preset = _opt_text(data, "preset", "", problems)
    pen_session = _opt_text(data, "pen_session", "", problems)
    lists = {}
    for key in ("passes", "faults", "overrides"):
        value = data.get(key, [])
        if not isinstance(value, list):
            problems.append(f"{key} must be a list")
            value = []
        lists[key] = value
    passes = [_parse_pass(p, i, start, problems) for i, p in enumerate(lists["passes"])]
    faults = [_parse_fault(f, i, problems) for i, f in enumerate(lists["faults"])]
    overrides = [_parse_override(o, i, problems) for i, o in enumerate(lists["overrides"])]
    if problems:
        raise SummaryError(problems)
    return SessionSummary(
        start=start,
        duration_s=float(duration),
        cartridge=cartridge,
        passes=tuple(passes),
        faults=tuple(faults),
        overrides=tuple(overrides),
        preset=preset,
        pen_session=pen_session,
    )
