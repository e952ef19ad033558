"""Depth-stop plant: micro stepper + lead screw moving the stop that sets needle protrusion,
and the home endstop. The firmware knows none of these numbers; calibration finds them.

Mechanism (floats: this is the simulator, not the pen):
- rotor position `motor_usteps` (µsteps from the switch's nominal point), moved by the step
  pulses of the PIO model (`on_step`) while the driver is enabled (ENN low);
- the motor loses a step when driven too fast: above `max_rate`, or when the step rate changes
  by more than `max_jump` from one step to the next (it cannot accelerate that hard; starting
  from rest counts as rate 0, so a move must start at or below max_jump). A lost step leaves
  the rotor stalled (rate 0), so a too-hard ramp keeps losing steps until the rate falls;
- lead screw: `UM_PER_USTEP` nominal with a `pitch_error`; the nut follows the screw through
  `backlash_mm` of play (`nut_mm`);
- protrusion = offset + nut * (1 + pitch error) + a bow (`nonlinear_mm` at mid travel);
- the rotor stalls against hard stops at `hard_stop_mm` (behind the switch: the switch's
  over-travel) and `travel_mm`;
- the home switch closes when the nut reaches its trip point, which scatters by
  `trip_noise_um` (σ) each time it re-arms, opens again `hysteresis_um` further out, and
  bounces for `bounce_us` after each change.
Injected faults (side channel): "endstop_open" (never closes), "endstop_closed" (always
closed), "missed_steps" (a bind: one in `bind_every` outward steps is lost, under load).
`protrusion_mm()` is the virtual dial gauge.
"""

import hardware.pins as P


class DepthStop:
    UM_PER_USTEP = 2.5  # 20 steps/rev x 8 microsteps, 0.4 mm lead
    pitch_error = 0.03  # +3 % lead error
    offset_mm = -0.12  # protrusion when the motor is at step 0 (the home switch point)
    backlash_mm = 0.03
    nonlinear_mm = 0.04  # bow of the protrusion curve at mid-travel
    max_rate = 12000  # µsteps/s; faster pulses are missed
    max_jump = 3000  # µsteps/s: largest step-to-step rate change the rotor follows
    settle_us = 1500  # after a pause this long the rotor is at rest
    travel_mm = 3.6  # mechanical travel past home
    hard_stop_mm = -0.4  # inner hard stop (switch over-travel)
    trip_offset_um = 0.0  # this unit's trip point, from the switch's nominal point
    trip_noise_um = 2.0  # σ of the switch's trip point
    hysteresis_um = 15.0  # the switch opens this far beyond where it closed
    bounce_us = 300
    bind_every = 12  # fault "missed_steps": one in N outward steps lost

    def __init__(self, sim):
        self.sim = sim
        self.board = sim.board
        self.last_step_us = None
        self.rate = 0.0  # signed µsteps/s of the rotor (0 = at rest or stalled)
        self.missed = 0  # steps lost (too fast, bind, hard stop)
        self.pulses = 0  # net step pulses received while enabled (+ out)
        self.fault = None  # "endstop_open", "endstop_closed", "missed_steps"
        self._rng = 0x2545F491  # xorshift32 state: a fixed seed keeps every run identical
        self._trip_um = self._next_trip()
        self._contact = False
        self._bounce_until = 0
        self._bind = 0
        self._pin_fault = None
        self.start_usteps = 400  # power-up position: somewhere mid-travel
        self.motor_usteps = self.start_usteps
        self.nut_mm = self.motor_usteps * self.UM_PER_USTEP / 1000
        self._update_endstop()

    # -- randomness (deterministic) -------------------------------------------------------
    def _rand(self):
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x / 4294967296.0

    def reseed(self, seed):
        """Another unit's switch: its own scatter sequence (sim/plant_units.py)."""
        self._rng = (seed & 0xFFFFFFFF) or 0x2545F491
        self._trip_um = self._next_trip()
        self._update_endstop()

    def _next_trip(self):
        return self.trip_offset_um + self._gauss() * self.trip_noise_um

    def _gauss(self):
        # Irwin-Hall: the sum of 12 uniforms - 6 is close to N(0, 1)
        return sum(self._rand() for _ in range(12)) - 6.0

    # -- the motor ------------------------------------------------------------------------
    def on_step(self, t_us, direction):
        """One step pulse from the driver at t_us; direction 1 = out (deeper)."""
        if self.board.out.get(P.STEP_EN_N, 1):
            return  # driver disabled
        self.pulses += 1 if direction else -1
        if self.last_step_us is None or t_us - self.last_step_us >= self.settle_us:
            rate = 0.0  # from rest
            prev = 0.0
        else:
            dt = t_us - self.last_step_us
            rate = 1e6 / dt if dt > 0 else 1e9
            if not direction:
                rate = -rate
            prev = self.rate
        self.last_step_us = t_us
        if abs(rate) > self.max_rate or abs(rate - prev) > self.max_jump:
            self.missed += 1
            self.rate = 0.0  # the rotor slipped: it is not turning with the field
            return
        self.rate = rate
        if self.fault == "missed_steps" and direction:
            self._bind += 1
            if self._bind % self.bind_every == 0:
                self.missed += 1
                return
        self.motor_usteps += 1 if direction else -1
        lo = int(self.hard_stop_mm * 1000 / self.UM_PER_USTEP)
        hi = int(self.travel_mm * 1000 / self.UM_PER_USTEP)
        if self.motor_usteps < lo:
            self.motor_usteps = lo  # hard stop: the motor stalls against the end
            self.missed += 1
        if self.motor_usteps > hi:
            self.motor_usteps = hi
            self.missed += 1
        pos = self.motor_usteps * self.UM_PER_USTEP / 1000
        half = self.backlash_mm / 2
        if pos - self.nut_mm > half:
            self.nut_mm = pos - half
        elif self.nut_mm - pos > half:
            self.nut_mm = pos + half
        self._update_endstop()

    # -- the switch -----------------------------------------------------------------------
    def _contact_now(self):
        nut_um = self.nut_mm * 1000
        if self._contact:
            if nut_um > self._trip_um + self.hysteresis_um:
                # it opens, and re-arms at a slightly different point next time
                self._trip_um = self._next_trip()
                return False
            return True
        return nut_um <= self._trip_um

    def _update_endstop(self):
        contact = self._contact_now()
        if contact != self._contact:
            self._contact = contact
            self._bounce_until = self.sim.now + self.bounce_us
        self._drive_pin()

    def _drive_pin(self):
        self._pin_fault = self.fault
        closed = self._contact
        if self.sim.now < self._bounce_until:
            closed = self._rand() < 0.5
        if self.fault == "endstop_open":
            closed = False
        elif self.fault == "endstop_closed":
            closed = True
        self.board.set_input(P.ENDSTOP_N, 0 if closed else 1)

    def switch_closed(self):
        """The contact's state without bounce (for tests)."""
        return self._contact

    def protrusion_mm(self):
        x = self.nut_mm * (1 + self.pitch_error)
        span = self.travel_mm
        bow = self.nonlinear_mm * 4 * (x / span) * (1 - x / span)
        return self.offset_mm + x + bow

    def step(self, now, dt):
        if self.fault is not self._pin_fault:
            # a fault injected or cleared through the side channel shows on the pin at once
            self._update_endstop()
        if self._bounce_until and now <= self._bounce_until:
            self._drive_pin()
            if now + dt > self._bounce_until:
                self._bounce_until = 0
                self._drive_pin()
