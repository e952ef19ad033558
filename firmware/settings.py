"""The pen's live settings, checked against the schema (firmware/schema.py).

Presets: each field is checked on its own when set; a preset is checked as a whole (min <=
default <= max <= the depth limit, stroke_hz within stroke_hz_min..max) when it is selected
with `preset.active NAME`, which then loads its default depth and stroke rate. Editing a field of
the active preset deselects it (`preset.active` becomes "none"); the host selects it again after
sending all its fields. While a preset is active, `depth_mm` must stay inside its range unless
the change is an explicit override. The buttons (`update`) may select a stored preset without
the unlock: choosing among the clinic's presets is everyday use, while their numbers, `none`
(no range at all) and every other protected setting still need it.

Cross-setting rules (always true of the stored set): depth_mm <= depth_limit_mm;
stroke_hz_min <= stroke_hz <= stroke_hz_max; an active preset is valid. A change that would break
one is refused (nothing clamped).

Use by the application:
    s = Settings(store)                 # store: firmware.store.Store or None (RAM only)
    fault = s.load()                    # 0, or faults.SETTINGS_CORRUPT (defaults in use)
    s.on_change(fn)                     # fn(key, value) in internal units, BEFORE the change is
                                        # committed; fn may raise errors.Refused to veto it
                                        # (the setting then stays as it was)
    s.get(key)                          # value in the schema's unit (mm float, Hz int, list
                                        # for calib): firmware/pen.py's config getter
    s.raw(key)                          # internal value (µm for mm)
    s.update(key, value, running=..)    # internal value from firmware (buttons): same checks
    s.flush()                           # persist pending changes (call while stopped)
    s.depth_range_um()                  # (lo, hi) allowed for depth_mm now (preset, limit);
                                        # while observers are told of a change: after it
A change made while the motor runs is applied at once but persisted by `flush()` (the app calls
it when the needle has stopped); a change made while stopped is persisted before `set` returns,
and if the write fails, nothing changed (error STORAGE).
"""

import json

