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
change nothing then. `poll()` (the application's pen task) watches the drive and the axis:
faults, homing done, stop ramp done, cartridge strokes, inactivity.

The treatment targets (depth, rate, presets, overrides) belong to `targets`
(firmware/targets.py), which asks this machine's gates (`check_depth_change`,
`check_rate_change`); the cartridge and its passes to `cart` (firmware/sessions.py Cartridge).

Parts (duck-typed, so tests use small fakes): `needle` (firmware.needle.NeedleDrive), `depth`
(firmware.depth.DepthAxis), `settings` (firmware.settings.Settings; None: defaults in RAM),
`sessions` (firmware.sessions.Sessions, optional).
"""

import time
from array import array

from micropython import const

from firmware import errors as E
from firmware import faults as F
from firmware.errors import Refused
from firmware.schema import to_mm as mm
from firmware.sessions import Cartridge
from firmware.settings import Settings
from firmware.targets import (  # noqa: F401 -- the event log's codes the owner records
    EV_LIMIT,
    EV_OVERRIDE,
    EV_PRESET,
    Targets,
)

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
# EV_LIMIT (4), EV_OVERRIDE (7), EV_PRESET (8): recorded by firmware/targets.py
EV_CARTRIDGE = const(5)  # arg = 1 new, 2 warn, 3 limit (spent)
EV_REFUSED = const(6)  # arg = error code

_LOG_N = const(32)
_FAULT_LOG_N = const(48)  # faults kept since boot (the newest; older ones counted, SF-11)


class Pen:
    def __init__(self, needle, depth, settings=None, sessions=None, clock=None):
        self.needle = needle
        self.depth = depth
        self.settings = settings if settings is not None else Settings()
        self._ms = clock or time.ticks_ms
        self.state = BOOT
        self.fault = F.NONE  # the latched fault code (FAULT state), else NONE
        self.fault_at = 0
        self.listeners = []  # fn(event dict): link (~E), UI (buzzer, display)
        self.targets = Targets(self, self.settings)
        self.cart = Cartridge(sessions, self._ms)
        self.stop_reason = None
        self._disarm_after_stop = False  # a disarm during the stop ramp ends it in READY
        self._t_boot = self._ms()
        self._t_active = self._t_boot
        self._log = array("i", bytes(8 * _LOG_N))  # (t_ms, code << 16 | arg) pairs
        self._log_n = 0
        # Every fault since boot (SF-11), apart from the event log, which wraps: the first one,
        # the newest _FAULT_LOG_N, and how many between were dropped.
        self._flog = array("i", bytes(8 * _FAULT_LOG_N))  # (t_ms, code) pairs
        self._flog_n = 0
        self.first_fault = None  # (t_ms, code)
        self._verify_due = False  # SF-13: the stop's position is checked before a session

    def motor_running(self):
        """Whether the needle motor may be turning (no flash writes then)."""
        return self.state in (RUNNING, STOPPING) or self.needle.running

    # -- event log and reporting ------------------------------------------------------------
    def record(self, code, arg):
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

    def _log_fault(self, code):
        t = time.ticks_diff(self._ms(), self._t_boot)
        if self.first_fault is None:
            self.first_fault = (t, code)
        i = (self._flog_n % _FAULT_LOG_N) * 2
        self._flog[i] = t
        self._flog[i + 1] = code
        self._flog_n += 1

    @property
    def faults_since_boot(self):
        return self._flog_n

    @property
    def fault_log_dropped(self):
        """Faults since boot no longer itemised in fault_log() (the first is always kept)."""
        n = self._flog_n - _FAULT_LOG_N
        return n - 1 if n > 0 else 0

    def fault_log(self):
        """Faults seen since boot (newest last), as (t_ms, name): the first one and the newest
        _FAULT_LOG_N; `fault_log_dropped` says how many between are not itemised."""
        n = self._flog_n
        out = []
        lo = n - _FAULT_LOG_N if n > _FAULT_LOG_N else 0
        if lo > 0 and self.first_fault is not None:
            out.append((self.first_fault[0], F.name(self.first_fault[1])))
        for k in range(lo, n):
            i = (k % _FAULT_LOG_N) * 2
            out.append((self._flog[i], F.name(self._flog[i + 1])))
        return out

    def emit(self, ev):
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
        self.record(EV_STATE, (frm << 8) | to)
        self.emit({"event": "state", "from": NAMES[frm], "to": NAMES[to], "why": why})

    def refuse(self, code, message=None):
        """Raise Refused after recording it (the UI shows it; the protocol replies with it)."""
        self.record(EV_REFUSED, code)
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
        if s in (BOOT, LOCKED, HOMING) or not (self.depth.homed or self.depth.homing):
            self.refuse(E.NOT_HOMED)  # (arming during the endstop check of SF-13 is fine)
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

    def run(self, hz=None, by="serial"):
        """Start the needle at the rate target; with `hz`, the rate target becomes hz first
        (the same change as `set stroke_hz`). While running, `hz` changes the running rate."""
        self._wake()
        s = self.state
        t = self.targets
        if hz is not None:
            t.check("stroke_hz", hz)  # a bad rate is refused before anything else
        if s == RUNNING:
            if hz is not None:
                t.change("stroke_hz", hz, by)
            return
        self._check_not_fault()
        if s == STOPPING:
            self.refuse(E.BUSY, "stopping")
        if s in (READY, ARMED) and (self._verify_due or self.depth.homing):
            self.refuse(E.BUSY, "checking the depth stop's position")
        if not self.depth.homed or s in (BOOT, LOCKED, HOMING):
            self.refuse(E.NOT_HOMED)
        if s != ARMED:
            self.refuse(E.NOT_ARMED, "not armed: hold START 1 s" if s == READY else None)
        if not self.cart.ok:
            self.refuse(E.NO_CARTRIDGE)
        if self.depth.busy or self.depth.target_um != t.depth_um:
            self.refuse(E.BUSY, "depth stop moving")
        if not self.depth.at_target():
            # SF-06: a move cut short is not the depth set: never run there
            self.refuse(E.BUSY, "depth stop not at its depth")
        if hz is not None:
            t.change("stroke_hz", hz, by)
        self.stop_reason = None
        self._disarm_after_stop = False
        self._store_before_run()
        try:
            self.needle.start(t.rate_hz)
        except Refused:
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

    # -- the gates of the targets' owner (firmware/targets.py) --------------------------------
    def check_depth_change(self):
        """The depth target, the limit and the calibration change only while the needle is
        stopped and the axis homed: a pass is done at one depth, and no press can deepen a
        needle that is in the skin."""
        self._wake()
        self._check_not_fault()
        s = self.state
        if s in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING, "stop the needle to change depth")
        if s in (BOOT, LOCKED, HOMING):
            self.refuse(E.NOT_HOMED)
        if not self.depth.homed and not (s in (READY, ARMED) and self.depth.homing):
            self.refuse(E.NOT_HOMED)  # (the endstop check of SF-13 takes a new target)
        if s == SERVICE:
            self.refuse(E.BUSY, "service state")

    def check_rate_change(self):
        """The stroke rate changes stopped or running, never in FAULT or SERVICE."""
        self.activity()
        self._check_not_fault()
        if self.state == SERVICE:
            self.refuse(E.BUSY, "service state")

    def check_preset_change(self):
        """The buttons select a preset on a ready pen only."""
        self.check_depth_change()
        if self.state != READY:
            self.refuse(E.BUSY, "disarm first")

    def rate_changed(self, hz):
        """The rate target changed: a running needle follows, in a new pass record (a pass is
        one stretch at one depth and one rate)."""
        if self.state == RUNNING:
            self.needle.set_target(hz)
            self._pass_end()
            self._pass_begin()

    def confirm_cartridge(self):
        """A new (single-use) cartridge is fitted: closes the previous session and opens a
        new one. Not while the needle runs; not with a latched fault."""
        self._wake()
        self._check_not_fault()
        if self.state in (RUNNING, STOPPING):
            self.refuse(E.MOTOR_RUNNING)
        if self.state == SERVICE:
            self.refuse(E.BUSY, "service state")
        t = self.targets
        n = self.cart.new(t.depth_um, t.rate_hz)
        if self.depth.moved_since_check:
            # SF-13: a new session: check the stop's position at the endstop (a re-home that
            # compares) unless it has not moved since homing found the switch; at once when
            # the stop is still (else when it is, from poll())
            self._verify_due = True
            self._start_verify()
        self.record(EV_CARTRIDGE, 1)
        self.emit({"event": "cartridge", "what": "new", "cartridge": n})
        t.override_at_start()
        return n

    def clear_fault(self):
        """Clear the latched fault if its cause is gone. Then: READY (or LOCKED and re-home
        when the depth stop's position is in doubt). The pen is never armed after a clear."""
        self.activity()
        if self.state != FAULT:
            return
        code = self.fault
        for part in (self.needle, self.depth):
            if part.fault:
                f = part.fault
                try:
                    part.clear_fault()  # both refuse the same way: Refused
                except Refused as e:
                    # the part's own reason when it gives one (SF-12)
                    why = e.message if e.message.startswith("cause still present") else ""
                    self.refuse(E.FAULT_ACTIVE, why or "cause still present: " + F.text(f))
        if self.needle.running:
            self.needle.kill()
            self.refuse(E.FAULT_ACTIVE, "motor still driven")
        self.fault = F.NONE
        self.record(EV_CLEAR, code)
        self.emit({"event": "clear", "fault": F.name(code)})
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
        self.record(EV_FAULT, code)
        self._log_fault(code)
        if was_running:
            self._pass_end()
        self.cart.add_fault(F.name(code))  # every fault, in the open session (SF-11)
        self.state, frm = FAULT, self.state
        self.record(EV_STATE, (frm << 8) | FAULT)
        self.emit({"event": "fault", "fault": F.name(code), "code": code,
                    "text": F.text(code), "detail": detail})  # fmt: skip
        self.emit({"event": "state", "from": NAMES[frm], "to": "FAULT", "why": F.name(code)})
        self.store_session()

    # -- the cartridge's passes ------------------------------------------------------------
    def _pass_begin(self):
        t = self.targets
        self.cart.pass_begin(self.needle.strokes, t.depth_um, t.rate_hz, t.preset())

    def _pass_end(self):
        self.cart.pass_end(self.needle.strokes)

    def _store_before_run(self):
        """The session's record, with this pass open, on flash before the motor starts."""
        if not self.needle.running:
            t = self.targets
            err = self.cart.before_run(t.depth_um, t.rate_hz, t.preset())
            if err is not None:
                self.emit({"event": "storage", "error": err})

    def store_session(self):
        """Store the session (flash write): only while the motor is not driven."""
        if not self.needle.running:
            err = self.cart.store()
            if err is not None:
                # A record that cannot be written (flash, size, memory) never stops the pen.
                self.emit({"event": "storage", "error": err})

    def _cartridge_check(self):
        c = self.cart
        limit = self.settings.get("cartridge_stroke_limit")
        r = c.check(self.needle.strokes, limit, self.settings.get("cartridge_warn_pct"))
        if r == Cartridge.LIMIT:
            self.record(EV_CARTRIDGE, 3)
            self.emit({"event": "cartridge", "what": "limit", "cartridge": c.number,
                       "strokes": c.strokes})  # fmt: skip
            c.add_spent(F.name(F.CARTRIDGE_LIMIT))
            self.stop("cartridge_limit")
        elif r == Cartridge.WARN:
            self.record(EV_CARTRIDGE, 2)
            self.emit({"event": "cartridge", "what": "warn", "cartridge": c.number,
                       "strokes": c.strokes, "limit": limit})  # fmt: skip

    def _apply_depth(self):
        """Bring the depth stop to the target (after homing, a clear or a wake)."""
        t = self.targets.depth_um
        lim = self.depth.limit_um
        try:
            self.depth.move_to_um(t if t < lim else lim)
        except Refused:
            pass

    def _start_verify(self):
        """Start the due endstop check if the stop is still and homed; True if started."""
        d = self.depth
        if not self._verify_due or d.busy or not d.homed:
            return False
        try:
            d.rehome_check()
        except Refused:
            return False
        self._verify_due = False
        return True

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
            elif not self.depth.at_target():
                # SF-06: the stop left its depth's step while the needle runs
                self._fault(F.DEPTH_POSITION, "stop not at its depth")
                return
            else:
                self._cartridge_check()
                return
        if s == STOPPING:
            if not n.running and not n.stopping:
                self._pass_end()
                armed = not self._disarm_after_stop and self.stop_reason != "cartridge_limit"
                self._goto(ARMED if armed else READY, "stopped")
                self._disarm_after_stop = False
                self.store_session()
            return
        if n.running:
            n.kill()  # the motor never runs outside RUNNING / STOPPING
        if self._verify_due and s in (READY, ARMED):
            if self._start_verify():
                return
        if s in (READY, ARMED) and not d.busy and d.target_um != self.targets.depth_um:
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
        if s == ARMED and idle >= self.settings.get("disarm_after_s") * 1000:
            self._goto(READY, "idle")
        elif s in (READY, LOCKED) and idle >= self.settings.get("sleep_s") * 1000:
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
        v[2] = self.targets.rate_hz
        v[3] = n.duty
        v[4] = 0 if pos is None else pos
        v[5] = self.targets.depth_um
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
            "depth_mm": None if pos is None else mm(pos),
            "target_depth_mm": mm(self.targets.depth_um),
            # the stop still on its target's step, its position checked (SF-06, SF-13)
            "depth_settled": not self._verify_due and self.depth.at_target()
            and d.target_um == self.targets.depth_um,
            "measured_hz": round(n.rate_mhz / 1000, 1),
            "target_hz": self.targets.rate_hz,
            "duty": n.duty,
            "current_ma": n.current_ma,
            "battery_mv": n.battery_mv,
            "fault": F.name(self.fault) if self.fault else None,
            "fault_code": self.fault,
            "cartridge": self.cart.number,
            "cartridge_ok": self.cart.ok,
            "cartridge_strokes": self.cart.strokes,
            "uptime_ms": time.ticks_diff(self._ms(), self._t_boot),
        }
