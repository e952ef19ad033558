"""The depth axis on the virtual pen: homing, limits, moves, backlash, faults and retract.

Every test runs on the virtual clock with the plant's lead-screw errors, backlash, switch
scatter and bounce; the firmware knows none of them."""

import micropython
from depth_rig import Rig, mean_sd
from mphelp import SIM, check, info, raises, req

from firmware import errors, faults
from firmware.homing import Homing

DEEP = 1400  # plant µsteps: about 3.5 mm, near the far end of the travel


@req("DS-2")
def test_needle_locked_out_until_homed():
    """DS-2: the axis reports not homed (needle_ok false) from power-up until homing
    completes, and while homing; moves are refused (NOT_HOMED / BUSY) meanwhile."""
    rig = Rig()
    ax = rig.axis
    check(not ax.homed and not ax.needle_ok and ax.position_um is None)
    e = raises(errors.Refused, ax.move_to_um, 500)
    check(e.code == errors.NOT_HOMED, "code %d" % e.code)
    check(rig.plant.pulses == 0, "a refused move stepped")
    ax.home()
    rig.run(until=lambda: rig.model.steps_emitted > 50)
    check(ax.homing and not ax.homed and not ax.needle_ok, "homing state")
    e = raises(errors.Refused, ax.move_to_um, 500)
    check(e.code in (errors.NOT_HOMED, errors.BUSY))
    rig.run()
    check(ax.homed and ax.needle_ok and not ax.homing)


@req("DS-1")
def test_homing_time_from_far_end_and_from_power_up():
    """DS-1: two-phase homing (fast seek, back off, slow re-touch) completes within
    1.5 s from anywhere in the travel, with no step lost, and leaves the stop at the target
    depth (0 mm after power-up)."""
    for start, poll_us in ((DEEP, 2000), (400, 1000), (DEEP, 5000)):
        rig = Rig(start_usteps=start, poll_us=poll_us)
        ms = rig.home()
        info("homing from %d usteps, poll %d us: %d ms" % (start, poll_us, ms))
        check(ms <= 1500, "homing took %d ms" % ms)
        check(rig.plant.missed == 0, "missed %d" % rig.plant.missed)
        check(rig.axis.target_um == 0)
        check(abs(rig.gauge_um()) < 150, "not near 0 mm: %d um" % rig.gauge_um())


@req("DS-3")
def test_homing_repeatability_50_homes():
    """DS-3: over 50 homes, approached from different depths, the stop returns to the same
    depth with a standard deviation <= 5 µm (the switch scatters by a few µm, bounces, and
    the slow re-touch samples it after every single step)."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    readings = []
    for i in range(50):
        rig.go(300 + (i * 397) % 2600)  # come to the switch from a different depth each time
        rig.home()
        rig.go(1000)
        readings.append(rig.gauge_um())
        check(abs(ax.home_offset) <= Homing.LOST_STEPS_TOL, "re-home offset %d" % ax.home_offset)
    m, sd = mean_sd(readings)
    info("50 homes: mean %.1f um, sd %.2f um, range %d um"
         % (m, sd, max(readings) - min(readings)))  # fmt: skip
    check(sd <= 5.0, "homing sd %.2f um" % sd)
    check(rig.plant.missed == 0)


@req("DS-10", "DS-11", "DS-56")
def test_out_of_range_targets_refused_and_nothing_moves():
    """DS-10, DS-11, DS-56: move_to_um below 0 or above the limit, or not an integer, is
    refused inside the axis (Refused OUT_OF_RANGE / BAD_ARGUMENT); nothing moves, the target
    stays, no fault latches."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.go(1200)
    ax.set_limit_um(2000)
    pulses = rig.plant.pulses
    for bad, code in ((-10, errors.OUT_OF_RANGE), (2010, errors.OUT_OF_RANGE),
                      (-1, errors.OUT_OF_RANGE), (10**9, errors.OUT_OF_RANGE),
                      (1.5, errors.BAD_ARGUMENT), ("900", errors.BAD_ARGUMENT),
                      (True, errors.BAD_ARGUMENT), (None, errors.BAD_ARGUMENT)):  # fmt: skip
        e = raises(errors.Refused, ax.move_to_um, bad)
        check(e.code == code, "%r: code %d" % (bad, e.code))
    SIM.advance(50_000)
    ax.poll()
    check(rig.plant.pulses == pulses, "a refused request moved the stop")
    check(ax.target_um == 1200 and not ax.fault and not ax.busy)
    rig.go(2000)  # the limit itself is allowed
    check(abs(rig.gauge_um() - 2000) < 120)
    e = raises(errors.Refused, ax.set_limit_um, 3301)
    check(e.code == errors.OUT_OF_RANGE and ax.limit_um == 2000)
    # A step count or a limit that is not an integer: BAD_ARGUMENT, nothing changes.
    pulses = rig.plant.pulses
    for bad in (1.5, "10", None, True):
        e = raises(errors.Refused, ax.move_steps, bad)
        check(e.code == errors.BAD_ARGUMENT, "move_steps(%r): %d" % (bad, e.code))
        e = raises(errors.Refused, ax.set_limit_um, 2000.0 if bad == 1.5 else bad)
        check(e.code == errors.BAD_ARGUMENT and ax.limit_um == 2000, "set_limit_um(%r)" % bad)
    SIM.advance(50_000)
    ax.poll()
    check(rig.plant.pulses == pulses and not ax.busy and not ax.fault, "moved on a refusal")


