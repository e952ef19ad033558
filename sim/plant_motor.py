"""Needle drive plant: coreless DC motor on an H-bridge turning the needle cam, the hall
switch (one pulse per stroke), the current shunt, and the skin's load on the needle.

Model (per step dt, semi-implicit Euler, floats: this runs in the simulator, not on the pen):
  V   = H-bridge output (mean over the PWM period: duty * V_bat; brake = short)
  i   = (V - Ke*w) / R                  (electrical time constant << step, quasi-static)
  J dw/dt = Kt*i - b*w - T_coulomb - T_skin(theta)
  T_skin  = load * F_skin(depth) * r_cam * |sin theta| while the needle is out past the skin
The hall output is high for the first 30 degrees of each turn; a rising edge per stroke.
"""

import math

import hardware.pins as P

TWO_PI = 2 * math.pi


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

    def __init__(self, sim, battery):
        self.sim = sim
        self.board = sim.board
        self.battery = battery
        self.w = 0.0  # rad/s
        self.theta = 0.0  # rad, cam angle; 0 = needle retracted, hall edge
        self.i = 0.0  # A
        self.load = 0.0  # 0..1, skin load (0 = in air)
        self.depth_mm = 0.5  # set by the depth-stop plant: how far the needle protrudes
        self.turns = 0
        self.edge_listeners = []  # f(t_us) on each hall rising edge (the PIO model)
        self.fault = None  # injected: "stall", "sensor_loss", "short", "runaway"
        self.hall_level = 0
        self.board.adc[P.MOTOR_CURRENT] = self.adc_current

    def bridge_voltage(self):
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
        return (f1 - f2) / 65536.0 * self.battery.voltage()

    def step(self, now, dt_us):
        dt = dt_us * 1e-6
        v = self.bridge_voltage()
        r = self.R * (0.05 if self.fault == "short" else 1.0)
        if v is None:
            i = 0.0
        else:
            i = (v - self.Ke * self.w) / r
        self.i = i
        self.battery.draw = abs(i)
        torque = self.Ke * i - self.b * self.w
        s = math.sin(self.theta)
        # Needle protrusion over the cam turn: 0 at theta=0, full at theta=pi.
        out_frac = (1 - math.cos(self.theta)) * 0.5
        if self.load > 0 and out_frac > 0.5:
            f = self.load * (self.F_skin_base + self.F_skin_per_mm * self.depth_mm)
            torque -= f * self.r_cam * abs(s)
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
                for f in self.edge_listeners:
                    f(t_edge)
        level = 1 if self.theta < TWO_PI / 12 and self.fault != "sensor_loss" else 0
        if level != self.hall_level:
            self.hall_level = level
            self.board.set_input(P.HALL, level)

    def stroke_hz(self):
        return self.w / TWO_PI

    def adc_current(self):
        # Shunt amplifier output, clipped at the ADC's 3.3 V, 12-bit value scaled to 16 bits.
        mv = max(0.0, self.i) * P.CURRENT_MV_PER_A
        if mv > P.ADC_VREF_MV:
            mv = P.ADC_VREF_MV
        return (int(mv * 4095 / P.ADC_VREF_MV) & 0xFFF) << 4


class Battery:
    """1S Li-ion pack with internal resistance; `v_open` falls as it drains."""

    R_int = 0.15

    def __init__(self, board, v_open=3.9):
        self.v_open = v_open
        self.draw = 0.0
        board.adc[P.BATTERY] = self.adc

    def voltage(self):
        return self.v_open - self.R_int * self.draw

    def adc(self):
        mv = self.voltage() * 1000 / P.BATTERY_DIVIDER
        return (int(mv * 4095 / P.ADC_VREF_MV) & 0xFFF) << 4
