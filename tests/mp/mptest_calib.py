"""The depth calibration table: validation, conversion both ways, the serialised form, and how
the depth axis takes a table (set at run time, loaded at boot)."""

from mphelp import check, raises, req

from firmware.calib import CalibrationTable
from firmware.errors import BAD_ARGUMENT, OUT_OF_RANGE, Refused

T = [0, -100, 100, 150, 200, 420, 400, 920]  # slopes 2.5, 2.7, 2.5 µm/step


@req("DS-32")
def test_nominal_table_is_valid_and_conservative():
    """DS-32: the uncalibrated pen's table is valid, covers 0..3.3 mm, and assumes the
    longest lead within tolerance (2.625 µm/step), so an uncalibrated pen protrudes less than
    commanded, never more."""
    t = CalibrationTable.nominal()
    check(t.to_list() == list(CalibrationTable.NOMINAL))
    check(t.covers(0, 3300))
    check(t.steps_for_um(-100) == 0 and t.um_for_steps(1440) == 3680)
    # 3.0 mm commands fewer steps than the design's 2.5 µm/step would
    check(t.steps_for_um(3000) * 25 < (3000 + 125) * 10)


@req("DS-30")
def test_round_trip_through_the_serialised_list():
    """DS-30: to_list() gives the flat [steps, um, ...] list; from_list() of it gives an
    equal table."""
    t = CalibrationTable(T)
    flat = t.to_list()
    check(flat == T and CalibrationTable.from_list(flat) == t)
    check(CalibrationTable.from_points([(0, -100), (100, 150), (200, 420), (400, 920)]) == t)
    check(len(t) == 4 and t.min_um == -100 and t.max_um == 920)


@req("DS-30")
def test_interpolation_both_ways():
    """DS-30: piecewise-linear interpolation, nearest step / µm; extrapolation from the end
    segments; steps_at_most() never rounds outwards."""
    t = CalibrationTable(T)
    check(t.steps_for_um(25) == 50 and t.um_for_steps(50) == 25)
    check(t.steps_for_um(285) == 150 and t.um_for_steps(150) == 285)
    check(t.steps_for_um(920) == 400 and t.um_for_steps(300) == 670)
    check(t.steps_for_um(-125) == -10 and t.um_for_steps(500) == 1170)
    check(t.steps_for_um(-98) == 1 and t.steps_for_um(-99) == 0)  # 2.5 µm per step: nearest
    check(t.steps_at_most(-98) == 0 and t.steps_at_most(-97) == 1)
    prev = -10**6
    for um in range(-150, 1000, 7):
        s = t.steps_for_um(um)
        check(s >= prev, "not monotonic at %d um" % um)
        prev = s
        check(abs(t.um_for_steps(s) - um) <= 2, "round trip %d um" % um)
        a = t.steps_at_most(um)
        check(t.um_for_steps(a) <= um + 1 and a <= s)


@req("DS-31", "SF-04")
def test_invalid_tables_refused():
    """DS-31, SF-04: a table that is not a list of int pairs, has too few or too many points, is
    not strictly increasing in both columns, has values out of bounds, or is inconsistent with
    the axis's mechanics (a segment's slope or the whole table's lead beyond its tolerance, the
    offset at step 0 beyond its bound) is refused with a clear error."""
    bad = [
        (None, BAD_ARGUMENT),
        (5, BAD_ARGUMENT),
        ([0, 0, 100], BAD_ARGUMENT),
        ([0, 0], OUT_OF_RANGE),
        (list(range(0, 66 * 100, 100)), OUT_OF_RANGE),  # 33 points
        ([0, 0, 100, 250.0], BAD_ARGUMENT),
        ([0, 0, 100, True], BAD_ARGUMENT),
        ([0, 0, "100", 250], BAD_ARGUMENT),
        ([0, 0, 100, 250, 100, 500], OUT_OF_RANGE),  # steps not increasing
        ([0, 0, 100, 250, 200, 250], OUT_OF_RANGE),  # um not increasing
        ([0, 0, 100, 250, 50, 500], OUT_OF_RANGE),
        ([0, 0, 100, 50], OUT_OF_RANGE),  # 0.5 µm/step
        ([0, 0, 100, 900], OUT_OF_RANGE),  # 9 µm/step
        ([0, -3000, 1000, -500], OUT_OF_RANGE),  # um out of bounds
        ([-2000, 0, -1000, 2500], OUT_OF_RANGE),  # steps out of bounds
        # SF-04: inconsistent with the mechanics (nominal 2.5 µm/step, offset -450..0 µm)
        ([0, -100, 2700, 2600], OUT_OF_RANGE),  # 1.0 µm/step: a 2.5x scale error
        ([0, -100, 1000, 1900], OUT_OF_RANGE),  # 2.0 µm/step: -20 %
        ([0, -100, 500, 1300, 1000, 2700], OUT_OF_RANGE),  # segments +12 %, the whole +12 %
        ([0, -100, 500, 1100, 600, 1450, 1000, 2300], OUT_OF_RANGE),  # one segment +40 %
        ([0, -600, 1000, 1900], OUT_OF_RANGE),  # offset -0.6 mm
        ([0, 50, 1000, 2550], OUT_OF_RANGE),  # protrudes at the switch
    ]
    for flat, code in bad:
        e = raises(Refused, CalibrationTable, flat)
        check(e.code == code, "%r: code %d" % (flat, e.code))
        check(e.message, "no message")
    raises(Refused, CalibrationTable.from_points, [(0, 0, 1), (100, 250)])


