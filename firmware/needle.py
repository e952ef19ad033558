"""Needle drive: closed-loop stroke rate of the needle motor, with its protections.

API (used by the state machine, the application, the protocol and telemetry):

    drive = NeedleDrive(motor, stroke, analog, tick_hz=1000, interlock=None)
        motor:  drivers.motor.Motor (enable / brake / coast; cc_addr, cc_shift, top1: the
                PWM compare register the tick writes)
        stroke: drivers.stroke_pio.StrokeCapture (fstat_addr, rx_empty: the PIO FIFO status
                the tick polls; get() pops a word, period_us = base - word, 0 unknown)
        analog: drivers.analog.Analog (read_current / read_battery: the raw readers; i_mul,
                i_shift, b_mul, b_shift; current_full_scale_ma)
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
      current_ma     motor current (low-passed ~2 ms)
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

Tick schedule (the tick is a hard IRQ: it must be short and even). The tick is one
@micropython.viper function over a preallocated int32 state array: every tick polls the PIO
FIFO status register and reads the current (over-current, I*R), checks stall and writes the PWM
compare register; each new stroke period gives the rate and one PI step; every 4th tick does
one of: battery, coil heat, set point + runaway, cannot-hold. The registers come from the
drivers (drivers/regs.py), so this module names no pin and no address. Native code: the pen
gets armv6m .mpy (pen deploy), the virtual pen and the tests the host's (x64) build; the
arithmetic is the same, every intermediate < 2**30 (ND-15; the tests re-run the tick with
range-checked integers). Viper reads a 32-bit word zero-extended on a 64-bit host, so stored
values that may be negative (the PI's integral and output) are kept with a bias.

Stroke edges as the hall gives them in the field (ND-18): a period shorter than GLITCH_US (a
double edge, contact bounce) or, once running steadily, shorter than 3/4 of the last period is
held; if it and the next one add up to the last period within +-25 %, they are one stroke (a
spurious edge), otherwise both count. Once running steadily a period of 1.75..2.25 times the
last one is a missed pulse: two strokes of half that period. So single double edges and single
missed pulses leave the rate and the protections alone (the stall limit is STALL_PERIODS = 3
periods for that reason); two missed pulses in a row are a stall. "Running steadily": the set
point at the target, four periods since the start, and the last two periods within 1/4 of each
other. A load step is no steady run: its first strokes are really that much longer or shorter
(a slow stroke of 1.5..1.7 periods under a step to full load at 50 Hz), and reading them as
glitches would throw the PI the wrong way (ND-02).

Sensor glitches on the ADC (PL-4): the current that the protections and the coil heat use is
the lower of the last two conversions (a PWM-edge spike or an outlier of one conversion never
counts; a real rise counts one tick later); the I*R feed-forward uses the last conversion,
low-passed over 2 ticks (the conversion read is the one started the tick before: 1 ms old). The
battery reading moves by at most 1/8 + 100 mV per conversion (one every 4 ticks): an outlier cannot
throw the duty far; a real sag of more is followed over the next conversions.

Protections, each latching a fault code and killing the motor in the same tick:
  stall / sensor loss: no hall stroke for STALL_PERIODS of the last period (bounded to
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
    STALL, a stroke since the current first went over the limit (the rotor turns through the
    over-current: a short at a high rate) -> OVERCURRENT, neither within OC_JUDGE_MS ->
    OVERCURRENT.
    (So a bridge stuck at full drive at a low set rate reports OVERCURRENT before the rate
    has run away.)
  overheat: low-passed I**2 (coil thermal time constant) above OVERHEAT_MA**2.
  battery low: battery below BATTERY_MIN_MV for BATTERY_LOW_MS (also refuses a start), or the
    controller pinned at the maximum duty with the rate more than HOLD_PCT % short for
    HOLD_MS (the battery cannot hold the rate).
  rate not held (ND-30): the controller pinned at the maximum duty with the rate more than
    SLOW_PCT % short in most slots (a leaky count) for SLOW_MS: RATE_LOW (an overload: the
    skin load beyond what the motor drives at this rate). Never a silent slowdown.
"""

import time
from array import array

import micropython
from micropython import const

from firmware import errors as E
from firmware import faults
from firmware.errors import Refused

TYPE_CHECKING = False
if TYPE_CHECKING:  # viper's pointer cast, for linters and type checkers
    from typing import Any

    def ptr32(x: Any) -> Any: ...


_DUTY_FULL = const(65535)
_MHZ = const(1000)
_US_PER_S = const(1_000_000)
_SINCE_MAX_US = const(1 << 28)  # "time since the last stroke" saturates here (small int)
_RATE_TIMEOUT_US = const(1_000_000)  # no stroke for 1 s: the rotor stands, rate 0
_BILLION = const(1_000_000_000)
_GLITCH_US = const(2000)  # no stroke is shorter (500 Hz: twice the free motor's top speed)
_BIAS = const(1 << 28)  # stored = value + _BIAS for the signed PI state (see the docstring)
_PI_SHIFT = const(16)
_OC_UP = const(8)  # leaky over-current count: up 8 per tick over the limit, down 1 under it

# Fault codes as the tick latches them (viper needs them as this module's constants; __init__
# checks them against firmware/faults.py).
_F_STALL = const(1)
_F_RUNAWAY = const(2)
_F_SENSOR_LOSS = const(3)
_F_OVERCURRENT = const(4)
_F_OVERHEAT = const(5)
_F_BATTERY_LOW = const(6)
_F_LOOP_HUNG = const(16)
_F_RATE_LOW = const(18)

