"""Depth calibration: microsteps <-> needle protrusion in µm, piecewise linear.

A table is a list of points (steps, um), both strictly increasing, measured with a dial gauge
on the finished pen (the stop approached from the retracted side, as every move ends). Between
points the depth is interpolated linearly; outside them extrapolated from the end segments,
but the depth axis only accepts a table that covers 0 .. its depth limit, so working depths
are always interpolated.

Serialised form (settings, protocol `calib get/set`): a flat list of ints
    [steps0, um0, steps1, um1, ...]     e.g. [0, -100, 1440, 3680]
validated when loaded (`CalibrationTable(flat)`) against the axis's mechanics, so a mistyped,
corrupted or hostile table is refused with the reason rather than turned into a wrong depth
(SF-04):
  - 2..MAX_POINTS points, both columns strictly increasing, values within bounds;
  - every segment's slope within SEG_TOL_PCT of the nominal lead per microstep, and the whole
    table's (first to last point) within TOTAL_TOL_PCT of it;
  - the offset (the protrusion at step 0, where homing puts the switch) within
    OFFSET_MIN_UM .. OFFSET_MAX_UM.
and, for a given depth limit and the axis's travel (`check_reach()`, SF-05): 0 .. the limit
lies within the measured points, 0 µm (the retract depth) is at or beyond the closest step a
move goes to (MIN_STEPS) and the limit's step within the mechanical travel (TRAVEL_STEPS).
The host runs the same functions before `pen calibrate` sends a table; the pen runs them when
one arrives (`calib set`, `set calib`, the stored settings at boot) and when the limit changes.

Why these tolerances (the design's figures, not a measured pen's):
  - nominal lead per microstep: 20 full steps/rev x 8 microsteps, 0.4 mm lead = 2.5 µm;
  - the rolled lead screw's lead tolerance is +-5 % (cumulative pitch error over the travel), the
    dial gauge reads to +-2 µm: the whole table's slope must be within TOTAL_TOL_PCT = 6 %;
  - a segment adds the stop linkage's bow (at most 0.05 mm over the 3.6 mm travel: a local slope
    change up to 4 x 0.05 / 3.6 = 5.6 %) and the gauge's +-2 µm at both ends of a segment of at
    least 0.1 mm (4 %): SEG_TOL_PCT = 15 % (5 + 5.6 + 4, rounded up). A 2.5x scale error, a
    swapped column or a table typed for another screw is far outside either.
  - backlash (up to 0.05 mm) does not change the slope: every move ends travelling outwards, so
    the table is measured and used with the play taken up the same way. It shifts the offset,
    which also carries the switch's position tolerance (+-0.2 mm) and the cartridge seat's
    (+-0.1 mm) around the nominal -0.125 mm: OFFSET_MIN_UM = -450; a pen whose needle protrudes
    at the home switch is broken, so OFFSET_MAX_UM = 0.

Integer maths only; rounding is to the nearest step / µm, except `steps_at_most()`, which
rounds towards the retracted side (used for the depth limit, so it is never exceeded by
rounding).
"""

from micropython import const

from firmware.errors import BAD_ARGUMENT, OUT_OF_RANGE, Refused

_STEPS_MIN = const(-1000)
_STEPS_MAX = const(8000)
_UM_MIN = const(-2000)
_UM_MAX = const(6000)

# The axis's mechanics (design values; firmware/depth.py's DepthAxis uses the same).
NOMINAL_UM_PER_KSTEP = const(2500)  # 2.5 µm per microstep
SEG_TOL_PCT = const(15)
TOTAL_TOL_PCT = const(6)
OFFSET_MIN_UM = const(-450)
OFFSET_MAX_UM = const(0)
TRAVEL_STEPS = const(1440)  # mechanical travel past the switch (3.6 mm nominal)
MIN_STEPS = const(16)  # the closest to the switch a move goes


