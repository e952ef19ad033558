"""Service mode: the only way to the MicroPython REPL (and so to mpremote, `pen deploy`, raw
file and hardware access), and it needs someone holding the pen (SF-08).

While the application runs, every byte on the USB port is protocol input (the app turns the
keyboard interrupt off: `micropython.kbd_intr(-1)`), and leaving the application restarts the
pen instead of opening the REPL (main.py). Two ways into service mode, both physical:

  - START held at power-up (boot.py, PS-17);
  - `service reboot` over the protocol, which needs the clinician unlock, puts the pen in its
    SERVICE state (needle stopped, nothing runs) and waits up to WINDOW_MS for START held
    HOLD_MS on the pen itself; then it leaves a one-shot flag file (FLAG) and resets. boot.py
    takes the flag (removing it) and starts in service mode; the next reset is a normal boot.
    Without the hold the request lapses (the pen leaves SERVICE and re-homes).

Someone with the USB cable alone can therefore not reach the REPL, whatever bytes they send;
docs/protocol.md ("Who can do what") says what they and someone with the pen in hand can do.
"""

import os
import time

from micropython import const

from firmware.pen import SERVICE

FLAG = "service.req"
HOLD_MS = const(2000)
WINDOW_MS = const(15000)
_START = const(1)


def take_flag(path=FLAG):
    """boot.py: True (and the flag removed) when the previous run asked for service mode."""
    try:
        os.stat(path)
    except OSError:
        return False
    try:
        os.remove(path)
    except OSError:
        pass
    return True


class ServiceRequest:
    """The confirmation of `service reboot`: START held HOLD_MS within WINDOW_MS.

    pen: the state machine (enter_service / exit_service, state); read(): the buttons' mask;
    reset(): restart the pen; message(l1, l2, ms): the display's message line (optional)."""

    def __init__(self, pen, read, reset, message=None, clock=None, path=FLAG):
        self.pen = pen
        self._read = read
        self._reset = reset
        self._message = message
        self._ms = clock or time.ticks_ms
        self.path = path
        self.pending = False
        self._until = 0
        self._held_t = None
        self._released = False

    def request(self):
        """Start waiting for the hold (the caller checked the unlock). The pen goes to its
        SERVICE state first (refused while the needle runs or a fault is latched)."""
        self.pen.enter_service()
        self.pending = True
        self._until = time.ticks_add(self._ms(), WINDOW_MS)
        self._held_t = None
        # a START already held when the request came does not count: it must be pressed anew
        self._released = not (self._read() & _START)
        if self._message is not None:
            self._message("HOLD START 2s", "for service mode", WINDOW_MS)
        return {"hold_start_s": HOLD_MS // 1000, "within_s": WINDOW_MS // 1000}

    def cancel(self):
        if self.pending:
            self.pending = False
            self.pen.exit_service()

    def poll(self):
        """Call every few ms. Returns True when the reset into service mode is under way."""
        if not self.pending:
            return False
        now = self._ms()
        if self.pen.state != SERVICE:
            self.pending = False  # the pen left SERVICE (a fault, `service exit`)
            return False
        if time.ticks_diff(now, self._until) > 0:
            self.cancel()
            if self._message is not None:
                self._message("SERVICE MODE", "not confirmed", 3000)
            return False
        held = self._read() & _START
        if not held:
            self._released = True
            self._held_t = None
            return False
        if not self._released:
            return False
        if self._held_t is None:
            self._held_t = now
            return False
        if time.ticks_diff(now, self._held_t) < HOLD_MS:
            return False
        self.pending = False
        try:
            with open(self.path, "w") as f:
                f.write("1\n")
        except OSError:
            if self._message is not None:
                self._message("SERVICE MODE", "flash write failed", 3000)
            self.pen.exit_service()
            return False
        self._reset()
        return True