# -- the state array: parameters (set once) and state, one int32 each -------------------------
_P_TICK_US = const(0)
_P_BASE = const(1)  # stroke capture: period_us = base - word
_P_RXEMPTY = const(2)  # this state machine's RXEMPTY bit in FSTAT
_P_I_MUL = const(3)
_P_I_SHIFT = const(4)
_P_B_MUL = const(5)
_P_B_SHIFT = const(6)
_P_TOP1 = const(7)  # PWM counts per period (TOP + 1)
_P_CC_SHIFT = const(8)
_P_SLEW_UP = const(9)
_P_DOWN = const(10)  # set point step down per slot (controlled stop, slewing down)
_P_REF_DOWN = const(11)
_P_KP = const(12)
_P_KI = const(13)
_P_OUT_BOUND = const(14)
_P_ERR_MAX = const(15)
_P_OC_N = const(16)
_P_RUNAWAY_N = const(17)
_P_BATT_N = const(18)
_P_HOLD_N = const(19)
_P_OC_BLANK = const(20)
_P_OC_JUDGE = const(21)
_P_STALL_MIN = const(22)
_P_STALL_MAX = const(23)
_P_STALL_PERIODS = const(24)
_P_BRAKE = const(25)
_P_OC_PEG = const(26)
_P_IR_Q10 = const(27)
_P_IR_MAX = const(28)
_P_HEAT_LIMIT = const(29)
_P_HEAT_SHIFT = const(30)
_P_FF_UV = const(31)
_P_FF_OFF = const(32)
_P_R_MOHM = const(33)
_P_DUTY_MAX = const(34)
_P_OVERCURRENT = const(35)
_P_BAT_MIN = const(36)
_P_HOLD_PCT = const(37)
_P_RUNAWAY_PCT = const(38)
_P_RUNAWAY_MARGIN = const(39)
_P_STOP_FLOOR = const(40)
_P_OC_WIND_PCT = const(41)
_P_OC_WIND_MA = const(42)
_RUNNING = const(43)
_STOPPING = const(44)
_TARGET_HZ = const(45)
_RATE = const(46)  # rate_mhz
_DUTY = const(47)
_I_F = const(48)  # current_ma (low-passed)
_I_ACC = const(49)
_I_RAW = const(50)
_BATT = const(51)  # battery_mv
_STROKES = const(52)
_FAULT = const(53)
_FAULT_MS = const(54)
_HEAT = const(55)
_HEAT_ACC = const(56)
_PERIOD = const(57)  # last accepted stroke period, 0 = none
_SINCE = const(58)  # µs since the last stroke
_EDGES_RUN = const(59)  # strokes since start(), counted to 2
_NACC = const(60)  # periods accepted since start(), counted to 4 ("running steadily")
_PEND = const(61)  # a short period held back (a possible spurious edge), 0 = none
_PHASE = const(62)
_RUN_TICKS = const(63)
_BRAKE_LEFT = const(64)
_OC_JUDGE = const(65)
_OC_LIM = const(66)
_OC_STROKES = const(67)
_STALL_US = const(68)
_V_SP = const(69)
_V_MAX = const(70)
_K_DUTY = const(71)
_SP = const(72)
_SP_UP = const(73)
_REF = const(74)
_INTEG = const(75)  # PI integral (mV << 16) + _BIAS
_PI_OUT = const(76)  # PI output (mV) + _BIAS
_PI_SAT = const(77)  # 1 + saturation (-1 / 0 / +1)
_OC_CNT = const(78)
_RUNAWAY_CNT = const(79)
_BATT_CNT = const(80)
_HOLD_CNT = const(81)
_LOOP_QUIET = const(82)
_LOOP_LIMIT = const(83)
_A_FSTAT = const(84)  # register addresses: low word, high word (0 on the chip)
_A_CC = const(86)
_A_ADC = const(88)
_P_AIN_I = const(90)  # ADC inputs of the current and the battery
_P_AIN_B = const(91)
_ADC_AIN = const(92)  # the input of the conversion started last tick (15: none)
_P_HEAT_TRIP = const(93)  # low-passed I**2 above which the coil is too hot
_P_FF_Q18 = const(94)  # FF_UV_PER_HZ as mV per mHz << 18
_P_RUNAWAY_Q10 = const(95)  # RUNAWAY_PCT / 100 << 10
_QPREV = const(96)  # the accepted period before _PERIOD (0 = none)
_P_SL_MIN_MA = const(97)
_P_SL_PCT = const(98)
_P_SL_MIN_MV = const(99)
_I_NEW = const(100)  # the current's last conversion (before the glitch filter)
_SLOW_CNT = const(101)  # leaky count of slots with the rate short at full drive
_P_SLOW_N = const(102)
_P_SLOW_PCT = const(103)
_N = const(104)
_ADC_GO = const(5)  # ADC CS: EN | START_ONCE
_ADC_READY = const(0x100)


def _status(i):
    return property(lambda self: self._s[i])


