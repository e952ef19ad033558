"""The trapezoidal segment planner: exact step counts, speed and acceleration bounds, short
(triangle) moves, and no allocation while planning and handing out segments."""

import micropython
from mphelp import check, info, raises, req

from firmware.motion import TrapezoidPlanner, duration_us, segments

US = 1_000_000


def _check_profile(n, speed, accel, seg_us=None):
    segs = segments(n, speed, accel, seg_us)
    check(sum(s for s, _ in segs) == n, "n=%d: %d steps planned" % (n, sum(s for s, _ in segs)))
    if not n:
        check(segs == [])
        return segs
    start = min(TrapezoidPlanner.START_SPS, speed)
    # first and last segments at the start speed (the motor's pull-in), ramps mirrored
    check(segs[0][1] == segs[-1][1], "ramps not mirrored")
    check(abs(US // segs[0][1] - start) <= start // 50 + 1, "start speed %d" % (US // segs[0][1]))
    prev_v = prev_iv = prev_s = 0
    for s, iv in segs:
        v = US // iv
        check(1 <= s <= 8192 and 12 <= iv <= 65_535, "segment (%d, %d)" % (s, iv))
        check(v <= speed + speed // 100 + 1, "speed %d above %d" % (v, speed))
        if prev_v:
            # a level lasts about seg_us: the speed change from one to the next is what the
            # acceleration gives over the previous segment, plus rounding
            dv = abs(v - prev_v)
            check(dv <= accel * (s * iv + prev_iv * prev_s) // US + speed // 50 + 2,
                  "jump %d sps at accel %d" % (dv, accel))  # fmt: skip
        prev_v, prev_iv, prev_s = v, iv, s
    return segs


@req("DS-20")
def test_steps_add_up_and_bounds_hold():
    """DS-20: for moves of 0..3000 steps and a range of speeds and accelerations, the
    segments add up to exactly n steps, never exceed the speed, start and end at the pull-in
    speed, and change speed no faster than the acceleration allows."""
    for n in (0, 1, 2, 5, 11, 24, 57, 100, 333, 999, 1200, 1440, 3000):
        for speed, accel in ((10_000, 200_000), (3500, 200_000), (1000, 50_000),
                             (12_000, 400_000), (20_000, 100_000)):  # fmt: skip
            _check_profile(n, speed, accel)
    _check_profile(1000, 10_000, 200_000, seg_us=1000)


@req("DS-21")
def test_full_range_profile_time():
    """DS-21: 1250 steps (more than 0..3.0 mm) at 10k µsteps/s and 200k µsteps/s² take
    under 200 ms of pulses; the plan cruises at the full speed."""
    segs = _check_profile(1250, 10_000, 200_000)
    t = duration_us(segs, 6)
    info("1250 steps: %d segments, %d us" % (len(segs), t))
    check(t < 200_000, "%d us" % t)
    check(max(US // iv for _, iv in segs) == 10_000)


@req("DS-20")
def test_short_moves_are_triangles():
    """DS-20: a move too short to reach the speed peaks below it, symmetric."""
    segs = _check_profile(60, 10_000, 200_000)
    peak = max(US // iv for _, iv in segs)
    check(peak < 10_000, "peak %d" % peak)
    check([iv for _, iv in segs] == [iv for _, iv in reversed(segs)], "not symmetric")


def test_bad_arguments_raise():
    p = TrapezoidPlanner()
    for args in ((-1, 1000, 1000), (10, 0, 1000), (10, 1000, 0), (10**6, 1000, 1000)):
        raises(ValueError, p.plan, *args)


@req("DS-55")
def test_planning_and_segments_allocate_nothing():
    """DS-55: plan() and next_segment() run under micropython.heap_lock()."""
    p = TrapezoidPlanner()
    total = 0
    count = 0
    micropython.heap_lock()
    try:
        p.plan(1300, 10_000, 200_000)
        while True:
            s = p.next_segment()
            if not s:
                break
            total += s
            count += 1
    finally:
        micropython.heap_unlock()
    check(total == 1300 and count > 10)


def test_abandon_stops_handing_out_segments():
    p = TrapezoidPlanner()
    p.plan(500, 10_000, 200_000)
    check(p.next_segment() > 0 and not p.done)
    p.abandon()
    check(p.done and p.next_segment() == 0)
