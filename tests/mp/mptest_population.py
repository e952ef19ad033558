"""The firmware on a population of virtual pens (sim/plant_units.py): units drawn from the
parts' tolerances, noisy sensors, field glitches and skin load up to twice its published top.

`make test` runs a sample of units (SAMPLE); `make bench` runs the same checks over 24 units
(bench/stroke_loop.py, bench/depth_axis.py). The firmware's constants stay nominal: it never
knows which unit it drives. Rates are the plant's truth (cam turns), not the firmware's own
measurement."""

# mp-timeout: 600
import gc

import plant_units
from mphelp import SIM, check, info, req
from needle_rig import Rig, fresh_board, step_response, time_to_off_us

from firmware import faults
from firmware.needle import NeedleDrive

SAMPLE = (1, 2, 3)  # drawn units run in `make test`; the bench runs 0..23
RATES = (50, 100, 150)
SETTLE_MS = 400
MEAN_MS = 500


def _rig(unit, **kw):
    fresh_board()
    gc.collect()
    return Rig(unit=unit, **kw)


def _mean_hz(r, ms):
    """True mean rate over the next `ms` from the cam's turns, without keeping every edge."""
    st = [0, 0, 0]  # edges, first, last

    def on_turn(t):
        if not st[0]:
            st[1] = t
        st[0] += 1
        st[2] = t

    r.plant.turn_listeners.append(on_turn)
    SIM.advance(ms * 1000)
    r.plant.turn_listeners.remove(on_turn)
    return (st[0] - 1) * 1e6 / (st[2] - st[1]) if st[0] > 1 else 0.0


@req("PL-2")
def test_units_are_reproducible_and_the_firmware_constants_are_the_nominal():
    """PL-2: unit 0 is the datasheet nominal and the firmware's motor constants are those
    nominals (not any unit's draw); every other unit is a reproducible draw inside its stated
    band, different from its neighbours."""
    nom = plant_units.NOMINAL
    check(plant_units.draw(0) == dict(nom, unit=0), "unit 0 is not the nominal")
    r_total = nom["R"] + nom["R_DS"]
    check(NeedleDrive.R_MOHM == round(r_total * 1000), "R_MOHM %d" % NeedleDrive.R_MOHM)
    ke_uv = nom["Ke"] * 2 * 3.141592653589793 * 1e6
    check(abs(NeedleDrive.FF_UV_PER_HZ - ke_uv) <= 5, "FF_UV_PER_HZ %d" % NeedleDrive.FF_UV_PER_HZ)
    fric_mv = nom["T_coulomb"] / nom["Ke"] * r_total * 1000
    check(abs(NeedleDrive.FF_OFFSET_MV - fric_mv) <= 1, "FF_OFFSET_MV vs %.1f" % fric_mv)
    seen = set()
    for u in range(1, 25):
        a = plant_units.draw(u)
        check(a == plant_units.draw(u), "unit %d drew differently twice" % u)
        for key, kind, band in plant_units.TOLERANCES:
            v = a[key]
            if kind == "rel":
                ok = abs(v / nom[key] - 1.0) <= band + 1e-9
            elif kind == "abs":
                base = 0.0 if key == "pitch_error" else nom[key]
                ok = abs(v - base) <= band + 1e-9
            else:
                ok = band[0] <= v <= band[1]
            check(ok, "unit %d: %s = %r outside its band" % (u, key, v))
        seen.add(round(a["R"], 6))
    check(len(seen) == 24, "units share a draw")
    # the RP2040-E11 wide codes: an input sweep lands on each spike code for ~dnl_lsb + 1 LSB
    import plant_motor

    adc = plant_motor.Adc()
    adc.dnl_lsb = 9.0
    hits = 0
    x = 480.0
    while x < 560.0:
        if adc.code(x) == 511:
            hits += 1
        x += 0.1
    check(95 <= hits <= 105, "code 511 covers %.1f LSB of input" % (hits / 10))
    check(adc.code(0.0) == 0 and adc.code(4095.0) == 4095, "scale ends")


def _rate_and_step(unit, hz, load=1.0):
    r = _rig(unit)
    r.drive.start(hz)  # Refused would raise
    r.run_ms(SETTLE_MS)
    free = r.mean_hz(MEAN_MS)
    r.plant.load = load
    worst, rec = step_response(r, hz, 300)
    loaded = r.mean_hz(MEAN_MS)  # 300..800 ms after the step
    r.stop_timer()
    return (free - hz) * 100 / hz, (loaded - hz) * 100 / hz, worst, rec, r.drive.fault


