"""`select` for the virtual pen: an idle wait is a passage of virtual time.

asyncio waits in `poll.ipoll(timeout)` when no task is due; here that wait steps the plant
(deterministic mode) or follows the wall clock while watching the real file descriptors
(real-time mode)."""

import simrt

_SIM = simrt.SIM
_RS = simrt.real_select
POLLIN = _RS.POLLIN
POLLOUT = _RS.POLLOUT
POLLERR = _RS.POLLERR
POLLHUP = _RS.POLLHUP


class _Poll:
    def __init__(self):
        self._p = _RS.poll()

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._p.register(obj, mask)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, obj, mask):
        self._p.modify(obj, mask)

    def poll(self, timeout=-1):
        if getattr(_SIM, "hang", False):
            _hang()
        return _SIM.wait_io(self._p, timeout)

    def ipoll(self, timeout=-1, flags=0):
        if getattr(_SIM, "hang", False):
            _hang()
        return iter(_SIM.wait_io(self._p, timeout))


def _hang():
    """`fault hang` (side channel): the caller never gets control back, as if a task looped
    forever. Time (and the plant, the hard timers, the watchdog) goes on; the watchdog's
    SimReset is the only way out."""
    while True:
        _SIM.sleep_us(1000)


def poll():
    return _Poll()


def select(rlist, wlist, xlist, timeout=None):
    return _RS.select(rlist, wlist, xlist, 0 if timeout is None else timeout)
