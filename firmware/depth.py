"""The depth axis: the stepper-driven stop that sets how far the needles protrude.

API (for the state machine, the protocol and the UI):

    axis = DepthAxis(stepper, endstop, calib=None, limit_um=3000, on_fault=None)
        stepper: drivers.stepper_pio.StepperPIO (queue/service/flush/position/enable)
        endstop: drivers.endstop.Endstop (sample/closed/settled)
        calib:   CalibrationTable or its flat list [s0, um0, s1, um1, ...]; None = nominal.
                 An invalid one latches CALIBRATION_INVALID and the nominal table is used.
        on_fault(code): called once when a fault latches (for the fault log / events).

    axis.poll()            advance homing and moves; call every POLL_MS (2..5 ms) from an
                           asyncio task -- or run `await axis.run()` as that task. No timing
                           depends on it beyond keeping the PIO queue fed.
    axis.home()            start homing (firmware/homing.py: fast seek to the switch, back
                           off, slow re-touch); when already homed it is a re-home that
                           checks for lost steps.
    axis.rehome_check()    the same, refused unless homed (a deliberate lost-steps check).
    axis.move_to_um(um)    go to a depth (int µm). Refused(OUT_OF_RANGE) for um < 0 or
                           um > limit_um, Refused(NOT_HOMED / FAULT_ACTIVE / BUSY while homing);
                           a refused request changes nothing. While a move runs, the new target
                           is taken up when the move ends.
    axis.move_steps(n)     service move by n microsteps (calibration); the target is clamped to
                           MIN_STEPS .. the limit's step.
    axis.retract()         go to the safe depth SAFE_UM (only ever inwards); with the position
                           unknown, drive inwards the whole travel (onto the hard stop).
    axis.set_limit_um(um)  0 .. LIMIT_MAX_UM (3300: the mechanism's working range; the
                           settings schema bounds the clinical limit), within the calibration.
                           A stop deeper than the new limit is moved back to it. Lowering it
                           below a running move's goal is refused (BUSY), so a move never ends
                           beyond the limit.
    axis.set_calibration(table_or_list)   validated, refused (Refused) when invalid, when it
                           does not cover 0 .. limit_um, or while busy; re-targets target_um.
    axis.load_calibration(flat) -> bool   boot path: invalid -> CALIBRATION_INVALID latched.
    axis.clear_fault()     unlatch (refused while the retract runs). Position-doubt faults
                           leave the axis unhomed: home again.
    read-only: homed, homing, busy, needle_ok, position_steps, position_um (None when the
               position is unknown), target_um, limit_um, fault (0 none), calib.

Safety properties (docs/requirements.md, DS-*): the soft limits are enforced here, in
`_clamp()`, which every move's legs pass through, whatever asked for the move. Every move ends
travelling outwards (deeper), so the lead screw's backlash is always taken up the same way: a
move inwards overshoots by TAKEUP_STEPS and comes back out. The overshoot is on the retracted
side, so the approach never passes beyond the target. Any fault stops feeding the PIO (the
few segments in flight finish, keeping the count exact), latches, calls on_fault and retracts.

Position is kept in microsteps counted from completed PIO segments; step 0 is where the
slow re-touch found the switch (retracting). The lead screw, its backlash and the switch's
scatter are known only through the calibration table.
"""

import time

from micropython import const

from firmware import faults
from firmware.calib import CalibrationTable
from firmware.errors import (
    BAD_ARGUMENT,
    BUSY,
    FAULT_ACTIVE,
    NOT_HOMED,
    OUT_OF_RANGE,
    Refused,
)
from firmware.homing import Homing
from firmware.motion import TrapezoidPlanner

_IDLE = const(0)
_MOVE = const(1)  # running legs towards a goal
_HOMING = const(2)  # firmware/homing.py drives the axis
_RETRACT_WAIT = const(11)  # fault / retract: motion finishing
_RETRACTING = const(12)

_OUT = const(1)
_IN = const(0)


