"""A depth axis on the virtual board, for the depth-stop tests and the benchmark.

The drivers are wired to the pins of hardware/pins.py as drivers/board.py wires them; the
plant (sim/plant_depth.py) is the mechanism, `gauge_um()` its dial gauge. `run()` advances the
virtual clock and calls `axis.poll()` every `poll_us`, as the firmware's asyncio task does.
"""

import gc

import board_sim
import machine
from mphelp import SIM, check

import hardware.pins as P

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
    def __init__(self, start_usteps=None, poll_us=2000, **axis_kw):
        self.pen = board_sim.VirtualPen(SIM)
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

    def fit_calibration(self, first=24, last=1290, every=100):
        """Calibrate as a technician does with the dial gauge: raise the depth limit to the
        mechanism's maximum, visit steps first..last (each approached outwards, as every move
        ends), read the gauge, build the table from the readings."""
        ax = self.axis
        ax.set_limit_um(ax.LIMIT_MAX_UM)
        pairs = []
        s = first
        while True:
            self.go_steps(s)
            pairs.append((ax.position_steps, self.gauge_um()))
            if s >= last:
                break
            s = min(s + every, last)
        return CalibrationTable.from_points(pairs)

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
