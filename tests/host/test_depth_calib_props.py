"""Property tests (hypothesis) of the depth calibration's integer maths, run under CPython on
the pen's own module (firmware/calib.py with a stand-in `micropython.const`).

DS-14: the limit's step, steps_at_most(limit), is never deeper than the limit on the
table's exact piecewise-linear curve, and the next step is; so rounding can never put the stop
beyond the limit. DS-30: steps_for_um / um_for_steps are monotonic and invert each other
to within rounding."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def calib():
    """The pen's own firmware/calib.py, imported as the host tools import it."""
    from pen.link import firmware_module

    return firmware_module("firmware.calib")


@st.composite
def tables(draw):
    """Tables a real pen can have (firmware/calib.py: every segment within 5.6 % of the nominal
    2.5 µm/step, so the whole within 6 %; the offset at step 0 within -450..0 µm)."""
    n = draw(st.integers(2, 8))
    s = draw(st.integers(-200, 100))
    off = draw(st.integers(-400, -50))  # 50 µm inside the bounds: s0 moves it by < 30
    u = off + s * 5 // 2
    flat = [s, u]
    for _ in range(n - 1):
        ds = draw(st.integers(20, 400))
        du = draw(st.integers(-(-236 * ds // 100), 264 * ds // 100))
        if u + du > 6000:
            break  # the table's µm bound
        s += ds
        u += du
        flat += [s, u]
    if len(flat) < 4:
        flat += [s + 100, u + 250]
    return flat


def exact_um(flat, steps):
    """The table's curve at a step, exactly (linear extrapolation outside)."""
    s = flat[0::2]
    u = flat[1::2]
    i = 0
    while i < len(s) - 2 and steps > s[i + 1]:
        i += 1
    return u[i] + Fraction(steps - s[i]) * (u[i + 1] - u[i]) / (s[i + 1] - s[i])


@settings(max_examples=300, deadline=None)
@given(flat=tables(), frac=st.floats(0, 1))
def test_limit_step_never_beyond_the_limit(calib, flat, frac):
    t = calib.CalibrationTable(flat)
    um = int(t.min_um + frac * (t.max_um - t.min_um))
    s = t.steps_at_most(um)
    assert exact_um(flat, s) <= um
    assert exact_um(flat, s + 1) > um
    assert s <= t.steps_for_um(um)


@settings(max_examples=200, deadline=None)
@given(flat=tables())
def test_conversions_monotonic_and_inverse(calib, flat):
    t = calib.CalibrationTable(flat)
    prev = None
    for um in range(t.min_um, t.max_um + 1, max(1, (t.max_um - t.min_um) // 97)):
        s = t.steps_for_um(um)
        assert prev is None or s >= prev
        prev = s
        # one step is at most 3 µm: the round trip is within half a step plus rounding
        assert abs(t.um_for_steps(s) - um) <= 3
    assert calib.CalibrationTable.from_list(t.to_list()) == t
