"""Helpers for the MicroPython tests: a fresh virtual board on the virtual clock."""

import simrt

SIM = simrt.SIM  # installed by runner.py before any test module is imported


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