from firmware import errors as E
from firmware import faults as F
from firmware.errors import Refused
from firmware.schema import (  # noqa: F401 -- re-exported: the schema's names live here too
    _BY_NAME,
    _SCALARS,
    ALIASES,
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


class Settings:
    def __init__(self, store=None):
        self.store = store
        self._v = _defaults()
        self._presets = {}  # name -> [min_um, max_um, default_um, hz] (None = not set yet)
        self._observers = []
        self._next = None  # (values, presets) being committed while observers are told
        self.dirty = False
        self.boot_fault = F.NONE
        self.load_status = "defaults"

    # -- observers ------------------------------------------------------------------------
    def on_change(self, fn):
        """Register fn(key, value): called with the internal value before a change is
        committed; raising errors.Refused vetoes the change."""
        self._observers.append(fn)

    def _notify(self, changes):
        """changes: list of (key, old, new). Roll back what was notified if one refuses."""
        done = []
        try:
            for key, old, new in changes:
                for fn in self._observers:
                    fn(key, new)
                    done.append((fn, key, old))
        except Exception:
            for fn, key, old in reversed(done):
                try:
                    fn(key, old)
                except Exception:  # noqa: BLE001 -- best effort: put the old value back
                    pass
            raise

    def _tell(self, changes, v, presets):
        """Notify with `depth_range_um()` answering for the values after the change."""
        self._next = (v, presets)
        try:
            self._notify(changes)
        finally:
            self._next = None

    # -- reading --------------------------------------------------------------------------
    def raw(self, key):
        """Internal value of a setting (µm for mm, Hz, list for calib); KeyError if unknown."""
        key = ALIASES.get(key, key)
        if key in self._v:
            v = self._v[key]
            return list(v) if isinstance(v, list) else v
        e = entry(key)
        if e is not None and key.count(".") == 2:
            p = self._presets.get(key.split(".")[1])
            if p is not None:
                return p[PRESET_FIELDS.index(key.split(".")[2])]
        raise KeyError(key)

    def get(self, key):
        """Value in the schema's unit (mm as float, Hz as int, calib list, preset name):
        what the key's name says; the pen's config getter. KeyError if unknown."""
        key = ALIASES.get(key, key)
        v = self.raw(key)
        e = entry(key)
        if e is not None and e[1] == "mm" and v is not None:
            return v / 1000
        return v

    config = get

    def text(self, key):
        """The stored value as JSON text ('0.50', '100', '"none"', '[0,-100,...]')."""
        key = ALIASES.get(key, key)
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        try:
            return _text(e, self.raw(key))
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
        """(lo, hi) µm that depth_mm may take now: the active preset's range, else 0..limit.
        While observers are told of a change, the range after it (a preset being selected)."""
        v, presets = self._next or (self._v, self._presets)
        lim = v["depth_limit_mm"]
        p = presets.get(v["preset.active"])
        if p is None:
            return 0, lim
        return p[0], min(p[1], lim)

    def fingerprint(self):
        """A short digest of every stored value (tests: 'nothing changed')."""
        from binascii import crc32

        return crc32(self._payload())

    # -- changing ---------------------------------------------------------------------------
    def set(self, key, text, unlocked=False, running=False, override=False):
        """Protocol `set KEY VALUE`: parse, check, apply, persist (if stopped). Returns the
        stored value's text. Raises Refused; then nothing changed."""
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        self._check_access(key, e, unlocked, running)
        if key.startswith("preset.") and key != "preset.active":
            name = key.split(".")[1]
            if not valid_name(name):
                raise Refused(E.BAD_ARGUMENT, "preset names: a-z, 0-9, _ (<= 24, not 'none')")
        value = _parse_value(e, text)
        return self._apply(key, e, value, running, override)

    def update(self, key, value, running=False, override=False, unlocked=False):
        """A change from the firmware itself (buttons), internal units; same checks as set."""
        key = ALIASES.get(key, key)
        e = entry(key)
        if e is None:
            raise Refused(E.UNKNOWN_SETTING, "unknown setting: " + key[:40])
        if key == "preset.active" and value in self._presets:
            unlocked = True  # selecting a stored preset: see the module's docstring
        self._check_access(key, e, unlocked, running)
        if e[1] in ("int", "mm"):
            _check_bounds(e, value)
        elif e[1] == "calib":
            value = check_calib(value)
        return self._apply(key, e, value, running, override)

    def _check_access(self, key, e, unlocked, running):
        if e[6] & PROTECTED and not unlocked:
            raise Refused(E.LOCKED, key[:40] + " is protected: unlock first")
        if e[6] & STOPPED and running:
            raise Refused(E.MOTOR_RUNNING, key[:40] + " changes only while the needle is stopped")

    def _apply(self, key, e, value, running, override):
        v = dict(self._v)
        presets = self._presets
        if key.startswith("preset.") and key != "preset.active":
            _, name, field = key.split(".")
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
                v["depth_mm"] = p[2]
                v["stroke_hz"] = p[3]
        else:
            v[key] = value
            if key == "depth_mm" and not override:
                p = presets.get(v["preset.active"])
                if p is not None and not p[0] <= value <= p[1]:
                    raise Refused(E.PRESET_RANGE, "depth outside preset %s (%s..%s mm)" % (
                        v["preset.active"], fmt_mm(p[0]), fmt_mm(p[1])))  # fmt: skip
        bad = self._invariant_problem(v, presets)
        if bad:
            raise Refused(bad[0], bad[1])
        return self._commit(v, presets, running, key, e)

    def _commit(self, v, presets, running, key, e):
        changes = []
        for k in _SCALARS:
            if v[k] != self._v[k]:
                changes.append((k, self._v[k], v[k]))
        if presets is not self._presets:
            changes.append((key, self._get_in(self._presets, key), self._get_in(presets, key)))
        self._tell(changes, v, presets)
        old_v, old_p = self._v, self._presets
        self._v, self._presets = v, presets
        if changes:
            if running or self.store is None:
                self.dirty = self.store is not None
            else:
                try:
                    self.store.save(self._payload())
                    self.dirty = False
                except Refused:
                    self._v, self._presets = old_v, old_p
                    try:
                        self._notify([(c[0], c[2], c[1]) for c in changes])
                    except Exception:  # noqa: BLE001 -- best effort
                        pass
                    raise
        if key in self._v:
            return _text(e, self._v[key])
        return _text(e, self._get_in(self._presets, key))

    @staticmethod
    def _get_in(presets, key):
        parts = key.split(".")
        p = presets.get(parts[1])
        return None if p is None else p[PRESET_FIELDS.index(parts[2])]

    @staticmethod
    def _preset_problem(p, v):
        if None in p:
            return "incomplete (needs %s)" % ", ".join(
                PRESET_FIELDS[i] for i in range(4) if p[i] is None)
        if not p[0] <= p[2] <= p[1]:
            return "needs depth_min_mm <= depth_default_mm <= depth_max_mm"
        if p[1] > v["depth_limit_mm"]:
            return "depth_max_mm above depth_limit_mm %s" % fmt_mm(v["depth_limit_mm"])
        if not v["stroke_hz_min"] <= p[3] <= v["stroke_hz_max"]:
            return "stroke_hz outside %d..%d Hz" % (v["stroke_hz_min"], v["stroke_hz_max"])
        return None

    def _invariant_problem(self, v, presets):
        if v["depth_mm"] > v["depth_limit_mm"]:
            return E.OUT_OF_RANGE, "depth_mm %s above depth_limit_mm %s" % (
                fmt_mm(v["depth_mm"]), fmt_mm(v["depth_limit_mm"]))
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

    def delete_preset(self, name, unlocked=False, running=False):
        e = _BY_NAME["preset.active"]
        self._check_access("preset", e, unlocked, running)
        if name not in self._presets:
            raise Refused(E.NOT_FOUND, "no preset named " + name[:30])
        v = dict(self._v)
        if v["preset.active"] == name:
            v["preset.active"] = "none"
        presets = dict(self._presets)
        del presets[name]
        changes = []
        if v["preset.active"] != self._v["preset.active"]:
            changes.append(("preset.active", self._v["preset.active"], "none"))
        self._tell(changes, v, presets)
        self._replace(v, presets, running)

    def defaults(self, unlocked=False, running=False):
        """Factory defaults for every setting (protected ones included: needs unlock)."""
        if not unlocked:
            raise Refused(E.LOCKED, "defaults resets protected settings: unlock first")
        if running:
            raise Refused(E.MOTOR_RUNNING)
        v = _defaults()
        changes = [(k, self._v[k], v[k]) for k in _SCALARS if v[k] != self._v[k]]
        self._tell(changes, v, {})
        self._replace(v, {}, running)

    def _replace(self, v, presets, running):
        old_v, old_p = self._v, self._presets
        self._v, self._presets = v, presets
        if self.store is not None and not running:
            try:
                self.store.save(self._payload())
                self.dirty = False
            except Refused:
                self._v, self._presets = old_v, old_p
                raise
        elif self.store is not None:
            self.dirty = True

    # -- persistence ------------------------------------------------------------------------
    def _payload(self):
        v = {}
        for k in _SCALARS:
            v[k] = self._v[k]
        p = {}
        for name in self._presets:
            p[name] = self._presets[name]
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
            e = _BY_NAME.get(k)
            if e is None or k not in v:
                continue  # a setting this firmware no longer has
            val = sv[k]
            if e[1] in ("int", "mm"):
                _check_bounds(e, val)
            elif e[1] == "calib":
                val = check_calib(val)
            elif e[1] == "preset":
                if not isinstance(val, str) or (val != "none" and not valid_name(val)):
                    raise ValueError("preset.active")
            v[k] = val
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
        lim = _BY_NAME["depth_limit_mm"]
        lines = ["set preset.active none",
                 "set depth_limit_mm " + fmt_mm(lim[4]),
                 "set stroke_hz_min %d" % _BY_NAME["stroke_hz_min"][3],
                 "set stroke_hz_max %d" % _BY_NAME["stroke_hz_max"][4],
                 "set depth_mm " + fmt_mm(v["depth_mm"]),
                 "set stroke_hz %d" % v["stroke_hz"],
                 "set depth_limit_mm " + fmt_mm(v["depth_limit_mm"]),
                 "set stroke_hz_min %d" % v["stroke_hz_min"],
                 "set stroke_hz_max %d" % v["stroke_hz_max"]]  # fmt: skip
        done = ("depth_mm", "stroke_hz", "depth_limit_mm", "stroke_hz_min", "stroke_hz_max",
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
            over = "" if p[0] <= v["depth_mm"] <= p[1] else " override"
            lines.append("set depth_mm " + fmt_mm(v["depth_mm"]) + over)
            lines.append("set stroke_hz %d" % v["stroke_hz"])
        return lines