@req("DS-31", "DS-33", "SF-05")
def test_axis_takes_only_valid_covering_tables():
    """DS-31, DS-33, SF-05: set_calibration refuses an invalid table or one that does not cover
    0..limit within the travel (nothing changes); a valid one is installed and the stop
    re-targets its depth; a limit outside the installed table is refused (nothing changes)."""
    from depth_rig import Rig

    rig = Rig()
    rig.home()
    ax = rig.axis
    rig.go(1500)
    before = ax.calib
    e = raises(Refused, ax.set_calibration, [0, 0, 100, 50])
    check(e.code == OUT_OF_RANGE and ax.calib is before)
    e = raises(Refused, ax.set_calibration, [0, -100, 1000, 2500])  # ends short of 3.0 mm
    check(e.code == OUT_OF_RANGE and ax.calib is before)
    check(not ax.busy and not ax.fault)
    ax.set_calibration([0, -120, 1440, 3500])
    check(ax.calib.to_list() == [0, -120, 1440, 3500])
    rig.run()
    check(ax.position_steps == ax.calib.steps_for_um(1500) and ax.target_um == 1500)
    ax.set_limit_um(3300)  # within that table's 3.5 mm
    e = raises(Refused, ax.set_calibration, [0, -120, 1300, 3200])  # short of the new limit
    check(e.code == OUT_OF_RANGE and ax.calib.to_list()[-1] == 3500)
    ax.set_calibration([0, -120, 1300, 3250, 1400, 3500])
    rig.run()
    # SF-05: valid tables whose 0..limit does not fit the mechanics
    before = ax.calib
    e = raises(Refused, ax.set_calibration, [0, -400, 1600, 3376])  # 3.3 mm past the travel
    check(e.code == OUT_OF_RANGE and "travel" in e.message and ax.calib is before, e.message)
    e = raises(Refused, ax.set_calibration, [0, -20, 1440, 3580])  # 0 um inside MIN_STEPS
    check(e.code == OUT_OF_RANGE and ax.calib is before, e.message)
    # a limit outside the installed table is refused, the limit unchanged
    ax.set_limit_um(2000)
    rig.run()
    ax.set_calibration([0, -120, 1300, 3200])
    rig.run()
    e = raises(Refused, ax.set_limit_um, 3300)  # past the table's 3.2 mm
    check(e.code == OUT_OF_RANGE and ax.limit_um == 2000, "limit %d" % ax.limit_um)
    check(ax.calib.to_list()[-1] == 3200)
    ax.set_limit_um(3200)  # the table's end is inside
    check(ax.limit_um == 3200)


@req("DS-31")
def test_invalid_stored_table_latches_a_fault_and_uses_nominal():
    """DS-31: an invalid stored table given at boot latches CALIBRATION_INVALID, the nominal
    table is used, and the fault reaction retracts the stop."""
    from depth_rig import Rig

    from firmware import faults

    rig = Rig(start_usteps=900, calib=[0, 0, 100, 50])
    ax = rig.axis
    check(ax.fault == faults.CALIBRATION_INVALID and rig.faults == [faults.CALIBRATION_INVALID])
    check(ax.calib == CalibrationTable.nominal())
    rig.run()
    check(rig.gauge_um() < 0, "not retracted")
    ax.clear_fault()
    rig.home()
    check(ax.load_calibration([0, -110, 1440, 3600]) and ax.calib.to_list()[1] == -110)
