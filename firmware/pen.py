"""The pen's state machine: the one owner of the device's state, and the facade that the serial
protocol and the button UI both call.

    BOOT -> LOCKED (not homed) -> HOMING -> READY -> ARMED -> RUNNING -> STOPPING -> ARMED
    any -> FAULT (latched: motor off, depth stop retracted) -> clear -> READY / LOCKED -> HOMING
    LOCKED / READY -> SERVICE (calibration) -> LOCKED;  READY -> SLEEP -> READY

Every transition goes through `_goto`, which checks it against `_ALLOWED` (a move not in the
table is a firmware bug: the pen faults INTERNAL instead of moving), records it in a small
preallocated event log and reports it to the listeners (the link's `~E` lines, the UI's buzzer
and display). There is one way into RUNNING, `run()`, and it needs a homed axis, an armed pen,
no latched fault and a confirmed cartridge with strokes left (see docs/states.md).

The facade's operations raise `firmware.errors.Refused(code, message)` when not allowed and
change nothing then. `poll()` (an asyncio task, every `poll_ms`) watches the drive and the axis:
faults, homing done, stop ramp done, cartridge strokes, inactivity.

Parts (duck-typed, so tests use small fakes): `needle` (firmware.needle.NeedleDrive), `depth`
(firmware.depth.DepthAxis), `sessions` (firmware.sessions.Sessions, optional), `config`
(a function key -> value or None, normally the settings' getter).
"""

import time
from array import array

from micropython import const

from firmware import errors as E
from firmware import faults as F
from firmware.errors import Refused

BOOT = const(0)
LOCKED = const(1)
HOMING = const(2)
READY = const(3)
ARMED = const(4)
RUNNING = const(5)
STOPPING = const(6)
FAULT = const(7)
SERVICE = const(8)
SLEEP = const(9)

NAMES = ("BOOT", "LOCKED", "HOMING", "READY", "ARMED", "RUNNING", "STOPPING", "FAULT",
         "SERVICE", "SLEEP")  # fmt: skip

# from -> the states it may go to. FAULT is reachable from everywhere (checked separately).
_ALLOWED = {
    BOOT: (LOCKED,),
    LOCKED: (HOMING, SERVICE, SLEEP),
    HOMING: (READY, LOCKED),
    READY: (ARMED, HOMING, LOCKED, SERVICE, SLEEP),
    ARMED: (RUNNING, READY, HOMING),
    RUNNING: (STOPPING,),
    STOPPING: (ARMED, READY),
    FAULT: (LOCKED, READY),
    SERVICE: (LOCKED,),
    SLEEP: (READY, LOCKED),
}

# Faults after which the depth stop's position cannot be trusted: clearing them re-homes.
_DEPTH_FAULTS = (F.HOME_NOT_FOUND, F.ENDSTOP_STUCK, F.LOST_STEPS, F.CALIBRATION_INVALID)

# Event-log codes (the small preallocated log; `~E` lines carry the same in words).
EV_STATE = const(1)  # arg = from << 8 | to
EV_FAULT = const(2)  # arg = fault code
EV_CLEAR = const(3)  # arg = fault code cleared
EV_LIMIT = const(4)  # arg = 1 depth max, 2 depth min, 3 rate max, 4 rate min
EV_CARTRIDGE = const(5)  # arg = 1 new, 2 warn, 3 limit (spent)
EV_REFUSED = const(6)  # arg = error code
EV_OVERRIDE = const(7)  # arg = the new depth target in 10 µm (outside the preset's range)
EV_PRESET = const(8)  # arg = index of the preset selected by the buttons (sorted names)

_LOG_N = const(32)


def _hz_to_mhz(hz):
    """The needle drive runs at whole hertz: the rate is kept in mHz, a multiple of 1000."""
    return int(round(float(hz))) * 1000


