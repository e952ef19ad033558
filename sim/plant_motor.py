"""Needle drive plant: coreless DC motor on an H-bridge turning the needle cam, the hall
switch (one pulse per stroke), the current shunt, the battery, and the skin's load on the needle.

Model (per step dt, semi-implicit Euler, floats: this runs in the simulator, not on the pen):
  f   = net PWM fraction of the bridge (IN1 - IN2, from the PWM registers the driver programmed)
  source = f * V_open behind f^2 * R_int + R_DS   (the pack supplies the motor during the on-time)
  i   = (f * V_open - Ke*w) / (R + R_DS + f^2 * R_int)   (electrical time constant << step:
                                  quasi-static; solved with the pack's sag, so no lag oscillation)
  J dw/dt = Kt*i - b*w - T_coulomb - T_skin(theta)
  T_skin  = load * F_TOP_N * r_cam * |sin theta| while the needle is out past the skin
            (load 1.0 = the published top of a cartridge's insertion force, docs/plant.md)
nSLEEP low = outputs off: the winding is open, i = 0, the rotor coasts. The injected "short" is
a low-resistance path across the motor terminals: the bridge current jumps (the shunt sees it)
and the shorted winding brakes the rotor. Both inputs high = brake
(winding shorted). The hall output is high for the first 30 degrees of each turn; a rising edge
per stroke goes to `edge_listeners` (the PIO capture model) at its interpolated microsecond.

The ADC readings are computed here, once per plant step, as plain integers: the firmware reads
the ADC inside the control tick, which runs with the heap locked, so a read must not compute
floats (each would be a heap allocation).
"""

import math

import hardware.pins as P

try:
    import plant_units
except ImportError:  # imported as sim.plant_motor (CPython, the repository root on the path)
    from sim import plant_units

TWO_PI = 2 * math.pi
_HALL_HIGH_RAD = TWO_PI / 12


def _adc_raw(mv):
    """A 12-bit ADC conversion of `mv` millivolts, clipped at the reference, left-aligned to 16
    bits as the RP2040 port's read_u16() returns it (an ideal converter)."""
    if mv < 0.0:
        mv = 0.0
    if mv > P.ADC_VREF_MV:
        mv = P.ADC_VREF_MV
    raw = int(mv * 4095 / P.ADC_VREF_MV + 0.5)
    return (raw << 4) | (raw >> 8)


_GAUSS = None  # 256 draws of N(0, 1) in thousandths, shared: per-sample noise at a low cost


def _gauss_table():
    global _GAUSS
    if _GAUSS is None:
        from array import array

        r = plant_units.Rng(0x1234567)
        _GAUSS = array("h")
        for _ in range(256):
            _GAUSS.append(int(r.gauss() * 1000))
    return _GAUSS


