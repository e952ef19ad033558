"""Fixed-point control pieces for the pen's ticks: PI controller, first-order low-pass, rate
ramp, persistence counter, reciprocal rate. No motor or driver knowledge.

Every `update()` is integer-only and allocation-free, so it may run in a hard IRQ (the 1 kHz
control tick). Each constructor checks that the worst-case intermediate values stay within
+-2**29, so sums of two of them stay within the RP2040's small-int range (+-2**30): past it a
value becomes a heap-allocated long int, which a hard IRQ cannot create. (The unix port's small
ints are 62-bit, so only these checks, not the heap lock, catch that overflow in tests.)
"""

from micropython import const

_LIM = const(1 << 29)
_BILLION = const(1_000_000_000)  # < 2**30


def _check(value, what):
    if not -_LIM < value < _LIM:
        raise ValueError("%s exceeds the small-int budget" % what)


def rate_mhz(period_us):
    """Reciprocal rate: one period in µs -> rate in milli-hertz (0 for no period)."""
    if period_us <= 0:
        return 0
    return _BILLION // period_us


class PI:
    """PI controller: out = (kp*e + integral) >> shift, integral += ki*e per update.

    Anti-windup by conditional integration: while the output sits on a limit and the error
    pushes further into it, the integral does not grow; the integral is also clamped to the
    output range. Limits may move every update (`set_limits`), e.g. with the supply voltage.
    `err_max` bounds the error the controller accepts (larger errors are clamped)."""

    def __init__(self, kp, ki, shift, lo, hi, err_max):
        if kp < 0 or ki < 0 or not 0 <= shift <= 24 or lo > hi or err_max <= 0:
            raise ValueError("bad PI parameters")
        self.kp = kp
        self.ki = ki
        self.shift = shift
        self.err_max = err_max
        self._out_bound = max(abs(lo), abs(hi))
        _check(err_max * max(kp, ki, 1), "PI error * gain")
        _check(self._out_bound << shift, "PI output << shift")
        self.lo = lo
        self.hi = hi
        self.integral = 0  # in output units << shift
        self.out = 0
        self.saturated = 0  # -1 / 0 / +1: the last output sat on a limit

    def set_limits(self, lo, hi):
        """New output limits (within the +-bound given at construction); allocation-free."""
        b = self._out_bound
        if lo < -b:
            lo = -b
        if hi > b:
            hi = b
        if lo > hi:
            lo = hi
        self.lo = lo
        self.hi = hi

    def reset(self, out=0):
        """Bumpless (re)start: the integral alone produces `out`."""
        if out > self.hi:
            out = self.hi
        elif out < self.lo:
            out = self.lo
        self.integral = out << self.shift
        self.out = out
        self.saturated = 0

    def update(self, err, integrate=True):
        em = self.err_max
        if err > em:
            err = em
        elif err < -em:
            err = -em
        s = self.shift
        i = self.integral
        if integrate:
            i += err * self.ki
        lo_s = self.lo << s
        hi_s = self.hi << s
        if i > hi_s:
            i = hi_s
        elif i < lo_s:
            i = lo_s
        u = (err * self.kp + i) >> s
        sat = 0
        if u > self.hi:
            u = self.hi
            sat = 1
            if err > 0:
                i = self.integral if self.integral < i else i  # no further wind-up
        elif u < self.lo:
            u = self.lo
            sat = -1
            if err < 0:
                i = self.integral if self.integral > i else i
        self.integral = i
        self.out = u
        self.saturated = sat
        return u


class LowPass:
    """First-order low-pass: y += (x - y) / 2**shift per update (time constant ~2**shift
    updates). The state keeps `shift` fraction bits, so small steps are not lost."""

    def __init__(self, shift, x_max, value=0):
        if not 0 <= shift <= 20:
            raise ValueError("bad low-pass shift")
        _check(x_max << shift, "low-pass input << shift")
        self.shift = shift
        self._acc = value << shift
        self.value = value

    def reset(self, value):
        self._acc = value << self.shift
        self.value = value

    def update(self, x):
        s = self.shift
        self._acc += x - (self._acc >> s)
        v = self._acc >> s
        self.value = v
        return v


class Ramp:
    """Moves `value` toward a target by at most `up` (rising) or `down` (falling) per update:
    soft start, controlled stop, slew limits."""

    def __init__(self, up, down, value=0):
        if up <= 0 or down <= 0:
            raise ValueError("ramp steps must be positive")
        _check(up + down, "ramp step")
        self.up = up
        self.down = down
        self.value = value

    def update(self, target):
        v = self.value
        if target > v:
            v += self.up
            if v > target:
                v = target
        elif target < v:
            v -= self.down
            if v < target:
                v = target
        self.value = v
        return v


class Persist:
    """A condition that must hold for a while before it counts (fault debouncing).

    Each update adds `up` while the condition holds; otherwise the level falls by `down`, or
    to 0 when `down` is None (then it needs `n` consecutive updates). True at level >= n.
    A leaky count (down < up) also catches a condition that comes and goes, e.g. a current
    that oscillates through its limit."""

    def __init__(self, n, up=1, down=None):
        if n < 1 or up < 1 or (down is not None and down < 1):
            raise ValueError("bad persistence parameters")
        self.n = n
        self.up = up
        self.down = down
        self.count = 0

    def reset(self):
        self.count = 0

    def update(self, cond):
        c = self.count
        if cond:
            c += self.up
            if c > self.n:
                c = self.n
        elif self.down is None:
            c = 0
        else:
            c -= self.down
            if c < 0:
                c = 0
        self.count = c
        return c >= self.n