@req("DS-12")
def test_service_moves_clamped_to_the_soft_range():
    """DS-12: raw service moves (calibration) are clamped to MIN_STEPS .. the limit's step,
    whatever step count is asked for."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    ax.set_limit_um(1000)
    ax.move_steps(1400)
    rig.run()
    check(ax.position_steps == ax.max_steps(), "at %d" % ax.position_steps)
    check(ax.calib.um_for_steps(ax.position_steps) <= 1000)
    ax.move_steps(-1400)
    rig.run()
    check(ax.position_steps == ax.MIN_STEPS)
    e = raises(errors.Refused, ax.move_steps, 5000)
    check(e.code == errors.OUT_OF_RANGE)


@req("DS-13")
def test_lowering_the_limit_brings_the_stop_back():
    """DS-13: a limit lowered below the stop's depth moves the stop back within it; a limit
    lowered below a running move's goal is refused (BUSY), so the move never ends beyond it."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.go(2500)
    ax.set_limit_um(1500)
    check(ax.target_um == 1500)
    rig.run()
    check(ax.position_steps <= ax.max_steps() and abs(rig.gauge_um() - 1500) < 100)
    ax.set_limit_um(3000)
    ax.move_to_um(2800)
    SIM.advance(10_000)
    ax.poll()
    e = raises(errors.Refused, ax.set_limit_um, 2000)
    check(e.code == errors.BUSY and ax.limit_um == 3000)
    ax.set_limit_um(2900)  # still above the goal: fine while moving
    rig.run()
    check(ax.limit_um == 2900 and ax.target_um == 2800)


@req("DS-21")
def test_full_range_move_within_250ms():
    """DS-21: a full-range move 0 <-> 3.00 mm takes at most 250 ms each way (trapezoid at
    10k µsteps/s, 200k µsteps/s²), including the backlash take-up, without losing a step."""
    rig = Rig()
    rig.home()
    rig.go(0)
    out_ms = rig.go(3000)
    in_ms = rig.go(0)
    info("full range: out %d ms, in %d ms (poll granularity 2 ms)" % (out_ms, in_ms))
    check(out_ms <= 250 and in_ms <= 250, "out %d ms, in %d ms" % (out_ms, in_ms))
    check(rig.plant.missed == 0)


@req("DS-23")
def test_every_move_ends_outwards():
    """DS-23: every move's last steps travel outwards, whichever side it comes from; a move
    inwards overshoots inwards by TAKEUP_STEPS first (never past the target outwards)."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    for um in (2000, 500, 1500, 1490, 1490, 0, 10):
        pos_before = ax.position_steps
        log = rig.model.log = bytearray()
        rig.go(um)
        goal = ax.calib.steps_for_um(um)
        if log:
            check(log[-1] == 1, "move to %d um ended inwards" % um)
        # never beyond the goal on the way
        deepest = pos_before
        p = pos_before
        for d in log:
            p += 1 if d else -1
            deepest = max(deepest, p)
        check(deepest <= max(goal, pos_before), "overshot outwards to %d" % deepest)
        check(ax.position_steps == max(goal, ax.MIN_STEPS))


@req("DS-22")
def test_new_target_during_a_move_is_taken_after_it():
    """DS-22: a target given while a move runs is reached after the running move ends."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    ax.move_to_um(2500)
    SIM.advance(20_000)
    ax.poll()
    ax.move_to_um(800)
    rig.run()
    check(ax.target_um == 800 and ax.position_steps == ax.calib.steps_for_um(800))


@req("DS-40")
def test_endstop_never_found_latches_and_retracts():
    """DS-40: with the switch never closing, homing gives up after its travel (or its
    timeout): HOME_NOT_FOUND latches once, homing stops, the stop ends fully retracted."""
    rig = Rig(start_usteps=DEEP)
    rig.inject("endstop_open")
    ax = rig.axis
    ax.home()
    ms = rig.run()
    check(ax.fault == faults.HOME_NOT_FOUND, "fault %d" % ax.fault)
    check(rig.faults == [faults.HOME_NOT_FOUND], "reported %r" % rig.faults)
    check(not ax.homed and not ax.homing and not ax.needle_ok)
    check(rig.gauge_um() < 0, "not retracted: %d um" % rig.gauge_um())
    info("home_not_found after %d ms" % ms)
    e = raises(errors.Refused, ax.home)
    check(e.code == errors.FAULT_ACTIVE)
    rig.inject("none")
    ax.clear_fault()
    rig.home()


