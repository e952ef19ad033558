"""The treatment targets' one owner: the depth target (µm), the stroke rate target (whole Hz),
the active preset's range, the depth overrides and who made them.

Every change of a setting takes one road, whoever asks: a button (firmware/ui.py through the
state machine's steps), `set KEY VALUE`, `depth MM`, `run HZ`, a preset, `defaults`:

    change(key, value, by) -> Settings.check (pure schema and cross-setting rules)
                           -> the state machine's gate (once: depth only while stopped, homed)
                           -> the actuators (depth axis: limit, calibration, target; needle
                              drive: the rate while it runs)
                           -> Settings.commit (atomic write while the motor is stopped)

A failed flash write (error STORAGE) changes nothing: the actuators are put back to the stored
targets here, in one place (docs/faults.md). The settings stay passive: they are told nothing.

`pen` is the state machine (firmware/pen.py): its gates (`check_depth_change`,
`check_rate_change`), its event log and listeners (`record`, `emit`), the running pass
(`rate_changed`) and the cartridge bookkeeping (`cart`).
"""

from firmware import errors as E
from firmware.errors import Refused
from firmware.schema import to_mm as mm

DEPTH = "depth"
LIMIT = "depth_limit"
RATE = "stroke_hz"
CALIB = "calib"
ACTIVE = "preset.active"

# Event-log codes the owner records (firmware/pen.py keeps the log).
EV_LIMIT = 4  # arg = 1 depth max, 2 depth min, 3 rate max, 4 rate min
EV_OVERRIDE = 7  # arg = the new depth target in 10 µm (outside the preset's range)
EV_PRESET = 8  # arg = index of the preset selected by the buttons (sorted names)

_LIMIT_NAMES = ("", "depth_max", "depth_min", "rate_max", "rate_min")


