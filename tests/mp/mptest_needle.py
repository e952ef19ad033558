"""Needle drive on the virtual pen: stroke-rate accuracy, load-step recovery, open loop for
comparison, soft start, controlled stop, commands, and the PWM registers.

Every run uses the real drivers on the virtual board with the control tick on a hard
machine.Timer, which the virtual pen calls with the heap locked: each test here also proves the
tick paths it exercises allocate nothing. Rates are the plant's truth (cam turns), not the
firmware's own measurement."""

import machine
import micropython
from mphelp import SIM, check, info, raises, req
from needle_rig import Rig, sleep_pin, step_response

import hardware.pins as P
from firmware import errors as E
from firmware import faults
from firmware.errors import Refused
from firmware.needle import NeedleDrive

SETTLE_MS = 400
MEAN_MS = 500


def _accuracy_and_load_step(hz):
    r = Rig()
    r.drive.start(hz)
    r.run_ms(SETTLE_MS)
    free = r.mean_hz(MEAN_MS)
    r.plant.load = 1.0  # the needle meets skin: full load from one step to the next
    worst, rec = step_response(r, hz, 300)
    loaded = r.mean_hz(MEAN_MS)
    e0 = (free - hz) * 100 / hz
    e1 = (loaded - hz) * 100 / hz
    info("%d Hz: no load %+.3f %%, full load %+.3f %%, load step worst %+.1f %%, back within "
         "3 %% after %d ms" % (hz, e0, e1, worst, rec))  # fmt: skip
    check(abs(e0) <= 1.0, "%d Hz without load: mean %.3f Hz" % (hz, free))
    check(abs(e1) <= 1.0, "%d Hz under full load: mean %.3f Hz" % (hz, loaded))
    check(rec <= 150, "%d Hz: load step recovery %d ms > 150 ms" % (hz, rec))
    check(worst < -1.0, "the load step must be visible at all (worst %.2f %%)" % worst)
    check(r.drive.fault == faults.NONE, "fault %d" % r.drive.fault)


@req("ND-01", "ND-02")
def test_50hz_rate_and_load_step():
    """ND-01, ND-02: 50 Hz held within +-1 % (mean) without and with full skin load; after the
    load step the rate is back within +-3 % in <= 150 ms."""
    _accuracy_and_load_step(50)


@req("ND-01", "ND-02")
def test_100hz_rate_and_load_step():
    """ND-01, ND-02: as at 50 Hz, at 100 Hz."""
    _accuracy_and_load_step(100)


@req("ND-01", "ND-02")
def test_150hz_rate_and_load_step():
    """ND-01, ND-02: as at 50 Hz, at 150 Hz."""
    _accuracy_and_load_step(150)


@req("ND-02")
def test_open_loop_loses_more_than_5_percent_under_the_same_load():
    """ND-02 (why the loop matters): a fixed duty that gives the rate without load (the closed
    loop's own steady duty) loses more than 5 % under the same full load."""
    r = Rig()
    drops = []
    for hz in (50, 100, 150):
        r.plant.load = 0.0
        if r.timer is None:
            r.timer = machine.Timer(-1, freq=1000, callback=r.drive.tick_cb, hard=True)
        r.drive.start(hz)
        r.run_ms(SETTLE_MS)
        duty = r.drive.duty
        r.stop_timer()  # open loop from here: the same drivers, no tick
        r.motor.drive(duty)
        free = r.mean_hz(300)
        r.plant.load = 1.0
        r.run_ms(300)
        loaded = r.mean_hz(300)
        drop = (hz - loaded) * 100 / hz
        drops.append(drop)
        info("open loop %d Hz: duty %d, no load %.2f Hz, full load %.2f Hz (-%.1f %%)"
             % (hz, duty, free, loaded, drop))  # fmt: skip
        check(abs(free - hz) * 100 / hz < 1.5, "open-loop duty does not give %d Hz" % hz)
        check(drop > 5.0, "open loop at %d Hz lost only %.2f %%" % (hz, drop))
        r.drive.kill()
        r.run_ms(300)  # coast down before the next rate


@req("ND-15")
def test_tick_runs_heap_locked_for_a_simulated_second():
    """ND-15: a whole simulated second of control (start, load step, rate change, stop) with
    every tick called under micropython.heap_lock(): 1000 ticks, no MemoryError."""
    r = Rig()
    r.drive.start(100)
    r.run_ms(300)
    r.plant.load = 1.0
    r.run_ms(200)
    r.drive.set_target(150)
    r.run_ms(200)
    r.drive.stop()
    r.run_ms(300)
    check(r.timer.calls == 1000, "ticks: %d" % r.timer.calls)
    check(not r.drive.running and r.drive.fault == faults.NONE, "clean stop")
    # The same tick called directly with the heap locked (idle and running paths).
    r.drive.start(50)
    micropython.heap_lock()
    try:
        for _ in range(50):
            r.drive.tick()
        r.drive.kill()
        r.drive.tick()
    finally:
        micropython.heap_unlock()


