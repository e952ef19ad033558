"""The settings schema: the single source of truth for every setting (firmware/settings.py holds
the live values).

SCHEMA lists every setting: name, type, unit, min, max, default, flags (PROTECTED: needs the
clinician unlock; STOPPED: changes only while the needle motor is stopped) and a help text. The
firmware's validation, `docs/settings.md` (tools/gen_docs.py) and the host's validation all come
from it; `schema_hash()` (sha256 of the canonical text) is reported by `hello`.

Types and internal units (floats only at the protocol's edge):
  int     an integer, e.g. stroke_hz in Hz
  mm      a depth: text "1.25" at the edge, an int in µm inside, on the 0.01 mm grid
  calib   the depth calibration, the flat list [steps0, um0, steps1, um1, ...] of
          firmware.calib.CalibrationTable (validated by it: strictly increasing, plausible slope)
  preset  a preset name or "none"

Presets: `preset.NAME.depth_min`, `.depth_max`, `.depth_default` (mm) and `.stroke_hz`
(int); NAME is [a-z][a-z0-9_]*, at most NAME_MAX characters, at most MAX_PRESETS of them.
"""

import json
from collections import namedtuple

try:
    from micropython import const
except ImportError:  # CPython: docs generation, host tools

    def const(expr):  # type: ignore[misc]
        return expr


from firmware import errors as E
from firmware.calib import CalibrationTable
from firmware.errors import Refused

PROTECTED = const(1)
STOPPED = const(2)
MAX_PRESETS = const(16)
NAME_MAX = const(24)
_MM_GRID = const(10)  # µm: depths are set in 0.01 mm steps

# The uncalibrated pen's table; firmware/calib.py's CalibrationTable.NOMINAL (same numbers:
# a test checks they agree).
CALIB_DEFAULT = (0, -100, 1440, 3680)
CALIB_MAX_POINTS = const(32)


# One row of the schema: name, type, unit at the edge, bounds and default (internal units),
# flags, help text.
Setting = namedtuple("Setting", ("name", "type", "unit", "lo", "hi", "default", "flags", "help"))


SCHEMA = (
    Setting("depth", "mm", "mm", 0, 3000, 500, STOPPED,
     "needle depth target (set while the needle is stopped: one pass, one depth)"),
    Setting("depth_limit", "mm", "mm", 250, 3000, 2500, PROTECTED | STOPPED,
     "deepest depth the pen accepts (clinic limit)"),
    Setting("depth_step", "mm", "mm", 10, 500, 50, 0,
     "depth change per plus/minus press"),
    Setting("stroke_hz", "int", "Hz", 50, 150, 100, 0,
     "needle stroke rate target"),
    Setting("stroke_hz_min", "int", "Hz", 50, 150, 50, PROTECTED | STOPPED,
     "lowest stroke rate the pen accepts"),
    Setting("stroke_hz_max", "int", "Hz", 50, 150, 150, PROTECTED | STOPPED,
     "highest stroke rate the pen accepts"),
    Setting("stroke_hz_step", "int", "Hz", 1, 25, 5, 0,
     "stroke rate change per button step"),
    Setting("telemetry_hz", "int", "Hz", 1, 200, 50, 0,
     "telemetry sample rate while the needle runs (and default of `telemetry on`)"),
    Setting("cartridge_stroke_limit", "int", "strokes", 1000, 1000000, 200000, PROTECTED | STOPPED,
     "strokes per cartridge, then the pen stops"),
    Setting("cartridge_warn_pct", "int", "%", 50, 99, 90, 0,
     "warn when a cartridge has used this share of its strokes"),
    Setting("sleep_s", "int", "s", 30, 3600, 300, 0,
     "idle time before the pen sleeps"),
    Setting("disarm_after_s", "int", "s", 10, 600, 120, 0,
     "an armed pen left alone disarms itself after this time"),
    Setting("calib", "calib", "[steps, um, ...]", 2, CALIB_MAX_POINTS, CALIB_DEFAULT,
     PROTECTED | STOPPED,
     "depth calibration: flat list of (microsteps, µm) points, both strictly increasing"),
    Setting("preset.active", "preset", "", 0, 0, "none", PROTECTED | STOPPED,
     "selected preset (loads its default depth and stroke rate), or none"),
    Setting("preset.*.depth_min", "mm", "mm", 0, 3000, None, PROTECTED | STOPPED,
     "preset: shallowest depth"),
    Setting("preset.*.depth_max", "mm", "mm", 0, 3000, None, PROTECTED | STOPPED,
     "preset: deepest depth"),
    Setting("preset.*.depth_default", "mm", "mm", 0, 3000, None, PROTECTED | STOPPED,
     "preset: depth loaded when the preset is selected"),
    Setting("preset.*.stroke_hz", "int", "Hz", 50, 150, None, PROTECTED | STOPPED,
     "preset: stroke rate loaded when the preset is selected"),
)  # fmt: skip

