"""Depth calibration: microsteps <-> needle protrusion in µm, piecewise linear.

A table is a list of points (steps, um), both strictly increasing, measured with a dial gauge
on the finished pen (the stop approached from the retracted side, as every move ends). Between
points the depth is interpolated linearly; outside them extrapolated from the end segments,
but the depth axis only accepts a table that covers 0 .. its depth limit, so working depths
are always interpolated.

Serialised form (settings, protocol `calib get/set`): a flat list of ints
    [steps0, um0, steps1, um1, ...]     e.g. [0, -100, 1440, 3680]
validated when loaded: 2..MAX_POINTS points, both columns strictly increasing, values within
bounds, and every segment's slope a plausible lead-screw pitch (MIN_UM_PER_KSTEP ..
MAX_UM_PER_KSTEP µm per 1000 steps), so a mistyped or corrupted table is refused rather than
turned into a wrong depth.

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


def _div_round(a, b):
    """a / b rounded to the nearest int (b > 0), half away from -inf; a may be negative."""
    return (2 * a + b) // (2 * b)


class CalibrationTable:
    MIN_POINTS = 2
    MAX_POINTS = 32
    MIN_UM_PER_KSTEP = 1000  # 1 µm/step: far below any plausible lead (nominal 2.5)
    MAX_UM_PER_KSTEP = 5000  # 5 µm/step
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
                raise Refused(OUT_OF_RANGE, "calibration slope implausible")
        return tuple(s), tuple(u)

    # -- conversion --------------------------------------------------------------------
    @property
    def min_um(self):
        return self._u[0]

    @property
    def max_um(self):
        return self._u[-1]

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
