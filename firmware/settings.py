"""The pen's stored settings, checked against the schema (firmware/schema.py). Passive: it
loads, validates, saves atomically and dumps; it commands nothing and tells no one. The owner
of the treatment targets (firmware/targets.py) is the one caller that changes them on the pen:
it asks `check()` for the settings after a change, commands the actuators, then `commit()`s.

Presets: each field is checked on its own when set; a preset is checked as a whole (min <=
default <= max <= the depth limit, stroke_hz within stroke_hz_min..max) when it is selected
with `preset.active NAME`, which then loads its default depth and stroke rate. Editing a field of
the active preset deselects it (`preset.active` becomes "none"); the host selects it again after
sending all its fields. While a preset is active, `depth` must stay inside its range unless
the change is an explicit override.

Cross-setting rules (always true of the stored set): depth <= depth_limit;
stroke_hz_min <= stroke_hz <= stroke_hz_max; an active preset is valid. A change that would break
one is refused (nothing clamped).

    s = Settings(store)                 # store: firmware.store.Store or None (RAM only)
    fault = s.load()                    # 0, or faults.SETTINGS_CORRUPT (defaults in use)
    s.get(key)                          # internal value (µm for mm, Hz, list for calib)
    s.parse(key, text)                  # the protocol's text -> internal value (Refused)
    new = s.check(key, value, ...)      # the settings after the change (Refused: not allowed)
    s.commit(new, running)              # make `new` current; persisted now while stopped
                                        # (Refused STORAGE: the write failed, nothing changed)
    s.flush()                           # persist changes made while the motor ran
    s.depth_range_um()                  # (lo, hi) allowed for depth (preset, limit)
    s.set(key, text, ...)               # parse + check + commit: a copy of the settings with
                                        # no actuators behind it (the host's `pen settings`)
"""

import json

from firmware import errors as E
from firmware import faults as F
from firmware.errors import Refused
from firmware.schema import (  # noqa: F401 -- re-exported: the schema's names live here too
    _BY_NAME,
    _SCALARS,
    CALIB_DEFAULT,
    CALIB_MAX_POINTS,
    MAX_PRESETS,
    NAME_MAX,
    PRESET_FIELDS,
    PROTECTED,
    SCHEMA,
    STOPPED,
    _check_bounds,
    _defaults,
    _parse_value,
    _text,
    canonical_schema,
    check_calib,
    entry,
    fmt_mm,
    parse_int,
    parse_mm,
    schema_hash,
    valid_name,
)

# Stored records written before the depth keys lost their `_mm` (they hold µm): the values
# keep their meaning, so a clinic's depth limit survives the update. Read on load only.
_RENAMED = {"depth_mm": "depth", "depth_limit_mm": "depth_limit", "depth_step_mm": "depth_step"}