@req("DS-41")
def test_endstop_stuck_closed_latches_and_retracts():
    """DS-41: a switch closed at homing and still closed after the back-off latches
    ENDSTOP_STUCK; the stop is driven fully in (position unknown) and ends retracted."""
    rig = Rig(start_usteps=1100)
    rig.inject("endstop_closed")
    ax = rig.axis
    ax.home()
    rig.run()
    check(ax.fault == faults.ENDSTOP_STUCK, "fault %d" % ax.fault)
    check(rig.faults == [faults.ENDSTOP_STUCK])
    check(not ax.homed and not ax.needle_ok)
    check(rig.gauge_um() < 0, "not retracted: %d um" % rig.gauge_um())


@req("DS-41")
def test_switch_sticking_while_homed_latches_and_retracts():
    """DS-41: homed and away from home, a switch that reads closed latches ENDSTOP_STUCK
    and the stop retracts to the safe depth."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.go(2000)
    rig.inject("endstop_closed")
    rig.run(until=lambda: ax.fault != 0)
    rig.run()
    check(ax.fault == faults.ENDSTOP_STUCK, "fault %d" % ax.fault)
    check(abs(rig.gauge_um()) < 100, "not at the safe depth: %d um" % rig.gauge_um())
    check(ax.target_um == 0 and not ax.needle_ok)


@req("DS-41")
def test_leaving_home_at_full_speed_with_late_polls_is_not_a_stuck_switch():
    """DS-41: the switch is judged stuck on its debounced state, which lags the switch by
    Endstop.SAMPLES polls: leaving home at full speed with polls 2 to 12 ms apart (on the chip a
    poll waits behind a ~10 ms serial reply) the stop is 100-300 steps out before the opening
    is confirmed, and no ENDSTOP_STUCK latches; a switch that really sticks closed there still
    latches it, within 2 polls of the debounce."""
    for poll_us in (2000, 5000, 12000):
        rig = Rig(poll_us=poll_us)
        rig.home()
        ax = rig.axis
        for um in (2500, 800, 2800):
            rig.go(um)
            # the re-home of SF-13 (`cartridge new`): it ends at the switch, closed, and goes
            # straight back out to the target at full speed
            ax.home()
            rig.run()
            check(ax.fault == 0, "poll %d us: fault %d leaving home for %d um"
                  % (poll_us, ax.fault, um))  # fmt: skip
            check(ax.homed and not ax.busy and ax.target_um == um)
            check(abs(rig.gauge_um() - um) < 150, "at %d um, not %d" % (rig.gauge_um(), um))
        rig.inject("endstop_closed")
        polls = 0
        while ax.fault == 0 and polls < 20:
            rig.run(until=lambda: True)  # one poll
            polls += 1
        check(ax.fault == faults.ENDSTOP_STUCK, "poll %d us: fault %d" % (poll_us, ax.fault))
        info("poll %d us: stuck switch latched after %d polls" % (poll_us, polls))
        check(polls <= ax._es.SAMPLES + 2, "%d polls" % polls)


@req("DS-57")
def test_a_poll_held_up_mid_move_loses_no_step():
    """DS-57: the loop held up mid-move for longer than the segments in flight last (4 x 3 ms;
    on the chip a ~10 ms serial reply does it): the PIO runs dry and the rotor stops; the rest
    of the leg starts again from rest, so the plant's motor (which cannot jump to the cruise
    rate) loses no step, in a move and in homing's seek, and the stop ends at its target."""
    for gap_ms in (15, 40):
        rig = Rig(start_usteps=DEEP)
        ax = rig.axis
        ax.home()
        rig.run(until=lambda: rig.model.steps_emitted > 300)  # in the fast seek inwards
        SIM.advance(gap_ms * 1000)  # no poll meanwhile
        rig.run()
        check(ax.homed and ax.fault == 0, "gap %d ms in the seek: fault %d" % (gap_ms, ax.fault))
        ax.move_to_um(2800)
        n0 = rig.model.steps_emitted
        rig.run(until=lambda: rig.model.steps_emitted > n0 + 200)  # at the cruise rate
        SIM.advance(gap_ms * 1000)
        rig.run()
        check(ax.fault == 0 and not ax.busy, "gap %d ms in a move: fault %d" % (gap_ms, ax.fault))
        check(rig.plant.missed == 0, "gap %d ms: %d steps missed" % (gap_ms, rig.plant.missed))
        check(abs(rig.gauge_um() - 2800) < 150, "at %d um" % rig.gauge_um())
        ax.home()  # the re-home finds the switch where it left it: no step lost
        rig.run()
        check(ax.homed and abs(ax.home_offset) <= Homing.LOST_STEPS_TOL,
              "re-home offset %d" % ax.home_offset)  # fmt: skip
        info("gap %d ms: homed and moved with no step lost" % gap_ms)


