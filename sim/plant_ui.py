"""Buttons (to ground, pull-ups) and other user-facing parts of the virtual pen."""

import hardware.pins as P

BUTTONS = {"start": P.BTN_START_N, "plus": P.BTN_PLUS_N, "minus": P.BTN_MINUS_N}


class Buttons:
    def __init__(self, sim):
        self.sim = sim
        self.board = sim.board
        self.release_at = {}  # gpio -> time µs
        for g in BUTTONS.values():
            self.board.set_input(g, 1)

    def press(self, names, hold_ms):
        """Press the buttons joined by '+' together, release after hold_ms of virtual time."""
        gpios = []
        for n in names.split("+"):
            if n not in BUTTONS:
                raise ValueError("unknown button %r (start, plus, minus)" % n)
            gpios.append(BUTTONS[n])
        until = self.sim.now + hold_ms * 1000
        for g in gpios:
            self.board.set_input(g, 0)
            self.release_at[g] = until

    def held(self):
        return [n for n, g in BUTTONS.items() if self.board.level(g) == 0]

    def step(self, now, dt):
        if not self.release_at:
            return
        t = now + dt
        for g in list(self.release_at):
            if self.release_at[g] <= t:
                del self.release_at[g]
                self.board.set_input(g, 1)