class Settings:
    def __init__(self, store=None):
        self.store = store
        self._v = _defaults()
        self._presets = {}  # name -> [min_um, max_um, default_um, hz] (None = not set yet)
        self.dirty = False
        self.boot_fault = F.NONE
        self.load_status = "defaults"

    # -- reading --------------------------------------------------------------------------
    def get(self, key):
        """Internal value of a setting (µm for mm, Hz, list for calib, preset name); KeyError
        if unknown."""
        if key in self._v:
            v = self._v[key]
            return list(v) if isinstance(v, list) else v
        e = entry(key)
        if e is not None and key.count(".") == 2:
            p = self._presets.get(key.split(".")[1])
            if p is not None:
                return p[PRESET_FIELDS.index(key.split(".")[2])]
        raise KeyError(key)

    def text(self, key):
        """The stored value as JSON text ('0.50', '100', '"none"', '[0,-100,...]')."""
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        try:
            return _text(e, self.get(key))
        except KeyError:
            raise Refused(E.UNKNOWN_SETTING, "no such preset: " + key[:40]) from None

    def keys(self):
        """Every stored key, in schema order, presets last (sorted by name)."""
        out = list(_SCALARS)
        for name in sorted(self._presets):
            for f in PRESET_FIELDS:
                out.append("preset.%s.%s" % (name, f))
        return out

    def presets(self):
        return sorted(self._presets)

    def preset(self, name):
        p = self._presets.get(name)
        return None if p is None else list(p)

    def as_json(self):
        """Every setting as one JSON object (keys as in `get`/`set`)."""
        parts = []
        for k in self.keys():
            parts.append('"%s": %s' % (k, self.text(k)))
        return "{" + ", ".join(parts) + "}"

    def depth_range_um(self):
        """(lo, hi) µm that depth may take now: the active preset's range, else 0..limit."""
        v = self._v
        lim = v["depth_limit"]
        p = self._presets.get(v["preset.active"])
        if p is None:
            return 0, lim
        return p[0], min(p[1], lim)

    # -- checking a change (pure: nothing changes here) ------------------------------------
    def parse(self, key, text, unlocked=False, running=False):
        """The protocol's text of a value -> its internal value (schema type and bounds); the
        lock and the motor are asked first, as `check()` asks them."""
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        self._check_access(key, e, unlocked, running)
        if key.startswith("preset.") and key != "preset.active":
            if not valid_name(key.split(".")[1]):
                raise Refused(E.BAD_ARGUMENT, "preset names: a-z, 0-9, _ (<= 24, not 'none')")
        return _parse_value(e, text)

    def check(self, key, value, unlocked=False, running=False, override=False):
        """The settings after `key` takes `value` (internal units), as (values, presets), or
        Refused when the schema, the lock, the motor or a cross-setting rule says no."""
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        self._check_access(key, e, unlocked, running)
        if e.type in ("int", "mm"):
            _check_bounds(e, value)
        elif e.type == "calib":
            value = check_calib(value)
        v = dict(self._v)
        presets = self._presets
        if key.startswith("preset.") and key != "preset.active":
            _, name, field = key.split(".")
            if not valid_name(name):
                raise Refused(E.BAD_ARGUMENT, "preset names: a-z, 0-9, _ (<= 24, not 'none')")
            presets = dict(presets)
            p = presets.get(name)
            if p is None:
                if len(presets) >= MAX_PRESETS:
                    raise Refused(E.OUT_OF_RANGE, "at most %d presets" % MAX_PRESETS)
                p = [None, None, None, None]
            else:
                p = list(p)
            p[PRESET_FIELDS.index(field)] = value
            presets[name] = p
            if v["preset.active"] == name:
                v["preset.active"] = "none"  # edited: selected again once complete
        elif key == "preset.active":
            v[key] = value
            if value != "none":
                p = presets.get(value)
                if p is None:
                    raise Refused(E.NOT_FOUND, "no preset named " + value)
                bad = self._preset_problem(p, v)
                if bad:
                    raise Refused(E.PRESET_RANGE, "preset %s: %s" % (value, bad))
                v["depth"] = p[2]
                v["stroke_hz"] = p[3]
        else:
            v[key] = value
            if key == "depth" and not override:
                p = presets.get(v["preset.active"])
                if p is not None and not p[0] <= value <= p[1]:
                    raise Refused(E.PRESET_RANGE, "depth outside preset %s (%s..%s mm)" % (
                        v["preset.active"], fmt_mm(p[0]), fmt_mm(p[1])))  # fmt: skip
        bad = self._invariant_problem(v, presets)
        if bad:
            raise Refused(bad[0], bad[1])
        return v, presets

    def check_delete(self, name, unlocked=False, running=False):
        """The settings without preset `name` (deselected if active), or Refused."""
        self._check_access("preset", _BY_NAME["preset.active"], unlocked, running)
        if name not in self._presets:
            raise Refused(E.NOT_FOUND, "no preset named " + name[:30])
        v = dict(self._v)
        if v["preset.active"] == name:
            v["preset.active"] = "none"
        presets = dict(self._presets)
        del presets[name]
        return v, presets

    def check_defaults(self, unlocked=False, running=False):
        """Factory defaults for every setting (protected ones included: needs unlock)."""
        if not unlocked:
            raise Refused(E.LOCKED, "defaults resets protected settings: unlock first")
        if running:
            raise Refused(E.MOTOR_RUNNING)
        return _defaults(), {}

    @staticmethod
    def _check_access(key, e, unlocked, running):
        if e.flags & PROTECTED and not unlocked:
            raise Refused(E.LOCKED, key[:40] + " is protected: unlock first")
        if e.flags & STOPPED and running:
            raise Refused(E.MOTOR_RUNNING, key[:40] + " changes only while the needle is stopped")

    # -- changing ---------------------------------------------------------------------------
    def commit(self, new, running=False):
        """Make a checked change current. While stopped it is written at once: if the write
        fails, Refused(STORAGE) and nothing changed. While the motor runs it is written by
        `flush()` once it has stopped."""
        v, presets = new
        if self.store is not None and not running:
            self.store.save(self._payload(v, presets))  # Refused(STORAGE): nothing changed
            self.dirty = False
        elif self.store is not None:
            self.dirty = True
        self._v, self._presets = v, presets

    def set(self, key, text, unlocked=False, running=False, override=False):
        """parse + check + commit, for a copy of the settings with no actuators behind it (the
        host's planning of `pen settings`). Returns the stored value's text."""
        value = self.parse(key, text, unlocked, running)
        self.commit(self.check(key, value, unlocked, running, override), running)
        return self.text(key)

    @staticmethod
    def _preset_problem(p, v):
        if None in p:
            return "incomplete (needs %s)" % ", ".join(
                PRESET_FIELDS[i] for i in range(4) if p[i] is None)
        if not p[0] <= p[2] <= p[1]:
            return "needs depth_min <= depth_default <= depth_max"
        if p[1] > v["depth_limit"]:
            return "depth_max above depth_limit %s" % fmt_mm(v["depth_limit"])
        if not v["stroke_hz_min"] <= p[3] <= v["stroke_hz_max"]:
            return "stroke_hz outside %d..%d Hz" % (v["stroke_hz_min"], v["stroke_hz_max"])
        return None

    def _invariant_problem(self, v, presets):
        if v["depth"] > v["depth_limit"]:
            return E.OUT_OF_RANGE, "depth %s above depth_limit %s" % (
                fmt_mm(v["depth"]), fmt_mm(v["depth_limit"]))
        if v["stroke_hz_min"] > v["stroke_hz_max"]:
            return E.OUT_OF_RANGE, "stroke_hz_min above stroke_hz_max"
        if not v["stroke_hz_min"] <= v["stroke_hz"] <= v["stroke_hz_max"]:
            return E.OUT_OF_RANGE, "stroke_hz must be %d..%d Hz" % (
                v["stroke_hz_min"], v["stroke_hz_max"])
        act = v["preset.active"]
        if act != "none":
            p = presets.get(act)
            if p is None:
                return E.NOT_FOUND, "no preset named " + act
            bad = self._preset_problem(p, v)
            if bad:
                return E.PRESET_RANGE, "active preset %s: %s" % (act, bad)
        return None

    # -- persistence ------------------------------------------------------------------------
    def _payload(self, v=None, p=None):
        v = self._v if v is None else v
        p = self._presets if p is None else p
        # Keys sorted by hand: MicroPython's dict order is not insertion order.
        parts = []
        for k in _SCALARS:
            parts.append('"%s":%s' % (k, json.dumps(v[k])))
        pp = []
        for name in sorted(p):
            pp.append('"%s":%s' % (name, json.dumps(p[name])))
        return ('{"v":{%s},"presets":{%s}}' % (",".join(parts), ",".join(pp))).encode()

    def flush(self):
        """Persist changes made while the motor ran (call when the needle has stopped)."""
        if self.dirty and self.store is not None:
            self.store.save(self._payload())
            self.dirty = False

    def save(self):
        """Persist now (the protocol's `save`)."""
        if self.store is None:
            raise Refused(E.STORAGE, "no storage")
        self.store.save(self._payload())
        self.dirty = False

    def load(self):
        """Read the stored settings. Missing: defaults, no fault. Unreadable, unknown version,
        or any value failing its check: defaults and SETTINGS_CORRUPT (never an exception)."""
        self._v = _defaults()
        self._presets = {}
        self.dirty = False
        if self.store is None:
            self.load_status = "defaults"
            return F.NONE
        try:
            payload, status = self.store.load()
        except Exception:  # noqa: BLE001 -- a broken filesystem must not stop the pen
            payload, status = None, "corrupt"
        self.load_status = status
        if status == "empty":
            return F.NONE
        if status == "ok":
            try:
                self._from_payload(payload)
                return F.NONE
            except (Refused, ValueError, TypeError, KeyError, AttributeError, IndexError):
                self._v = _defaults()
                self._presets = {}
                self.load_status = "invalid"
        self.boot_fault = F.SETTINGS_CORRUPT
        return F.SETTINGS_CORRUPT

    def _from_payload(self, payload):
        d = json.loads(payload)
        sv = d["v"]
        sp = d["presets"]
        if not isinstance(sv, dict) or not isinstance(sp, dict):
            raise ValueError("layout")
        v = _defaults()
        for k in sv:
            e = _BY_NAME.get(_RENAMED.get(k, k))
            if e is None or e.name not in v:
                continue  # a setting this firmware no longer has
            val = sv[k]
            if e.type in ("int", "mm"):
                _check_bounds(e, val)
            elif e.type == "calib":
                val = check_calib(val)
            elif e.type == "preset":
                if not isinstance(val, str) or (val != "none" and not valid_name(val)):
                    raise ValueError("preset.active")
            v[e.name] = val
        presets = {}
        if len(sp) > MAX_PRESETS:
            raise ValueError("too many presets")
        for name in sp:
            p = sp[name]
            if not valid_name(name) or not isinstance(p, list) or len(p) != 4:
                raise ValueError("preset " + name)
            for i in range(4):
                if p[i] is not None:
                    _check_bounds(_BY_NAME["preset.*." + PRESET_FIELDS[i]], p[i])
            presets[name] = list(p)
        bad = self._invariant_problem(v, presets)
        if bad:
            raise ValueError(bad[1])
        self._v = v
        self._presets = presets

    # -- the replayable dump ----------------------------------------------------------------
    def dump(self):
        """`set` lines that rebuild these settings on any pen (unlocked, stopped), whatever it
        held before: the preset is deselected first, the rate range and the depth limit are
        widened before depth and rate are set and narrowed after, the preset is selected last
        and the depth/rate set again after it (with `override` if outside its range)."""
        v = self._v
        lim = _BY_NAME["depth_limit"]
        lines = ["set preset.active none",
                 "set depth_limit " + fmt_mm(lim.hi),
                 "set stroke_hz_min %d" % _BY_NAME["stroke_hz_min"].lo,
                 "set stroke_hz_max %d" % _BY_NAME["stroke_hz_max"].hi,
                 "set depth " + fmt_mm(v["depth"]),
                 "set stroke_hz %d" % v["stroke_hz"],
                 "set depth_limit " + fmt_mm(v["depth_limit"]),
                 "set stroke_hz_min %d" % v["stroke_hz_min"],
                 "set stroke_hz_max %d" % v["stroke_hz_max"]]  # fmt: skip
        done = ("depth", "stroke_hz", "depth_limit", "stroke_hz_min", "stroke_hz_max",
                "preset.active")  # fmt: skip
        for k in _SCALARS:
            if k not in done:
                lines.append("set %s %s" % (k, _text(_BY_NAME[k], v[k])))
        for name in sorted(self._presets):
            p = self._presets[name]
            for i in range(4):
                if p[i] is not None:
                    e = _BY_NAME["preset.*." + PRESET_FIELDS[i]]
                    lines.append("set preset.%s.%s %s" % (name, PRESET_FIELDS[i], _text(e, p[i])))
        act = v["preset.active"]
        if act != "none":
            p = self._presets[act]
            lines.append("set preset.active " + act)
            over = "" if p[0] <= v["depth"] <= p[1] else " override"
            lines.append("set depth " + fmt_mm(v["depth"]) + over)
            lines.append("set stroke_hz %d" % v["stroke_hz"])
        return lines