class DepthAxis:
    # Motion (µsteps; nominal 2.5 µm each). The motor follows up to ~12k steps/s.
    SPEED_SPS = 10_000
    ACCEL_SPS2 = 200_000
    SEG_US = 3000  # PIO segment length: 4 in flight cover > 9 ms of poll latency
    TAKEUP_STEPS = 24  # backlash take-up overshoot (60 µm > the screw's backlash)
    DWELL_US = 2000  # pause before a leg, so the rotor is at rest when direction reverses
    MIN_STEPS = 16  # closest to the switch a move goes (the switch stays open)
    TRAVEL_STEPS = 1440  # mechanical travel past the switch (3.6 mm nominal)
    # The deepest limit the axis accepts: the mechanism's working range. The clinical maximum
    # (3.0 mm) is the settings schema's bound; calibration raises the limit to this to measure
    # the whole range with the needle stopped.
    LIMIT_MAX_UM = 3300
    SAFE_UM = 0  # retract target: tips flush
    WATCH_STEPS = 40  # switch closed while homed and deeper than this -> fault
    BLIND_STEPS = 1700  # retract with the position unknown: whole travel inwards
    BLIND_SPS = 3000
    # A leg not done by its planned time + this: the step generator stalled -> INTERNAL
    # (HOME_NOT_FOUND while homing: it is the travel timeout then)
    MOVE_MARGIN_MS = 200
    POLL_MS = 2
    SG_FAST_US = 250  # StallGuard judged while steps come at least this often (4000 steps/s)

    def __init__(self, stepper, endstop, calib=None, limit_um=3000, on_fault=None, stall=None):
        self._st = stepper
        self._es = endstop
        self._sg = stall  # firmware.stallguard.StallWatch, or None (SF-13)
        self._pl = TrapezoidPlanner()
        self.on_fault = on_fault
        self.fault = faults.NONE
        self.calib = CalibrationTable.nominal()
        if not isinstance(limit_um, int) or not 0 <= limit_um <= self.LIMIT_MAX_UM:
            raise ValueError("limit_um 0..LIMIT_MAX_UM")
        self.limit_um = limit_um
        self.target_um = self.SAFE_UM
        self.homed = False
        self._pos_known = False
        self._at_inner_end = False  # the position is unknown but the stop is fully in
        self._phase = _IDLE
        self._legs = [0, 0]
        self._nlegs = 0
        self._leg_i = 0
        self._feeding = False
        self._dir = _OUT
        self._last_dir = _IN
        self._speed = self.SPEED_SPS
        self._seg = self.SEG_US
        self._goal = 0
        self._pending = None
        self._busy_us = time.ticks_us()
        self._was_busy = False
        self._leg_deadline = 0
        self._homing = Homing(self, endstop)
        # the stop moved since homing last found the switch (SF-13: checked before a session)
        self.moved_since_check = False
        if calib is not None:
            self.load_calibration(calib)

    # -- read-only state ---------------------------------------------------------------
    @property
    def position_steps(self):
        return self._st.position

    @property
    def position_um(self):
        if not self._pos_known:
            return None
        return self.calib.um_for_steps(self._st.position)

    @property
    def homing(self):
        return self._homing.active

    @property
    def home_offset(self):
        """Steps off step 0 at which the last re-home found the switch."""
        return self._homing.offset

    @property
    def busy(self):
        return self._phase != _IDLE or self._st.busy

    @property
    def needle_ok(self):
        """The needle may run: homed, not homing or retracting, no fault."""
        return self.homed and not self.homing and self.fault == 0 and self._phase in (
            _IDLE, _MOVE)  # fmt: skip

    def at_target(self):
        """The stop is still, its position known, and on the step of its target depth: not
        a move in progress, nor one cut short (clamped at the travel's end), nor a re-home's
        return still to come (SF-06)."""
        if self.busy or not self.homed or not self._pos_known or self.fault:
            return False
        want = self.calib.steps_for_um(self.target_um)
        return want == self._clamp(want) and self._st.position == want

    def max_steps(self, limit_um=None):
        """The deepest step any move may reach: the depth limit (or `limit_um`) through the
        calibration, rounded inwards, and never past the mechanical travel."""
        s = self.calib.steps_at_most(self.limit_um if limit_um is None else limit_um)
        return s if s < self.TRAVEL_STEPS else self.TRAVEL_STEPS

    # -- commands ----------------------------------------------------------------------
    def home(self):
        """Start homing (no-op while homing). Refused while a fault is latched."""
        if self.fault:
            raise Refused(FAULT_ACTIVE)
        if self.homing:
            return
        check_lost = self.homed
        self.homed = False
        self.stop_motion()
        self._st.enable(True)
        self._phase = _HOMING
        self._homing.start(check_lost)

    def rehome_check(self):
        """Re-home and compare: the switch found off its expected step -> LOST_STEPS."""
        if not self.homed:
            raise Refused(NOT_HOMED)
        if self.busy:
            raise Refused(BUSY)
        self.home()

    def move_to_um(self, um):
        _check_int(um)
        if um < 0 or um > self.limit_um:
            raise Refused(OUT_OF_RANGE, "depth outside 0..limit")
        if self.homing and self._homing.checking and not self.fault:
            # a re-home that checks the position (SF-13) ends by going to the target
            self.target_um = um
            return
        self._may_move()
        self.target_um = um
        self._request(self.calib.steps_for_um(um))

    def move_steps(self, n):
        """Service move by n microsteps (calibration), clamped to the soft range."""
        _check_int(n)
        if abs(n) > self.TRAVEL_STEPS:
            raise Refused(OUT_OF_RANGE, "steps beyond the travel")
        self._may_move()
        base = self._goal if self._phase == _MOVE else self._st.position
        if self._pending is not None:
            base = self._pending
        t = self._clamp(base + n)
        self.target_um = self.calib.um_for_steps(t)
        self._request(t)

    def retract(self):
        """Go to the safe depth now (abandons homing or a move)."""
        self._begin_retract()

    def set_limit_um(self, um):
        _check_int(um)
        if not 0 <= um <= self.LIMIT_MAX_UM:
            raise Refused(OUT_OF_RANGE, "limit outside 0..%d um" % self.LIMIT_MAX_UM)
        # within the calibrated range and the mechanical travel (SF-05)
        self.calib.check_reach(um, self.TRAVEL_STEPS, self.MIN_STEPS)
        if um < self.limit_um and self.busy:
            new_max = self.max_steps(um)
            goal = self._pending if self._pending is not None else self._goal
            if self._phase != _MOVE or goal > new_max or self._st.position > new_max:
                raise Refused(BUSY, "lower the limit while the depth stop is still")
        self.limit_um = um
        if self.target_um > um:
            self.target_um = um
        if self.homed and not self.busy and self._st.position > self.max_steps():
            self._go(self.calib.steps_for_um(self.target_um))

    def set_calibration(self, table):
        """Install a calibration table (CalibrationTable or flat list); Refused if invalid."""
        if self.busy:
            raise Refused(BUSY)
        t = table if isinstance(table, CalibrationTable) else CalibrationTable(table)
        t.check_reach(self.limit_um, self.TRAVEL_STEPS, self.MIN_STEPS)  # SF-04, SF-05
        self.calib = t
        if self.homed and not self.fault:
            self._go(t.steps_for_um(self.target_um))

    def load_calibration(self, table):
        """Boot path: an invalid stored table latches CALIBRATION_INVALID (nominal in use)."""
        try:
            t = table if isinstance(table, CalibrationTable) else CalibrationTable(table)
            t.check_reach(self.limit_um, self.TRAVEL_STEPS, self.MIN_STEPS)
        except (Refused, ValueError, TypeError):
            self.trip(faults.CALIBRATION_INVALID)
            return False
        self.calib = t
        return True

    def clear_fault(self):
        if self._phase in (_RETRACT_WAIT, _RETRACTING):
            raise Refused(BUSY, "retract still running")
        es = self._es
        stuck = self.fault == faults.ENDSTOP_STUCK
        if stuck and es.closed and es.raw() and not self._at_inner_end:
            # SF-12: retracted to the safe depth, away from the switch, it must read open; a
            # clear now would only trip again (the pen says why instead)
            raise Refused(FAULT_ACTIVE, "cause still present: the endstop reads closed")
        self.fault = faults.NONE

    async def run(self):
        """The axis's asyncio task: poll every POLL_MS."""
        import asyncio

        while True:
            self.poll()
            await asyncio.sleep_ms(self.POLL_MS)

    # -- the poll ----------------------------------------------------------------------
    def poll(self):
        st = self._st
        st.service(not self._feeding)
        es = self._es
        closed = es.sample()
        if st.busy or self._was_busy:
            # the rotor was turning until at least now: DWELL_US counts from here
            self._busy_us = time.ticks_us()
        self._was_busy = st.busy
        ph = self._phase
        if ph == _MOVE:
            if self.legs_done():
                self._move_done()
            if self._phase == _MOVE:
                self._watch_switch(closed)
            if self._phase == _MOVE and self._feeding and self._sg is not None:
                pl = self._pl
                if self._sg.poll(not pl.done and pl.interval <= self.SG_FAST_US):
                    # StallGuard: the rotor slipped, steps are lost (SF-13)
                    self._pos_known = False
                    self.trip(faults.LOST_STEPS)
        elif ph == _IDLE:
            self._watch_switch(closed)
        elif ph >= _RETRACT_WAIT:
            self._poll_retract()
        else:
            self._homing.poll(closed)
        st.service(not self._feeding)

    def _move_done(self):
        if self._pending is not None:
            t = self._pending
            self._pending = None
            self._go(t)
        else:
            self._phase = _IDLE

    def _watch_switch(self, closed):
        """Homed, the switch must stay open away from home. Closed while moving in: the
        stop reached home early -> steps were lost; closed otherwise: a stuck switch.
        Judged on a settled closed state only (the last reading closed too): the debounced
        state lags the switch by up to Endstop.SAMPLES polls, and leaving home at full speed
        the stop is well past WATCH_STEPS before the switch's opening is confirmed (found on
        the chip, where a poll can come 10 ms late: the check after `cartridge new` latched
        ENDSTOP_STUCK at step ~100 with the switch open since step 1)."""
        if not self.homed or not closed or self._st.position <= self.WATCH_STEPS:
            return
        if not self._es.settled:
            return  # open readings since: the switch is letting go, not stuck
        if self._phase == _MOVE and self._feeding and self._dir == _IN:
            self._pos_known = False
            self._at_inner_end = True  # it is at the switch: as far in as it goes
            self.trip(faults.LOST_STEPS)
        else:
            self.trip(faults.ENDSTOP_STUCK)

    # -- the moves homing makes (firmware/homing.py) -----------------------------------
    @property
    def position_known(self):
        return self._pos_known

    @property
    def stepper_busy(self):
        return self._st.busy

    def leg(self, target, speed, seg):
        """A single-leg move (homing, retract): no soft clamp, no take-up."""
        self._speed = speed
        self._seg = seg
        self._set_legs(target, target)

    def step_in(self, interval_us):
        """One microstep inwards (homing's slow re-touch)."""
        self._last_dir = _IN
        self._st.queue(1, interval_us, _IN)

    def at_inner_end(self):
        """The stop is as far in as it goes, the position unknown (homing found no switch)."""
        self._at_inner_end = True
        self._pos_known = False

    def zero_here(self):
        """The switch is found: this is step 0. Returns where the count stood before."""
        st = self._st
        p = st.position
        st.set_position(0)
        self._pos_known = True
        self._at_inner_end = False
        self._last_dir = _IN
        return p

    def homed_here(self):
        """Homing succeeded: the axis is homed and goes to its target."""
        self._phase = _IDLE
        self.homed = True
        self.moved_since_check = False
        self._go(self.calib.steps_for_um(self.target_um))

    # -- fault and retract -------------------------------------------------------------
    def trip(self, code):
        if not self.fault:
            self.fault = code
            if self.on_fault is not None:
                self.on_fault(code)
        if code in (faults.HOME_NOT_FOUND, faults.ENDSTOP_STUCK, faults.LOST_STEPS):
            self.homed = False
        self._begin_retract()

    def _begin_retract(self):
        self.target_um = self.SAFE_UM
        self._homing.active = False
        self.stop_motion()
        self._phase = _RETRACT_WAIT

    def _poll_retract(self):
        st = self._st
        if self._phase == _RETRACT_WAIT:
            if st.busy:
                return
            if self._pos_known:
                safe = self._clamp(self.calib.steps_for_um(self.SAFE_UM))
                if st.position > safe:
                    self._phase = _RETRACTING
                    self.leg(safe, self.SPEED_SPS, self.SEG_US)
                    return
            elif not self._at_inner_end:
                self._phase = _RETRACTING
                self.leg(st.position - self.BLIND_STEPS, self.BLIND_SPS, self.SEG_US)
                return
            self._phase = _IDLE
        elif self.legs_done():
            if not self._pos_known:
                self._at_inner_end = True
            self._phase = _IDLE

    # -- moves -------------------------------------------------------------------------
    def _may_move(self):
        if self.fault:
            raise Refused(FAULT_ACTIVE)
        if not self.homed:
            raise Refused(NOT_HOMED)
        if self.homing or self._phase >= _RETRACT_WAIT:
            raise Refused(BUSY)

    def _clamp(self, t):
        """The soft range every move is held to: MIN_STEPS .. max_steps()."""
        hi = self.max_steps()
        if t > hi:
            t = hi
        if t < self.MIN_STEPS:
            t = self.MIN_STEPS
        return t

    def _request(self, t):
        t = self._clamp(t)
        if t != self._st.position:
            self.moved_since_check = True
        if self._phase == _MOVE:
            self._pending = t if t != self._goal else None
        else:
            self._go(t)

    def _go(self, target):
        """Move to `target` (clamped), ending with an outward approach."""
        target = self._clamp(target)
        pos = self._st.position
        self._pending = None
        self._goal = target
        self._speed = self.SPEED_SPS
        self._seg = self.SEG_US
        if target < pos or (target == pos and self._last_dir != _OUT):
            # end travelling outwards: overshoot inwards first (backlash take-up)
            pre = target - self.TAKEUP_STEPS
            self._set_legs(pre if pre > self.MIN_STEPS else self.MIN_STEPS, target)
        else:
            self._set_legs(target, target)
        self._phase = _MOVE

    def _set_legs(self, a, b):
        self._legs[0] = a
        self._legs[1] = b
        self._nlegs = 1 if a == b else 2
        self._leg_i = 0
        self._feeding = False

    def stop_motion(self):
        """Stop feeding the PIO: the segments in flight finish (the count stays exact)."""
        self._pl.abandon()
        self._st.flush()
        self._feeding = False
        self._nlegs = 0
        self._leg_i = 0
        self._pending = None

    def legs_done(self):
        """Feed the current leg / start the next one. True when every leg is done."""
        st = self._st
        if self._feeding:
            self._feed()
            if self._pl.done and not st.busy:
                self._feeding = False
            elif time.ticks_diff(time.ticks_ms(), self._leg_deadline) > 0:
                # the PIO stopped consuming: the step generator stalled. While homing this is
                # the travel timeout.
                self.trip(faults.HOME_NOT_FOUND if self.homing else faults.INTERNAL)
            return False
        if st.busy:
            return False
        while self._leg_i < self._nlegs:
            n = self._legs[self._leg_i] - st.position
            if n == 0:
                self._leg_i += 1
                continue
            if time.ticks_diff(time.ticks_us(), self._busy_us) < self.DWELL_US:
                return False
            self._leg_i += 1
            self._dir = _OUT if n > 0 else _IN
            self._last_dir = self._dir
            self._pl.plan(n if n > 0 else -n, self._speed, self.ACCEL_SPS2, self._seg)
            self._leg_deadline = time.ticks_add(
                time.ticks_ms(), self._pl.duration_us // 1000 + self.MOVE_MARGIN_MS)
            self._feeding = True
            if self._sg is not None:
                self._sg.start()
            st.enable(True)
            self._feed()
            return False
        return True

    def _feed(self):
        st = self._st
        pl = self._pl
        st.service(False)
        if st.dry:
            # The PIO ran dry mid-leg (the loop was held up longer than the segments in flight
            # last, e.g. by a long command): the rotor has stopped. Resuming at the cruise rate
            # would lose steps on a real motor; the rest of the leg starts again from rest.
            st.flush()
            n = self._legs[self._leg_i - 1] - st.position
            pl.plan(n if n > 0 else -n, self._speed, self.ACCEL_SPS2, self._seg)
            self._leg_deadline = time.ticks_add(
                time.ticks_ms(), pl.duration_us // 1000 + self.MOVE_MARGIN_MS)
            if self._sg is not None:
                self._sg.start()
        while st.space():
            n = pl.next_segment()
            if not n:
                break
            st.queue(n, pl.interval, self._dir)
        st.service(False)


def _check_int(v):
    if not isinstance(v, int) or isinstance(v, bool):
        raise Refused(BAD_ARGUMENT, "an integer is required")
