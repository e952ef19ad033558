"""Needle drive: closed-loop stroke rate of the needle motor, with its protections.

API (used by the state machine, the application, the protocol and telemetry):

    drive = NeedleDrive(motor, stroke, analog, tick_hz=1000, interlock=None)
        motor:  drivers.motor.Motor (enable / drive(duty_u16) / brake / coast)
        stroke: drivers.stroke_pio.StrokeCapture (pending() / read() -> period µs, 0 unknown)
        analog: drivers.analog.Analog (current_ma() / battery_mv() / current_full_scale_ma)
        interlock: callable -> bool, asked by start(); a False refuses the start (default:
                   always allowed). It is NOT called from the tick (it may allocate).
    machine.Timer(freq=1000, callback=drive.tick_cb, hard=True)   # the 1 kHz control tick

    drive.start(target_hz)          soft start to target_hz (50..150). Refused (and nothing
                                    changes) if a fault is latched, the interlock says no or
                                    the rate is invalid: the depth axis's way of refusing.
    drive.stop()                    controlled stop: ramp down, brake, outputs off.
    drive.kill()                    immediate safe state: bridge outputs off (coast). Any
                                    context, allocation-free.
    drive.set_target(hz)            new rate 50..150 (int); Refused otherwise, nothing changed.
    drive.tick() / tick_cb(timer)   the control tick; integer-only, allocation-free.
    drive.clear_fault()             un-latch a fault once the needle stands (no stroke for
                                    STANDSTILL_MS) and the cause is gone (battery back, coil
                                    cooled); Refused(FAULT_ACTIVE) if not cleared.

    Read-only status (ints; bools for the flags):
      running        the motor is under control (from start() until the outputs are off)
      stopping       a controlled stop is in progress (running stays True until it ends)
      target_hz      the rate asked for
      rate_mhz       measured stroke rate, milli-hertz (reciprocal of the hall period)
      duty           duty_u16 programmed on the bridge (0..65535)
      current_ma     motor current (low-passed ~4 ms)
      battery_mv     battery voltage (low-passed ~8 ms)
      strokes        needle strokes counted since construction (hall edges; a small int
                     for 2**30 strokes, 83 days of needling at 150 Hz)
      fault          latched code from firmware/faults.py, 0 = none
      fault_detect_ms  time.ticks_ms() when the fault latched (0 if none)
      heat           I2t estimate, per mille of the OVERHEAT limit

Control: voltage-domain loop. The command in mV is feed-forward (back-EMF of the set point
plus a friction offset: the duty-vs-rate curve), plus I*R compensation of the measured current
(the skin's load shows up in the current at once, long before it shows in the next stroke
period), plus a PI on the rate error, stepped once per stroke (the hall gives one measurement
per stroke). Dividing the command by the measured battery voltage gives the duty, which
compensates the feed-forward and the loop gain for a sagging battery. The set point follows a
ramp (soft start, slew, controlled stop).

Tick schedule (the tick is a hard IRQ: it must be short and even): every tick reads the PIO
FIFO and the current, checks over-current and stall, and writes the duty; each new stroke
period gives the rate and one PI step; every 4th tick does one of: battery, coil heat, set
point + runaway, cannot-hold. (No @micropython.native: by the RP2040 measurements in the
anchors it saves little over bytecode, and armv6m native code cannot run on the virtual pen.)
The drive also meets its rate requirements at tick_hz=500, should the RP2040 need the time.

Protections, each latching a fault code and killing the motor in the same tick:
  stall / sensor loss: no hall edge for STALL_PERIODS of the last period (bounded to
    STALL_MIN_MS..STALL_MAX_MS), or no two strokes within START_TIMEOUT_MS of a start. The
    back-EMF, V - I*R, tells the two apart: a turning rotor draws little current
    (SENSOR_LOSS), a blocked one V/R (STALL).
  runaway: rate above RUNAWAY_PCT % of the set point (a slowly decaying reference, so a
    commanded slow-down or a stop is not a runaway) plus RUNAWAY_MARGIN_HZ, for RUNAWAY_MS.
  over-current: current above OVERCURRENT_MA for OVERCURRENT_MS (a leaky count, so a current
    swinging through the limit trips too), after a blanking time OC_BLANK_MS at start when
    only a pegged ADC counts. More current than the applied voltage can drive through a healthy
    winding (a short, or a bridge that ignores the duty) -> OVERCURRENT at once. Otherwise a
    locked rotor is possible (it draws V/R) and the hall decides: the next stroke late ->
    STALL, a stroke arriving -> OVERCURRENT, neither within OC_JUDGE_MS -> OVERCURRENT.
    (So a bridge stuck at full drive at a low set rate reports OVERCURRENT before the rate
    has run away.)
  overheat: low-passed I**2 (coil thermal time constant) above OVERHEAT_MA**2.
  battery low: battery below BATTERY_MIN_MV for BATTERY_LOW_MS (also refuses a start), or the
    controller pinned at the maximum duty with the rate more than HOLD_PCT % short for
    HOLD_MS (the battery cannot hold the rate).
"""

