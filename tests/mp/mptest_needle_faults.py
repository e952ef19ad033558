"""Needle drive protections on the virtual pen: each side-channel fault of the virtual board
(stall, runaway, sensor_loss, short, battery_low) is detected, puts the motor into the safe state
(bridge outputs off), latches a fault code and refuses a start until cleared; over-current
blanking at start-up; the I2t coil estimate; a battery that cannot hold the rate.

Times are measured on the virtual clock from the moment the fault is injected to the moment
the H-bridge's nSLEEP goes low."""

import time

import micropython
from mphelp import SIM, check, info, raises, req
from needle_rig import Rig, fresh_board, sleep_pin, time_to_off_us

from firmware import faults
from firmware.errors import Refused
from firmware.needle import NeedleDrive


def _running(hz, load=1.0, drive_cls=NeedleDrive):
    r = Rig(drive_cls)
    r.plant.load = load
    r.drive.start(hz)
    r.run_ms(500)
    check(r.drive.fault == faults.NONE and sleep_pin(), "healthy run before the fault")
    return r


def _inject_and_time(r, name, limit_ms):
    check(r.pen.inject(name) == "ok")
    t0_ms = time.ticks_ms()
    dt = time_to_off_us(limit_ms * 1000)
    d = r.drive
    check(dt is not None, "%s: motor still on after %d ms" % (name, limit_ms))
    check(not d.running and d.duty == 0 and not sleep_pin(), "safe state")
    check(0 <= time.ticks_diff(d.fault_detect_ms, t0_ms) <= limit_ms, "fault_detect_ms")
    return dt // 1000


def _latched(r, code):
    """The fault stays latched: a start is refused and the motor stays off."""
    d = r.drive
    check(d.fault == code, "fault %s, expected %s" % (faults.name(d.fault), faults.name(code)))
    raises(Refused, d.start, 100)
    r.run_ms(50)
    check(not sleep_pin() and d.fault == code, "still off and latched")


@req("ND-07", "ND-13")
def test_stall_motor_off_within_50ms():
    """ND-07, ND-13: a blocked rotor (no stroke edges while driven) switches the motor off within
    50 ms at every rate, with and without skin load, and latches STALL."""
    for hz in (50, 100, 150):
        for load in (0.0, 1.0):
            r = _running(hz, load)
            ms = _inject_and_time(r, "stall", 50)
            info("stall at %d Hz, load %.0f: off after %d ms" % (hz, load, ms))
            _latched(r, faults.STALL)
            fresh_board()


@req("ND-07", "ND-13")
def test_stall_at_start_within_start_timeout():
    """ND-07, ND-13: a rotor jammed before the start never gives a stroke: STALL within the start
    timeout, the motor off."""
    r = Rig()
    r.pen.inject("stall")
    r.drive.start(100)
    ms = time_to_off_us(NeedleDrive.START_TIMEOUT_MS * 1000 + 5000) // 1000
    info("jammed at start: off after %d ms" % ms)
    check(ms <= NeedleDrive.START_TIMEOUT_MS + 2, "off after %d ms" % ms)
    _latched(r, faults.STALL)


@req("ND-08", "ND-13")
def test_sensor_loss_detected():
    """ND-08, ND-13: hall edges missing while the current says the rotor turns (back-EMF): motor off
    within 50 ms, SENSOR_LOSS latched (not taken for a stall)."""
    for hz, load in ((50, 1.0), (150, 0.0)):
        r = _running(hz, load)
        ms = _inject_and_time(r, "sensor_loss", 50)
        info("sensor loss at %d Hz: off after %d ms" % (hz, ms))
        _latched(r, faults.SENSOR_LOSS)
        fresh_board()


@req("ND-09", "ND-10", "ND-13")
def test_runaway_detected():
    """ND-09, ND-10, ND-13: the bridge drives full voltage whatever the duty (a shorted
    switch): at 100 and 150 Hz the rate runs far above target -> RUNAWAY within 50 ms. At 50 Hz
    the full battery on the slow rotor first shows as a current no healthy winding draws at
    that duty -> OVERCURRENT within 10 ms (ND-10). Either way: off and latched."""
    for hz, code, limit in ((150, faults.RUNAWAY, 50), (100, faults.RUNAWAY, 50),
                            (50, faults.OVERCURRENT, 10)):  # fmt: skip
        r = _running(hz, 0.0)
        ms = _inject_and_time(r, "runaway", limit)
        info("runaway at %d Hz: %s after %d ms" % (hz, faults.name(r.drive.fault), ms))
        _latched(r, code)
        fresh_board()


