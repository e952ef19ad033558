"""Property tests (hypothesis) of the calibration table's consistency with the axis's mechanics,
on the pen's own module (firmware/calib.py with a stand-in `micropython.const`), as the host
runs it before `pen calibrate` sends a table (pen.calibrate.make_table).

SF-04: every table a real pen can measure (lead within +-5 %, bow up to 0.05 mm, gauge noise
+-2 µm, switch 0.05..0.4 mm behind flush) is accepted; a scale error beyond the tolerance, an
offset beyond its bound or points out of order are refused with the reason.
SF-05: check_table(flat, limit) passes exactly when, on the table's exact piecewise-linear
curve, 0..limit lies within the measured points, 0 µm is not closer to the switch than
MIN_STEPS and the limit's step is within TRAVEL_STEPS."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def calib():
    """The pen's own firmware/calib.py, imported as the host tools import it."""
    from pen.link import firmware_module

    return firmware_module("firmware.calib")


def measured(lead, offset_um, bow_um, noise, points):
    """A dial gauge's table of a pen: lead error `lead` (fraction), protrusion `offset_um` at the
    switch, a bow of the linkage, one reading error per point (µm)."""
    flat = []
    n = len(noise)
    for i in range(n):
        s = 1440 * i // (n - 1)
        x = Fraction(s, 1440)
        u = offset_um + Fraction(5, 2) * s * (1 + Fraction(lead)) + 4 * bow_um * x * (1 - x)
        flat += [s, int(round(u)) + noise[i]]
    return flat


real_tables = st.builds(
    measured,
    lead=st.floats(-0.05, 0.05),
    offset_um=st.integers(-400, -50),
    bow_um=st.integers(-50, 50),
    noise=st.integers(3, 12).flatmap(lambda n: st.lists(st.integers(-2, 2), min_size=n,
                                                        max_size=n)),  # fmt: skip
    points=st.none(),
)


@pytest.mark.req("SF-04")
@settings(max_examples=400, deadline=None)
@given(flat=real_tables)
def test_every_real_pen_table_is_accepted(calib, flat):
    """SF-04: what a real pen measures is accepted (the tolerance does not refuse good pens)."""
    t = calib.CalibrationTable(flat)
    assert -450 <= t.offset_um() <= 0


@pytest.mark.req("SF-04")
@settings(max_examples=400, deadline=None)
@given(
    lead=st.one_of(st.floats(-0.6, -0.17), st.floats(0.17, 1.4)),
    offset_um=st.integers(-300, -100),
    n=st.integers(2, 12),
)
def test_a_scale_error_beyond_the_tolerance_is_refused(calib, lead, offset_um, n):
    """SF-04: a table with its slope off by more than the tolerance anywhere (a 2.5x error, a
    table for another screw, a swapped unit) is refused with the reason."""
    flat = measured(lead, offset_um, 0, [0] * n, None)
    if max(flat[1::2]) > 6000:
        flat = [v for i in range(0, len(flat), 2) for v in flat[i:i + 2]
                if flat[i + 1] <= 6000]  # fmt: skip
        if len(flat) < 4:
            return
    with pytest.raises(calib.Refused) as e:
        calib.CalibrationTable(flat)
    assert "calibration" in e.value.message


@pytest.mark.req("SF-04")
@settings(max_examples=300, deadline=None)
@given(offset_um=st.one_of(st.integers(-1900, -461), st.integers(1, 900)),
       lead=st.floats(-0.03, 0.03), n=st.integers(2, 10))  # fmt: skip
def test_an_offset_beyond_its_bound_is_refused(calib, offset_um, lead, n):
    """SF-04: the protrusion at the home switch outside -450..0 µm is refused."""
    flat = measured(lead, offset_um, 0, [0] * n, None)
    with pytest.raises(Exception) as e:
        calib.CalibrationTable(flat)
    assert "offset" in e.value.message or "increasing" in e.value.message


@pytest.mark.req("SF-04")
@settings(max_examples=300, deadline=None)
@given(flat=real_tables, data=st.data())
def test_points_out_of_order_are_refused(calib, flat, data):
    """SF-04: a table is monotonic: any two points exchanged, in either column, is refused."""
    n = len(flat) // 2
    i = data.draw(st.integers(0, n - 2))
    j = data.draw(st.integers(i + 1, n - 1))
    col = data.draw(st.integers(0, 1))
    bad = list(flat)
    bad[2 * i + col], bad[2 * j + col] = bad[2 * j + col], bad[2 * i + col]
    with pytest.raises(Exception) as e:
        calib.CalibrationTable(bad)
    assert "calibration" in e.value.message


def exact_steps(flat, um):
    """The exact (fractional) step of a protrusion on the table's curve."""
    s, u = flat[0::2], flat[1::2]
    i = 0
    while i < len(u) - 2 and um > u[i + 1]:
        i += 1
    return s[i] + Fraction(um - u[i]) * (s[i + 1] - s[i]) / (u[i + 1] - u[i])


def exact_um(flat, steps):
    s, u = flat[0::2], flat[1::2]
    i = 0
    while i < len(s) - 2 and steps > s[i + 1]:
        i += 1
    return u[i] + Fraction(steps - s[i]) * (u[i + 1] - u[i]) / (s[i + 1] - s[i])


@pytest.mark.req("SF-05")
@settings(max_examples=500, deadline=None)
@given(flat=real_tables, limit=st.integers(0, 3300))
def test_check_table_passes_exactly_when_0_to_limit_fits_the_travel(calib, flat, limit):
    """SF-05: the reach check agrees with an exact oracle; when it passes, every depth 0..limit
    is a step within MIN_STEPS..TRAVEL_STEPS (a move is never clamped short of its depth)."""
    u = flat[1::2]
    fits = (u[0] <= 0 and limit <= u[-1] and exact_um(flat, calib.MIN_STEPS) < Fraction(1, 2)
            and exact_steps(flat, limit) < calib.TRAVEL_STEPS + 1)  # fmt: skip
    try:
        t = calib.check_table(flat, limit)
        ok = True
    except Exception as e:  # noqa: BLE001 -- firmware.errors.Refused
        assert "calibration" in e.message or "travel" in e.message, e.message
        ok = False
    assert ok == fits, (flat, limit)
    if ok:
        for um in range(0, limit + 1, max(1, limit // 50)):
            assert calib.MIN_STEPS - 1 <= t.steps_for_um(um) <= calib.TRAVEL_STEPS
        assert t.steps_at_most(limit) <= calib.TRAVEL_STEPS


@pytest.mark.req("SF-04", "SF-05")
def test_the_host_refuses_before_sending(calib):
    """SF-04, SF-05: `pen calibrate`'s make_table refuses what the pen would refuse."""
    from pen import calibrate as C

    with pytest.raises(C.CalibrationRejected):
        C.make_table([0, -100, 2700, 2600])  # the 2.5x scale error
    with pytest.raises(C.CalibrationRejected):
        C.make_table([0, -450, 1600, 3326], 3000)  # 3.0 mm beyond the travel
    assert C.make_table([0, -450, 1600, 3326], 2500).to_list() == [0, -450, 1600, 3326]