@req("PL-3", "ND-01", "ND-02")
def test_rate_and_load_step_hold_on_sampled_units():
    """PL-3, ND-01, ND-02: on each sampled unit, at 50, 100 and 150 Hz, the mean rate is within
    +-1 % without load and 300..800 ms after a step to full skin load, and back within +-3 %
    <= 150 ms after the step, with no fault."""
    for u in SAMPLE:
        for hz in RATES:
            e0, e1, worst, rec, fault = _rate_and_step(u, hz)
            info("unit %d %d Hz: %+.2f %% / %+.2f %% loaded, worst %+.0f %%, back in %d ms"
                 % (u, hz, e0, e1, worst, rec))  # fmt: skip
            where = "unit %d at %d Hz" % (u, hz)
            check(fault == faults.NONE, "%s: fault %d" % (where, fault))
            check(abs(e0) <= 1.0 and abs(e1) <= 1.0, "%s: %+.2f %% / %+.2f %%" % (where, e0, e1))
            check(rec <= 150, "%s: recovery %d ms" % (where, rec))


def _run_with_glitch(name, rate, hz=100, ms=3000, unit=0):
    r = _rig(unit)
    check(r.pen.glitch([name, str(rate)]) == "ok", "glitch refused")
    r.drive.start(hz)  # Refused would raise
    r.run_ms(SETTLE_MS)
    r.plant.load = 1.0
    r.run_ms(300)
    mean = _mean_hz(r, ms)
    counts = r.pen.glitch([])
    r.stop_timer()
    return r, (mean - hz) * 100 / hz, counts


@req("PL-4", "ND-01")
def test_a_single_missed_hall_pulse_neither_trips_nor_slows():
    """PL-4, ND-01: one hall pulse lost under full load, at 50, 100 and 150 Hz and at four
    points of the run: no fault, and the mean rate over the next second within +-1 %."""
    for hz in RATES:
        for extra_ms in (0, 7, 13, 29):
            r = _rig(0)
            r.drive.start(hz)  # Refused would raise
            r.run_ms(SETTLE_MS)
            r.plant.load = 1.0
            r.run_ms(300 + extra_ms)
            r.plant.hall_miss_rate = 1.0
            t0 = SIM.now
            while r.plant.glitches["hall_miss"] < 1:
                check(SIM.now - t0 < 100_000, "no edge to lose")
                SIM.advance(100)
            r.plant.hall_miss_rate = 0.0
            err = (_mean_hz(r, 1000) - hz) * 100 / hz
            r.stop_timer()
            where = "%d Hz (+%d ms)" % (hz, extra_ms)
            check(r.drive.fault == faults.NONE, "%s: fault %d" % (where, r.drive.fault))
            check(abs(err) <= 1.0, "%s: %+.2f %%" % (where, err))


@req("PL-4", "ND-01")
def test_missed_hall_pulses_at_1_percent_neither_trip_nor_slow():
    """PL-4, ND-01: one hall pulse in 100 lost (at random) for 10 s under full load, at 50, 100
    and 150 Hz: no fault, and the mean rate within +-1 %."""
    for hz in RATES:
        r, err, counts = _run_with_glitch("hall_miss", 0.01, hz, ms=10_000)
        info("%d Hz, 1 %% missed pulses: %+.2f %%, fault %d (%s)"
             % (hz, err, r.drive.fault, counts))  # fmt: skip
        check(r.drive.fault == faults.NONE, "%d Hz: fault %d" % (hz, r.drive.fault))
        check(r.plant.glitches["hall_miss"] >= 3, "too few pulses lost at %d Hz" % hz)
        check(abs(err) <= 1.0, "%d Hz: %+.2f %%" % (hz, err))


@req("PL-4", "ND-01")
def test_current_spikes_at_5_percent_neither_trip_nor_slow():
    """PL-4, ND-01: 5 % of the current conversions hit by a PWM-edge spike (0.2..1 x the ADC's
    full scale) for 3 s under full load: no fault (no over-current), the mean rate within
    +-1 %."""
    for hz in RATES:
        r, err, counts = _run_with_glitch("current_spike", 0.05, hz)
        check(r.plant.glitches["current_spike"] > 100, "too few spikes at %d Hz" % hz)
        info("%d Hz, 5 %% current spikes: %+.2f %%" % (hz, err))
        check(r.drive.fault == faults.NONE, "%d Hz: fault %d" % (hz, r.drive.fault))
        check(abs(err) <= 1.0, "%d Hz: %+.2f %%" % (hz, err))


