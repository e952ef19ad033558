"""Needle drive plant: coreless DC motor on an H-bridge turning the needle cam, the hall
switch (one pulse per stroke), the current shunt, the battery, and the skin's load on the needle.

Model (per step dt, semi-implicit Euler, floats: this runs in the simulator, not on the pen):
  f   = net PWM fraction of the bridge (IN1 - IN2, from the PWM registers the driver programmed)
  source = f * V_open behind f^2 * R_int + R_DS   (the pack supplies the motor during the on-time)
  i   = (f * V_open - Ke*w) / (R + R_DS + f^2 * R_int)   (electrical time constant << step:
                                  quasi-static; solved with the pack's sag, so no lag oscillation)
  J dw/dt = Kt*i - b*w - T_coulomb - T_skin(theta)
  T_skin  = load * F_skin(depth) * r_cam * |sin theta| while the needle is out past the skin
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

TWO_PI = 2 * math.pi
_HALL_HIGH_RAD = TWO_PI / 12


def _adc_raw(mv):
    """A 12-bit ADC conversion of `mv` millivolts, clipped at the reference, left-aligned to 16
    bits as the RP2040 port's read_u16() returns it."""
    if mv < 0.0:
        mv = 0.0
    if mv > P.ADC_VREF_MV:
        mv = P.ADC_VREF_MV
    raw = int(mv * 4095 / P.ADC_VREF_MV + 0.5)
    return (raw << 4) | (raw >> 8)


class NeedleMotor:
    # Motor constants of a 10 mm coreless motor (about 15,000 rpm no-load at 3.7 V).
    R = 2.0  # ohm
    Ke = 0.00236  # V/(rad/s) == Kt in N*m/A
    J = 6.0e-8  # kg*m^2, rotor + cam
    b = 1.0e-8  # N*m/(rad/s), viscous
    T_coulomb = 6.0e-5  # N*m, brushes and bearings
    r_cam = 0.0015  # m, cam eccentricity (3 mm stroke)
    F_skin_base = 0.30  # N at full load, per needle cartridge, at zero depth
    F_skin_per_mm = 0.55  # N per mm of depth at full load
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
        self.load = 0.0  # 0..1, skin load (0 = in air)
        self.depth_mm = 0.5  # set by the depth-stop plant: how far the needle protrudes
        self.turns = 0
        self.edge_listeners = []  # f(t_us) on each hall rising edge (the PIO model)
        self.fault = None  # injected: "stall", "sensor_loss", "short", "runaway"
        self.hall_level = 0
        self._adc_i = 0
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
        self._adc_i = _adc_raw(i_bridge * P.CURRENT_MV_PER_A)
        torque = self.Ke * i - self.b * self.w
        # Needle protrusion over the cam turn: 0 at theta=0, full at theta=pi.
        cos_t = math.cos(self.theta)
        if self.load > 0 and cos_t < 0.0:
            s = math.sin(self.theta)
            f_skin = self.load * (self.F_skin_base + self.F_skin_per_mm * self.depth_mm)
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
            if self.fault != "sensor_loss":
                for fn in self.edge_listeners:
                    fn(t_edge)
        level = 1 if self.theta < _HALL_HIGH_RAD and self.fault != "sensor_loss" else 0
        if level != self.hall_level:
            self.hall_level = level
            self.board.set_input(P.HALL, level)

    def stroke_hz(self):
        return self.w / TWO_PI

    def adc_current(self):
        # Shunt amplifier output (2.5 V/A), clipped at the ADC's 3.3 V: full scale 1.32 A.
        return self._adc_i


class Battery:
    """1S Li-ion pack with internal resistance; `v_open` falls as it drains."""

    R_int = 0.15

    def __init__(self, board, v_open=3.9):
        self.v_open = v_open
        self.draw = 0.0
        self._adc = 0
        self.update_adc()
        board.adc[P.BATTERY] = self.adc

    def voltage(self):
        return self.v_open - self.R_int * self.draw

    def update_adc(self):
        self._adc = _adc_raw(self.voltage() * 1000 / P.BATTERY_DIVIDER)

    def adc(self):
        return self._adc
