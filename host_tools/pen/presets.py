"""Treatment presets: indication x area -> depth range, default depth and stroke rate.

The table is JSON (the shipped default is `presets_default.json`, documented with the source of
every number in `docs/presets.md`; a clinic may keep its own file). It is a starting point for
the clinician, not medical advice.

Format (version 1)::

    {"format": 1,
     "presets": [{"name": "acne_scars_cheeks", "indication": "acne_scars", "area": "cheeks",
                  "depth_min_mm": 1.0, "depth_max_mm": 2.5, "depth_default_mm": 1.5,
                  "stroke_hz": 120, "sources": ["harris2015"], "note": "..."}],
     "plan_defaults": {"acne_scars": {"sessions": 3, "interval_weeks": 4,
                                      "maintenance_weeks": null}}}

Rules: 0 <= depth_min_mm <= depth_default_mm <= depth_max_mm <= 3.0, every depth on the 0.01 mm
grid, stroke_hz an integer from 50 to 150, names unique and usable as a settings key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = 1
DEPTH_MAX_MM = 3.0
DEPTH_STEP_MM = 0.01
STROKE_HZ_MIN = 50
STROKE_HZ_MAX = 150
NAME_MAX = 24
DEFAULT_FILE = "presets_default.json"

_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$")
# The firmware's order of a preset's fields (firmware/schema.py PRESET_FIELDS), everywhere.
_DEPTH_KEYS = ("depth_min_mm", "depth_max_mm", "depth_default_mm")
_REQUIRED = ("name", "indication", "area", *_DEPTH_KEYS, "stroke_hz")
_OPTIONAL = ("sources", "note")
_TOP_KEYS = ("format", "disclaimer", "presets", "plan_defaults")
_PLAN_KEYS = ("sessions", "interval_weeks", "maintenance_weeks", "sources", "note")


class PresetError(ValueError):
    """A preset table that breaks the rules; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid preset table:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Preset:
    name: str
    indication: str
    area: str
    depth_min_mm: float
    depth_max_mm: float
    depth_default_mm: float
    stroke_hz: int
    sources: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        return (
            f"{self.name} ({self.depth_min_mm:.2f}-{self.depth_max_mm:.2f} mm, "
            f"default {self.depth_default_mm:.2f} mm, {self.stroke_hz} Hz)"
        )

    def contains(self, depth_mm: float) -> bool:
        """Whether a depth lies in the range (to the 0.01 mm grid)."""
        return self.depth_min_mm - 0.005 <= depth_mm <= self.depth_max_mm + 0.005


@dataclass(frozen=True)
class PlanDefaults:
    sessions: int
    interval_weeks: int
    maintenance_weeks: int | None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class PresetTable:
    presets: dict[str, Preset]
    plan_defaults: dict[str, PlanDefaults] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.presets.values())

    def __len__(self) -> int:
        return len(self.presets)

    def get(self, name: str) -> Preset | None:
        return self.presets.get(name)

    def find(self, indication: str, area: str) -> Preset | None:
        for preset in self.presets.values():
            if preset.indication == indication and preset.area == area:
                return preset
        return None

    def indications(self) -> list[str]:
        return sorted({p.indication for p in self.presets.values()})

    def areas(self, indication: str) -> list[str]:
        return sorted(p.area for p in self.presets.values() if p.indication == indication)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _on_grid(value: float) -> bool:
    scaled = value / DEPTH_STEP_MM
    return abs(scaled - round(scaled)) < 1e-6