@req("PL-4", "ND-07")
def test_a_real_stall_is_still_caught_through_the_glitches():
    """PL-4, ND-07: with 5 % current spikes and 1 % missed pulses present, a blocked rotor at
    100 Hz under load still switches the motor off within 50 ms and latches STALL."""
    r = _rig(0)
    r.pen.glitch(["current_spike", "0.05"])
    r.pen.glitch(["hall_miss", "0.01"])
    r.drive.start(100)  # Refused would raise
    r.run_ms(SETTLE_MS)
    r.plant.load = 1.0
    r.run_ms(300)
    check(r.drive.fault == faults.NONE, "tripped before the stall: %d" % r.drive.fault)
    r.plant.fault = "stall"
    off = time_to_off_us(60_000)
    check(off is not None and off <= 50_000, "motor off after %r us" % off)
    check(r.drive.fault == faults.STALL, "fault %d" % r.drive.fault)


@req("PL-4", "ND-01")
def test_hall_double_edges_at_1_percent_neither_trip_nor_slow():
    """PL-4, ND-01: one stroke in 100 with a bounce (a second rising edge 5..100 us after the
    first) for 3 s under full load, at 50, 100 and 150 Hz: no fault, the mean rate within
    +-1 %."""
    for hz in RATES:
        r, err, counts = _run_with_glitch("hall_double", 0.01, hz)
        info("%d Hz, 1 %% double edges: %+.2f %%, fault %d" % (hz, err, r.drive.fault))
        check(r.plant.glitches["hall_double"] >= 1, "no double edge at %d Hz" % hz)
        check(r.drive.fault == faults.NONE, "%d Hz: fault %d" % (hz, r.drive.fault))
        check(abs(err) <= 1.0, "%d Hz: %+.2f %%" % (hz, err))


@req("PL-4", "ND-01")
def test_adc_outliers_at_1_percent_neither_trip_nor_slow():
    """PL-4, ND-01: one ADC conversion in 100 (either channel) returns a random code, for 3 s
    under full load at 50, 100 and 150 Hz: no fault, the mean rate within +-1 %."""
    for hz in RATES:
        r, err, counts = _run_with_glitch("adc_outlier", 0.01, hz)
        info("%d Hz, 1 %% ADC outliers: %+.2f %%, fault %d" % (hz, err, r.drive.fault))
        check(r.plant.conv.outliers > 20, "too few outliers at %d Hz" % hz)
        check(r.drive.fault == faults.NONE, "%d Hz: fault %d" % (hz, r.drive.fault))
        check(abs(err) <= 1.0, "%d Hz: %+.2f %%" % (hz, err))


def _envelope(unit, hz, loads):
    """For each load: ('held', err) when the mean rate 300..800 ms after the step is within
    +-1 % with no fault, ('fault', code) when a fault latched, ('SLOW', err) otherwise."""
    out = []
    for load in loads:
        e0, e1, worst, rec, fault = _rate_and_step(unit, hz, load)
        if fault != faults.NONE:
            out.append((load, "fault", fault))
        elif abs(e1) <= 1.0:
            out.append((load, "held", round(e1, 2)))
        else:
            out.append((load, "SLOW", round(e1, 2)))
    return out


@req("PL-5", "ND-01")
def test_skin_load_envelope_of_the_reference_unit():
    """PL-5, ND-01: on the reference unit, skin load from 0.5 to 2 x the published top
    (docs/plant.md), at 50, 100 and 150 Hz: up to the published top (1.0) the rate holds within
    +-1 %; beyond it, each point either holds or latches a fault (STALL, RATE_LOW); none runs on
    slow without a fault."""
    for hz in RATES:
        env = _envelope(0, hz, (0.5, 1.0, 1.5, 2.0))
        info("unit 0 at %d Hz: %s" % (hz, env))
        for load, what, v in env:
            check(what != "SLOW", "%d Hz at load %.1f: silently %+.2f %% off" % (hz, load, v))
            if load <= 1.0:
                check(what == "held", "%d Hz at load %.1f: %s %s" % (hz, load, what, v))
            if what == "fault":
                check(v in (faults.STALL, faults.BATTERY_LOW, faults.RATE_LOW), "fault %d" % v)


@req("PL-5", "ND-01", "ND-30")
def test_skin_load_beyond_the_top_never_slows_silently_on_drawn_units():
    """PL-5, ND-01, ND-30: on units 4, 7, 9 and 22 at 150 Hz (those that cannot hold the rate
    at twice the published top), skin load 1.5 and 2 x the published top: each point either
    holds within +-1 % or latches a fault that names the cause; none runs on slow without one."""
    for u in (4, 7, 9, 22):
        env = _envelope(u, 150, (1.5, 2.0))
        info("unit %d at 150 Hz: %s" % (u, env))
        for load, what, v in env:
            check(what != "SLOW", "unit %d, 150 Hz, load %.1f: silently %+.2f %% off"
                  % (u, load, v))  # fmt: skip
            if what == "fault":
                check(v in (faults.STALL, faults.RATE_LOW), "unit %d: fault %d" % (u, v))
