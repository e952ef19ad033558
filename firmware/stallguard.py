"""Missed steps during a move, from the TMC2209's StallGuard4 (SF-13): a reading of SG_RESULT
kept in flight over the driver's UART (drivers/tmc2209.py, never blocking), judged while the
stepper runs fast enough for StallGuard to measure.

    watch = StallWatch(tmc)          # writes TCOOLTHRS and SGTHRS once
    watch.start()                    # a move's leg begins: readings from before are void
    watch.poll(fast) -> True         # a reading taken while `fast` (the commanded step rate
                                     # at or above MIN_SPS) said the rotor slipped

Design values (the TMC2209 datasheet's method: SG_RESULT at the working speed without load,
then a threshold well below it; to be tuned on the pen): StallGuard is valid above TCOOLTHRS
(here 1000 steps/s); the firmware judges a reading only when it was requested at least
SETTLE_MS into a leg and the commanded rate was at least MIN_SPS (4000 steps/s) both when it
was requested and when it arrived, so the rotor (up to 12 ms of queued segments behind the
command, at 200,000 steps/s^2: 2400 steps/s) is above TCOOLTHRS. A rotor turning with the
field at the stop's light load reads well above SG_MIN; one that slipped reads near 0.

A move that never reaches MIN_SPS (shorter than about 80 steps, 0.2 mm) is not watched: its
slips are found by the endstop check (a re-home) at the next cartridge confirmation, `home`,
clear or power-up (docs/faults.md states the worst error that can go unnoticed).
"""

import time

from micropython import const

# the TMC2209's registers (drivers/tmc2209.py)
TCOOLTHRS = const(0x14)
SGTHRS = const(0x40)
SG_RESULT = const(0x41)

SG_MIN = const(60)
MIN_SPS = const(4000)
TCOOL_SPS = const(1000)
SETTLE_MS = const(20)  # a leg's first readings are not judged (the rotor starts from rest)


class StallWatch:
    def __init__(self, tmc, clock=None):
        self.tmc = tmc
        self._ms = clock or time.ticks_ms
        self._t0 = 0
        self.last = -1  # the last reading judged (-1: none yet)
        self.stalls = 0
        self.readings = 0
        self._fast_req = False
        self._skip = 1
        # TCOOLTHRS is compared with TSTEP, the time between steps in 12 MHz clocks
        tmc.write_reg(TCOOLTHRS, 12_000_000 // TCOOL_SPS)
        tmc.write_reg(SGTHRS, SG_MIN // 2)  # DIAG (unwired here) at SG_RESULT <= 2 * SGTHRS

    def start(self):
        """A leg begins: the reading in flight, if any, belongs to before; skip it."""
        self._skip = 1 if self.tmc.pending else 0
        self._t0 = self._ms()

    def poll(self, fast):
        """Collect the reading in flight, request the next; True when one shows a slip."""
        tmc = self.tmc
        stalled = False
        v = tmc.collect()
        if v is not None:
            if self._skip:
                self._skip -= 1
            elif fast and self._fast_req:
                self.readings += 1
                self.last = v
                if v < SG_MIN:
                    self.stalls += 1
                    stalled = True
        if not tmc.pending:
            tmc.request(SG_RESULT)
            self._fast_req = fast and time.ticks_diff(self._ms(), self._t0) >= SETTLE_MS
        return stalled