class Targets:
    def __init__(self, pen, settings):
        self.pen = pen
        self.settings = settings
        self._last_override = None  # (to_um, by) of the newest override

    # -- reading ------------------------------------------------------------------------------
    @property
    def depth_um(self):
        return self.settings.get(DEPTH)

    @property
    def rate_hz(self):
        return self.settings.get(RATE)

    def preset(self):
        """The active preset's name, or None."""
        name = self.settings.get(ACTIVE)
        return None if name == "none" else name

    def limit_um(self):
        return self.pen.depth.limit_um

    def depth_bounds(self):
        """(lo, hi) µm the depth target may take now: the limit, narrowed by a preset."""
        lim = self.limit_um()
        lo, hi = self.settings.depth_range_um()
        return lo, (hi if hi < lim else lim)

    def rate_limits(self):
        """(lo, hi) Hz."""
        return self.settings.get("stroke_hz_min"), self.settings.get("stroke_hz_max")

    def outside_preset(self, um):
        if self.preset() is None:
            return False
        lo, hi = self.settings.depth_range_um()
        return um < lo or um > hi

    # -- the one road -----------------------------------------------------------------------------
    def set(self, key, text, by="serial", override=False, unlocked=False):
        """The protocol's edge: text (mm, Hz, JSON) -> change(). Returns the stored text."""
        value = self.settings.parse(key, text, unlocked, self.pen.motor_running())
        return self.change(key, value, by, override, unlocked)

    def check(self, key, value, override=False, unlocked=False):
        """What change() would refuse for schema reasons, without changing anything."""
        return self.settings.check(key, value, unlocked, self.pen.motor_running(), override)

    def change(self, key, value, by="serial", override=False, unlocked=False, gated=False):
        """One setting to `value` (internal units). Returns the stored value's text. Raises
        Refused; then nothing changed. `gated`: the caller has asked the state machine."""
        s = self.settings
        if key == DEPTH and type(value) is int and not 0 <= value <= self.limit_um():
            self._limit(1 if value > 0 else 2)  # feedback; refused below (never clamped)
        new = s.check(key, value, unlocked, self.pen.motor_running(), override)
        self._apply(new, by, gated)
        return s.text(key)

    def delete_preset(self, name, unlocked=False):
        self._apply(self.settings.check_delete(name, unlocked, self.pen.motor_running()), "serial")

    def defaults(self, unlocked=False):
        self._apply(self.settings.check_defaults(unlocked, self.pen.motor_running()), "serial")

    def _apply(self, new, by, gated=False):
        s = self.settings
        pen = self.pen
        v = new[0]
        frm = s.get(DEPTH)
        changed = [k for k in (CALIB, LIMIT, DEPTH, RATE) if v[k] != s.get(k)]
        if DEPTH in changed and not gated:
            pen.check_depth_change()  # the limit and the calibration: the axis decides
        old = {}
        for k in changed:
            old[k] = s.get(k)
        done = []
        try:
            for k in changed:
                self._command(k, v[k])
                done.append(k)
            s.commit(new, pen.motor_running())
        except Refused:
            # Nothing changed: the actuators go back to the stored targets.
            for k in reversed(done):
                try:
                    self._command(k, old[k])
                except Refused:
                    pass
            raise
        if DEPTH in changed:
            um = v[DEPTH]
            pen.emit({"event": "depth", "target_depth_mm": mm(um), "why": by})
            self._check_override(frm, um, by)
        if RATE in changed:
            pen.emit({"event": "rate", "target_hz": v[RATE]})

    def _command(self, key, value):
        pen = self.pen
        if key == DEPTH:
            pen.depth.move_to_um(value)
        elif key == LIMIT:
            pen.depth.set_limit_um(value)
        elif key == CALIB:
            pen.depth.set_calibration(value)
        elif key == RATE:
            pen.rate_changed(value)

    # -- overrides ------------------------------------------------------------------------------
    def _check_override(self, frm, um, by):
        """A target outside the active preset's range got there by a deliberate override (the
        settings refuse it otherwise): the event log, the session and a `~E`."""
        if not self.outside_preset(um):
            return
        name = self.preset()
        self._last_override = (um, by)
        pen = self.pen
        pen.record(EV_OVERRIDE, um // 10)
        pen.cart.add_override(frm, um, by, name)
        pen.store_session()
        pen.emit({"event": "override", "what": "depth", "from_mm": mm(frm), "to_mm": mm(um),
                  "preset": name, "by": by})  # fmt: skip

    def override_at_start(self):
        """A new session: a target left outside the preset's range before it (an override made
        earlier, or stored settings after a reboot) is recorded at its start."""
        t = self.depth_um
        if not self.outside_preset(t):
            return
        lo, hi = self.settings.depth_range_um()
        last = self._last_override
        by = last[1] if last is not None and last[0] == t else "before"
        self.pen.cart.add_override(hi if t > hi else lo, t, by, self.preset())

    # -- the buttons' steps -----------------------------------------------------------------------
    def _limit(self, which, preset=False):
        self.pen.record(EV_LIMIT, which)
        self.pen.emit({"event": "limit", "what": _LIMIT_NAMES[which], "preset": preset})

    def step_depth(self, direction, override=False):
        """One plus/minus step; stops at 0, at the limit and at an active preset's range
        (feedback: a `limit` event, `"preset": true` at the preset's bound). A target outside
        the range (after an override) steps back to the range's nearest bound, never further
        out. With `override`: one step beyond the preset's bound (never beyond 0 or the
        limit), recorded as an override. Returns 1 if the target moved, 2 if it moved onto a
        bound, 0 if it was there."""
        self.pen.check_depth_change()
        lo, hi = self.depth_bounds()
        lim = self.limit_um()
        cur = self.depth_um
        up = direction > 0
        step = self.settings.get("depth_step")
        if override:
            lo, hi = 0, lim
        if up:
            new = hi if cur + step > hi else cur + step
            new = lo if new < lo else new
            if cur >= hi:
                new = cur
        else:
            new = lo if cur - step < lo else cur - step
            new = hi if new > hi else new
            if cur <= lo:
                new = cur
        which = 1 if up else 2
        at_preset = not override and (hi < lim if up else lo > 0)
        if new == cur:
            self._limit(which, at_preset)
            return 0
        self.change(DEPTH, new, "button", override, gated=True)
        if new == hi or new == lo:
            self._limit(which, at_preset)
            return 2
        return 1

    def step_rate(self, direction):
        """One stroke-rate step (allowed stopped or running; never in FAULT/SERVICE).
        Returns 1 if the rate moved, 2 if it moved onto a limit, 0 if it was there."""
        self.pen.check_rate_change()
        lo, hi = self.rate_limits()
        cur = self.rate_hz
        new = cur + self.settings.get("stroke_hz_step") * (1 if direction > 0 else -1)
        new = hi if new > hi else (lo if new < lo else new)
        if new == cur:
            self._limit(3 if direction > 0 else 4)
            return 0
        self.change(RATE, new, "button")
        if new in (lo, hi):
            self._limit(3 if direction > 0 else 4)
            return 2
        return 1

    def next_preset(self):
        """The buttons' preset selection: the next stored preset by name, after the active one,
        wrapping round; presets that cannot be selected are skipped. Loads the preset's default
        depth and stroke rate. Never `none`. Returns the name. Choosing among the clinic's
        presets is everyday use: no unlock (their numbers still need it)."""
        self.pen.check_preset_change()
        names = self.settings.presets()
        if not names:
            self.pen.refuse(E.NOT_FOUND, "no presets")
        cur = self.preset()
        first = names.index(cur) + 1 if cur in names else 0
        for k in range(len(names)):
            i = (first + k) % len(names)
            try:
                self.change(ACTIVE, names[i], "button", unlocked=True, gated=True)
            except Refused:
                continue  # incomplete, or outside the depth limit / rate range: skip it
            self.pen.record(EV_PRESET, i)
            lo, hi = self.depth_bounds()
            self.pen.emit({"event": "preset", "preset": names[i], "depth_min_mm": mm(lo),
                           "depth_max_mm": mm(hi), "target_depth_mm": mm(self.depth_um),
                           "target_hz": self.rate_hz, "by": "button"})  # fmt: skip
            return names[i]
        self.pen.refuse(E.PRESET_RANGE, "no preset can be selected")
