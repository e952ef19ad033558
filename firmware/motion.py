"""Trapezoidal move planner: speed and acceleration -> constant-rate segments for the PIO.

A move of n microsteps becomes: an up-ramp of speed levels, a cruise, and the same levels
mirrored as the down-ramp. Each level lasts about `seg_us` (one PIO segment: `steps` pulses at
one `interval`), and the next level is faster by accel * duration, so the staircase keeps the
average acceleration while each segment's timing stays in hardware. A move starts and ends at
START_SPS, a speed the motor follows from standstill (its pull-in rate). When the move is too
short to reach `speed`, the ramps meet in the middle (a triangle profile). The cruise is cut
into chunks of about `seg_us` so that a stop takes effect within a few segments.

The planner keeps its ramp in preallocated arrays and hands out segments one at a time
(`next_segment()` -> steps, with `interval` as an attribute), so planning and feeding a move
allocate nothing. Integer maths only; every intermediate stays far below 2**30.
"""

from array import array

from micropython import const

_US = const(1_000_000)


class TrapezoidPlanner:
    START_SPS = 2000  # µsteps/s a move starts and ends at (no ramp below it)
    SEG_US = 3000  # target duration of one segment
    MAX_LEVELS = 48  # ramp levels kept (more would only matter at absurd speed/accel ratios)
    MAX_SPS = 50_000  # bounds of the arguments
    MAX_ACCEL = 1_000_000
    MAX_STEPS = 100_000
    MAX_INTERVAL_US = 65_000  # a PIO segment interval fits 16 bits
    MAX_SEG_STEPS = 8192  # a PIO segment word holds at most this many steps

    def __init__(self, max_levels=None):
        n = max_levels or self.MAX_LEVELS
        self._lv_steps = array("i", [0] * n)
        self._lv_int = array("i", [0] * n)
        self._m = 0  # ramp levels in use
        self._cruise = 0  # cruise steps
        self._cruise_int = 0
        self._chunk = 1
        # cursor
        self._phase = 0  # 0 up, 1 cruise, 2 down, 3 done
        self._i = 0
        self._left = 0
        self.interval = 0  # interval (µs) of the segment last returned
        self.total = 0
        self.duration_us = 0  # pulse time of the planned move (without per-segment overhead)

    def plan(self, n, speed, accel, seg_us=None):
        """Plan a move of n >= 0 steps; returns the number of segments it will yield."""
        if not (0 <= n <= self.MAX_STEPS and 1 <= speed <= self.MAX_SPS
                and 1 <= accel <= self.MAX_ACCEL):  # fmt: skip
            raise ValueError("plan: n, speed or accel out of range")
        seg = seg_us or self.SEG_US
        self.total = n
        self._m = 0
        self._cruise = 0
        v = self.START_SPS if self.START_SPS < speed else speed
        if v < _US // self.MAX_INTERVAL_US + 1:
            v = _US // self.MAX_INTERVAL_US + 1
        used = 0  # steps in the up-ramp so far (the down-ramp mirrors it)
        ramp_us = 0
        cap = len(self._lv_steps)
        while self._m < cap:
            iv = (_US + v // 2) // v
            s = v * seg // _US
            if s < 1:
                s = 1
            elif s > self.MAX_SEG_STEPS:
                s = self.MAX_SEG_STEPS
            if v >= speed or 2 * (used + s) > n:
                break
            self._lv_steps[self._m] = s
            self._lv_int[self._m] = iv
            self._m += 1
            used += s
            ramp_us += s * iv
            # next level: v += accel * duration, computed as (accel/16) * dur / (1e6/16)
            dv = (accel >> 4) * (s * iv) // 62_500
            if dv < 1:
                dv = 1
            v += dv
            if v > speed:
                v = speed
        self._cruise = n - 2 * used
        self._cruise_int = (_US + v // 2) // v
        c = v * seg // _US
        self._chunk = 1 if c < 1 else (c if c < self.MAX_SEG_STEPS else self.MAX_SEG_STEPS)
        self.duration_us = 2 * ramp_us + self._cruise * self._cruise_int
        self._phase = 0
        self._i = 0
        self._left = self._cruise
        return self._count()

    def _count(self):
        c = self._cruise
        chunks = (c + self._chunk - 1) // self._chunk if c else 0
        return 2 * self._m + chunks

    def abandon(self):
        """Hand out no more segments (a stop)."""
        self._phase = 3

    @property
    def done(self):
        return self._phase == 3

    def next_segment(self):
        """Steps of the next segment (its interval in `self.interval`), 0 when the plan is
        exhausted. Allocation-free."""
        while True:
            ph = self._phase
            if ph == 0:
                if self._i < self._m:
                    i = self._i
                    self._i += 1
                    self.interval = self._lv_int[i]
                    return self._lv_steps[i]
                self._phase = 1
            elif ph == 1:
                if self._left > 0:
                    s = self._chunk if self._left > self._chunk else self._left
                    self._left -= s
                    self.interval = self._cruise_int
                    return s
                self._phase = 2
                self._i = self._m
            elif ph == 2:
                if self._i > 0:
                    self._i -= 1
                    self.interval = self._lv_int[self._i]
                    return self._lv_steps[self._i]
                self._phase = 3
            else:
                return 0


def segments(n, speed, accel, seg_us=None, planner=None):
    """The whole plan as a list of (steps, interval_us): for tests, tools and benchmarks."""
    p = planner or TrapezoidPlanner()
    p.plan(n, speed, accel, seg_us)
    out = []
    while True:
        s = p.next_segment()
        if not s:
            return out
        out.append((s, p.interval))


def duration_us(segs, per_segment_us=0):
    """Time a list of segments takes (steps * interval, plus a fixed cost per segment)."""
    t = 0
    for s, iv in segs:
        t += s * iv + per_segment_us
    return t
