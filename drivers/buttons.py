"""The three push buttons (to ground, internal pull-ups): one sample = one bit mask.

Debouncing and gestures are firmware logic (firmware/ui.py); this driver only reads levels,
so the UI samples all buttons at one instant (a chord is seen as one)."""

from micropython import const

START = const(1)
PLUS = const(2)
MINUS = const(4)


class Buttons:
    def __init__(self, start, plus, minus):
        # Pins configured as inputs with pull-ups by the board; pressed = low.
        self._pins = (start, plus, minus)
        self._bits = (START, PLUS, MINUS)

    def read(self):
        """Bit mask of the buttons pressed now (START=1, PLUS=2, MINUS=4)."""
        m = 0
        p = self._pins
        if not p[0].value():
            m |= START
        if not p[1].value():
            m |= PLUS
        if not p[2].value():
            m |= MINUS
        return m