def _div_round(a, b):
    """a / b rounded to the nearest int (b > 0), half away from -inf; a may be negative."""
    return (2 * a + b) // (2 * b)


class CalibrationTable:
    MIN_POINTS = 2
    MAX_POINTS = 32
    # every segment's slope, µm per 1000 steps (nominal 2500 +- SEG_TOL_PCT)
    MIN_UM_PER_KSTEP = NOMINAL_UM_PER_KSTEP * (100 - SEG_TOL_PCT) // 100
    MAX_UM_PER_KSTEP = NOMINAL_UM_PER_KSTEP * (100 + SEG_TOL_PCT) // 100
    MIN_TOTAL_UM_PER_KSTEP = NOMINAL_UM_PER_KSTEP * (100 - TOTAL_TOL_PCT) // 100
    MAX_TOTAL_UM_PER_KSTEP = NOMINAL_UM_PER_KSTEP * (100 + TOTAL_TOL_PCT) // 100
    # The uncalibrated pen's table. Design: 2.5 µm per microstep, switch 0.125 mm behind flush.
    # It assumes the worst lead within tolerance (+5 %) and the shallowest switch position, so
    # an uncalibrated pen errs towards less protrusion than commanded, never more.
    NOMINAL = (0, -100, 1440, 3680)

    def __init__(self, points):
        """points: the flat list [s0, u0, s1, u1, ...]. Refused when it is not a valid table."""
        self._s, self._u = self._validate(points)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_list(cls, flat):
        return cls(flat)

    @classmethod
    def nominal(cls):
        return cls(cls.NOMINAL)

    @classmethod
    def from_points(cls, pairs):
        """From [(steps, um), ...]."""
        flat = []
        for p in pairs:
            if len(p) != 2:
                raise Refused(BAD_ARGUMENT, "calibration point must be (steps, um)")
            flat.append(p[0])
            flat.append(p[1])
        return cls(flat)

    def to_list(self):
        out = []
        for i in range(len(self._s)):
            out.append(self._s[i])
            out.append(self._u[i])
        return out

    def __eq__(self, other):
        return isinstance(other, CalibrationTable) and self.to_list() == other.to_list()

    def __len__(self):
        return len(self._s)

    @classmethod
    def _validate(cls, flat):
        try:
            n = len(flat)
        except TypeError:
            raise Refused(BAD_ARGUMENT, "calibration must be a list of ints") from None
        if n % 2:
            raise Refused(BAD_ARGUMENT, "calibration list needs steps,um pairs")
        if not cls.MIN_POINTS <= n // 2 <= cls.MAX_POINTS:
            raise Refused(OUT_OF_RANGE, "calibration needs 2..32 points")
        s = []
        u = []
        for i in range(n):
            v = flat[i]
            if not isinstance(v, int) or isinstance(v, bool):
                raise Refused(BAD_ARGUMENT, "calibration values must be ints")
            if i % 2:
                if not _UM_MIN <= v <= _UM_MAX:
                    raise Refused(OUT_OF_RANGE, "calibration um out of range")
                u.append(v)
            else:
                if not _STEPS_MIN <= v <= _STEPS_MAX:
                    raise Refused(OUT_OF_RANGE, "calibration steps out of range")
                s.append(v)
        for i in range(1, len(s)):
            ds = s[i] - s[i - 1]
            du = u[i] - u[i - 1]
            if ds <= 0 or du <= 0:
                raise Refused(OUT_OF_RANGE, "calibration not strictly increasing")
            # slope in µm per 1000 steps, compared without division
            if not cls.MIN_UM_PER_KSTEP * ds <= 1000 * du <= cls.MAX_UM_PER_KSTEP * ds:
                raise Refused(OUT_OF_RANGE, "calibration slope %d..%d um/1000 steps: %d" % (
                    cls.MIN_UM_PER_KSTEP, cls.MAX_UM_PER_KSTEP, 1000 * du // ds))  # fmt: skip
        ds = s[-1] - s[0]
        du = u[-1] - u[0]
        lo = cls.MIN_TOTAL_UM_PER_KSTEP
        hi = cls.MAX_TOTAL_UM_PER_KSTEP
        if not lo * ds <= 1000 * du <= hi * ds:
            raise Refused(OUT_OF_RANGE, "calibration lead %d..%d um/1000 steps: %d" % (
                lo, hi, 1000 * du // ds))  # fmt: skip
        # the offset: the protrusion at step 0, extrapolated from the first segment
        off = u[0] + _div_round((0 - s[0]) * (u[1] - u[0]), s[1] - s[0])
        if not OFFSET_MIN_UM <= off <= OFFSET_MAX_UM:
            raise Refused(OUT_OF_RANGE, "calibration offset %d..%d um at step 0: %d" % (
                OFFSET_MIN_UM, OFFSET_MAX_UM, off))  # fmt: skip
        return tuple(s), tuple(u)

    def check_reach(self, limit_um, travel_steps=TRAVEL_STEPS, min_steps=MIN_STEPS):
        """Refused (with the reason) unless 0 .. limit_um can be set within the mechanics: the
        range lies within the measured points, the retract depth (0 µm) is not closer to the
        switch than min_steps, and the limit's step is within travel_steps."""
        if not self.covers(0, limit_um):
            raise Refused(OUT_OF_RANGE, "calibration does not cover 0..%d um" % limit_um)
        if self.um_for_steps(min_steps) > 0:
            raise Refused(OUT_OF_RANGE, "calibration: 0 um is closer to the switch than %d steps"
                          % min_steps)  # fmt: skip
        hi = self.steps_at_most(limit_um)
        if hi > travel_steps:
            raise Refused(OUT_OF_RANGE, "limit %d um is step %d, beyond the travel (%d steps)" % (
                limit_um, hi, travel_steps))  # fmt: skip

    # -- conversion --------------------------------------------------------------------
    @property
    def min_um(self):
        return self._u[0]

    @property
    def max_um(self):
        return self._u[-1]

    def offset_um(self):
        """The protrusion at step 0 (the home switch's point)."""
        return self.um_for_steps(0)

    def covers(self, lo_um, hi_um):
        """True when lo_um..hi_um lies within the measured points (no extrapolation)."""
        return self._u[0] <= lo_um and hi_um <= self._u[-1]

    def _seg(self, col, v):
        """Index i of the segment (i, i+1) of column `col` used for value v."""
        n = len(col)
        i = 0
        while i < n - 2 and v > col[i + 1]:
            i += 1
        return i

    def steps_for_um(self, um):
        """Nearest microstep for a protrusion in µm."""
        s, u = self._s, self._u
        i = self._seg(u, um)
        return s[i] + _div_round((um - u[i]) * (s[i + 1] - s[i]), u[i + 1] - u[i])

    def steps_at_most(self, um):
        """The deepest microstep whose protrusion does not exceed `um` (rounds inwards)."""
        s, u = self._s, self._u
        i = self._seg(u, um)
        return s[i] + ((um - u[i]) * (s[i + 1] - s[i])) // (u[i + 1] - u[i])

    def um_for_steps(self, steps):
        """Protrusion in µm (nearest) at a microstep position."""
        s, u = self._s, self._u
        i = self._seg(s, steps)
        return u[i] + _div_round((steps - s[i]) * (u[i + 1] - u[i]), s[i + 1] - s[i])


def check_table(flat, limit_um, travel_steps=TRAVEL_STEPS, min_steps=MIN_STEPS):
    """The whole check of a table for an axis with this limit (pure: the pen and the host both
    call it). Returns the CalibrationTable; raises Refused with the reason."""
    t = flat if isinstance(flat, CalibrationTable) else CalibrationTable(flat)
    t.check_reach(limit_um, travel_steps, min_steps)
    return t