@req("DS-42")
def test_lost_steps_found_by_rehome():
    """DS-42: steps lost to a binding screw (outward steps missed) are found by the next
    re-home: the switch is off its expected step, LOST_STEPS latches, the axis is unhomed and
    the stop is retracted."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.inject("missed_steps")
    for um in (2500, 300, 2800, 500):
        rig.go(um)
    check(rig.plant.missed > 0, "the bind lost nothing")
    rig.inject("none")
    ax.rehome_check()
    rig.run()
    check(ax.fault == faults.LOST_STEPS, "fault %d" % ax.fault)
    check(rig.faults == [faults.LOST_STEPS])
    info("re-home found the switch %d steps off (plant lost %d)" % (ax.home_offset,
                                                                   rig.plant.missed))
    check(not ax.homed and rig.gauge_um() < 0)
    ax.clear_fault()
    rig.home()
    check(abs(ax.home_offset) == 0, "first home after the fault checks nothing")


@req("DS-42")
def test_overspeed_loses_steps_and_rehome_catches_it():
    """DS-42: driving the motor faster than it follows (a mis-set speed) loses steps in the
    plant; the re-home check latches LOST_STEPS instead of trusting the count."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    ax.SPEED_SPS = 15_000  # above the motor's 12k µsteps/s
    for um in (3000, 0, 3000, 0):
        rig.go(um)
    check(rig.plant.missed > 0)
    ax.rehome_check()
    rig.run()
    check(ax.fault == faults.LOST_STEPS, "fault %d" % ax.fault)


@req("DS-42")
def test_clean_rehome_passes_the_check():
    """DS-42: without lost steps a re-home finds the switch within LOST_STEPS_TOL."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    for um in (2500, 300, 2800, 500):
        rig.go(um)
    ax.rehome_check()
    rig.run()
    check(ax.homed and not ax.fault and abs(ax.home_offset) <= Homing.LOST_STEPS_TOL)


@req("DS-40")
def test_stalled_stepper_times_out_homing():
    """DS-40: if the step generator stops (no completion tokens), homing's travel timeout
    latches HOME_NOT_FOUND rather than waiting for ever."""
    rig = Rig()
    ax = rig.axis
    ax.home()
    rig.run(until=lambda: rig.model.steps_emitted > 20)
    rig.stepper._sm.active(0)
    rig.run(max_ms=Homing.HOME_TIMEOUT_MS + 500, until=lambda: ax.fault != 0)
    check(ax.fault == faults.HOME_NOT_FOUND and not ax.homing)


@req("DS-43")
def test_explicit_retract_goes_to_safe_depth_only_inwards():
    """DS-43: retract() takes the stop to the safe depth (0 mm) from any depth, and never
    moves it outwards."""
    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.go(2200)
    ax.retract()
    rig.run()
    check(ax.target_um == 0 and abs(rig.gauge_um()) < 100, "%d um" % rig.gauge_um())
    ax.move_steps(-200)  # shallower than the safe depth
    rig.run()
    p = ax.position_steps
    ax.retract()
    rig.run()
    check(ax.position_steps == p, "retract moved outwards")


@req("DS-55")
def test_feeding_the_pio_allocates_nothing():
    """DS-55: the code that runs every poll while moving allocates nothing: the planner's
    segments, the stepper's software queue and the counting of completion tokens all run under
    micropython.heap_lock(). (Handing a word to the state machine is the shim's sm.put, which
    allocates on the unix port only; on the pen it is a register write.)"""
    from firmware.motion import TrapezoidPlanner

    rig = Rig()
    st = rig.stepper
    st.enable(True)
    pl = TrapezoidPlanner()
    n = 0
    micropython.heap_lock()
    try:
        pl.plan(800, 10_000, 200_000)
        for _ in range(4):
            s = pl.next_segment()
            st.queue(s, pl.interval, 1)
            n += s
    finally:
        micropython.heap_unlock()
    st.service()  # the four words go to the state machine
    check(st.in_flight == 4)
    for _ in range(40):
        SIM.advance(1000)
        micropython.heap_lock()
        try:
            st.service()  # tokens counted, nothing left to put
        finally:
            micropython.heap_unlock()
    check(not st.busy and st.position == n and st._sm.words_read == 4, "pos %d" % st.position)
    check(rig.plant.pulses == n)