@req("ND-16")
def test_pwm_registers_match_the_request():
    """ND-16: 20 kHz on the motor slice (TOP 6249, divider 1: 6250 duty levels), the compare
    value the tick writes into the slice's CC register is the duty asked for; IN2 low while
    driving; nSLEEP low = off; brake =
    both inputs high."""
    r = Rig()
    pwm = SIM.board.pwm[P.MOTOR_IN1]
    check(pwm.top == 6249 and pwm.div16 == 16, "TOP %d div16 %d" % (pwm.top, pwm.div16))
    check(pwm.freq() == 20_000 and r.motor.freq() == 20_000, "freq %d" % pwm.freq())
    check(pwm.slice == 1 and pwm.channel == 0, "IN1 is slice 1 A")
    check(pwm.cc == 0 and not sleep_pin(), "constructed off")
    r.drive.start(120)
    for _ in range(5):
        r.run_ms(60)
        d = r.drive.duty
        # The tick writes the compare register itself: machine.PWM reads back what it holds.
        check(abs(pwm.duty_u16() - d) <= 6, "duty %d vs %d" % (d, pwm.duty_u16()))
        check(pwm.cc == (d * 6250 + 32767) // 65535, "cc %d for duty %d" % (pwm.cc, d))
        check(0 < d <= NeedleDrive.DUTY_MAX, "duty in range")
        check(sleep_pin() == 1 and SIM.board.out.get(P.MOTOR_IN2) == 0, "driving forward")
    r.stop_timer()
    r.motor.brake()
    check(pwm.cc == 6250 and SIM.board.out.get(P.MOTOR_IN2) == 1 and sleep_pin(), "brake")
    r.motor.drive(30000)
    check(r.motor.duty == 30000 == pwm.duty_requested, "drive() through machine.PWM")
    r.motor.drive(70000)  # clamped, and leaves the brake
    check(pwm.cc == 6250 and SIM.board.out.get(P.MOTOR_IN2) == 0, "full duty, IN2 low")
    r.motor.coast()
    check(pwm.cc == 0 and not sleep_pin() and not r.motor.enabled, "coast: off")


@req("ND-04")
def test_soft_start_and_controlled_stop():
    """ND-04: the start ramps the rate up (no jump to the target, overshoot under 5 %); the
    stop ramps down, brakes and switches the bridge off without a fault."""
    r = Rig()
    r.plant.load = 1.0
    r.drive.start(150)
    trace = r.trace_hz(500)
    first = trace[0][1]
    peak = max(h for _t, h in trace)
    t90 = None
    for t, h in trace:
        if h >= 135 and t90 is None:
            t90 = t // 1000
    info("soft start to 150 Hz: first stroke %.1f Hz, 90 %% at %s ms, peak %.1f Hz"
         % (first, t90, peak))  # fmt: skip
    check(first < 80, "first stroke already %.1f Hz: no soft start" % first)
    check(t90 is not None and 100 <= t90 <= 400, "ramp time %s ms" % t90)
    check(peak < 150 * 1.05, "overshoot: %.1f Hz" % peak)
    r.drive.stop()
    check(r.drive.stopping and r.drive.running, "stopping")
    rates = []
    for _ in range(40):
        r.run_ms(10)
        rates.append(r.plant.stroke_hz())
        if not r.drive.running:
            break
    check(not r.drive.running and not r.drive.stopping, "stopped")
    check(not sleep_pin(), "bridge off after the stop")
    check(r.drive.fault == faults.NONE, "no fault from a stop")
    check(rates[2] > 60, "ramp, not a cut: %.0f Hz 30 ms into the stop" % rates[2])
    check(r.plant.stroke_hz() < 1.0, "rotor stopped (%.1f Hz)" % r.plant.stroke_hz())


@req("ND-01", "ND-05")
def test_rate_change_and_battery_compensation():
    """ND-01, ND-05: a new target is reached and held; a battery sag (4.1 V -> 3.5 V while
    running under load) keeps the rate within +-3 %: the duty follows the battery."""
    r = Rig()
    r.pen.battery.v_open = 4.1
    r.run_ms(50)
    r.plant.load = 1.0
    r.drive.start(80)
    r.run_ms(SETTLE_MS)
    r.drive.set_target(130)
    r.run_ms(300)
    m = r.mean_hz(300)
    check(abs(m - 130) < 1.3, "130 Hz after the change: %.2f" % m)
    d0 = r.drive.duty
    r.pen.battery.v_open = 3.5
    worst, rec = step_response(r, 130, 300)
    d1 = r.drive.duty
    info("battery 4.1 -> 3.5 V at 130 Hz: worst %+.2f %%, duty %d -> %d" % (worst, d0, d1))
    check(abs(worst) < 3.0, "rate moved %.2f %% with the battery" % worst)
    check(d1 > d0 * 110 // 100, "duty must rise with the sag: %d -> %d" % (d0, d1))


@req("ND-06", "DS-56")
def test_start_refusals_change_nothing():
    """ND-06, DS-56: start() refuses (Refused with an error code, motor not enabled) with a bad
    rate, while the interlock says no, and while a fault is latched."""
    allowed = [False]
    r = Rig(interlock=lambda: allowed[0])
    d = r.drive
    for bad in (49, 151, 0, -100, 100.0, "100", None, True):
        e = raises(Refused, d.start, bad)
        check(e.code in (E.OUT_OF_RANGE, E.BAD_ARGUMENT), "start(%r): %r" % (bad, e.args))
    raises(Refused, d.start, 100)
    r.run_ms(50)
    check(not d.running and not sleep_pin() and d.target_hz == 0, "nothing changed")
    allowed[0] = True
    d.start(100)
    r.run_ms(200)
    d.kill()
    d.fault = faults.STALL  # as a latched fault would leave it
    raises(Refused, d.start, 100)
    check(not sleep_pin(), "motor stays off")


@req("ND-06")
def test_set_target_validation():
    """ND-06: set_target takes integers 50..150 only; a bad value is refused (Refused) and leaves
    the target as it was."""
    r = Rig(timer=False)
    d = r.drive
    d.set_target(77)
    for bad in (49, 151, 100.5, "100", None, True):
        raises(Refused, d.set_target, bad)
        check(d.target_hz == 77, "target changed by %r" % (bad,))
    d.set_target(50)
    d.set_target(150)
    check(d.target_hz == 150)


@req("ND-14")
def test_status_attributes_during_a_run():
    """ND-14: the status the rest of the firmware reads: measured rate (reciprocal, in mHz)
    agrees with the plant, stroke count follows the cam, current and battery are plausible."""
    r = Rig()
    d = r.drive
    s0 = d.strokes
    t0 = r.plant.turns
    d.start(120)
    r.run_ms(600)
    check(d.running and not d.stopping and d.target_hz == 120, "flags")
    check(abs(d.rate_mhz - 120_000) < 1200, "rate_mhz %d" % d.rate_mhz)
    check(abs(d.rate_mhz / 1000 - r.plant.stroke_hz()) < 2, "measured vs plant")
    turns = r.plant.turns - t0
    check(abs((d.strokes - s0) - turns) <= 1, "strokes %d vs turns %d" % (d.strokes - s0, turns))
    check(3700 < d.battery_mv < 4000, "battery %d mV" % d.battery_mv)
    check(0 < d.current_ma < 200, "current %d mA" % d.current_ma)
    check(0 < d.duty < 65535 and d.fault == 0 and d.fault_detect_ms == 0, "duty/fault")
    check(d.running is True and d.stopping is False, "flags are bools")
    for name in ("target_hz", "rate_mhz", "duty", "current_ma", "battery_mv", "strokes", "fault",
                 "fault_detect_ms"):  # fmt: skip
        v = getattr(d, name)
        check(type(v) is int, "%s is %r" % (name, v))


@req("ND-14")
def test_analog_scaling_in_integers():
    """ND-14: the ADC readings become mA and mV with the board's scale factors (pins.py),
    integer-only, within one count of the exact value, up to full scale; bad factors are
    refused."""
    from drivers.analog import Analog

    r = Rig(timer=False)
    an = r.analog
    raw = [0]
    SIM.board.adc[P.MOTOR_CURRENT] = lambda: raw[0]
    SIM.board.adc[P.BATTERY] = lambda: raw[0]
    ma_per_count = P.ADC_VREF_MV * 1000 / 4095 / P.CURRENT_MV_PER_A
    mv_per_count = P.ADC_VREF_MV * P.BATTERY_DIVIDER / 4095
    for count in (0, 1, 7, 100, 1234, 2047, 3000, 4094, 4095):
        raw[0] = (count << 4) | (count >> 8)  # read_u16() of a 12-bit conversion
        ma = an.current_ma()
        mv = an.battery_mv()
        check(abs(ma - count * ma_per_count) <= 1, "count %d: %d mA" % (count, ma))
        check(abs(mv - count * mv_per_count) <= 1.7, "count %d: %d mV" % (count, mv))
    check(an.current_full_scale_ma == 1319, "full scale %d mA" % an.current_full_scale_ma)
    micropython.heap_lock()
    try:
        an.current_ma()
        an.battery_mv()
    finally:
        micropython.heap_unlock()
    raises(ValueError, Analog, None, None, 0, 2500, 2, 0, 1)
    raises(ValueError, Analog, None, None, 3300, 2500, 0, 0, 1)
    raises(ValueError, Analog, None, None, 3300, 2500, 2, 0, 4)
    # The plant's battery (3.9 V open, no load) as the driver reads it.
    SIM.board.adc[P.BATTERY] = r.pen.battery.adc
    r.run_ms(1)
    # The reference unit's ADC noise is 2 LSB sigma (sim/plant_units.py), 3.2 mV here: 4 sigma.
    check(abs(an.battery_mv() - 3900) <= 13, "battery %d mV" % an.battery_mv())