def _flag(i):
    return property(lambda self: self._s[i] != 0)


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

    # -- PI on the rate error (mV per mHz, << 16), one step per stroke -------------------------
    PI_SHIFT = _PI_SHIFT
    KP = 500  # 7.6 mV per Hz of error
    KI = 485  # 7.4 mV per Hz per stroke: half the dead-beat gain (Ke * 2 pi per Hz)
    PI_MIN_MV = -2500
    PI_MAX_MV = 3000
    PI_ERR_MAX_HZ = 200

    # -- protections ---------------------------------------------------------------------------
    STALL_PERIODS = 3  # a single missed hall pulse (2 periods) is not a stall
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
    # Rate not held (ND-30): at full drive with the rate short by more than SLOW_PCT % (the
    # ND-01 bound) in most slots, a leaky count (up 1 per such slot, down 1 per other slot)
    # reaches SLOW_MS worth of slots: RATE_LOW. Never a silent slowdown under an overload.
    SLOW_PCT = 1
    SLOW_MS = 300

    # -- status (read-only ints; bools for the flags), from the state array -------------------
    running = _flag(_RUNNING)
    stopping = _flag(_STOPPING)
    target_hz = _status(_TARGET_HZ)
    rate_mhz = _status(_RATE)
    duty = _status(_DUTY)
    current_ma = _status(_I_F)
    battery_mv = _status(_BATT)
    strokes = _status(_STROKES)
    fault_detect_ms = _status(_FAULT_MS)

    @property
    def heat(self):
        """I2t estimate, per mille of the OVERHEAT limit."""
        s = self._s
        return (s[_HEAT_ACC] >> s[_P_HEAT_SHIFT]) * 1000 // s[_P_HEAT_LIMIT]

    @property
    def fault(self):
        return self._s[_FAULT]

    @fault.setter
    def fault(self, code):
        self._s[_FAULT] = code

    def __init__(self, motor, stroke, analog, tick_hz=1000, interlock=None):
        if not 100 <= tick_hz <= 10_000:
            raise ValueError("tick_hz 100..10000")
        for code, mine in ((faults.STALL, _F_STALL), (faults.RUNAWAY, _F_RUNAWAY),
                           (faults.SENSOR_LOSS, _F_SENSOR_LOSS),
                           (faults.OVERCURRENT, _F_OVERCURRENT), (faults.OVERHEAT, _F_OVERHEAT),
                           (faults.BATTERY_LOW, _F_BATTERY_LOW),
                           (faults.LOOP_HUNG, _F_LOOP_HUNG),
                           (faults.RATE_LOW, _F_RATE_LOW)):  # fmt: skip
            if code != mine:
                raise ValueError("fault codes differ from firmware/faults.py")
        self._motor = motor
        self._interlock = interlock
        self.tick_hz = tick_hz
        # What the tick touches: the state array (with the register addresses in it) and the
        # PIO FIFO's get().
        s = self._s = array("i", bytes(4 * _N))
        self._get = stroke.get
        self._off = motor.off  # nSLEEP low: the bridge's outputs off (a trip's first act)
        self._in2_on = motor.in2_on  # IN2 high (with IN1 at full duty: brake)
        self._ms = time.ticks_ms
        tick_us = _US_PER_S // tick_hz
        slot_mhz = self._slot_mhz
        slots = self._slot_count
        ms = self._ms_ticks
        self._soft_up = slot_mhz(self.SOFT_START_HZ_PER_S)
        out_bound = max(-self.PI_MIN_MV, self.PI_MAX_MV)
        err_max = self.PI_ERR_MAX_HZ * _MHZ
        full_ma = analog.current_full_scale_ma
        i10 = full_ma // 10 + 1
        # Every worst-case intermediate of the tick below 2**30 (ND-15), for these settings.
        for v, what in ((err_max * max(self.KP, self.KI) + (out_bound << _PI_SHIFT), "PI"),
                        ((out_bound << _PI_SHIFT) + _BIAS, "PI integral"),
                        (i10 * i10 << self.OVERHEAT_SHIFT, "I2t low-pass"),
                        ((_BILLION // _GLITCH_US >> 4) * self._ff_q18(), "back-EMF"),
                        (self.MAX_HZ * _MHZ * self.RUNAWAY_PCT * 1024 // 100, "runaway"),
                        (_DUTY_FULL * motor.top1, "PWM compare"),
                        (self.DUTY_MAX * 6600, "duty * battery")):  # fmt: skip
            if not 0 <= v < (1 << 30):
                raise ValueError("%s exceeds the small-int range" % what)
        if self.PI_SHIFT != _PI_SHIFT or self.OVERHEAT_SHIFT > 20:
            raise ValueError("bad shifts")
        p = (
            (_P_TICK_US, tick_us), (_P_BASE, stroke.base), (_P_RXEMPTY, stroke.rx_empty),
            (_P_I_MUL, analog.i_mul), (_P_I_SHIFT, analog.i_shift),
            (_P_B_MUL, analog.b_mul), (_P_B_SHIFT, analog.b_shift),
            (_P_TOP1, motor.top1), (_P_CC_SHIFT, motor.cc_shift),
            (_P_SLEW_UP, slot_mhz(self.SLEW_HZ_PER_S)), (_P_DOWN, slot_mhz(self.STOP_HZ_PER_S)),
            (_P_REF_DOWN, slot_mhz(self.RUNAWAY_REF_DECAY_HZ_PER_S)),
            (_P_KP, self.KP), (_P_KI, self.KI), (_P_OUT_BOUND, out_bound), (_P_ERR_MAX, err_max),
            (_P_OC_N, _OC_UP * ms(self.OVERCURRENT_MS)), (_P_RUNAWAY_N, slots(self.RUNAWAY_MS)),
            (_P_BATT_N, slots(self.BATTERY_LOW_MS)), (_P_HOLD_N, slots(self.HOLD_MS)),
            (_P_OC_BLANK, ms(self.OC_BLANK_MS)), (_P_OC_JUDGE, ms(self.OC_JUDGE_MS)),
            (_P_STALL_MIN, self.STALL_MIN_MS * 1000), (_P_STALL_MAX, self.STALL_MAX_MS * 1000),
            (_P_STALL_PERIODS, self.STALL_PERIODS), (_P_BRAKE, ms(self.BRAKE_MS)),
            (_P_OC_PEG, full_ma * 97 // 100),
            (_P_IR_Q10, self.R_MOHM * self.IR_COMP_PCT * 1024 // 100_000),  # mV per mA, Q10
            (_P_IR_MAX, self.IR_COMP_MAX_MV),
            (_P_HEAT_LIMIT, (self.OVERHEAT_MA // 10) ** 2), (_P_HEAT_SHIFT, self.OVERHEAT_SHIFT),
            (_P_FF_UV, self.FF_UV_PER_HZ), (_P_FF_OFF, self.FF_OFFSET_MV),
            (_P_R_MOHM, self.R_MOHM), (_P_DUTY_MAX, self.DUTY_MAX),
            (_P_OVERCURRENT, self.OVERCURRENT_MA), (_P_BAT_MIN, self.BATTERY_MIN_MV),
            (_P_HOLD_PCT, self.HOLD_PCT), (_P_RUNAWAY_PCT, self.RUNAWAY_PCT),
            (_P_SLOW_PCT, self.SLOW_PCT), (_P_SLOW_N, slots(self.SLOW_MS)),
            (_P_RUNAWAY_MARGIN, self.RUNAWAY_MARGIN_HZ * _MHZ),
            (_P_STOP_FLOOR, self.STOP_FLOOR_HZ * _MHZ),
            (_P_OC_WIND_PCT, self.OC_WINDING_PCT), (_P_OC_WIND_MA, self.OC_WINDING_MA),
        )  # fmt: skip
        for i, v in p:
            s[i] = v
        for i, addr in ((_A_FSTAT, stroke.fstat_addr), (_A_CC, motor.cc_addr),
                        (_A_ADC, analog.cs_addr)):  # fmt: skip
            lo = addr & 0xFFFFFFFF
            s[i] = lo - (1 << 32) if lo >= 1 << 31 else lo
            s[i + 1] = addr >> 32
        s[_P_AIN_I] = analog.current_ain
        s[_P_AIN_B] = analog.battery_ain
        s[_ADC_AIN] = 15
        lim = s[_P_HEAT_LIMIT]
        s[_P_HEAT_TRIP] = (1001 * lim + 999) // 1000  # heat > 1000 per mille
        s[_P_FF_Q18] = self._ff_q18()
        s[_P_RUNAWAY_Q10] = self.RUNAWAY_PCT * 1024 // 100
        s[_P_SL_MIN_MA] = self.SENSOR_LOSS_MIN_MA
        s[_P_SL_PCT] = self.SENSOR_LOSS_EMF_PCT
        s[_P_SL_MIN_MV] = self.SENSOR_LOSS_EMF_MIN_MV
        s[_INTEG] = _BIAS
        s[_PI_OUT] = _BIAS
        s[_PI_SAT] = 1
        s[_OC_LIM] = s[_P_OC_PEG]
        s[_STALL_US] = self.START_TIMEOUT_MS * 1000
        s[_SP_UP] = self._soft_up
        self._standstill_us = self.STANDSTILL_MS * 1000
        self._start_timeout_us = self.START_TIMEOUT_MS * 1000
        motor.coast()
        self._battery_changed(analog.battery_mv())

    def _ff_q18(self):
        return (self.FF_UV_PER_HZ << 18) // 1_000_000

    def _slot_mhz(self, hz_per_s):
        """A rate of change in Hz/s as mHz per slot update (every 4 ticks)."""
        return max(1, hz_per_s * _MHZ * 4 // self.tick_hz)

    def _ms_ticks(self, ms):
        return max(1, ms * self.tick_hz // 1000)

    def _slot_count(self, ms):
        return max(1, ms * self.tick_hz // 4000)

    def _battery_changed(self, b_mv):
        s = self._s
        s[_BATT] = b_mv
        if b_mv < 1000:
            b_mv = 1000  # (a dead ADC must not divide by ~0)
        s[_K_DUTY] = (_DUTY_FULL << 10) // b_mv
        s[_V_MAX] = (self.DUTY_MAX * s[_BATT]) >> 16

    # -- commands (thread context) ------------------------------------------------------------
    def watch_loop(self, silence_ms=None):
        """Arm the event-loop dead-man (the app calls this once its loop runs)."""
        ms = self.LOOP_SILENCE_MS if silence_ms is None else silence_ms
        s = self._s
        s[_LOOP_QUIET] = 0
        s[_LOOP_LIMIT] = ms * 1000 // s[_P_TICK_US]

    def loop_alive(self):
        """The event loop turns: called from a task every few ms. Allocation-free."""
        self._s[_LOOP_QUIET] = 0

    def start(self, target_hz):
        """Soft start to target_hz. Refused (fault latched, interlock, bad rate, battery
        already below its minimum: that latches BATTERY_LOW, braking)."""
        s = self._s
        if s[_FAULT]:
            raise Refused(E.FAULT_ACTIVE)
        self._check_hz(target_hz)
        if self._interlock is not None and not self._interlock():
            raise Refused(E.BUSY, "interlock: not armed, homed and still")
        if s[_BATT] < self.BATTERY_MIN_MV:
            self._trip(faults.BATTERY_LOW)
            raise Refused(E.FAULT_ACTIVE)
        if s[_RUNNING]:
            s[_TARGET_HZ] = target_hz
            s[_STOPPING] = 0  # a start during a stop resumes (unless already braking)
            if s[_BRAKE_LEFT]:
                raise Refused(E.BUSY, "braking")
            return
        s[_TARGET_HZ] = target_hz
        sp = max(self.START_HZ * _MHZ, s[_RATE])
        s[_SP] = sp
        s[_SP_UP] = self._soft_up
        s[_REF] = sp
        s[_V_SP] = self._emf_mv(sp) + self.FF_OFFSET_MV
        s[_INTEG] = _BIAS
        s[_PI_OUT] = _BIAS
        s[_PI_SAT] = 1
        for i in (_OC_CNT, _RUNAWAY_CNT, _BATT_CNT, _HOLD_CNT, _SLOW_CNT, _OC_JUDGE, _RUN_TICKS,
                  _EDGES_RUN, _NACC, _PEND, _QPREV, _SINCE, _BRAKE_LEFT, _STOPPING):  # fmt: skip
            s[i] = 0
        s[_OC_LIM] = s[_P_OC_PEG]  # blanking: only a pegged ADC counts
        s[_STALL_US] = self._start_timeout_us
        # The tick (a hard IRQ) may run between any two lines here: `running` goes True only
        # once the state is prepared, and before the bridge wakes (a tick seeing an enabled
        # bridge while not running puts it back to sleep).
        s[_RUNNING] = 1
        self._motor.enable()
        if not s[_RUNNING]:
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
        self._s[_TARGET_HZ] = hz

    def stop(self):
        """Controlled stop: the set point ramps down, then the motor brakes and is released."""
        s = self._s
        if s[_RUNNING]:
            s[_STOPPING] = 1

    def kill(self):
        """Immediate safe state: bridge outputs off. Any context; allocation-free."""
        self._motor.coast()
        s = self._s
        s[_RUNNING] = 0
        s[_STOPPING] = 0
        s[_BRAKE_LEFT] = 0
        s[_OC_JUDGE] = 0
        s[_DUTY] = 0

    def clear_fault(self):
        """Un-latch the fault if the needle stands and the cause is gone."""
        s = self._s
        f = s[_FAULT]
        if not f:
            return
        if s[_RUNNING] or s[_SINCE] < self._standstill_us:
            raise Refused(E.FAULT_ACTIVE, "the needle still moves")
        if f == faults.BATTERY_LOW and s[_BATT] < self.BATTERY_MIN_MV:
            raise Refused(E.FAULT_ACTIVE, "battery still low")
        if f == faults.OVERHEAT and self.heat >= self.OVERHEAT_CLEAR_PERMILLE:
            raise Refused(E.FAULT_ACTIVE, "coil still hot")
        s[_FAULT] = faults.NONE
        s[_FAULT_MS] = 0

    # -- protections (called from the tick: viper, allocation-free) ---------------------------
    @micropython.viper
    def _trip(self, code: int):
        """Latch `code` and switch the bridge off at once: nSLEEP low, compare 0. (The motor
        driver's `enabled` follows in the next stopped slot; kill() or enable() set the rest.)"""
        self._off()
        s = ptr32(self._s)
        cc = ptr32((s[_A_CC + 1] << 32) | s[_A_CC])
        cc[0] = 0
        s[_RUNNING] = 0
        s[_STOPPING] = 0
        s[_BRAKE_LEFT] = 0
        s[_OC_JUDGE] = 0
        s[_DUTY] = 0
        if code and s[_FAULT] == 0:  # (code 0: the end of a controlled stop)
            s[_FAULT] = code
            s[_FAULT_MS] = int(self._ms())

    @micropython.viper
    def _stalled(self):
        """No stroke for STALL_PERIODS of the last period (bounded), or no two strokes within
        START_TIMEOUT_MS of a start: a blocked rotor, or a turning one the sensor misses. The
        back-EMF, V - I*R, tells: above SENSOR_LOSS_EMF_PCT % of the expected one (and some
        current flowing, the ADC not pegged) the rotor turns."""
        s = ptr32(self._s)
        i_ma = s[_I_F]
        code = _F_STALL
        if i_ma >= s[_P_SL_MIN_MA] and i_ma < s[_P_OC_PEG]:
            v_mv = (s[_DUTY] * s[_BATT]) >> 16  # < 2**16 * 6600 < 2**30
            emf = v_mv - i_ma * s[_P_R_MOHM] // 1000
            period = s[_PERIOD]
            floor = 0
            if period:
                floor = ((((_BILLION // period) >> 4) * s[_P_FF_Q18]) >> 14) * s[_P_SL_PCT] // 100
            if floor < s[_P_SL_MIN_MV]:
                floor = s[_P_SL_MIN_MV]
            if emf > floor:
                code = _F_SENSOR_LOSS
        self._trip(code)

    def _emf_mv(self, r_mhz):
        # Q18 without a division, as the tick computes it; r_mhz >> 4 keeps the product small
        # (500 Hz: 31250 * 3888 < 2**27).
        return ((r_mhz >> 4) * self._s[_P_FF_Q18]) >> 14

    # -- the control tick (hard IRQ: native integers only, no allocation) ---------------------
    def tick(self):
        self.tick_cb(None)

    @micropython.viper
    def tick_cb(self, _timer):
        s = ptr32(self._s)
        fst = ptr32((s[_A_FSTAT + 1] << 32) | s[_A_FSTAT])
        # -- strokes: the PIO FIFO's status, one load; the words only when there are some ----
        running = s[_RUNNING]
        if fst[0] & s[_P_RXEMPTY]:
            since = s[_SINCE]
            if since < _SINCE_MAX_US:
                since += s[_P_TICK_US]
                s[_SINCE] = since
            period = s[_PERIOD]
            if period and since > period:
                # The next stroke is late: the rate is at most 1/elapsed. The estimate falls
                # while the rotor slows down instead of holding the last value.
                if since > _RATE_TIMEOUT_US:
                    s[_PERIOD] = 0
                    s[_RATE] = 0
                else:
                    s[_RATE] = _BILLION // since
        else:
            steady = 0  # running steadily at its set rate: the relative checks apply
            if running and s[_NACC] >= 4 and s[_SP] == s[_TARGET_HZ] * _MHZ:
                if s[_BRAKE_LEFT] == 0 and s[_STOPPING] == 0:
                    # ... and the last two strokes agree within 1/4 (not a load transient,
                    # where a real stroke may be much shorter or longer than the last).
                    d = s[_PERIOD] - s[_QPREV]
                    if d < 0:
                        d = 0 - d
                    if d * 4 < s[_QPREV]:
                        steady = 1
            fresh = 0
            prov = 0  # a provisional rate while a short period is held
            while (fst[0] & s[_P_RXEMPTY]) == 0:
                w = int(self._get())
                if s[_EDGES_RUN] < 2:
                    s[_EDGES_RUN] += 1  # (only "two strokes since the start" matters)
                if w == 0:  # the first edge, or one after a gap longer than the capture's
                    s[_PEND] = 0
                    s[_STROKES] += 1
                    s[_SINCE] = 0
                    continue
                p = s[_P_BASE] - w
                if p < 1:
                    p = 1
                q = s[_PERIOD]
                pend = s[_PEND]
                a = 0  # periods accepted from this word: a (n_a strokes), then b
                n_a = 1
                b = 0
                if pend:
                    # A short period was held: it and this one are one stroke (a spurious
                    # edge inside it), or it ends the last stroke (a spurious edge just before
                    # the real one ended that stroke early), or both are real.
                    s[_PEND] = 0
                    q2 = s[_QPREV]
                    ef = pend + p - q
                    if ef < 0:
                        ef = 0 - ef
                    eb = _BILLION
                    if q2:
                        eb = q + pend - q2
                        if eb < 0:
                            eb = 0 - eb
                    if eb < ef and eb * 4 < q2:
                        q = q + pend  # the last stroke, corrected; this word is a new one
                        s[_PERIOD] = q
                        fresh = 1
                        pend = 0
                    elif q and ef * 4 < q:
                        a = pend + p
                    else:
                        a = pend
                        b = p
                if a == 0:
                    if p < _GLITCH_US or (steady != 0 and p * 4 < q * 3):
                        s[_PEND] = p  # too short for a stroke: wait for the next edge
                        q2 = s[_QPREV]
                        if q and q2:
                            e = q + p - q2
                            if e < 0:
                                e = 0 - e
                            if e * 8 < q2:
                                # Until the next edge tells, the likelier reading: the last
                                # stroke ended here (a spurious edge shortly before the real
                                # one ended it early), so the rate is 1 / (q + p).
                                prov = _BILLION // (q + p)
                    elif steady != 0 and p * 4 > q * 7 and p * 4 < q * 9:
                        a = p >> 1  # a missed pulse: two strokes of half the time
                        n_a = 2
                    else:
                        a = p
                if a:
                    prov = 0
                while a:
                    if a < _GLITCH_US:
                        a = _GLITCH_US  # (bounds the rate: every product below stays small)
                    s[_QPREV] = s[_PERIOD]
                    s[_PERIOD] = a
                    s[_STROKES] += n_a
                    if s[_NACC] < 4:
                        s[_NACC] += 1
                    fresh = 1
                    s[_SINCE] = 0
                    a = b
                    b = 0
                    n_a = 1
            if fresh:
                period = s[_PERIOD]
                rate = _BILLION // period
                s[_RATE] = rate
                if s[_EDGES_RUN] >= 2:
                    lim = period * s[_P_STALL_PERIODS]
                    if lim < s[_P_STALL_MIN]:
                        lim = s[_P_STALL_MIN]
                    elif lim > s[_P_STALL_MAX]:
                        lim = s[_P_STALL_MAX]
                    s[_STALL_US] = lim
                    if running and s[_BRAKE_LEFT] == 0:
                        # One PI step per stroke: the hall gives one measurement per stroke,
                        # so the loop is sampled at the stroke rate.
                        v_ir = (s[_I_F] * s[_P_IR_Q10]) >> 10
                        if v_ir > s[_P_IR_MAX]:
                            v_ir = s[_P_IR_MAX]
                        base = s[_V_SP] + v_ir
                        ob = s[_P_OUT_BOUND]
                        lo = 0 - base
                        hi = s[_V_MAX] - base
                        if lo < 0 - ob:
                            lo = 0 - ob
                        if hi > ob:
                            hi = ob
                        if lo > hi:
                            lo = hi
                        err = s[_SP] - rate
                        em = s[_P_ERR_MAX]
                        if err > em:
                            err = em
                        elif err < 0 - em:
                            err = 0 - em
                        i0 = s[_INTEG] - _BIAS
                        i = i0 + err * s[_P_KI]
                        lo_s = lo << _PI_SHIFT
                        hi_s = hi << _PI_SHIFT
                        if i > hi_s:
                            i = hi_s
                        elif i < lo_s:
                            i = lo_s
                        u = (err * s[_P_KP] + i) >> _PI_SHIFT
                        sat = 1
                        if u > hi:
                            u = hi
                            sat = 2
                            if err > 0 and i0 < i:
                                i = i0  # no further wind-up
                        elif u < lo:
                            u = lo
                            sat = 0
                            if err < 0 and i0 > i:
                                i = i0
                        s[_INTEG] = i + _BIAS
                        s[_PI_OUT] = u + _BIAS
                        s[_PI_SAT] = sat
            if prov:
                s[_RATE] = prov
        # -- the ADC: the conversion started last tick is done (2 µs); start the next --------
        ph = (s[_PHASE] + 1) & 3
        s[_PHASE] = ph
        adc = ptr32((s[_A_ADC + 1] << 32) | s[_A_ADC])
        cs = adc[0]
        ain = s[_ADC_AIN]
        raw = -1  # no sample this tick (none started, or another reader moved AINSEL)
        if cs & _ADC_READY:
            if ((cs >> 12) & 7) == ain:
                raw = adc[1] & 0xFFF
        nxt = s[_P_AIN_I]
        if ph == 3:
            nxt = s[_P_AIN_B]  # the battery slot (phase 0) reads it next tick
        adc[0] = (cs & 2) | _ADC_GO | (nxt << 12)
        s[_ADC_AIN] = nxt
        i_ma = s[_I_RAW]
        if raw >= 0 and ain == s[_P_AIN_I]:
            # The lower of the last two conversions: a spike or an outlier of one conversion
            # (a PWM edge's ringing) never counts, a real rise counts one tick later.
            i_ma = (raw * s[_P_I_MUL]) >> s[_P_I_SHIFT]
            i_p = s[_I_NEW]
            s[_I_NEW] = i_ma
            if i_p < i_ma:
                i_ma = i_p
            s[_I_RAW] = i_ma
        acc = s[_I_ACC]
        acc += s[_I_NEW] - (acc >> 1)  # low-pass over 2 ticks
        s[_I_ACC] = acc
        i_f = acc >> 1
        s[_I_F] = i_f
        if ph == 0:
            # Battery: the duty per mV follows a sag; low for BATTERY_LOW_MS trips.
            if raw >= 0 and ain == s[_P_AIN_B]:
                # One conversion moves the reading by at most 1/8 + 100 mV: an outlier cannot
                # throw the duty far (a real sag of more is followed over the next slots).
                b = (raw * s[_P_B_MUL]) >> s[_P_B_SHIFT]
                b1 = s[_BATT]
                dv = (b1 >> 3) + 100  # (the floor: a reading of 0 recovers)
                if b < b1 - dv:
                    b = b1 - dv
                elif b > b1 + dv:
                    b = b1 + dv
                s[_BATT] = b
                bb = b if b > 1000 else 1000  # (a dead ADC must not divide by ~0)
                s[_K_DUTY] = (_DUTY_FULL << 10) // bb
                s[_V_MAX] = (s[_P_DUTY_MAX] * b) >> 16
                if running:
                    c = 0
                    if b < s[_P_BAT_MIN]:
                        c = s[_BATT_CNT] + 1
                    s[_BATT_CNT] = c
                    if c >= s[_P_BATT_N]:
                        self._trip(_F_BATTERY_LOW)
                        return
        elif ph == 1:
            # Coil heat: I**2 (in (mA / 10)**2) low-passed over the thermal time constant.
            i10 = (i_ma * 6554) >> 16
            sh = s[_P_HEAT_SHIFT]
            hacc = s[_HEAT_ACC]
            hacc += i10 * i10 - (hacc >> sh)
            s[_HEAT_ACC] = hacc
            if running and (hacc >> sh) >= s[_P_HEAT_TRIP]:
                self._trip(_F_OVERHEAT)
                return
        if running == 0:
            s[_DUTY] = 0
            if ph == 2:
                m = self._motor
                if m.enabled:
                    # Defence: nothing drives the motor unless running (and after a trip, the
                    # driver's own flag follows): nSLEEP low, compare 0, one C call.
                    self._off()
                    cc = ptr32((s[_A_CC + 1] << 32) | s[_A_CC])
                    cc[0] = 0
                    m.enabled = False
            return
        if s[_LOOP_LIMIT]:
            lq = s[_LOOP_QUIET] + 1
            s[_LOOP_QUIET] = lq
            if lq > s[_LOOP_LIMIT]:
                self._trip(_F_LOOP_HUNG)
                return
        if s[_RUN_TICKS] < s[_P_OC_BLANK]:
            s[_RUN_TICKS] += 1
            if s[_RUN_TICKS] == s[_P_OC_BLANK]:
                s[_OC_LIM] = s[_P_OVERCURRENT]  # start-up blanking over
        brake_left = s[_BRAKE_LEFT]
        if ph == 2:
            # Set point ramp (soft start, slew, controlled stop), its feed-forward, runaway.
            target = s[_TARGET_HZ] * _MHZ
            sp = s[_SP]
            if s[_STOPPING]:
                if sp > 0:
                    sp -= s[_P_DOWN]
                    if sp < 0:
                        sp = 0
                if sp <= s[_P_STOP_FLOOR] and brake_left == 0:
                    # Brake: IN1 at full duty (compare = TOP + 1) and IN2 high.
                    cc = ptr32((s[_A_CC + 1] << 32) | s[_A_CC])
                    cc[0] = s[_P_TOP1] << s[_P_CC_SHIFT]
                    self._in2_on()
                    s[_DUTY] = 0
                    brake_left = s[_P_BRAKE]
                    s[_BRAKE_LEFT] = brake_left
            else:
                if target > sp:
                    sp += s[_SP_UP]
                    if sp > target:
                        sp = target
                elif target < sp:
                    sp -= s[_P_DOWN]
                    if sp < target:
                        sp = target
                if sp == target:
                    s[_SP_UP] = s[_P_SLEW_UP]  # soft start done: later changes slew faster
            s[_SP] = sp
            s[_V_SP] = (((sp >> 4) * s[_P_FF_Q18]) >> 14) + s[_P_FF_OFF]
            # Runaway reference: the larger of set point and target, falling slowly, so a
            # commanded slow-down or a stop (the rotor lags the ramp) is not a runaway.
            tr = sp if sp > target else target
            ref = s[_REF]
            if tr > ref:
                ref = tr
            elif tr < ref:
                ref -= s[_P_REF_DOWN]
                if ref < tr:
                    ref = tr
            s[_REF] = ref
            lim = ((ref * s[_P_RUNAWAY_Q10]) >> 10) + s[_P_RUNAWAY_MARGIN]
            c = 0
            if s[_RATE] > lim:
                c = s[_RUNAWAY_CNT] + 1
            s[_RUNAWAY_CNT] = c
            if c >= s[_P_RUNAWAY_N]:
                self._trip(_F_RUNAWAY)
                return
        elif ph == 3:
            # The controller pinned at full duty and the rate still short: cannot hold it.
            c = 0
            d = s[_SLOW_CNT]
            if s[_PI_SAT] == 2 and brake_left == 0:
                r100 = s[_RATE] * 100
                sp = s[_SP]
                if r100 < sp * (100 - s[_P_HOLD_PCT]):
                    c = s[_HOLD_CNT] + 1
                if r100 < sp * (100 - s[_P_SLOW_PCT]) and sp == s[_TARGET_HZ] * _MHZ:
                    d += 2  # (+1 net: the decrement below)
            if d > 0:
                d -= 1
            s[_SLOW_CNT] = d
            s[_HOLD_CNT] = c
            if c >= s[_P_HOLD_N]:
                self._trip(_F_BATTERY_LOW)
                return
            if d >= s[_P_SLOW_N]:
                self._trip(_F_RATE_LOW)
                return
        if s[_SINCE] > s[_STALL_US] and brake_left == 0:
            self._stalled()
            return
        if i_ma > s[_OC_LIM] or s[_OC_CNT] or s[_OC_JUDGE]:
            if self._check_current():
                return
        if brake_left:
            brake_left -= 1
            s[_BRAKE_LEFT] = brake_left
            if brake_left == 0:
                self._trip(0)  # end of a controlled stop: outputs off, no fault
            return
        # The command in mV: feed-forward of the set point + I*R + PI; then the duty.
        v_ir = (i_f * s[_P_IR_Q10]) >> 10
        if v_ir > s[_P_IR_MAX]:
            v_ir = s[_P_IR_MAX]
        v = s[_V_SP] + v_ir + s[_PI_OUT] - _BIAS
        if v < 0:
            v = 0
        elif v > s[_V_MAX]:
            v = s[_V_MAX]
        duty = (v * s[_K_DUTY]) >> 10
        if duty > _DUTY_FULL:
            duty = _DUTY_FULL
        s[_DUTY] = duty
        # The PWM compare register: duty_u16 * (TOP + 1) / 65535, rounded as machine.PWM does
        # (x // 65535 == (x + (x >> 16) + 1) >> 16 for every x < 65535 * 16384: no division).
        x = duty * s[_P_TOP1] + 32767
        cc = ptr32((s[_A_CC + 1] << 32) | s[_A_CC])
        cc[0] = ((x + (x >> 16) + 1) >> 16) << s[_P_CC_SHIFT]

    @micropython.viper
    def _check_current(self) -> int:
        """Over-current, or a locked rotor drawing V/R: the hall tells which. Called while
        the current is over the limit or the leaky count is not back to zero."""
        s = ptr32(self._s)
        i_ma = s[_I_RAW]
        c = s[_OC_CNT]
        if i_ma > s[_OC_LIM]:
            if c == 0:
                s[_OC_STROKES] = s[_STROKES]  # an excursion starts: strokes from here on
            c += _OC_UP
            if c > s[_P_OC_N]:
                c = s[_P_OC_N]
        elif c > 0:
            c -= 1
        s[_OC_CNT] = c
        if c >= s[_P_OC_N] and s[_OC_JUDGE] == 0:
            # More than the applied voltage can drive through a healthy winding, even a
            # stalled one: a short, or a bridge that does not obey the duty.
            v_mv = s[_DUTY] * s[_BATT] // _DUTY_FULL
            wmax = v_mv * 1000 // s[_P_R_MOHM] * s[_P_OC_WIND_PCT] // 100 + s[_P_OC_WIND_MA]
            if i_ma > wmax:
                self._trip(_F_OVERCURRENT)
                return 1
            s[_OC_JUDGE] = s[_P_OC_JUDGE]
        if s[_OC_JUDGE]:
            period = s[_PERIOD]
            if period == 0 or s[_SINCE] > period + (period >> 2):
                self._trip(_F_STALL)  # the next stroke is late: a locked rotor
                return 1
            s[_OC_JUDGE] -= 1
            if s[_STROKES] != s[_OC_STROKES] or s[_OC_JUDGE] == 0:
                self._trip(_F_OVERCURRENT)  # strokes go on: it turns, and draws too much
                return 1
        return 0