class Pen:
    # Tunables (named so a reader sees the design values; settings override where they exist).
    poll_ms = 10
    depth_step_um = 50  # 0.05 mm per plus/minus step
    rate_step_mhz = 5000  # 5 Hz per step
    rate_min_mhz = 50000
    rate_max_mhz = 150000
    rate_default_mhz = 100000
    depth_default_um = 500
    disarm_after_ms = 120_000  # an armed pen left alone disarms itself
    sleep_after_ms = 300_000  # a stopped pen left alone goes to sleep
    cartridge_limit = 30_000  # strokes per cartridge, then the pen stops
    cartridge_warn_pct = 90
    auto_home = True

    def __init__(self, needle, depth, sessions=None, config=None, clock=None):
        self.needle = needle
        self.depth = depth
        self.sessions = sessions
        self._config = config
        self._ms = clock or time.ticks_ms
        self.state = BOOT
        self.fault = F.NONE  # the latched fault code (FAULT state), else NONE
        self.fault_at = 0
        self.listeners = []  # fn(event dict): link (~E), UI (buzzer, display)
        self.target_um = self._cfg_um("depth_mm", self.depth_default_um)
        self.rate_mhz = self._cfg_mhz("stroke_hz", self.rate_default_mhz)
        self.cartridge = 0  # confirmed cartridge number (0: none since boot)
        self.cartridge_ok = False  # a confirmed cartridge with strokes left
        self.cartridge_warned = False
        self._cart_strokes0 = 0  # needle.strokes when the current pass began
        self.cartridge_strokes = 0  # strokes on the current cartridge (completed passes + now)
        self._cart_base = 0
        self.stop_reason = None
        self._disarm_after_stop = False  # a disarm during the stop ramp ends it in READY
        self._t_boot = self._ms()
        self._t_active = self._t_boot
        self._log = array("i", bytes(8 * _LOG_N))  # (t_ms, code << 16 | arg) pairs
        self._log_n = 0
        # Optional hooks (the app wires the settings in): button changes are stored through
        # store_setting(key, internal value, override=False), whose change callback then calls
        # set_depth_um / set_rate_hz; depth_range() -> (lo, hi) µm allowed now (an active
        # preset's range; the range after a change while it is being applied);
        # preset_names() -> the stored presets' names, sorted.
        self.store_setting = None
        self.depth_range = None
        self.preset_names = None
        self._by = "serial"  # who is changing the depth: "button" inside step_depth
        self._last_override = None  # (to_um, by) of the newest override

    # -- configuration ----------------------------------------------------------------------
    def _cfg(self, key, default):
        if self._config is None:
            return default
        try:
            v = self._config(key)
        except (KeyError, AttributeError, ValueError):
            return default
        return default if v is None else v

    def _cfg_um(self, key, default_um):
        v = self._cfg(key, None)
        return default_um if v is None else int(round(float(v) * 1000))

    def _cfg_mhz(self, key, default_mhz):
        v = self._cfg(key, None)
        return default_mhz if v is None else _hz_to_mhz(v)

    def step_um(self):
        return self._cfg_um("depth_step_mm", self.depth_step_um)

    def rate_step(self):
        return self._cfg_mhz("stroke_hz_step", self.rate_step_mhz)

    def rate_limits(self):
        return (self._cfg_mhz("stroke_hz_min", self.rate_min_mhz),
                self._cfg_mhz("stroke_hz_max", self.rate_max_mhz))  # fmt: skip

    def limit_um(self):
        return self.depth.limit_um

    # -- event log and reporting ------------------------------------------------------------
    def _record(self, code, arg):
        i = (self._log_n % _LOG_N) * 2
        self._log[i] = time.ticks_diff(self._ms(), self._t_boot)
        self._log[i + 1] = (code << 16) | (arg & 0xFFFF)
        self._log_n += 1

    def events(self):
        """The event log, oldest first: list of (t_ms since boot, code, arg)."""
        out = []
        n = self._log_n
        for k in range(max(0, n - _LOG_N), n):
            i = (k % _LOG_N) * 2
            v = self._log[i + 1]
            out.append((self._log[i], v >> 16, v & 0xFFFF))
        return out

    def fault_log(self):
        """Faults seen since boot (newest last), as (t_ms, name)."""
        return [(t, F.name(a)) for (t, c, a) in self.events() if c == EV_FAULT]

    def _emit(self, ev):
        for fn in self.listeners:
            try:
                fn(ev)
            except Exception:  # noqa: BLE001  -- a listener must never break the state machine
                pass

    def _goto(self, to, why=""):
        frm = self.state
        if to == frm:
            return
        if to != FAULT and to not in _ALLOWED.get(frm, ()):
            # A transition outside the table is a bug: fail safe rather than move.
            self._fault(F.INTERNAL, "bad transition %s->%s" % (NAMES[frm], NAMES[to]))
            raise Refused(E.BUSY, "not allowed in state " + NAMES[frm])
        self.state = to
        self._record(EV_STATE, (frm << 8) | to)
        self._emit({"event": "state", "from": NAMES[frm], "to": NAMES[to], "why": why})

    def refuse(self, code, message=None):
        """Raise Refused after recording it (the UI shows it; the protocol replies with it)."""
        self._record(EV_REFUSED, code)
        raise Refused(code, message)

    def activity(self):
        """A button or a command: the user is there (inactivity timers restart)."""
        self._t_active = self._ms()

    def wake(self):
        """Leave SLEEP (a button, a command); otherwise only restarts the idle timers."""
        self._wake()

    def _wake(self):
        self.activity()
        if self.state == SLEEP:
            self._goto(READY if self.depth.homed else LOCKED, "wake")
            if self.state == READY:
                self._apply_depth()

    # -- start-up -----------------------------------------------------------------------------
    def start(self, reset_fault=F.NONE):
        """Leave BOOT: latch `reset_fault` (e.g. WATCHDOG after a watchdog reset), else lock
        and home by itself."""
        self._goto(LOCKED, "boot")
        if reset_fault:
            self._fault(reset_fault, "at boot")
        else:
            self._auto_home()

    def _auto_home(self):
        """Home by itself (after boot, a clear, service). An axis that refuses (its fault is
        latched) is left to poll(), which latches the fault."""
        if self.auto_home:
            try:
                self.home()
            except Refused:
                pass

    # -- the facade -------------------------------------------------------------------------
    def _check_not_fault(self):
        if self.state == FAULT:
            self.refuse(E.FAULT_ACTIVE, "fault latched: " + F.text(self.fault))

    def home(self):
        self._wake()
        self._check_not_fault()
        if self.state in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING)
        if self.state == HOMING:
            return
        if self.state == SERVICE:
            self.refuse(E.BUSY, "leave service first")
        if self.state == ARMED:
            self._goto(READY, "home")
        self.depth.home()
        self._goto(HOMING, "home")

    def arm(self):
        self._wake()
        s = self.state
        self._check_not_fault()
        if s == ARMED:
            return
        if s in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING)
        if s in (BOOT, LOCKED, HOMING) or not self.depth.homed:
            self.refuse(E.NOT_HOMED)
        if s != READY:
            self.refuse(E.BUSY, "cannot arm in " + NAMES[s])
        self._goto(ARMED, "arm")

    def disarm(self):
        """Always allowed (it only makes the pen safer); while running it stops the needle."""
        self.activity()
        if self.state == RUNNING:
            self.stop("disarm")
            self._disarm_after_stop = True
        elif self.state == STOPPING:
            self._disarm_after_stop = True
        elif self.state == ARMED:
            self._goto(READY, "disarm")

    def run(self, hz=None):
        self._wake()
        s = self.state
        mhz = self.rate_mhz if hz is None else _hz_to_mhz(hz)
        lo, hi = self.rate_limits()
        if not lo <= mhz <= hi:
            self.refuse(E.OUT_OF_RANGE, "stroke rate %d..%d Hz" % (lo // 1000, hi // 1000))
        if s == RUNNING:
            self._set_rate(mhz)
            return
        self._check_not_fault()
        if s == STOPPING:
            self.refuse(E.BUSY, "stopping")
        if not self.depth.homed or s in (BOOT, LOCKED, HOMING):
            self.refuse(E.NOT_HOMED)
        if s != ARMED:
            self.refuse(E.NOT_ARMED, "not armed: hold START 1 s" if s == READY else None)
        if not self.cartridge_ok:
            self.refuse(E.NO_CARTRIDGE)
        if self.depth.busy or self.depth.target_um != self.target_um:
            self.refuse(E.BUSY, "depth stop moving")
        self.rate_mhz = mhz
        self.stop_reason = None
        self._disarm_after_stop = False
        if not self.needle.start(mhz // 1000):
            if self.needle.fault:
                self._fault(self.needle.fault, "at start")
                self.refuse(E.FAULT_ACTIVE, "fault: " + F.text(self.fault))
            self.refuse(E.BUSY, "the needle drive refused to start")
        self._goto(RUNNING, "run")
        self._pass_begin()

    def stop(self, why="stop"):
        """Controlled stop (soft ramp). During the ramp a second stop coasts the motor at once."""
        self.activity()
        if self.state == RUNNING:
            self.stop_reason = why
            self.needle.stop()
            self._goto(STOPPING, why)
        elif self.state == STOPPING:
            self.needle.kill()
        elif self.needle.running:
            self.needle.kill()  # belt and braces: a motor running outside RUNNING is stopped

    def set_depth_um(self, um, why="set"):
        """Set the target depth (µm). Only while the needle is stopped and the axis homed:
        a pass is done at one depth, and no press can deepen a needle that is in the skin."""
        self._wake()
        um = int(um)
        self._check_depth_change()
        lim = self.limit_um()
        if um < 0 or um > lim:
            self._limit(1 if um > lim else 2)
            self.refuse(E.OUT_OF_RANGE, "depth 0..%d.%02d mm" % (lim // 1000, lim % 1000 // 10))
        frm = self.target_um
        self.depth.move_to_um(um)
        self.target_um = um
        self._emit({"event": "depth", "target_depth_mm": um / 1000, "why": why})
        self._check_override(frm, um, self._by)

    # -- presets -----------------------------------------------------------------------------
    def preset(self):
        """The active preset's name, or None."""
        name = self._cfg("preset.active", "none")
        return None if name == "none" else name

    def _outside_preset(self, um):
        if self.depth_range is None or self.preset() is None:
            return False
        lo, hi = self.depth_range()
        return um < lo or um > hi

    def _check_override(self, frm, um, by):
        """A target outside the active preset's range got there by a deliberate override (the
        settings refuse it otherwise): record it in the event log, the session and a `~E`."""
        if not self._outside_preset(um):
            return
        name = self.preset()
        self._last_override = (um, by)
        self._record(EV_OVERRIDE, um // 10)
        if self.sessions is not None:
            self.sessions.add_override(frm, um, by, name, self._ms())
            self._commit()
        self._emit({"event": "override", "what": "depth", "from_mm": frm / 1000,
                    "to_mm": um / 1000, "preset": name, "by": by})  # fmt: skip

    def next_preset(self):
        """The buttons' preset selection (READY only): the next stored preset by name, after
        the active one, wrapping round; presets that cannot be selected are skipped. Loads the
        preset's default depth and stroke rate. Never `none`. Returns the name."""
        self._wake()
        self._check_depth_change()
        if self.state != READY:
            self.refuse(E.BUSY, "disarm first")
        names = self.preset_names() if self.preset_names is not None else ()
        if not names or self.store_setting is None:
            self.refuse(E.NOT_FOUND, "no presets")
        cur = self.preset()
        first = names.index(cur) + 1 if cur in names else 0
        for k in range(len(names)):
            i = (first + k) % len(names)
            try:
                self.store_setting("preset.active", names[i])
            except Refused:
                continue  # incomplete, or outside the depth limit / rate range: skip it
            self._record(EV_PRESET, i)
            lo, hi = self.depth_bounds()
            self._emit({"event": "preset", "preset": names[i], "depth_min_mm": lo / 1000,
                        "depth_max_mm": hi / 1000, "target_depth_mm": self.target_um / 1000,
                        "target_hz": self.rate_mhz // 1000, "by": "button"})  # fmt: skip
            return names[i]
        self.refuse(E.PRESET_RANGE, "no preset can be selected")

    def _check_depth_change(self):
        self._check_not_fault()
        s = self.state
        if s in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING, "stop the needle to change depth")
        if s in (BOOT, LOCKED, HOMING) or not self.depth.homed:
            self.refuse(E.NOT_HOMED)
        if s == SERVICE:
            self.refuse(E.BUSY, "service state")

    def step_depth(self, direction, override=False):
        """One plus/minus step; stops at 0, at the limit and at an active preset's range
        (feedback: a `limit` event, `"preset": true` at the preset's bound). A target outside
        the range (after an override) steps back to the range's nearest bound, never further
        out. With `override`: one step beyond the preset's bound (never beyond 0 or the
        limit), recorded as an override. Returns 1 if the target moved, 2 if it moved onto a
        bound, 0 if it was there."""
        lo, hi = self.depth_bounds()
        lim = self.limit_um()
        cur = self.target_um
        up = direction > 0
        step = self.step_um()
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
        self._by = "button"
        try:
            if self.store_setting is not None:
                self._check_depth_change()
                self.store_setting("depth_mm", new, override)
            else:
                self.set_depth_um(new, "button")
        finally:
            self._by = "serial"
        if new == hi or new == lo:
            self._limit(which, at_preset)
            return 2
        return 1

    def depth_bounds(self):
        """(lo, hi) µm the depth target may take now: the limit, narrowed by a preset."""
        lim = self.limit_um()
        if self.depth_range is None:
            return 0, lim
        lo, hi = self.depth_range()
        return lo, (hi if hi < lim else lim)

    def _limit(self, which, preset=False):
        self._record(EV_LIMIT, which)
        self._emit({"event": "limit", "what": ("", "depth_max", "depth_min", "rate_max",
                                               "rate_min")[which], "preset": preset})  # fmt: skip

    def _set_rate(self, mhz):
        self.rate_mhz = mhz
        if self.state == RUNNING:
            self.needle.set_target(mhz // 1000)
            # A pass record is one stretch at one depth and one rate: start a new one.
            self._pass_end()
            self._pass_begin()
        self._emit({"event": "rate", "target_hz": mhz // 1000})

    def step_rate(self, direction):
        """One stroke-rate step (allowed stopped or running; never in FAULT/SERVICE).
        Returns 1 if the rate moved, 2 if it moved onto a limit, 0 if it was there."""
        self.activity()
        self._check_not_fault()
        if self.state == SERVICE:
            self.refuse(E.BUSY, "service state")
        lo, hi = self.rate_limits()
        new = self.rate_mhz + self.rate_step() * (1 if direction > 0 else -1)
        new = hi if new > hi else (lo if new < lo else new)
        if new == self.rate_mhz:
            self._limit(3 if direction > 0 else 4)
            return 0
        if self.store_setting is not None:
            self.store_setting("stroke_hz", new // 1000)
        else:
            self._set_rate(new)
        if new in (lo, hi):
            self._limit(3 if direction > 0 else 4)
            return 2
        return 1

    def apply_setting(self, key, value):
        """A setting is about to change (internal units): move the pen to it. Raises Refused
        to veto the change (the settings then keep their old value)."""
        if key == "depth_mm":
            if value != self.target_um:
                self.set_depth_um(value)
        elif key == "stroke_hz":
            if value * 1000 != self.rate_mhz:
                self.set_rate_hz(value)
        elif key == "depth_limit_mm":
            self.depth.set_limit_um(value)
        elif key == "calib":
            self.depth.set_calibration(value)

    def set_rate_hz(self, hz):
        """The stroke rate for the next run (or now, while running)."""
        self.activity()
        mhz = _hz_to_mhz(hz)
        lo, hi = self.rate_limits()
        if not lo <= mhz <= hi:
            self.refuse(E.OUT_OF_RANGE, "stroke rate %d..%d Hz" % (lo // 1000, hi // 1000))
        self._set_rate(mhz)

    def confirm_cartridge(self):
        """A new (single-use) cartridge is fitted: closes the previous session and opens a
        new one. Not while the needle runs; not with a latched fault."""
        self._wake()
        self._check_not_fault()
        if self.state in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING)
        if self.state == SERVICE:
            self.refuse(E.BUSY, "service state")
        if self.sessions is not None:
            self.cartridge = self.sessions.new_cartridge(self._session_start_info())
        else:
            self.cartridge += 1
        self.cartridge_ok = True
        self.cartridge_warned = False
        self.cartridge_strokes = 0
        self._cart_base = 0
        self._record(EV_CARTRIDGE, 1)
        self._emit({"event": "cartridge", "what": "new", "cartridge": self.cartridge})
        t = self.target_um
        if self.sessions is not None and self._outside_preset(t):
            # A target left outside the preset's range before this session (an override
            # made earlier, or stored settings after a reboot): the session records it.
            lo, hi = self.depth_range()
            last = self._last_override
            by = last[1] if last is not None and last[0] == t else "before"
            self.sessions.add_override(hi if t > hi else lo, t, by, self.preset(), self._ms())
        return self.cartridge

    def clear_fault(self):
        """Clear the latched fault if its cause is gone. Then: READY (or LOCKED and re-home
        when the depth stop's position is in doubt). The pen is never armed after a clear."""
        self.activity()
        if self.state != FAULT:
            return
        code = self.fault
        for part in (self.needle, self.depth):
            if getattr(part, "fault", 0):
                try:
                    ok = part.clear_fault()
                except Refused:
                    ok = False
                if ok is False or getattr(part, "fault", 0):
                    self.refuse(E.FAULT_ACTIVE, "cause still present: " +
                                F.text(part.fault or code))  # fmt: skip
        if self.needle.running:
            self.needle.kill()
            self.refuse(E.FAULT_ACTIVE, "motor still driven")
        self.fault = F.NONE
        self._record(EV_CLEAR, code)
        self._emit({"event": "clear", "fault": F.name(code)})
        if code in _DEPTH_FAULTS or not self.depth.homed:
            self._goto(LOCKED, "clear")
            self._auto_home()
        else:
            self._goto(READY, "clear")
            self._apply_depth()

    def enter_service(self):
        self._wake()
        self._check_not_fault()
        if self.state not in (LOCKED, READY, SERVICE):
            self.refuse(E.BUSY, "disarm and stop first")
        if self.state != SERVICE:
            self._goto(SERVICE, "service")

    def exit_service(self):
        self.activity()
        if self.state != SERVICE:
            return
        self._goto(LOCKED, "service end")
        # Raw moves made the position unknown: home again.
        self._auto_home()

    def move_steps(self, n):
        if self.state != SERVICE:
            self.refuse(E.BUSY, "service state only")
        self.activity()
        self.depth.move_steps(int(n))

    # -- faults ----------------------------------------------------------------------------
    def trip(self, code, detail=""):
        """Latch a fault from outside (e.g. the watchdog supervisor, the app)."""
        self._fault(code, detail)

    def latch_fault(self, code, detail=""):
        """A fault found outside the pen's own parts (e.g. the task supervisor): safe state,
        latched, reported, and the running pass closed and stored."""
        self._fault(code, detail)

    def _fault(self, code, detail=""):
        # Safe state first, bookkeeping second.
        self.needle.kill()
        try:
            self.depth.retract()
        except Exception:  # noqa: BLE001 -- a broken axis must not keep the motor running
            pass
        was_running = self.state in (RUNNING, STOPPING)
        if self.state == FAULT:
            return
        self.fault = code
        self.fault_at = self._ms()
        self._record(EV_FAULT, code)
        if was_running:
            self._pass_end()
        if self.sessions is not None and self.cartridge_ok:
            self.sessions.add_fault(F.name(code), self._ms())
        self.state, frm = FAULT, self.state
        self._record(EV_STATE, (frm << 8) | FAULT)
        self._emit({"event": "fault", "fault": F.name(code), "code": code,
                    "text": F.text(code), "detail": detail})  # fmt: skip
        self._emit({"event": "state", "from": NAMES[frm], "to": "FAULT", "why": F.name(code)})
        self._commit()

    # -- sessions ---------------------------------------------------------------------------
    def _session_start_info(self):
        return {"depth_um": self.target_um, "rate_mhz": self.rate_mhz}

    def _pass_begin(self):
        self._cart_strokes0 = self.needle.strokes
        if self.sessions is not None:
            self.sessions.pass_begin(self.target_um, self.rate_mhz, self.needle.strokes,
                                     self._ms(), self.preset())  # fmt: skip

    def _pass_end(self):
        done = self.needle.strokes - self._cart_strokes0
        self._cart_base += done
        self._cart_strokes0 = self.needle.strokes
        self.cartridge_strokes = self._cart_base
        if self.sessions is not None:
            self.sessions.pass_end(self.needle.strokes, self._ms())

    def _commit(self):
        """Store the session (flash write): only while the motor is not driven."""
        if self.sessions is not None and not self.needle.running:
            try:
                self.sessions.commit()
            except (OSError, ValueError, MemoryError) as e:
                # A record that cannot be written (flash, size, memory) never stops the pen.
                self._emit({"event": "storage", "error": str(e)})

    def _cartridge_check(self):
        used = self._cart_base + self.needle.strokes - self._cart_strokes0
        self.cartridge_strokes = used
        limit = int(self._cfg("cartridge_strokes", self.cartridge_limit))
        if used >= limit:
            self.cartridge_ok = False
            self._record(EV_CARTRIDGE, 3)
            self._emit({"event": "cartridge", "what": "limit", "cartridge": self.cartridge,
                        "strokes": used})  # fmt: skip
            if self.sessions is not None:
                self.sessions.add_fault(F.name(F.CARTRIDGE_LIMIT), self._ms())
            self.stop("cartridge_limit")
        elif not self.cartridge_warned:
            pct = int(self._cfg("cartridge_warn_pct", self.cartridge_warn_pct))
            if used * 100 >= limit * pct:
                self.cartridge_warned = True
                self._record(EV_CARTRIDGE, 2)
                self._emit({"event": "cartridge", "what": "warn", "cartridge": self.cartridge,
                            "strokes": used, "limit": limit})  # fmt: skip

    def _apply_depth(self):
        """Bring the depth stop to the target (after homing, a clear or a wake)."""
        t = self.target_um
        if t > self.limit_um():
            t = self.target_um = self.limit_um()
        try:
            self.depth.move_to_um(t)
        except Refused:
            pass

    # -- the periodic check ----------------------------------------------------------------
    def poll(self):
        n = self.needle
        d = self.depth
        s = self.state
        code = n.fault or d.fault
        if code and s != FAULT:
            self._fault(code, "needle" if n.fault else "depth")
            return
        if s == FAULT:
            if n.running:
                n.kill()  # latched: nothing runs the motor while the fault stands
            return
        if s == RUNNING:
            if not n.running:
                # The drive stopped by itself without a fault code (should not happen).
                self._pass_end()
                self._goto(STOPPING, "drive stopped")
                s = STOPPING
            else:
                self._cartridge_check()
                return
        if s == STOPPING:
            if not n.running and not n.stopping:
                self._pass_end()
                armed = not self._disarm_after_stop and self.stop_reason != "cartridge_limit"
                self._goto(ARMED if armed else READY, "stopped")
                self._disarm_after_stop = False
                self._commit()
            return
        if n.running:
            n.kill()  # the motor never runs outside RUNNING / STOPPING
        if s in (READY, ARMED) and not d.busy and d.target_um != self.target_um:
            # The stop is not where the target says (a retract after a fault, a move refused
            # while the axis was busy): bring it there, with the needle stopped.
            self._apply_depth()
        if s == HOMING:
            if not d.homing and not d.busy:
                if d.homed:
                    self._goto(READY, "homed")
                    self._apply_depth()
                else:
                    self._goto(LOCKED, "homing ended")
            return
        idle = time.ticks_diff(self._ms(), self._t_active)
        if s == ARMED and idle >= int(self._cfg("disarm_after_s", self.disarm_after_ms // 1000))\
                * 1000:  # fmt: skip
            self._goto(READY, "idle")
        elif s in (READY, LOCKED) and idle >= int(
            self._cfg("sleep_after_s", self.sleep_after_ms // 1000)
        ) * 1000:
            self._goto(SLEEP, "idle")

    # -- status ------------------------------------------------------------------------------
    def telemetry_into(self, v):
        """One telemetry sample as ints into array v (firmware/link.py's fast path, 200 times a
        second, so no status dict): state code (same order as firmware/telemetry.py STATES),
        stroke rate in 0.1 Hz, target Hz, duty_u16, depth µm (0 while unknown), target depth
        µm, current mA, battery mV, fault code."""
        n = self.needle
        pos = self.depth.position_um
        v[0] = self.state
        v[1] = (n.rate_mhz + 50) // 100
        v[2] = self.rate_mhz // 1000
        v[3] = n.duty
        v[4] = 0 if pos is None else pos
        v[5] = self.target_um
        v[6] = n.current_ma
        v[7] = n.battery_mv
        v[8] = self.fault

    def status(self):
        n = self.needle
        d = self.depth
        pos = d.position_um  # None while the position is unknown (not homed)
        return {
            "state": NAMES[self.state],
            "homed": bool(d.homed),
            "armed": self.state in (ARMED, RUNNING, STOPPING),
            "depth_mm": None if pos is None else round(pos / 1000, 3),
            "target_depth_mm": round(self.target_um / 1000, 3),
            "stroke_hz": round(n.rate_mhz / 1000, 1),
            "target_hz": self.rate_mhz // 1000,
            "duty": n.duty,
            "current_ma": n.current_ma,
            "battery_mv": n.battery_mv,
            "fault": F.name(self.fault) if self.fault else None,
            "fault_code": self.fault,
            "cartridge": self.cartridge,
            "cartridge_ok": self.cartridge_ok,
            "cartridge_strokes": self.cartridge_strokes,
            "uptime_ms": time.ticks_diff(self._ms(), self._t_boot),
        }
