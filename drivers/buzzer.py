"""The buzzer (a magnetic transducer on a PWM pin): tone patterns as data.

A pattern is a tuple of (frequency_hz, ms) steps; frequency 0 is a pause. Patterns differ in
pitch and rhythm so they can be told apart without looking: high and short for a limit, low
and long for a fault, rising for a new cartridge. `play(name)` starts one (a later one
replaces it); the asyncio task `run()` steps through it, so nothing here blocks.
"""

import asyncio

PATTERNS = {
    "click": ((4000, 15),),
    "armed": ((2000, 60), (0, 40), (2600, 60)),
    "disarmed": ((2600, 60), (0, 40), (2000, 60)),
    "ready": ((2400, 40),),
    "limit": ((3200, 40), (0, 40), (3200, 40)),
    "refused": ((600, 150),),
    "fault": ((880, 300), (0, 100), (660, 300), (0, 100), (880, 300)),
    "cartridge": ((1500, 80), (2000, 80), (2500, 120)),
    "warn": ((1800, 200), (0, 200), (1800, 200)),
    "spent": ((1200, 400), (0, 150), (900, 600)),
}

_DUTY_ON = 32768  # half duty: the loudest square wave


class Buzzer:
    def __init__(self, pwm):
        self.pwm = pwm
        self.pwm.duty_u16(0)
        self._pattern = None
        self._new = False

    def play(self, name):
        p = PATTERNS.get(name)
        if p is None:
            return
        self._pattern = p
        self._new = True

    def off(self):
        self._pattern = None
        self.pwm.duty_u16(0)

    def _tone(self, hz):
        if hz:
            self.pwm.freq(hz)
            self.pwm.duty_u16(_DUTY_ON)
        else:
            self.pwm.duty_u16(0)

    async def run(self, checkin=None):
        while True:
            p = self._pattern
            if p is None or not self._new:
                if checkin is not None:
                    checkin()
                await asyncio.sleep_ms(20)
                continue
            self._new = False
            for hz, ms in p:
                if self._new:
                    break  # a newer pattern replaces this one
                self._tone(hz)
                await asyncio.sleep_ms(ms)
                if checkin is not None:
                    checkin()
            self.pwm.duty_u16(0)
            if not self._new:
                self._pattern = None
