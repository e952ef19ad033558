"""`time` on the virtual clock (replaces the built-in in the virtual pen).

asyncio takes ticks_ms/ticks_diff/ticks_add from here, so the firmware's tasks run on
virtual time too."""

import simrt

_SIM = simrt.SIM
_RT = simrt.real_time
_PERIOD = simrt.TICKS_PERIOD
_MASK = _PERIOD - 1
_HALF = _PERIOD >> 1
_EPOCH_BASE = _RT.time()  # wall-clock seconds at boot


def ticks_us():
    return _SIM.now & _MASK


def ticks_ms():
    return (_SIM.now // 1000) & _MASK


def ticks_cpu():
    return _SIM.now & _MASK


def ticks_add(t, delta):
    return (t + delta) & _MASK


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def sleep_us(us):
    _SIM.sleep_us(us)


def sleep_ms(ms):
    _SIM.sleep_us(ms * 1000)


def sleep(s):
    _SIM.sleep_us(int(s * 1000000))


def time():
    return _EPOCH_BASE + _SIM.now // 1000000


def time_ns():
    return (_EPOCH_BASE * 1000000 + _SIM.now) * 1000


def localtime(secs=None):
    return _RT.localtime(time() if secs is None else secs)


gmtime = localtime


def mktime(t):
    return _RT.mktime(t)