def _check_sources(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        problems.append(f"{where}: sources must be a list of reference keys")
        return ()
    return tuple(value)


def _check_preset(raw: Any, where: str, problems: list[str]) -> Preset | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        problems.append(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = raw.get("name")
    if "name" in raw:
        if not isinstance(name, str) or not _TOKEN.match(name) or len(name) > NAME_MAX:
            problems.append(
                f"{where}: name {name!r} must be lower-case letters, digits and '_', "
                f"starting with a letter, at most {NAME_MAX} characters"
            )
        else:
            where = f"preset {name}"
    for key in ("indication", "area"):
        if key in raw and (not isinstance(raw[key], str) or not _TOKEN.match(raw[key])):
            problems.append(f"{where}: {key} {raw[key]!r} must be a lower-case token like 'cheeks'")
    depths: dict[str, float] = {}
    for key in _DEPTH_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if not _is_number(value):
            problems.append(f"{where}: {key} must be a number, not {value!r}")
        elif not 0.0 <= value <= DEPTH_MAX_MM:
            problems.append(f"{where}: {key} {value} is outside 0-{DEPTH_MAX_MM:.1f} mm")
        elif not _on_grid(value):
            problems.append(f"{where}: {key} {value} is not a multiple of {DEPTH_STEP_MM} mm")
        else:
            depths[key] = round(float(value), 2)
    if len(depths) == 3:
        lo, hi, default = (depths[k] for k in _DEPTH_KEYS)
        if not lo <= hi:
            problems.append(f"{where}: depth_min_mm {lo} is above depth_max_mm {hi}")
        elif not lo <= default <= hi:
            problems.append(
                f"{where}: depth_default_mm {default} is outside its range {lo}-{hi} mm"
            )
    if "stroke_hz" in raw:
        hz = raw["stroke_hz"]
        if not isinstance(hz, int) or isinstance(hz, bool):
            problems.append(f"{where}: stroke_hz must be an integer, not {hz!r}")
        elif not STROKE_HZ_MIN <= hz <= STROKE_HZ_MAX:
            problems.append(
                f"{where}: stroke_hz {hz} is outside {STROKE_HZ_MIN}-{STROKE_HZ_MAX} Hz"
            )
    sources = _check_sources(raw.get("sources"), where, problems)
    note = raw.get("note", "")
    if not isinstance(note, str):
        problems.append(f"{where}: note must be text")
    if len(problems) > before:
        return None
    return Preset(
        name=name,
        indication=raw["indication"],
        area=raw["area"],
        depth_min_mm=depths["depth_min_mm"],
        depth_max_mm=depths["depth_max_mm"],
        depth_default_mm=depths["depth_default_mm"],
        stroke_hz=raw["stroke_hz"],
        sources=sources,
        note=note,
    )


def _check_plan(raw: Any, where: str, problems: list[str]) -> PlanDefaults | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object")
        return None
    before = len(problems)
    unknown = sorted(set(raw) - set(_PLAN_KEYS))
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("sessions", "interval_weeks", "maintenance_weeks"):
        value = raw.get(key)
        if value is None and key == "maintenance_weeks":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{where}: {key} must be a whole number of at least 1")
    sources = _check_sources(raw.get("sources"), where, problems)
    if len(problems) > before:
        return None
    return PlanDefaults(
        raw["sessions"], raw["interval_weeks"], raw.get("maintenance_weeks"), sources
    )


def validate_presets(table: Any) -> PresetTable:
    """Check a preset table (the parsed JSON) and return it typed; raise PresetError if bad.

    Every problem is collected, so a clinic editing the file sees all of them at once.
    """
    problems: list[str] = []
    if not isinstance(table, Mapping):
        raise PresetError(["the table must be a JSON object with a 'presets' list"])
    unknown = sorted(set(table) - set(_TOP_KEYS))
    if unknown:
        problems.append(f"unknown top-level key(s) {', '.join(unknown)}")
    if table.get("format", FORMAT) != FORMAT:
        problems.append(f"format {table.get('format')!r} is not supported (expected {FORMAT})")
    raw_presets = table.get("presets")
    if not isinstance(raw_presets, list) or not raw_presets:
        problems.append("'presets' must be a non-empty list")
        raw_presets = []
    presets: dict[str, Preset] = {}
    seen_pairs: dict[tuple[str, str], str] = {}
    for i, raw in enumerate(raw_presets):
        preset = _check_preset(raw, f"preset #{i + 1}", problems)
        if preset is None:
            continue
        if preset.name in presets:
            problems.append(f"preset {preset.name}: name used twice")
            continue
        pair = (preset.indication, preset.area)
        if pair in seen_pairs:
            problems.append(
                f"preset {preset.name}: {preset.indication}/{preset.area} is already "
                f"covered by {seen_pairs[pair]}"
            )
            continue
        seen_pairs[pair] = preset.name
        presets[preset.name] = preset
    plans: dict[str, PlanDefaults] = {}
    raw_plans = table.get("plan_defaults") or {}
    if not isinstance(raw_plans, Mapping):
        problems.append("'plan_defaults' must be an object keyed by indication")
        raw_plans = {}
    indications = {p.indication for p in presets.values()}
    for indication, raw in raw_plans.items():
        where = f"plan_defaults {indication}"
        if presets and indication not in indications:
            problems.append(f"{where}: no preset has this indication")
        plan = _check_plan(raw, where, problems)
        if plan is not None:
            plans[indication] = plan
    if problems:
        raise PresetError(problems)
    return PresetTable(presets, plans)


def load_presets(path: str | Path | None = None) -> PresetTable:
    """Load and validate a preset table; `None` loads the shipped default table."""
    try:
        if path is None:
            text = resources.files(__package__).joinpath(DEFAULT_FILE).read_text("utf-8")
            origin = DEFAULT_FILE
        else:
            text = Path(path).read_text("utf-8")
            origin = str(path)
    except OSError as exc:
        raise PresetError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError([f"{origin}: not valid JSON ({exc})"]) from exc
    return validate_presets(data)


def _fmt_mm(value: float) -> str:
    return f"{value:.2f}"


def preset_to_settings_lines(
    preset: Preset | Mapping[str, Any], *, select: bool = False
) -> list[str]:
    """The serial commands that store `preset` on the pen (and make it active if `select`).

    This is the single place that knows the wire format of presets, e.g.::

        set preset.acne_scars_cheeks.depth_min 1.00
        set preset.acne_scars_cheeks.depth_max 2.50
        set preset.acne_scars_cheeks.depth_default 1.50
        set preset.acne_scars_cheeks.stroke_hz 120
        set preset.active acne_scars_cheeks          (only with select=True)

    The range is sent before the default so the pen can check the default against it.
    """
    if not isinstance(preset, Preset):
        problems: list[str] = []
        checked = _check_preset(preset, "preset", problems)
        if checked is None:
            raise PresetError(problems)
        preset = checked
    key = f"preset.{preset.name}"
    lines = [
        f"set {key}.depth_min {_fmt_mm(preset.depth_min_mm)}",
        f"set {key}.depth_max {_fmt_mm(preset.depth_max_mm)}",
        f"set {key}.depth_default {_fmt_mm(preset.depth_default_mm)}",
        f"set {key}.stroke_hz {preset.stroke_hz}",
    ]
    if select:
        lines.append(f"set preset.active {preset.name}")
    return lines


def table_to_settings_lines(table: PresetTable) -> list[str]:
    """The commands that store a whole table on the pen (no preset selected)."""
    lines: list[str] = []
    for preset in table:
        lines.extend(preset_to_settings_lines(preset))
    return lines
