"""Runs first at power-up: actuators to their safe levels, then the safe-mode check.

Safe mode: `start` held at power-up skips the application, so a pen whose application
misbehaves can still be reached at the REPL (mpremote) and repaired. boot.py cannot stop
MicroPython from running main.py, so it records the decision in `drivers.board.SAFE_MODE`
(a module stays imported between boot.py and main.py) and main.py returns at once.
"""

import time

import drivers.board as board

board.safe_outputs()
# The button must be held steadily (not a bounce): five readings over 40 ms.
_held = 0xFF
for _ in range(5):
    _held &= board.buttons_held()
    time.sleep_ms(10)
board.SAFE_MODE = bool(_held & 1)  # START
if board.SAFE_MODE:
    print("safe mode: START held at power-up, the application is not started")
