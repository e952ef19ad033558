"""firmware/control.py: the fixed-point pieces of the control tick (PI with anti-windup,
low-pass, ramp, persistence, reciprocal rate), on their own, under the real micropython."""

import micropython
from mphelp import check, raises

from firmware.control import PI, LowPass, Persist, Ramp, rate_mhz


def test_pi_proportional_and_integral():
    """ND-05: out = (kp*e + sum(ki*e)) >> shift, integer arithmetic."""
    pi = PI(kp=1 << 8, ki=1 << 4, shift=8, lo=-1000, hi=1000, err_max=10_000)
    check(pi.update(100) == 100 + (100 * 16 >> 8), "first step %d" % pi.out)  # 100 + 6
    for _ in range(15):
        pi.update(100)
    check(pi.out == 100 + (16 * 100 * 16 >> 8), "after 16 steps %d" % pi.out)  # 100 + 100
    check(pi.update(0) == 100 and pi.update(0, False) == 100, "integral holds")


def test_pi_anti_windup_recovers_at_once():
    """ND-05: while the output sits on its limit the integral does not wind up, so the output
    leaves the limit as soon as the error changes sign (no overshoot from stored windup)."""
    pi = PI(kp=1 << 8, ki=1 << 8, shift=8, lo=-500, hi=500, err_max=100_000)
    for _ in range(1000):
        pi.update(400)  # would integrate to 400k without anti-windup
    check(pi.out == 500 and pi.saturated == 1, "on the limit")
    check(pi.integral <= 500 << 8, "integral clamped: %d" % pi.integral)
    u = pi.update(-100)
    check(u < 500, "leaves the limit on the first reversed error: %d" % u)
    for _ in range(20):
        pi.update(-100)
    check(pi.out == -500 and pi.saturated == -1, "reaches the other limit")
    check(pi.integral >= -500 << 8, "clamped below")


def test_pi_moving_limits_and_bumpless_reset():
    """ND-05: limits may move every update (supply voltage); reset() starts from a given
    output without a bump; limits are bounded by the construction range."""
    pi = PI(kp=0, ki=1 << 8, shift=8, lo=-1000, hi=1000, err_max=1000)
    pi.reset(300)
    check(pi.update(0, False) == 300, "bumpless")
    pi.set_limits(-100, 200)
    check(pi.update(0, False) == 200, "re-clamped to the new limit")
    pi.set_limits(-5000, 5000)
    check(pi.lo == -1000 and pi.hi == 1000, "bounded by the construction range")


def test_pi_refuses_parameters_past_the_small_int_budget():
    """ND-15: a gain or range whose products could leave the RP2040's small ints (2**30)
    is refused at construction, not discovered as an allocation in the tick."""
    raises(ValueError, PI, 1 << 12, 0, 16, -100, 100, 1 << 18)  # err * kp = 2**30
    raises(ValueError, PI, 1, 1, 16, -10_000, 10_000, 100)  # 10000 << 16 > 2**29
    raises(ValueError, PI, -1, 0, 8, 0, 1, 1)
    raises(ValueError, PI, 1, 0, 8, 5, 1, 1)
    raises(ValueError, LowPass, 20, 1 << 12)
    raises(ValueError, Ramp, 0, 1)
    raises(ValueError, Persist, 0)


def test_lowpass_time_constant_and_no_lost_steps():
    """ND-05: y reaches 63 % of a step after 2**shift updates; the state keeps fraction bits,
    so a small input is not lost to rounding; negative values work."""
    lp = LowPass(4, 1 << 16)
    for _ in range(16):
        lp.update(1000)
    check(620 <= lp.value <= 650, "63 %% after tau: %d" % lp.value)
    for _ in range(300):
        lp.update(1000)
    check(lp.value >= 999, "settles: %d" % lp.value)
    lp.reset(0)
    for _ in range(200):
        lp.update(3)
    check(lp.value >= 2, "small input not lost: %d" % lp.value)
    lp.reset(0)
    for _ in range(300):
        lp.update(-500)
    check(-500 <= lp.value <= -499, "negative: %d" % lp.value)


def test_ramp_up_down_and_exact_target():
    """ND-04: the ramp moves by at most `up` / `down` per update and lands on the target."""
    r = Ramp(up=10, down=3, value=0)
    seq = [r.update(25) for _ in range(4)]
    check(seq == [10, 20, 25, 25], "up %r" % seq)
    seq = [r.update(18) for _ in range(4)]
    check(seq == [22, 19, 18, 18], "down %r" % seq)


def test_persist_consecutive_and_leaky():
    """ND-10: consecutive persistence resets on a miss; a leaky one (up 8, down 1) still
    trips on a condition that comes and goes."""
    p = Persist(3)
    check([p.update(c) for c in (1, 1, 0, 1, 1, 1)] == [False, False, False, False, False, True])
    leaky = Persist(40, 8, 1)
    tripped = False
    for k in range(200):
        tripped = leaky.update(k % 10 < 2)  # true 20 % of the time
        if tripped:
            break
    check(tripped, "leaky count never tripped")
    consecutive = Persist(5)
    check(not any(consecutive.update(k % 10 < 2) for k in range(200)), "consecutive did")


def test_reciprocal_rate():
    """ND-03: rate in mHz from a period in µs, without floats or long ints."""
    check(rate_mhz(10_000) == 100_000 and rate_mhz(6667) == 149_992, "values")
    check(rate_mhz(20_000) == 50_000 and rate_mhz(0) == 0 and rate_mhz(-5) == 0, "edges")
    check(rate_mhz(1) == 1_000_000_000, "largest value stays a small int")


def test_updates_allocate_nothing():
    """ND-15: every update runs with the heap locked (as in the hard-timer tick)."""
    pi = PI(500, 485, 16, -2500, 3000, 200_000)
    lp = LowPass(12, 1 << 16)
    r = Ramp(600, 800)
    p = Persist(40, 8, 1)
    micropython.heap_lock()
    try:
        for k in range(1000):
            pi.set_limits(-1000, 2000)
            pi.update(k * 37 - 15_000, k & 1)
            lp.update(k * k)
            r.update(150_000)
            p.update(k & 4)
            rate_mhz(k + 1)
    finally:
        micropython.heap_unlock()
    check(r.value == 150_000 and lp.value > 0)