import time

from micropython import const

from firmware import errors as E
from firmware import faults
from firmware.control import PI, LowPass, Persist, Ramp, rate_mhz
from firmware.errors import Refused

_DUTY_FULL = const(65535)
_MHZ = const(1000)
_US_PER_S = const(1_000_000)
_SLOTS = const(4)  # the slower work runs every 4th tick, one part per tick (round robin)
_SINCE_MAX_US = const(1 << 28)  # "time since the last edge" saturates here (small int)
_RATE_TIMEOUT_US = const(1_000_000)  # no edge for 1 s: the rotor stands, rate 0
_BILLION = const(1_000_000_000)


class NeedleDrive:
    # -- rates ------------------------------------------------------------------------------
    MIN_HZ = 50
    MAX_HZ = 150
    START_HZ = 30  # the ramp's first set point: fast enough for a stroke every 33 ms
    SOFT_START_HZ_PER_S = 600  # soft start: 150 Hz in ~200 ms
    SLEW_HZ_PER_S = 1000  # set-point changes while running
    STOP_HZ_PER_S = 800  # controlled stop ramp
    STOP_FLOOR_HZ = 30  # at this set point the stop brakes
    BRAKE_MS = 60  # brake time at the end of a stop, then outputs off
    STANDSTILL_MS = 200  # no stroke for this long: the needle stands (below 5 Hz)

    # -- motor model (calibration tunables) ----------------------------------------------------
    FF_UV_PER_HZ = 14830  # back-EMF per stroke rate: µV per Hz (= Ke * 2 pi)
    FF_OFFSET_MV = 60  # friction current * R
    R_MOHM = 2360  # winding + bridge switches (EMF estimate, I*R compensation, short check)
    IR_COMP_PCT = 60  # share of I*R fed forward (< 100 %: the loop through R stays stable)
    IR_COMP_MAX_MV = 800  # bounds what a wrong R (a damaged winding) can make of the I*R loop
    DUTY_MAX = 62258  # 95 %

    # -- PI on the rate error (mV per mHz, << PI_SHIFT), one step per stroke ------------------
    PI_SHIFT = 16
    KP = 500  # 7.6 mV per Hz of error
    KI = 485  # 7.4 mV per Hz per stroke: half the dead-beat gain (Ke * 2 pi per Hz)
    PI_MIN_MV = -2500
    PI_MAX_MV = 3000
    PI_ERR_MAX_HZ = 200

    # -- protections ---------------------------------------------------------------------------
    STALL_PERIODS = 2
    STALL_MIN_MS = 8
    STALL_MAX_MS = 45  # stall -> motor off within 50 ms of the last stroke
    START_TIMEOUT_MS = 150  # first two strokes after a start
    SENSOR_LOSS_EMF_PCT = 40  # EMF above this share of the expected one = the rotor turns
    SENSOR_LOSS_EMF_MIN_MV = 200
    SENSOR_LOSS_MIN_MA = 10  # a freely turning rotor still draws its friction current
    RUNAWAY_PCT = 125
    RUNAWAY_MARGIN_HZ = 10
    RUNAWAY_MS = 8
    RUNAWAY_REF_DECAY_HZ_PER_S = 200
    # Dead-man on the event loop: while running, the loop must call loop_alive() within this
    # silence, or the tick switches the motor off (LOOP_HUNG). Without it a hung loop (no
    # buttons, no serial stop) would leave the needle running until the watchdog reset, ~3 s.
    # Loop stalls of a healthy pen are a few ms (a GC, a display refresh); flash writes, which
    # stall both cores, never happen while the motor runs.
    LOOP_SILENCE_MS = 250
    OVERCURRENT_MA = 1000  # twice the highest current of a healthy run (start, load, slew)
    OVERCURRENT_MS = 5
    OC_BLANK_MS = 60
    OC_JUDGE_MS = 30
    OC_WINDING_PCT = 125  # R_MOHM tolerance (a cold winding) for the healthy-current bound
    OC_WINDING_MA = 100
    OVERHEAT_MA = 700  # RMS current the coil stands continuously
    OVERHEAT_SHIFT = 10  # I**2 low-pass over 2**10 updates of 4 ms: 4.1 s thermal time constant
    OVERHEAT_CLEAR_PERMILLE = 500  # a hot coil must cool to half the limit before a clear
    BATTERY_MIN_MV = 3300
    BATTERY_LOW_MS = 100
    HOLD_PCT = 5
    HOLD_MS = 300

    def __init__(self, motor, stroke, analog, tick_hz=1000, interlock=None):
        if not 100 <= tick_hz <= 10_000:
            raise ValueError("tick_hz 100..10000")
        self._motor = motor
        self._stroke = stroke
        self._analog = analog
        self._loop_quiet = 0  # ticks since the event loop last called loop_alive()
        self._loop_limit = 0  # 0: the dead-man is off (until watch_loop())
        self._interlock = interlock
        self.tick_hz = tick_hz
        self._tick_us = _US_PER_S // tick_hz
        slot_mhz = self._slot_mhz
        slots = self._slot_count
        ms = self._ms_ticks
        self._soft_up = slot_mhz(self.SOFT_START_HZ_PER_S)
        self._slew_up = slot_mhz(self.SLEW_HZ_PER_S)
        self._sp = Ramp(self._soft_up, slot_mhz(self.STOP_HZ_PER_S))
        self._ref = Ramp(1 << 20, slot_mhz(self.RUNAWAY_REF_DECAY_HZ_PER_S))
        self._pi = PI(self.KP, self.KI, self.PI_SHIFT, self.PI_MIN_MV, self.PI_MAX_MV,
                      self.PI_ERR_MAX_HZ * _MHZ)  # fmt: skip
        self._i_lp = LowPass(2, 1 << 16)  # 4 ticks
        self._b_lp = LowPass(0, 1 << 16)  # a fresh reading per slot: the duty follows a sag
        self._heat = LowPass(self.OVERHEAT_SHIFT, 1 << 16)
        self._heat_limit = (self.OVERHEAT_MA // 10) ** 2
        # Leaky count on the raw current: 8 up per tick over the limit, 1 down under it, so a
        # current that swings through the limit still trips.
        self._oc = Persist(8 * ms(self.OVERCURRENT_MS), 8, 1)
        self._runaway = Persist(slots(self.RUNAWAY_MS))
        self._batt = Persist(slots(self.BATTERY_LOW_MS))
        self._hold = Persist(slots(self.HOLD_MS))
        self._oc_blank = ms(self.OC_BLANK_MS)
        self._oc_judge_ticks = ms(self.OC_JUDGE_MS)
        self._start_timeout_us = self.START_TIMEOUT_MS * 1000
        self._stall_min_us = self.STALL_MIN_MS * 1000
        self._stall_max_us = self.STALL_MAX_MS * 1000
        self._brake_ticks = ms(self.BRAKE_MS)
        self._standstill_us = self.STANDSTILL_MS * 1000
        self._oc_peg_ma = analog.current_full_scale_ma * 97 // 100
        self._ir_q10 = self.R_MOHM * self.IR_COMP_PCT * 1024 // 100_000  # mV per mA, Q10
        # Measurement state, updated by every tick, running or not.
        self._period_us = 0  # last measured stroke period, 0 = none
        self._since_edge_us = 0
        self._i_raw = 0  # this tick's current sample, mA
        self._edges_run = 0  # edges since start()
        self._phase = 0
        # Control state.
        self._run_ticks = 0  # ticks since start(), counted up to the end of the blanking
        self._brake_left = 0
        self._oc_judge = 0  # ticks left to tell a locked rotor from an over-current
        self._oc_lim = self._oc_peg_ma
        self._oc_strokes = 0
        self._stall_us = self._start_timeout_us
        self._v_sp = 0  # feed-forward of the set point, mV
        self._v_max = 0  # the most the bridge gives at DUTY_MAX, mV
        self._k_duty = 0  # duty per mV at this battery voltage, Q10
        # Status (read by others).
        self.running = False
        self.stopping = False
        self.target_hz = 0
        self.rate_mhz = 0
        self.duty = 0
        self.current_ma = 0
        self.battery_mv = 0
        self.strokes = 0
        self.fault = faults.NONE
        self.fault_detect_ms = 0
        self.heat = 0
        motor.coast()
        self._b_lp.reset(analog.battery_mv())
        self._battery_changed(self._b_lp.value)

    def _slot_mhz(self, hz_per_s):
        """A rate of change in Hz/s as mHz per slot update (every _SLOTS ticks)."""
        return max(1, hz_per_s * _MHZ * _SLOTS // self.tick_hz)

    def _ms_ticks(self, ms):
        return max(1, ms * self.tick_hz // 1000)

    def _slot_count(self, ms):
        return max(1, ms * self.tick_hz // (1000 * _SLOTS))

    # -- commands (thread context) ------------------------------------------------------------
    def watch_loop(self, silence_ms=None):
        """Arm the event-loop dead-man (the app calls this once its loop runs)."""
        ms = self.LOOP_SILENCE_MS if silence_ms is None else silence_ms
        self._loop_quiet = 0
        self._loop_limit = ms * 1000 // self._tick_us

    def loop_alive(self):
        """The event loop turns: called from a task every few ms. Allocation-free."""
        self._loop_quiet = 0

    def start(self, target_hz):
        """Soft start to target_hz. Refused (fault latched, interlock, bad rate, battery
        already below its minimum: that latches BATTERY_LOW, braking)."""
        if self.fault:
            raise Refused(E.FAULT_ACTIVE)
        self._check_hz(target_hz)
        if self._interlock is not None and not self._interlock():
            raise Refused(E.BUSY, "interlock: not armed, homed and still")
        if self.battery_mv < self.BATTERY_MIN_MV:
            self._trip(faults.BATTERY_LOW)
            raise Refused(E.FAULT_ACTIVE)
        if self.running:
            self.target_hz = target_hz
            self.stopping = False  # a start during a stop resumes (unless already braking)
            if self._brake_left:
                raise Refused(E.BUSY, "braking")
            return
        self.target_hz = target_hz
        sp = max(self.START_HZ * _MHZ, self.rate_mhz)
        self._sp.value = sp
        self._sp.up = self._soft_up
        self._ref.value = sp
        self._v_sp = self._emf_mv(sp) + self.FF_OFFSET_MV
        self._pi.reset(0)
        self._oc.reset()
        self._runaway.reset()
        self._batt.reset()
        self._hold.reset()
        self._oc_judge = 0
        self._oc_lim = self._oc_peg_ma  # blanking: only a pegged ADC counts
        self._run_ticks = 0
        self._edges_run = 0
        self._stall_us = self._start_timeout_us
        self._since_edge_us = 0
        self._brake_left = 0
        self.stopping = False
        # The tick (a hard IRQ) may run between any two lines here: `running` goes True only
        # once the state is prepared, and before the bridge wakes (a tick seeing an enabled
        # bridge while not running puts it back to sleep).
        self.running = True
        self._motor.enable()
        if not self.running:
            self._motor.coast()  # a protection tripped in between: stay safe
            raise Refused(E.FAULT_ACTIVE)

    def _check_hz(self, hz):
        if type(hz) is not int:
            raise Refused(E.BAD_ARGUMENT, "stroke rate must be an integer in Hz")
        if not self.MIN_HZ <= hz <= self.MAX_HZ:
            raise Refused(E.OUT_OF_RANGE, "stroke rate must be %d..%d Hz" % (self.MIN_HZ,
                                                                             self.MAX_HZ))

    def set_target(self, hz):
        self._check_hz(hz)
        self.target_hz = hz

    def stop(self):
        """Controlled stop: the set point ramps down, then the motor brakes and is released."""
        if self.running:
            self.stopping = True

    def kill(self):
        """Immediate safe state: bridge outputs off. Any context; allocation-free."""
        self._motor.coast()
        self.running = False
        self.stopping = False
        self._brake_left = 0
        self._oc_judge = 0
        self.duty = 0

    def clear_fault(self):
        """Un-latch the fault if the needle stands and the cause is gone."""
        f = self.fault
        if not f:
            return
        if self.running or self._since_edge_us < self._standstill_us:
            raise Refused(E.FAULT_ACTIVE, "the needle still moves")
        if f == faults.BATTERY_LOW and self.battery_mv < self.BATTERY_MIN_MV:
            raise Refused(E.FAULT_ACTIVE, "battery still low")
        if f == faults.OVERHEAT and self.heat >= self.OVERHEAT_CLEAR_PERMILLE:
            raise Refused(E.FAULT_ACTIVE, "coil still hot")
        self.fault = faults.NONE
        self.fault_detect_ms = 0

    # -- the control tick (hard IRQ: integers only, no allocation) ----------------------------
    # Per tick: strokes from the PIO FIFO, the current (over-current, I*R), stall, the duty.
    # Per stroke: the rate and the PI step. Every 4th tick, one of: battery, coil heat, set
    # point ramp + runaway, cannot-hold check. That keeps each tick short and even.
    def tick_cb(self, _timer):
        self.tick()

    def tick(self):
        st = self._stroke
        n = st.pending()
        if n:
            fresh = 0
            while n:
                p = st.read()
                if p:
                    self._period_us = p
                    fresh = 1
                n -= 1
                self.strokes += 1
                if self._edges_run < 2:
                    self._edges_run += 1  # (only "two strokes since the start" matters)
            self._since_edge_us = 0
            if fresh:
                self._on_stroke()
        else:
            since = self._since_edge_us
            if since < _SINCE_MAX_US:
                since += self._tick_us
                self._since_edge_us = since
            period = self._period_us
            if period and since > period:
                # The next stroke is late: the rate is at most 1/elapsed. The estimate falls
                # while the rotor slows down instead of holding the last value.
                if since > _RATE_TIMEOUT_US:
                    self._period_us = 0
                    self.rate_mhz = 0
                else:
                    self.rate_mhz = _BILLION // since
        i_ma = self._analog.current_ma()
        self._i_raw = i_ma
        i_f = self._i_lp.update(i_ma)
        self.current_ma = i_f
        ph = (self._phase + 1) & (_SLOTS - 1)
        self._phase = ph
        running = self.running
        if ph == 0:
            if self._slot_battery(running):
                return
        elif ph == 1:
            if self._slot_heat(running):
                return
        if not running:
            if self._motor.enabled:
                self._motor.coast()  # defence: nothing drives the motor unless running
            self.duty = 0
            return
        if self._loop_limit:
            q = self._loop_quiet + 1
            self._loop_quiet = q
            if q > self._loop_limit:
                self._trip(faults.LOOP_HUNG)
                return
        if self._run_ticks < self._oc_blank:
            self._run_ticks += 1
            if self._run_ticks == self._oc_blank:
                self._oc_lim = self.OVERCURRENT_MA  # start-up blanking over
        if ph == 2:
            if self._slot_setpoint():
                return
        elif ph == 3:
            if self._slot_hold():
                return
        if self._since_edge_us > self._stall_us and not self._brake_left:
            self._stalled()
            return
        if self._i_raw > self._oc_lim or self._oc.count or self._oc_judge:
            if self._check_current():
                return
        if self._brake_left:
            self._brake_left -= 1
            if not self._brake_left:
                self.kill()  # end of a controlled stop
            return
        # The command in mV: feed-forward of the set point + I*R + PI; then the duty.
        v_ir = (i_f * self._ir_q10) >> 10
        if v_ir > self.IR_COMP_MAX_MV:
            v_ir = self.IR_COMP_MAX_MV
        v = self._v_sp + v_ir + self._pi.out
        if v < 0:
            v = 0
        elif v > self._v_max:
            v = self._v_max
        duty = (v * self._k_duty) >> 10
        self._motor.drive(duty)
        self.duty = duty

    def _trip(self, code):
        self.kill()
        if not self.fault:
            self.fault = code
            self.fault_detect_ms = time.ticks_ms()

    def _on_stroke(self):
        """A new period: the reciprocal rate, the stall limit, and one PI step."""
        period = self._period_us
        rate = _BILLION // period
        self.rate_mhz = rate
        if self._edges_run >= 2:
            lim = period * self.STALL_PERIODS
            if lim < self._stall_min_us:
                lim = self._stall_min_us
            elif lim > self._stall_max_us:
                lim = self._stall_max_us
            self._stall_us = lim
            if self.running and not self._brake_left:
                # One PI step per stroke: the hall gives one measurement per stroke, so the
                # loop is sampled at the stroke rate (a step per tick would integrate a held
                # value and add half a stroke of delay; the loop rang at 50 Hz that way).
                v_ir = (self.current_ma * self._ir_q10) >> 10
                if v_ir > self.IR_COMP_MAX_MV:
                    v_ir = self.IR_COMP_MAX_MV
                base = self._v_sp + v_ir
                pi = self._pi
                pi.set_limits(-base, self._v_max - base)
                pi.update(self._sp.value - rate)

    def _battery_changed(self, b_mv):
        self.battery_mv = b_mv
        if b_mv < 1000:
            b_mv = 1000  # (a dead ADC must not divide by ~0)
        self._k_duty = (_DUTY_FULL << 10) // b_mv
        self._v_max = self.DUTY_MAX * b_mv // _DUTY_FULL

    def _slot_battery(self, running):
        self._battery_changed(self._b_lp.update(self._analog.battery_mv()))
        if running and self._batt.update(self.battery_mv < self.BATTERY_MIN_MV):
            self._trip(faults.BATTERY_LOW)
            return True
        return False

    def _slot_heat(self, running):
        i10 = self._i_raw // 10
        h = self._heat.update(i10 * i10) * 1000 // self._heat_limit
        self.heat = h
        if running and h > 1000:
            self._trip(faults.OVERHEAT)
            return True
        return False

    def _slot_setpoint(self):
        """Set point ramp (soft start, slew, controlled stop), its feed-forward, runaway."""
        target = self.target_hz * _MHZ
        ramp = self._sp
        if self.stopping:
            sp = ramp.update(0)
            if sp <= self.STOP_FLOOR_HZ * _MHZ and not self._brake_left:
                self._motor.brake()
                self.duty = 0
                self._brake_left = self._brake_ticks
        else:
            sp = ramp.update(target)
            if sp == target and ramp.up != self._slew_up:
                ramp.up = self._slew_up  # soft start done: later changes slew faster
        self._v_sp = self._emf_mv(sp) + self.FF_OFFSET_MV
        # Runaway reference: the larger of set point and target, falling slowly, so a
        # commanded slow-down or a stop (the rotor lags the ramp) is not taken for a runaway.
        ref = self._ref.update(sp if sp > target else target)
        lim = ref * self.RUNAWAY_PCT // 100 + self.RUNAWAY_MARGIN_HZ * _MHZ
        if self._runaway.update(self.rate_mhz > lim):
            self._trip(faults.RUNAWAY)
            return True
        return False

    def _slot_hold(self):
        """The controller pinned at full duty and the rate still short: cannot hold it."""
        short = self.rate_mhz * 100 < self._sp.value * (100 - self.HOLD_PCT)
        if self._hold.update(self._pi.saturated > 0 and short and not self._brake_left):
            self._trip(faults.BATTERY_LOW)
            return True
        return False

    def _check_current(self):
        """Over-current, or a locked rotor drawing V/R: the hall tells which. Called while
        the current is over the limit or the leaky count is not back to zero."""
        if self._oc.update(self._i_raw > self._oc_lim) and not self._oc_judge:
            if self._i_raw > self._winding_max_ma():
                # More than the applied voltage can drive through a healthy winding, even a
                # stalled one: a short, or a bridge that does not obey the duty.
                self._trip(faults.OVERCURRENT)
                return True
            self._oc_judge = self._oc_judge_ticks
            self._oc_strokes = self.strokes
        if self._oc_judge:
            period = self._period_us
            if not period or self._since_edge_us > period + (period >> 2):
                self._trip(faults.STALL)  # the next stroke is late: a locked rotor
                return True
            self._oc_judge -= 1
            if self.strokes != self._oc_strokes or not self._oc_judge:
                self._trip(faults.OVERCURRENT)  # strokes go on: it turns, and draws too much
                return True
        return False

    def _stalled(self):
        """No stroke for STALL_PERIODS of the last period (bounded), or no two strokes within
        START_TIMEOUT_MS of a start: a blocked rotor, or a turning one the sensor misses."""
        self._trip(faults.SENSOR_LOSS if self._turning() else faults.STALL)

    def _winding_max_ma(self):
        """The most current a healthy winding draws at the applied voltage (rotor stopped,
        V/R), with OC_WINDING_PCT % and OC_WINDING_MA of margin."""
        v_mv = self.duty * self.battery_mv // _DUTY_FULL  # < 2**16 * 2**13: a small int
        return v_mv * 1000 // self.R_MOHM * self.OC_WINDING_PCT // 100 + self.OC_WINDING_MA

    def _turning(self):
        """The back-EMF, V - I*R, says the rotor turns (so the missing strokes are the
        sensor's fault, not the rotor's)."""
        i_ma = self.current_ma
        if i_ma < self.SENSOR_LOSS_MIN_MA or i_ma >= self._oc_peg_ma:
            return False  # no current: nothing to judge by; pegged ADC: a blocked rotor
        v_mv = self.duty * self.battery_mv // _DUTY_FULL
        emf = v_mv - i_ma * self.R_MOHM // 1000
        period = self._period_us
        floor = self._emf_mv(rate_mhz(period)) * self.SENSOR_LOSS_EMF_PCT // 100 if period else 0
        if floor < self.SENSOR_LOSS_EMF_MIN_MV:
            floor = self.SENSOR_LOSS_EMF_MIN_MV
        return emf > floor

    def _emf_mv(self, r_mhz):
        # In 10 mHz units so the product stays a small int (15000 * 14830 < 2**28).
        return (r_mhz // 10) * self.FF_UV_PER_HZ // 100_000
