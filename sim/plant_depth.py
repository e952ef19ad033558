"""Depth-stop plant: micro stepper + lead screw moving the stop that sets needle protrusion,
and the home endstop. The firmware knows none of these numbers; calibration finds them."""

import hardware.pins as P


class DepthStop:
    UM_PER_USTEP = 2.5  # 20 steps/rev x 8 microsteps, 0.4 mm lead
    pitch_error = 0.03  # +3 % lead error
    offset_mm = -0.12  # protrusion when the motor is at step 0 (the home switch point)
    backlash_mm = 0.03
    nonlinear_mm = 0.04  # bow of the protrusion curve at mid-travel
    max_rate = 12000  # µsteps/s; faster pulses are missed
    travel_mm = 3.6  # mechanical travel past home

    def __init__(self, sim):
        self.sim = sim
        self.board = sim.board
        self.motor_usteps = 0  # where the rotor is (µsteps from the home switch point)
        self.nut_mm = 0.0  # lead-screw nut position after backlash
        self.last_step_us = None
        self.missed = 0
        self.fault = None  # "endstop_open", "endstop_closed", "missed_steps"
        self.start_usteps = 400  # power-up position: somewhere mid-travel
        self.motor_usteps = self.start_usteps
        self.nut_mm = self.motor_usteps * self.UM_PER_USTEP / 1000
        self._update_endstop()

    def on_step(self, t_us, direction):
        """One step pulse from the driver at t_us; direction 1 = out (deeper)."""
        if self.board.out.get(P.STEP_EN_N, 1):
            return  # driver disabled
        if self.last_step_us is not None and t_us - self.last_step_us < 1_000_000 // self.max_rate:
            self.missed += 1
            self.last_step_us = t_us
            return
        if self.fault == "missed_steps" and (t_us // 1000) % 7 == 0:
            self.missed += 1
            self.last_step_us = t_us
            return
        self.last_step_us = t_us
        self.motor_usteps += 1 if direction else -1
        lo = -40
        hi = int(self.travel_mm * 1000 / self.UM_PER_USTEP)
        if self.motor_usteps < lo:
            self.motor_usteps = lo  # hard stop: the motor stalls against the end
        if self.motor_usteps > hi:
            self.motor_usteps = hi
        pos = self.motor_usteps * self.UM_PER_USTEP / 1000
        half = self.backlash_mm / 2
        if pos - self.nut_mm > half:
            self.nut_mm = pos - half
        elif self.nut_mm - pos > half:
            self.nut_mm = pos + half
        self._update_endstop()

    def _update_endstop(self):
        closed = self.nut_mm <= 0.0
        if self.fault == "endstop_open":
            closed = False
        elif self.fault == "endstop_closed":
            closed = True
        self.board.set_input(P.ENDSTOP_N, 0 if closed else 1)

    def protrusion_mm(self):
        x = self.nut_mm * (1 + self.pitch_error)
        span = self.travel_mm
        bow = self.nonlinear_mm * 4 * (x / span) * (1 - x / span)
        return self.offset_mm + x + bow

    def step(self, now, dt):
        pass
