"""A depth axis on the virtual board, for the depth-stop tests and the benchmark.

The drivers are wired to the pins of hardware/pins.py as drivers/board.py wires them; the
plant (sim/plant_depth.py) is the mechanism, `gauge_um()` its dial gauge. `run()` advances the
virtual clock and calls `axis.poll()` every `poll_us`, as the firmware's asyncio task does.
"""

import gc

gc.collect()  # the test module's compile leaves the heap fragmented; the plant loads next
import board_sim  # noqa: E402
import machine  # noqa: E402
from mphelp import SIM, check  # noqa: E402

import hardware.pins as P  # noqa: E402

gc.collect()  # compiling the firmware modules from source needs a contiguous heap block
from drivers.endstop import Endstop  # noqa: E402
from drivers.stepper_pio import StepperPIO  # noqa: E402

gc.collect()
from firmware.calib import CalibrationTable  # noqa: E402

gc.collect()
from firmware.depth import DepthAxis  # noqa: E402

gc.collect()

SM_ID = 4  # PIO1 state machine 0, as drivers/board.py claims it


class Rig:
    def __init__(self, start_usteps=None, poll_us=2000, unit=0, **axis_kw):
        self.pen = board_sim.VirtualPen(SIM, unit)
        self.plant = self.pen.depth
        if start_usteps is not None:
            self.place(start_usteps)
        self.stepper = StepperPIO(
            SM_ID,
            machine.Pin(P.STEP, machine.Pin.OUT, value=0),
            machine.Pin(P.DIR, machine.Pin.OUT, value=0),
            machine.Pin(P.STEP_EN_N, machine.Pin.OUT, value=1),
        )
        self.endstop = Endstop(machine.Pin(P.ENDSTOP_N, machine.Pin.IN, machine.Pin.PULL_UP))
        self.faults = []
        self.axis = DepthAxis(self.stepper, self.endstop, on_fault=self.faults.append, **axis_kw)
        self.poll_us = poll_us
        self.model = self.stepper._sm.model  # the PIO program's model (pulse log, counters)

    def place(self, usteps):
        """Put the mechanism somewhere (as it was left at power-down)."""
        d = self.plant
        d.motor_usteps = usteps
        d.nut_mm = usteps * d.UM_PER_USTEP / 1000
        d._update_endstop()

    def inject(self, name):
        reply = self.pen.inject(name)
        check(reply == "ok", reply)

    def gauge_um(self):
        """The dial gauge: true protrusion in µm."""
        return int(round(self.plant.protrusion_mm() * 1000))

    def run(self, max_ms=3000, until=None):
        """Poll until the axis is idle (or `until()` is true); returns the virtual ms taken."""
        ax = self.axis
        t0 = SIM.now
        limit = t0 + max_ms * 1000
        while SIM.now < limit:
            SIM.advance(self.poll_us)
            ax.poll()
            if until is not None:
                if until():
                    break
            elif not ax.busy:
                break
        else:
            raise AssertionError("axis still busy after %d ms" % max_ms)
        return (SIM.now - t0) // 1000

    def home(self, max_ms=3000):
        self.axis.home()
        ms = self.run(max_ms)
        check(self.axis.homed and not self.axis.fault, "homing failed: fault %d" % self.axis.fault)
        return ms

    def go(self, um):
        self.axis.move_to_um(um)
        return self.run()

    def go_steps(self, s):
        self.axis.move_steps(s - self.axis.position_steps)
        self.run()
        check(self.axis.position_steps == s, "service move ended at %d" % self.axis.position_steps)

    def fit_calibration(self, first=None, last=1290, every=100, past_um=3100):
        """Calibrate as a technician does with the dial gauge (as `pen calibrate depth`): raise
        the depth limit to the mechanism's maximum, visit steps first..last, each approached
        outwards (the first from the closest point to the switch, so the screw's play is taken
        up as at the end of every move), read the gauge, build the table from the readings.
        `first` defaults to the lowest point so approached (MIN_STEPS + TAKEUP_STEPS). The
        visits go on past `last` (every `every` steps) until the gauge reads `past_um` or the
        axis goes no further, as for a unit whose screw or stop sits short of nominal; when the
        first reading is above 0 (a stop that sits out), the line through the first two
        readings extends the table to MIN_STEPS, as the host's calibration extends its fit.
        Service moves stop at the limit as the current table maps it; when that is short of
        `past_um` (the nominal table on a unit with a short screw), a provisional table of the
        readings so far, extended along the last slope, is loaded and the visits go on."""
        ax = self.axis
        ax.set_limit_um(ax.LIMIT_MAX_UM)
        if first is None:
            first = ax.MIN_STEPS + ax.TAKEUP_STEPS
        top = ax.TRAVEL_STEPS - ax.TAKEUP_STEPS
        ax.move_steps(ax.MIN_STEPS - ax.position_steps)
        self.run()
        pairs = []
        s = first
        provisional = False
        while True:
            ax.move_steps(s - ax.position_steps)
            self.run()
            if ax.position_steps != s and not provisional:
                # stopped at the soft limit: extend what was read and carry on
                provisional = True
                (sa, ga), (sb, gb) = pairs[-2], pairs[-1]
                ext = pairs + [(top, gb + (gb - ga) * (top - sb) // (sb - sa))]
                ax.set_limit_um(min(ax.LIMIT_MAX_UM, past_um))
                self.run()
                ax.set_calibration(CalibrationTable.from_points(self._low_end(ext)))
                self.run()
                continue
            pairs.append((ax.position_steps, self.gauge_um()))
            if len(pairs) > 2 and pairs[-1][0] - pairs[-2][0] < every // 2:
                # a visit that ended a few steps past the last (at the limit): with the gauge's
                # 1 µm the short segment's slope is noise, and the table's check refuses it
                # (unit 10: 2 steps, 4 µm); the farther point alone ends the table
                del pairs[-2]
            if ax.position_steps != s or s >= top or (s >= last and pairs[-1][1] >= past_um):
                break
            s = min(s + every, top) if s >= last else min(s + every, last)
        return CalibrationTable.from_points(self._low_end(pairs))

    def _low_end(self, pairs):
        (s0, g0), (s1, g1) = pairs[0], pairs[1]
        lo = self.axis.MIN_STEPS
        if g0 > 0 and s0 > lo:
            return [(lo, g0 - (g1 - g0) * (s0 - lo) // (s1 - s0))] + pairs
        return pairs

    def calibrate(self, limit_um=3000):
        """Fit a table from the gauge, put the clinical limit back to `limit_um` and load the
        table into the axis; returns the table."""
        table = self.fit_calibration()
        ax = self.axis
        ax.set_limit_um(limit_um)
        self.run()
        ax.set_calibration(table)
        self.run()
        return table


def mean_sd(xs):
    n = len(xs)
    m = sum(xs) / n
    v = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, v**0.5