class Adc:
    """The RP2040's ADC as a pen's readings see it: conversion noise (`noise_lsb`, sigma), the
    wide codes of erratum RP2040-E11 (`dnl_lsb` extra input width at each of DNL_CODES, the
    ordinary codes a little narrower so the scale ends at 4095), and outliers (`outlier_rate`:
    the share of conversions that return a random code). Defaults: the ideal converter.

    The plant step gives each channel its input as an integer in 1/16 LSB (`level16`, one
    float operation per step); the conversion itself happens at the read, in integers only (a
    read runs in the control tick with the heap locked), with its own noise draw."""

    def __init__(self, seed=0x5EED):
        self._noise_lsb = 0.0
        self._dnl_lsb = 0.0
        self._outlier_rate = 0.0
        self._nk = 0  # noise: 1/16 LSB per thousandth of a sigma, Q16
        self._out_thr = 0  # outliers: threshold on a 32-bit draw
        self._spikes = ()  # (start16, end16, code, base16, c) per wide code
        self._w16 = 16 << 16  # an ordinary code's width, 1/16 LSB, Q16
        self.outliers = 0  # outliers returned (for the tests)
        self._x = (seed & 0xFFFFFFFF) or 0x2545F491
        self._g = _gauss_table()

    @property
    def noise_lsb(self):
        return self._noise_lsb

    @noise_lsb.setter
    def noise_lsb(self, v):
        self._noise_lsb = float(v)
        self._nk = int(v * 16 * 65536 / 1000)

    @property
    def outlier_rate(self):
        return self._outlier_rate

    @outlier_rate.setter
    def outlier_rate(self, v):
        self._outlier_rate = float(v)
        self._out_thr = int(v * 4294967296.0)

    @property
    def dnl_lsb(self):
        return self._dnl_lsb

    @dnl_lsb.setter
    def dnl_lsb(self, d):
        self._dnl_lsb = float(d)
        if not d:
            self._spikes = ()
            self._w16 = 16 << 16
            return
        # Ordinary codes are w wide; each spike code 1 + d (in LSB of input).
        w = (4096.0 - 4 * (1.0 + d)) / 4092.0
        spikes = []
        base = 0.0  # input where code c starts
        c = 0
        for code in plant_units.DNL_CODES:
            start = base + (code - c) * w
            spikes.append((int(start * 16), int((start + 1.0 + d) * 16), code,
                           int(base * 16), c))  # fmt: skip
            base = start + 1.0 + d
            c = code + 1
        spikes.append((1 << 30, 1 << 30, 4095, int(base * 16), c))
        self._spikes = tuple(spikes)
        self._w16 = int(w * 16 * 65536)

    def code16(self, x16):
        """The 12-bit code for an input of x16 (1/16 LSB, int): integers only."""
        if x16 <= 0:
            return 0
        sp = self._spikes
        if sp:
            for start, end, code, base, c in sp:
                if x16 < start:
                    k = c + (((x16 - base) << 16) + (self._w16 >> 1)) // self._w16
                    return code - 1 if k >= code and code != 4095 else (4095 if k > 4095 else k)
                if x16 < end:
                    return code
            return 4095
        k = (x16 + 8) >> 4
        return 4095 if k > 4095 else k

    def code(self, x):
        """The 12-bit code for an input of `x` ideal LSB (float; for tests)."""
        return self.code16(int(x * 16))

    def _rand(self):
        x = self._x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._x = x
        return x

    def read(self, level16):
        """One conversion of an input of level16 (1/16 LSB) -> the read_u16() value."""
        r = self._rand()
        if self._out_thr and r < self._out_thr:
            self.outliers += 1
            raw = self._rand() & 4095
            return (raw << 4) | (raw >> 8)
        if self._nk:
            level16 += (self._g[r >> 24] * self._nk) >> 16
        raw = self.code16(level16)
        return (raw << 4) | (raw >> 8)

    @staticmethod
    def level16(mv):
        """The input `mv` at the pin in 1/16 LSB (int); clipped at the reference."""
        if mv >= P.ADC_VREF_MV:
            return 4095 * 16 + 8
        return int(mv * (4095 * 16) / P.ADC_VREF_MV) if mv > 0.0 else 0

    def convert(self, mv):
        """One conversion of `mv` at the pin -> read_u16() value (floats: not in a tick)."""
        return self.read(self.level16(mv))


