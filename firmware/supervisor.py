"""Task liveness and the watchdog: the hardware watchdog is fed only while every registered
task has reported in recently. A task that hangs (or an event loop that stops turning) stops
the feeding; the watchdog then resets the pen, which boots into the safe state with the
WATCHDOG fault latched.

Each task gets a slot with its own allowed silence (a slow housekeeping task may report every
second, the UI every few ms). `checkin(slot)` only stores a tick: no allocation, safe anywhere.
"""

import asyncio
import time
from array import array

from micropython import const

_MAX_TASKS = const(12)


class Supervisor:
    period_ms = 250  # how often the supervisor checks and feeds
    default_silence_ms = 1000

    def __init__(self, watchdog, clock=None, on_hang=None):
        self.watchdog = watchdog
        self._ms = clock or time.ticks_ms
        self.names = []
        self._last = array("i", [0] * _MAX_TASKS)
        self._silence = array("i", [0] * _MAX_TASKS)
        self.on_hang = on_hang  # fn(name): called once when a task stops reporting in
        self.hung = None  # the name of the first task found silent (then never fed again)

    def register(self, name, silence_ms=None):
        """A new task to watch; returns its slot for `checkin()`."""
        i = len(self.names)
        if i >= _MAX_TASKS:
            raise ValueError("too many supervised tasks")
        self.names.append(name)
        self._last[i] = self._ms()
        self._silence[i] = silence_ms or self.default_silence_ms
        return i

    def checkin(self, slot):
        self._last[slot] = self._ms()

    def checker(self, name, silence_ms=None):
        """A register() + a no-argument callable that checks the task in."""
        slot = self.register(name, silence_ms)
        last = self._last
        ms = self._ms

        def checkin():
            last[slot] = ms()

        return checkin

    def silent(self):
        """The first task that has not reported in within its allowed silence, else None."""
        now = self._ms()
        for i in range(len(self.names)):
            if time.ticks_diff(now, self._last[i]) > self._silence[i]:
                return self.names[i]
        return None

    def check(self):
        """Feed the watchdog if every task is alive; returns True if it fed."""
        if self.hung is None:
            name = self.silent()
            if name is None:
                self.watchdog.feed()
                return True
            self.hung = name
            if self.on_hang is not None:
                self.on_hang(name)
        return False

    async def run(self):
        self.watchdog.start()
        while True:
            self.check()
            await asyncio.sleep_ms(self.period_ms)
