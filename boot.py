"""Runs first at power-up: actuators to their safe levels, then the service-mode check.

Service mode (firmware/service.py, SF-08): the application does not start and the REPL is
reachable (mpremote, `pen deploy`, repair). It needs someone holding the pen: START held at
power-up (PS-17), or the flag left by a `service reboot` that the clinician unlock allowed and
a START hold on the pen confirmed (taken here, so the next reset is a normal boot). boot.py
cannot stop MicroPython from running main.py, so it records the decision in
`drivers.board.SAFE_MODE` (a module stays imported between boot.py and main.py) and main.py
returns at once.
"""

import time

import drivers.board as board
from firmware import service

board.safe_outputs()
# An intended reset (`reset`, `service reboot`, a deploy) left its mark: on the RP2040 every
# machine.reset() reads as a watchdog reset (drivers/board.py, RESET_MARK).
board.INTENDED_RESET = board.take_reset_mark()
# The button must be held steadily (not a bounce): five readings over 40 ms.
_held = 0xFF
for _ in range(5):
    _held &= board.buttons_held()
    time.sleep_ms(10)
_requested = service.take_flag()
board.SAFE_MODE = bool(_held & 1) or _requested  # START
if board.SAFE_MODE:
    print("service mode: %s; the application is not started" % (
        "requested and confirmed on the pen" if _requested else "START held at power-up"))
