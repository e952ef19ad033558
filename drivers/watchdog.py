"""The RP2040 hardware watchdog.

The watchdog cannot be stopped once started (the RP2040 port has no WDT.deinit()). When the
application ends on purpose (Ctrl-C to the REPL, after the needle was put in the safe state),
`hand_over(timer)` keeps it fed from a periodic timer, so mpremote can work at the REPL; a hung
application never gets there, so the watchdog still resets it.
"""


class Watchdog:
    timeout_ms = 3000  # < 8388 ms, the RP2040's maximum

    def __init__(self, wdt_factory, timeout_ms=None):
        if timeout_ms is not None:
            self.timeout_ms = timeout_ms
        self._factory = wdt_factory  # (timeout_ms) -> machine.WDT
        self._wdt = None
        self._timer = None

    @property
    def started(self):
        return self._wdt is not None

    def start(self):
        if self._wdt is None:
            self._wdt = self._factory(self.timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def hand_over(self, timer_factory):
        """The app is leaving for the REPL: keep the watchdog fed from a (soft) timer."""
        if self._wdt is None or self._timer is not None:
            return
        wdt = self._wdt
        self._timer = timer_factory(self.timeout_ms // 4, lambda t: wdt.feed())