PRESET_FIELDS = ("depth_min", "depth_max", "depth_default", "stroke_hz")

_BY_NAME = {}
for _e in SCHEMA:
    _BY_NAME[_e.name] = _e
_SCALARS = tuple(e.name for e in SCHEMA if not e.name.startswith("preset.*."))


# -- values at the edge ------------------------------------------------------------------------
def fmt_mm(um, places=0):
    """µm -> mm text: the one place the firmware writes a depth for people and hosts.
    places 0: 2 decimals, 3 when not on the 0.01 mm grid (1250 -> '1.25', 1255 -> '1.255');
    2: rounded to 0.01 mm (the display); 3: always 3 decimals (telemetry)."""
    sign = "-" if um < 0 else ""
    um = -um if um < 0 else um
    if places == 2:
        um = (um + 5) // 10 * 10
    if places == 3 or (places == 0 and um % 10):
        return "%s%d.%03d" % (sign, um // 1000, um % 1000)
    return "%s%d.%02d" % (sign, um // 1000, (um % 1000) // 10)


def to_mm(um):
    """µm -> mm as a number, for JSON at the protocol's edge."""
    return um / 1000


def digits(s):
    """True for a non-empty string of ASCII digits."""
    if not s:
        return False
    for c in s:
        if c < "0" or c > "9":
            return False
    return True


def parse_int(text):
    """Strict decimal integer: optional '-', 1..10 ASCII digits. ValueError otherwise."""
    s = text[1:] if text[:1] == "-" else text
    if len(s) > 10 or not digits(s):
        raise ValueError("not an integer: " + text[:20])
    v = int(s)
    return -v if text[:1] == "-" else v


def parse_mm(text):
    """Strict decimal millimetres -> int µm ('1', '1.2', '1.25', '1.250'). ValueError on
    anything else (exponents, nan, '+', more than µm precision)."""
    neg = text[:1] == "-"
    s = text[1:] if neg else text
    whole, dot, frac = s.partition(".")
    if len(whole) > 4 or not digits(whole) or (dot and (not frac or len(frac) > 6)):
        raise ValueError("not a depth in mm: " + text[:20])
    if frac:
        if not digits(frac) or (len(frac) > 3 and frac[3:] != "0" * (len(frac) - 3)):
            raise ValueError("depth finer than 0.001 mm: " + text[:20])
        frac = (frac + "00")[:3]
    else:
        frac = "0"
    um = int(whole) * 1000 + int(frac)
    return -um if neg else um


def _is_int(v):
    return type(v) is int


def valid_name(name):
    if not name or len(name) > NAME_MAX or name in ("none", "active"):
        return False
    if not "a" <= name[0] <= "z":
        return False
    for c in name:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_"):
            return False
    return True


def check_calib(flat):
    """Validate a calibration list (firmware/calib.py's rules: 2..32 points, both columns
    strictly increasing, a plausible slope); return it as a list of ints, or raise Refused."""
    if not isinstance(flat, (list, tuple)):
        raise Refused(E.BAD_ARGUMENT, "calib must be a JSON list [steps, um, ...]")
    for v in flat:
        if not _is_int(v):
            raise Refused(E.BAD_ARGUMENT, "calib values must be integers")
    CalibrationTable(flat)  # raises Refused with the reason
    return list(flat)


def _range_text(e):
    if e.type == "mm":
        return "%s..%s mm" % (fmt_mm(e.lo), fmt_mm(e.hi))
    return "%d..%d %s" % (e.lo, e.hi, e.unit)


def _parse_value(e, text):
    """Text -> internal value for schema entry e (type and static bounds). Raises Refused."""
    typ = e.type
    name = e.name
    if typ == "calib":
        try:
            v = json.loads(text)
        except (ValueError, TypeError):
            raise Refused(E.BAD_ARGUMENT, "calib must be a JSON list [steps, um, ...]") from None
        return check_calib(v)
    if typ == "preset":
        if text != "none" and not valid_name(text):
            raise Refused(E.BAD_ARGUMENT, "not a preset name: " + text[:30])
        return text
    try:
        v = parse_mm(text) if typ == "mm" else parse_int(text)
    except ValueError as ex:
        raise Refused(E.BAD_ARGUMENT, "%s: %s" % (name, ex.args[0])) from None
    _check_bounds(e, v)
    return v


def _check_bounds(e, v):
    if not _is_int(v):
        raise Refused(E.BAD_ARGUMENT, e.name + " must be a number")
    if not e.lo <= v <= e.hi:
        raise Refused(E.OUT_OF_RANGE, "%s must be %s" % (e.name, _range_text(e)))
    if e.type == "mm" and v % _MM_GRID:
        raise Refused(E.BAD_ARGUMENT, e.name + " takes steps of 0.01 mm")


def _text(e, v):
    """Internal value -> the value's text as JSON (and as `set` takes it, for non-strings)."""
    if v is None:
        return "null"
    typ = e.type
    if typ == "mm":
        return fmt_mm(v)
    if typ == "calib":
        return "[" + ",".join(str(x) for x in v) + "]"
    if typ == "preset":
        return json.dumps(v)
    return str(v)


# -- the canonical schema and its hash ---------------------------------------------------------
def canonical_schema():
    """The schema as text, one line per setting; its sha256 is the handshake's schema_hash."""
    lines = []
    for e in SCHEMA:
        d = e.default
        if d is None:
            dt = "-"
        elif e.type == "calib":
            dt = _text(e, list(d))
        elif e.type == "preset":
            dt = d
        else:
            dt = _text(e, d)
        lo = fmt_mm(e.lo) if e.type == "mm" else str(e.lo)
        hi = fmt_mm(e.hi) if e.type == "mm" else str(e.hi)
        lines.append("%s|%s|%s|%s|%s|%s|%d|%d" % (
            e.name, e.type, e.unit, lo, hi, dt, 1 if e.flags & PROTECTED else 0,
            1 if e.flags & STOPPED else 0))  # fmt: skip
    lines.append("max_presets|%d|name_max|%d|grid_um|%d" % (MAX_PRESETS, NAME_MAX, _MM_GRID))
    return "\n".join(lines) + "\n"


_hash = None


def schema_hash():
    """sha256 (hex) of canonical_schema(): the same in the firmware and on the host."""
    global _hash
    if _hash is None:
        import hashlib
        from binascii import hexlify

        _hash = hexlify(hashlib.sha256(canonical_schema().encode()).digest()).decode()
    return _hash


def entry(key):
    """The schema entry of a key ('preset.x.depth_min' -> the 'preset.*.' entry), or None."""
    e = _BY_NAME.get(key)
    if e is not None:
        return e
    if key.startswith("preset."):
        parts = key.split(".")
        if len(parts) == 3 and parts[2] in PRESET_FIELDS:
            return _BY_NAME.get("preset.*." + parts[2])
    return None


def _defaults():
    v = {}
    for name in _SCALARS:
        d = _BY_NAME[name].default
        v[name] = list(d) if isinstance(d, tuple) else d
    return v
