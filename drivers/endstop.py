"""Home endstop: a switch to ground with the pin's pull-up (closed = low), debounced.

Debounce is an integrator: each `sample()` adds one for a closed reading and takes one away
for an open one, within 0..SAMPLES; the debounced state turns closed only at SAMPLES and open
only at 0. A contact bounce or a glitch shorter than SAMPLES samples never changes the state,
and the state has hysteresis, so a switch sitting at its trip point does not chatter.
Integer state only: `sample()` may run in a hard IRQ or the control tick.
"""


class Endstop:
    SAMPLES = 3  # consistent samples to change state (at a 2 ms poll: 6 ms)

    def __init__(self, pin, active_low=True, samples=None):
        self._pin = pin
        self._active = 0 if active_low else 1
        self._n = samples or self.SAMPLES
        self._acc = 0
        self._closed = False
        self.prime()

    def raw(self):
        """The undebounced reading: True = closed."""
        return self._pin.value() == self._active

    def prime(self):
        """Start from the present reading (power-up): full integrator either way."""
        self._closed = self.raw()
        self._acc = self._n if self._closed else 0

    def sample(self):
        """Take one reading; returns the debounced state."""
        if self._pin.value() == self._active:
            if self._acc < self._n:
                self._acc += 1
                if self._acc == self._n:
                    self._closed = True
        elif self._acc > 0:
            self._acc -= 1
            if self._acc == 0:
                self._closed = False
        return self._closed

    @property
    def closed(self):
        return self._closed

    @property
    def settled(self):
        """No reading disagrees with the debounced state (integrator at its end)."""
        return self._acc == (self._n if self._closed else 0)