def _short(hz):
    r = _running(hz, 1.0)
    ms = _inject_and_time(r, "short", 10)
    info("short at %d Hz: off after %d ms" % (hz, ms))
    _latched(r, faults.OVERCURRENT)
    fresh_board()


@req("ND-10", "ND-13")
def test_short_is_overcurrent_within_10ms():
    """ND-10, ND-13: a short across the motor terminals at 50 Hz under full skin load:
    OVERCURRENT latched, motor off within 10 ms."""
    _short(50)


@req("ND-10", "ND-13")
def test_short_at_150hz_under_full_load_is_overcurrent_within_10ms():
    """ND-10, ND-13: a short across the motor terminals at 150 Hz under full skin load:
    OVERCURRENT latched, motor off within 10 ms."""
    _short(150)


@req("ND-10")
def test_overcurrent_blanking_at_start():
    """ND-10: the start-up current may exceed the over-current limit during the blanking
    time without a fault; without the blanking the same start trips."""

    class LowLimit(NeedleDrive):
        OVERCURRENT_MA = 200  # below the start-up inrush (~310 mA), above the run (~30 mA)

    class NoBlank(LowLimit):
        OC_BLANK_MS = 0

    r = Rig(LowLimit)
    r.drive.start(50)
    r.run_ms(400)
    check(r.drive.fault == faults.NONE and r.drive.running, "blanked start tripped")
    fresh_board()
    r = Rig(NoBlank)
    r.drive.start(50)
    r.run_ms(100)
    check(r.drive.fault != faults.NONE and not sleep_pin(), "unblanked start did not trip")


@req("ND-11", "ND-13")
def test_overheat_i2t():
    """ND-11, ND-13: with the production rating (OVERHEAT_MA 700 mA RMS, a 4.1 s thermal time
    constant), a drag that keeps the coil at ~765 mA (a binding cam bearing: the loop holds
    100 Hz by pushing more current) latches OVERHEAT after the time the I2t model predicts
    (4.1 s x ln(1 / (1 - (700/765)^2)) ~ 7.4 s), not within a short burst of the same current;
    the estimate cools while idle, and the fault clears only below half the limit."""
    d = NeedleDrive
    check(d.OVERHEAT_MA == 700 and d.OVERHEAT_SHIFT == 10, "production constants changed")
    r = _running(100, 0.0)
    r.plant.T_coulomb = 1.8e-3  # the bearing binds
    r.run_ms(2000)  # a 2 s burst: heat rises, no trip
    check(r.drive.fault == faults.NONE, "tripped within 2 s: %d" % r.drive.fault)
    check(300 < r.drive.heat < 1000, "heat after 2 s: %d" % r.drive.heat)
    i_ma = r.drive.current_ma
    check(720 <= i_ma <= 850, "the drag's current %d mA" % i_ma)
    ms = time_to_off_us(12_000_000) // 1000 + 2000
    info("overheat after %d ms at ~%d mA" % (ms, i_ma))
    check(r.drive.fault == faults.OVERHEAT, "fault %s" % faults.name(r.drive.fault))
    check(5000 <= ms <= 10000, "I2t at ~%d mA tripped after %d ms (model: ~7400)" % (i_ma, ms))
    r.plant.T_coulomb = r.pen.unit_params["T_coulomb"]  # freed again
    raises(Refused, r.drive.clear_fault)  # still hot
    t0 = SIM.now
    while True:
        check(SIM.now - t0 < 6_000_000, "still hot after 6 s: %d" % r.drive.heat)
        r.run_ms(100)
        try:
            r.drive.clear_fault()
            break
        except Refused:
            pass
    cool_ms = (SIM.now - t0) // 1000
    # from ~1000 per mille to below 500: 4.1 s x ln 2 ~ 2.8 s of idle
    check(2000 <= cool_ms <= 4000, "cooled to the clear threshold in %d ms" % cool_ms)
    check(r.drive.fault == faults.NONE and r.drive.heat < d.OVERHEAT_CLEAR_PERMILLE, "clear")


@req("ND-12", "ND-13")
def test_battery_low_detected_and_cleared():
    """ND-12, ND-13: a battery sagging below its minimum while running: BATTERY_LOW within 150 ms,
    motor off; the fault cannot be cleared while the battery is low; once it is back, it
    clears and the drive starts again. A start on a low battery is refused and latches it."""
    r = _running(100, 1.0)
    ms = _inject_and_time(r, "battery_low", 150)
    info("battery low at 100 Hz: off after %d ms" % ms)
    _latched(r, faults.BATTERY_LOW)
    raises(Refused, r.drive.clear_fault)
    r.pen.inject("none")
    r.run_ms(NeedleDrive.STANDSTILL_MS + 700)  # the rotor coasts down, then stands
    r.drive.clear_fault()
    check(r.drive.fault == faults.NONE, "clear")
    r.drive.start(100)
    r.run_ms(300)
    check(r.drive.running and r.drive.fault == faults.NONE, "running again")
    r.drive.kill()
    r.pen.inject("battery_low")
    r.run_ms(20)
    raises(Refused, r.drive.start, 100)
    check(r.drive.fault == faults.BATTERY_LOW, "start on a flat battery")
    check(not sleep_pin(), "never driven")


