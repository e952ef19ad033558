"""The plant on the emulated chip's pins: the virtual pen's own models (sim/plant_motor.py,
sim/plant_depth.py, imported, not copied) under CPython, seeing only what a real board's parts
see: the H-bridge pins (PWM slice registers as the pins carry them, nSLEEP), the STEP edges with
the DIR level and the driver's enable, and driving the hall input, the endstop, the buttons and
the ADC channels' voltages; an I2C device answers at the display's address.
"""

from __future__ import annotations

import sys

from . import image as IMG

_SIM = str(IMG.ROOT / "sim")
if _SIM not in sys.path:
    sys.path.insert(0, _SIM)

import plant_depth  # noqa: E402
import plant_motor  # noqa: E402

import hardware.pins as P  # noqa: E402

PLANT_DT_US = 10  # plant step: hall edges are placed to within 10 µs (0.1 % of a 100 Hz period)
FUNC_PWM = 4
FUNC_SIO = 5


class PwmView:
    """A PWM output pin as the hardware drives it: its slice's counter wrap and compare."""

    def __init__(self, mcu, gpio):
        self.mcu = mcu
        self.gpio = gpio
        self.slice = (gpio >> 1) & 7
        self.channel_b = gpio & 1

    def regs(self):
        ch = self.mcu.pwm.channels[self.slice]
        cc = (ch.cc >> 16) if self.channel_b else (ch.cc & 0xFFFF)
        div = ch.div
        return {"csr": ch.csr, "top": ch.top, "cc": cc,
                "div_int": (div >> 4) & 0xFF or 256, "div_frac": div & 0xF}  # fmt: skip

    def freq_hz(self) -> float:
        r = self.regs()
        div = r["div_int"] + r["div_frac"] / 16
        phase_correct = 2 if r["csr"] & 2 else 1
        return 125e6 / ((r["top"] + 1) * div * phase_correct)

    def fraction_q16(self) -> int:
        r = self.regs()
        if not r["csr"] & 1:
            return 0
        cc = min(r["cc"], r["top"] + 1)
        return cc * 65536 // (r["top"] + 1)


class _Out:
    """`board.out.get(gpio, default)`: the level the chip drives on a pin (default if none)."""

    def __init__(self, mcu):
        self.mcu = mcu

    def get(self, gpio, default=None):
        pin = self.mcu.gpio[gpio]
        if not pin.output_enable:
            return default
        return 1 if pin.output_value else 0


class _Pwm:
    def __init__(self, mcu):
        self.mcu = mcu

    def get(self, gpio, default=None):
        if self.mcu.gpio[gpio].function_select != FUNC_PWM:
            return default
        return PwmView(self.mcu, gpio)


class ChipBoard:
    """The interface the plant models expect (`out`, `pwm`, `adc`, `set_input`) on chip pins."""

    def __init__(self, mcu):
        self.mcu = mcu
        self.out = _Out(mcu)
        self.pwm = _Pwm(mcu)
        self.adc = {}  # gpio -> function returning the 16-bit reading the plant computed
        self.inp = {}

    def set_input(self, gpio, level):
        self.inp[gpio] = level
        self.mcu.gpio[gpio].set_input_value(bool(level))


class _SimView:
    def __init__(self, pen, board):
        self.pen = pen
        self.board = board

    @property
    def now(self):
        return self.pen.now_us


class OledProbe:
    """An I2C device at the display's address: acknowledges and counts what it is sent."""

    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self.bytes = 0
        self.transactions = 0
        i2c.on_connect = self._connect
        i2c.on_write_byte = self._write

    def _connect(self, address, mode):
        ok = address == self.addr
        if ok:
            self.transactions += 1
        self.i2c.complete_connect(ok)

    def _write(self, value):
        self.bytes += 1
        self.i2c.complete_write(True)


class ChipPlant:
    """Motor, battery and depth stop of the virtual pen, on the chip's pins."""

    def __init__(self, pen):
        self.pen = pen
        mcu = pen.mcu
        self.mcu = mcu
        self.board = ChipBoard(mcu)
        self.sim = _SimView(pen, self.board)
        self.battery = plant_motor.Battery(self.board)
        self.motor = plant_motor.NeedleMotor(self.sim, self.battery)
        self.depth = plant_depth.DepthStop(self.sim)
        self.oled = OledProbe(mcu.i2c[P.I2C_ID], P.OLED_ADDR)
        for b in (P.BTN_START_N, P.BTN_PLUS_N, P.BTN_MINUS_N):
            self.board.set_input(b, 1)  # released (to ground when pressed)
        self.board.set_input(P.HALL, 0)
        self.steps = 0  # STEP rising edges seen while the driver was enabled
        self.hall_edges = []  # emulated µs of each hall rising edge (the plant's truth)
        self.motor.edge_listeners.append(self.hall_edges.append)
        self._step_level = False
        mcu.gpio[P.STEP].add_listener(self._on_step_pin)
        self._adc_pins = ((P.MOTOR_CURRENT - 26), (P.BATTERY - 26))
        self._alarm = pen.clock.create_alarm(self._tick)
        self._alarm.schedule(PLANT_DT_US * 1000)
        pen.plant = self

    def _on_step_pin(self, value, old):
        high = self.mcu.gpio[P.STEP].output_value
        if high and not self._step_level:
            direction = 1 if self.mcu.gpio[P.DIR].output_value else 0
            if not self.board.out.get(P.STEP_EN_N, 1):
                self.steps += 1
            self.depth.on_step(self.pen.now_us, direction)
        self._step_level = high

    def _tick(self):
        now = self.pen.now_us
        self.motor.depth_mm = max(0.0, self.depth.protrusion_mm())
        self.motor.step(now, PLANT_DT_US)
        self.depth.step(now, PLANT_DT_US)
        vals = self.mcu.adc.channel_values
        for gpio in (P.MOTOR_CURRENT, P.BATTERY):
            fn = self.board.adc.get(gpio)
            if fn is not None:
                vals[gpio - 26] = fn() >> 4
        self._alarm.schedule(PLANT_DT_US * 1000)

    def press(self, gpio, down: bool):
        self.board.set_input(gpio, 0 if down else 1)