class NeedleMotor:
    # Motor constants of a 10 mm coreless motor (about 15,000 rpm no-load at 3.7 V).
    R = 2.0  # ohm
    Ke = 0.00236  # V/(rad/s) == Kt in N*m/A
    J = 6.0e-8  # kg*m^2, rotor + cam
    b = 1.0e-8  # N*m/(rad/s), viscous
    T_coulomb = 6.0e-5  # N*m, brushes and bearings
    r_cam = 0.0015  # m, cam eccentricity (3 mm stroke)
    # Skin load 1.0: the top of the published range of a cartridge's insertion force, 42
    # needles x 0.030 N (docs/plant.md "Skin load"); a 12-needle cartridge at 0.021 N is 0.2.
    F_TOP_N = 1.26
    R_DS = 0.36  # ohm, the bridge's high + low side switches (DRV8833 class)
    R_SHORT = 0.2  # ohm, injected "short": a fault path across the motor terminals (a crushed
    # cable in the handpiece); the shunt in the bridge's return carries its current too

    def __init__(self, sim, battery):
        self.sim = sim
        self.board = sim.board
        self.battery = battery
        self.w = 0.0  # rad/s
        self.theta = 0.0  # rad, cam angle; 0 = needle retracted, hall edge
        self.i = 0.0  # A through the shunt (the bridge's output current)
        self.i_motor = 0.0  # A through the winding
        self.v = 0.0  # V across the winding (mean over the PWM period)
        self.load = 0.0  # skin load, 1.0 = F_TOP_N (0 = in air; the side channel allows 0..2)
        self.depth_mm = 0.5  # set by the depth-stop plant: how far the needle protrudes
        self.turns = 0
        self.edge_listeners = []  # f(t_us) on each hall rising edge (the PIO model): the
        # sensor's output, with its jitter and glitches
        self.turn_listeners = []  # f(t_us) at each true cam turn (the tests' and benches' truth)
        self.fault = None  # injected: "stall", "sensor_loss", "short", "runaway"
        self.hall_level = 0
        self._adc_i = 0
        # Sensor imperfections; zero = ideal. A unit (sim/plant_units.py) sets the part
        # tolerances, the side channel's `glitch` the field faults' rates.
        self.conv = battery.conv  # the RP2040's ADC (one converter for both channels)
        self.i_gain = 1.0  # shunt x amplifier gain, relative to nominal
        self.i_offset_mv = 0.0  # amplifier output offset
        self.hall_jitter_us = 0.0  # sigma of the hall edge's time
        self.hall_double_rate = 0.0  # share of strokes with a second (bounce) edge
        self.hall_miss_rate = 0.0  # share of strokes whose edge is lost
        self.spike_rate = 0.0  # share of current conversions hit by a PWM-edge spike
        self.glitches = {"hall_double": 0, "hall_miss": 0, "current_spike": 0}
        self._rng = plant_units.Rng(0xC0FFEE)
        self._g = _gauss_table()
        self.board.adc[P.MOTOR_CURRENT] = self.adc_current

    def bridge_fraction(self):
        """Net drive fraction of the H-bridge, -1..1, or None when the outputs are off."""
        b = self.board
        if not b.out.get(P.MOTOR_SLEEP_N, 0):
            return None  # outputs off: coast
        p1 = b.pwm.get(P.MOTOR_IN1)
        p2 = b.pwm.get(P.MOTOR_IN2)
        f1 = p1.fraction_q16() if p1 is not None else b.out.get(P.MOTOR_IN1, 0) * 65536
        f2 = p2.fraction_q16() if p2 is not None else b.out.get(P.MOTOR_IN2, 0) * 65536
        if f1 >= 65536 and f2 >= 65536:
            return 0.0  # both high: brake (short the winding)
        if self.fault == "runaway":
            f1, f2 = 65536, 0  # a shorted low-side switch: full drive whatever the duty
        return (f1 - f2) / 65536.0

    def bridge_voltage(self):
        f = self.bridge_fraction()
        return None if f is None else f * self.battery.voltage()

    def step(self, now, dt_us):
        dt = dt_us * 1e-6
        f = self.bridge_fraction()
        bat = self.battery
        emf = self.Ke * self.w
        short = self.fault == "short"
        if f is None:
            # Outputs off: no bridge current; a short across the terminals still loads the
            # winding (it brakes the rotor through the fault path).
            i_bridge = 0.0
            i = -emf / (self.R + self.R_SHORT) if short else 0.0
            self.v = emf + i * self.R
        else:
            # The bridge as a source: f * V_open behind the pack's share of R_int and R_DS.
            vs = f * bat.v_open
            rs = f * f * bat.R_int + self.R_DS
            if short:
                vt = (vs / rs + emf / self.R) / (1.0 / rs + 1.0 / self.R_SHORT + 1.0 / self.R)
                i = (vt - emf) / self.R
                i_bridge = (vs - vt) / rs
            else:
                i = (vs - emf) / (rs + self.R)
                i_bridge = i
            self.v = emf + i * self.R
        self.i = i_bridge  # what the shunt in the bridge's return carries
        self.i_motor = i
        bat.draw = abs(i_bridge * f) if f is not None else 0.0
        bat.update_adc()
        mv = i_bridge * P.CURRENT_MV_PER_A * self.i_gain + self.i_offset_mv
        if self.spike_rate and f is not None and 0.0 < f < 1.0:
            if self._rng.uniform() < self.spike_rate:
                # ringing of a PWM edge caught by the conversion: up to the ADC's full scale
                self.glitches["current_spike"] += 1
                mv += P.ADC_VREF_MV * (0.2 + 0.8 * self._rng.uniform())
        self._adc_i = self.conv.level16(mv)
        torque = self.Ke * i - self.b * self.w
        # Needle protrusion over the cam turn: 0 at theta=0, full at theta=pi.
        cos_t = math.cos(self.theta)
        if self.load > 0 and cos_t < 0.0:
            s = math.sin(self.theta)
            f_skin = self.load * self.F_TOP_N
            torque -= f_skin * self.r_cam * abs(s)
        if self.fault == "stall":
            self.w = 0.0
            return
        fric = self.T_coulomb
        if self.w > 0:
            torque -= fric
        elif torque > fric:
            torque -= fric
        elif torque < -fric:
            torque += fric
        else:
            torque = 0.0
        self.w += torque / self.J * dt
        if self.w < 0:
            self.w = 0.0  # the cam's one-way clutch / cogging: the needle motor never reverses
        old = self.theta
        self.theta += self.w * dt
        if self.theta >= TWO_PI:
            self.theta -= TWO_PI
            self.turns += 1
            # Rising edge at theta = 0: interpolate its time within the step.
            frac = (TWO_PI - old) / (self.w * dt) if self.w > 0 else 1.0
            t_edge = now + int(frac * dt_us)
            for fn in self.turn_listeners:
                fn(t_edge)
            if self.fault != "sensor_loss":
                self._hall_edge(t_edge)
        level = 1 if self.theta < _HALL_HIGH_RAD and self.fault != "sensor_loss" else 0
        if level != self.hall_level:
            self.hall_level = level
            self.board.set_input(P.HALL, level)

    def _hall_edge(self, t_edge):
        """The hall switch's rising edge(s) for one true turn at t_edge, as the PIO sees them."""
        r = self._rng
        if self.hall_miss_rate and r.uniform() < self.hall_miss_rate:
            self.glitches["hall_miss"] += 1
            return
        if self.hall_jitter_us:
            t_edge += int(self._g[r.u32() & 255] * 0.001 * self.hall_jitter_us)
        for fn in self.edge_listeners:
            fn(t_edge)
        if self.hall_double_rate and r.uniform() < self.hall_double_rate:
            # the output bounces: a second rising edge 5..100 us after the first
            self.glitches["hall_double"] += 1
            t2 = t_edge + 5 + (r.u32() % 96)
            for fn in self.edge_listeners:
                fn(t2)

    def stroke_hz(self):
        return self.w / TWO_PI

    def adc_current(self):
        # Shunt amplifier output (2.5 V/A), clipped at the ADC's 3.3 V: full scale 1.32 A; the
        # conversion (noise, wide codes, outliers) in integers, at the read.
        return self.conv.read(self._adc_i)


class Battery:
    """1S Li-ion pack with internal resistance; `v_open` falls as it drains."""

    R_int = 0.15

    def __init__(self, board, v_open=3.9):
        self.v_open = v_open
        self.draw = 0.0
        self._adc = 0
        self.gain = 1.0  # divider ratio relative to nominal (resistor tolerance)
        self.conv = Adc()
        self.update_adc()
        board.adc[P.BATTERY] = self.adc

    def voltage(self):
        return self.v_open - self.R_int * self.draw

    def update_adc(self):
        self._adc = self.conv.level16(self.voltage() * 1000 * self.gain / P.BATTERY_DIVIDER)

    def adc(self):
        return self.conv.read(self._adc)
