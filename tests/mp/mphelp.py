"""Helpers for the MicroPython tests: a fresh virtual board on the virtual clock."""

import simrt

SIM = simrt.SIM  # installed by runner.py before any test module is imported


def req(*ids):
    """@req("ND-01", "ND-02"): the requirements this test verifies. The test harness
    (tests/conftest.py) reads it from the source as the pytest marker `req`, and
    tools/traceability.py credits the test with exactly these IDs."""

    def mark(fn):
        return fn

    return mark


def xfail(reason):
    """@xfail("why"): a known failure of the firmware this test shows. The harness reads it as
    pytest.mark.xfail(strict=True): the test still runs and must fail (a pass then fails the
    suite, so the marker goes as soon as the firmware is fixed); a requirement it declares
    stays unverified in the traceability report meanwhile."""

    def mark(fn):
        return fn

    return mark


def check(cond, msg="check failed"):
    """assert that survives optimisation levels and says what was wrong."""
    if not cond:
        raise AssertionError(msg)


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))


def info(*parts):
    """A figure for the test report (shown by pytest -rA), not a verdict."""
    print("@@INFO", *parts)


class Rand:
    """xorshift32: the same sequence on every port and every run (the randomised tests)."""

    def __init__(self, seed):
        self.s = seed

    def u32(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def int(self, lo, hi):
        return lo + self.u32() % (hi - lo + 1)
