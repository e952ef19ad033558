"""Homing the depth axis: finds step 0, where the endstop closes, with a fast seek inwards, a
back-off and a slow re-touch; a re-home compares what it finds with step 0 (lost steps).
Klipper keeps homing apart from the stepper; here too: `Homing` moves the axis only through
its small public API (firmware/depth.py: leg, legs_done, stop_motion, step_in, trip,
zero_here, homed_here, at_inner_end, position_steps, position_known, stepper_busy,
max_steps) and reads the endstop.

    homing = Homing(axis, endstop)
    homing.start(check_lost)   begin (the axis has stopped feeding its motion and is enabled)
    homing.poll(closed)        one step, from the axis's poll, with the endstop's reading
    homing.active              True until the switch is found or a fault latches
    homing.offset              steps off step 0 at which the last re-home found the switch

Faults: no switch within the travel or HOME_TIMEOUT_MS -> HOME_NOT_FOUND; the switch closed
after the back-off -> ENDSTOP_STUCK; a re-home off by more than LOST_STEPS_TOL -> LOST_STEPS.
"""

import time

from micropython import const

from firmware import faults

_H_START = const(2)  # in-flight motion finishing, switch reading settling
_H_CLEAR = const(3)  # the switch was closed at start; backing off
_H_CLEAR_CHECK = const(4)
_H_SEEK = const(5)  # fast seek inwards
_H_STOP = const(6)  # the seek (or approach) saw the switch: in-flight segments finishing
_H_BACKOFF = const(7)
_H_RELEASE = const(8)  # after the back-off the switch must read open
_H_APPROACH = const(9)
_H_TOUCH = const(10)  # slow re-touch, one step per poll


class Homing:
    SEEK_SPS = 3500
    SEEK_SEG_US = 2000  # short segments: the stop after the switch is seen comes quickly
    SEEK_MAX_STEPS = 1700  # travel + switch over-travel: no switch by then -> HOME_NOT_FOUND
    BACKOFF_STEPS = 100  # back off beyond where the switch first closed (0.25 mm)
    CLEAR_MAX_STEPS = 240  # closed at start: out at most this far (switch over-travel 0.4 mm)
    BACKOFF_SPS = 5000
    APPROACH_MARGIN_STEPS = 40  # the slow re-touch starts this far before the seek's switch point
    APPROACH_SPS = 3000
    TOUCH_INTERVAL_US = 500  # the slow re-touch: one step per poll, sampled after each
    TOUCH_MAX_STEPS = 120
    HOME_RETRIES = 2  # approaches that met the switch early before giving up
    HOME_TIMEOUT_MS = 3000  # whole homing (travel timeout) -> HOME_NOT_FOUND
    LOST_STEPS_TOL = 6  # re-home: switch this far off its step 0 -> LOST_STEPS (15 µm)

    def __init__(self, axis, endstop):
        self.axis = axis
        self._es = endstop
        self.active = False
        self.phase = _H_START
        self.offset = 0
        self._check_lost = False
        self._first = None  # where the switch was first met
        self._touched = 0
        self._retries = 0
        self._deadline = 0

    @property
    def checking(self):
        """This homing is a re-home that compares (the axis was homed when it began)."""
        return self.active and self._check_lost

    def start(self, check_lost):
        self._check_lost = check_lost
        self.active = True
        self._retries = 0
        self._first = None
        self._deadline = time.ticks_add(time.ticks_ms(), self.HOME_TIMEOUT_MS)
        self.phase = _H_START

    def poll(self, closed):
        if not self.active:
            return
        self._step(closed)
        if self.active and time.ticks_diff(time.ticks_ms(), self._deadline) > 0:
            self.axis.trip(faults.HOME_NOT_FOUND)

    def _step(self, closed):
        es = self._es
        ax = self.axis
        ph = self.phase
        if ph == _H_START:
            if ax.stepper_busy or not es.settled:
                return
            if closed:
                # at (or past) the switch: move out until it lets go, at most its over-travel
                self.phase = _H_CLEAR
                ax.leg(self._cap(ax.position_steps + self.CLEAR_MAX_STEPS), self.BACKOFF_SPS,
                          ax.SEG_US)  # fmt: skip
            else:
                self._start_seek()
        elif ph == _H_CLEAR:
            if not closed and es.settled:
                ax.stop_motion()
                self.phase = _H_CLEAR_CHECK
            elif ax.legs_done():
                self.phase = _H_CLEAR_CHECK
        elif ph == _H_CLEAR_CHECK:
            if ax.stepper_busy or not es.settled:
                return
            if closed:
                ax.trip(faults.ENDSTOP_STUCK)
            else:
                self._start_seek()
        elif ph == _H_SEEK:
            if closed or not es.settled:  # closed readings: where the switch was first met
                if self._first is None:
                    self._first = ax.position_steps
            else:
                self._first = None  # it was a glitch: the integrator is back at open
            if closed:
                ax.stop_motion()
                self.phase = _H_STOP
            elif ax.legs_done():
                # the whole travel without the switch: the stop is at the inner hard stop
                ax.at_inner_end()
                ax.trip(faults.HOME_NOT_FOUND)
        elif ph == _H_APPROACH:
            if closed or not es.settled:
                # met the switch before the slow re-touch began: back off again from here
                self._retries += 1
                if self._retries > self.HOME_RETRIES:
                    ax.trip(faults.HOME_NOT_FOUND)
                    return
                self._first = ax.position_steps
                ax.stop_motion()
                self.phase = _H_STOP
            elif ax.legs_done():
                self._touched = 0
                self.phase = _H_TOUCH
        elif ph == _H_STOP:
            if ax.stepper_busy:
                return
            self.phase = _H_BACKOFF
            ax.leg(self._cap(self._first + self.BACKOFF_STEPS), self.BACKOFF_SPS,
                      ax.SEG_US)  # fmt: skip
        elif ph == _H_BACKOFF:
            if ax.legs_done():
                self.phase = _H_RELEASE
        elif ph == _H_RELEASE:
            if not es.settled:
                return
            if closed:
                ax.trip(faults.ENDSTOP_STUCK)
                return
            self.phase = _H_APPROACH
            t = self._first + self.APPROACH_MARGIN_STEPS
            if t >= ax.position_steps:
                t = ax.position_steps
            ax.leg(t, self.APPROACH_SPS, ax.SEG_US)
        elif ph == _H_TOUCH:
            if ax.stepper_busy:
                return
            if closed:
                self._found()
            elif not es.settled:
                return  # closed readings seen: let the debounce decide before stepping on
            elif self._touched >= self.TOUCH_MAX_STEPS:
                ax.trip(faults.HOME_NOT_FOUND)
            else:
                self._touched += 1
                ax.step_in(self.TOUCH_INTERVAL_US)

    def _start_seek(self):
        self.phase = _H_SEEK
        self._first = None
        ax = self.axis
        ax.leg(ax.position_steps - self.SEEK_MAX_STEPS, self.SEEK_SPS, self.SEEK_SEG_US)

    def _cap(self, t):
        """Homing moves stay within the limit when the position is known (a re-home)."""
        if self.axis.position_known:
            hi = self.axis.max_steps()
            if t > hi:
                return hi
        return t

    def _found(self):
        ax = self.axis
        p = ax.zero_here()
        self.active = False
        self.offset = p if self._check_lost else 0
        if self._check_lost and abs(p) > self.LOST_STEPS_TOL:
            ax.trip(faults.LOST_STEPS)
            return
        ax.homed_here()