@req("ND-12")
def test_cannot_hold_rate_is_battery_low():
    """ND-12: duty pinned at its maximum while the rate stays more than 5 % short (the battery
    cannot hold the rate): BATTERY_LOW after HOLD_MS, motor off."""

    class Headroom(NeedleDrive):
        DUTY_MAX = 30000  # as if the battery gave only ~46 % of what the rate needs

    r = Rig(Headroom)
    r.plant.load = 1.0
    r.drive.start(150)
    ms = time_to_off_us(1_500_000) // 1000
    info("cannot hold 150 Hz: off after %d ms" % ms)
    check(r.drive.fault == faults.BATTERY_LOW, "fault %s" % faults.name(r.drive.fault))
    check(ms >= Headroom.HOLD_MS, "not before HOLD_MS (%d ms)" % ms)


@req("ND-13", "ND-14")
def test_clear_refused_while_the_rotor_turns_and_kill_is_allocation_free():
    """ND-13, ND-14: kill() switches the bridge off at once from a heap-locked context (as from
    an IRQ); a latched fault cannot be cleared while the rotor still turns (strokes within
    STANDSTILL_MS), and can once it stands."""
    r = _running(150, 0.0)
    micropython.heap_lock()
    try:
        r.drive.kill()
    finally:
        micropython.heap_unlock()
    check(not sleep_pin() and not r.drive.running, "kill: off at once")
    r.drive.fault = faults.RUNAWAY  # latched by a protection
    r.run_ms(5)
    check(r.drive.rate_mhz > 0, "still coasting")
    raises(Refused, r.drive.clear_fault)
    r.run_ms(1500)
    check(r.plant.stroke_hz() == 0, "stands")
    r.drive.clear_fault()
    r.drive.start(100)


@req("ND-17", "SF-03")
def test_hung_event_loop_dead_man():
    """ND-17, SF-03: with the dead-man armed, a running needle whose event loop stops calling
    loop_alive() is switched off within LOOP_SILENCE_MS (+ one tick) and LOOP_HUNG latches;
    while the loop reports in every 10 ms, nothing trips for a whole second."""
    r = _running(100, load=0.5)
    d = r.drive
    d.watch_loop()
    for _ in range(100):  # the loop turning: 1 s
        d.loop_alive()
        r.run_ms(10)
    check(d.fault == faults.NONE and sleep_pin(), "a live loop never trips the dead-man")
    d.loop_alive()  # its last sign of life
    t0 = SIM.now
    dt = time_to_off_us((NeedleDrive.LOOP_SILENCE_MS + 20) * 1000)
    check(dt is not None, "motor still on after the loop went silent")
    ms = (SIM.now - t0) // 1000
    info("loop silent: motor off after %d ms" % ms)
    check(NeedleDrive.LOOP_SILENCE_MS <= ms <= NeedleDrive.LOOP_SILENCE_MS + 2, "off at %d ms" % ms)
    _latched(r, faults.LOOP_HUNG)


@req("ND-30")
def test_a_rate_the_motor_cannot_hold_latches_rate_low():
    """ND-30: unit 7 at 150 Hz under twice the published top of the skin load runs ~3 % slow at
    full drive: RATE_LOW latches within 600 ms of the step (SLOW_MS of slots short by more than
    1 %, a leaky count), the motor goes off, and the fault's words name the cause."""
    r = Rig(unit=7)
    r.drive.start(150)  # Refused would raise
    r.run_ms(400)
    check(r.drive.fault == faults.NONE, "fault before the load")
    r.plant.load = 2.0
    off = time_to_off_us(600_000)
    r.stop_timer()
    info("unit 7, 150 Hz, 2 x load: off after %r us, %s" % (off, faults.name(r.drive.fault)))
    check(off is not None and off >= NeedleDrive.SLOW_MS * 1000, "off after %r us" % off)
    check(r.drive.fault == faults.RATE_LOW, "fault %s" % faults.name(r.drive.fault))
    check(not sleep_pin() and not r.drive.running, "motor still on")
    check("rate not held" in faults.text(faults.RATE_LOW), faults.text(faults.RATE_LOW))
