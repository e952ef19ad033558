"""The three-button UI: debounced buttons, gestures, feedback (display message, buzzer).

Gestures (docs/ui.md has the table of every button in every state):
- `start` held `long_press_ms` (1 s): arm a ready pen / disarm an armed one / clear a latched
  fault (if its cause is gone) / re-home a pen that is locked (not homed).
- `start` short press: on an armed pen with a confirmed cartridge, run (soft start); while
  running, stop - acting on the press itself, not the release, so a stop is never late. In any
  other state the pen's refusal is shown in words ("NOT HOMED", "NOT ARMED", ...).
- `plus` / `minus`: while stopped, the depth target by one step (depth_step, 0.05 mm);
  holding repeats after `repeat_delay_ms` every `repeat_ms`; at the limit the target stops and
  the limit is signalled. While running: the stroke rate by one step (never the depth: no press
  can deepen a needle that is in the skin).
- `start` held + `plus` / `minus`: the stroke rate by one step (holding repeats); the `start`
  press is then used up (it neither arms nor runs when released).
- `plus` + `minus` held together `long_press_ms` (1 s): confirm a new cartridge.
- `plus` + `minus` held together, then `start` pressed (within that 1 s; no cartridge then):
  on a ready pen, select the next preset (each further `start` press while both stay held, the
  one after); the display shows its name and range. Refused in every other state (an armed pen
  says DISARM FIRST): this `start` never runs the needle.
- With a preset active, `plus` / `minus` stop at its range (`PRESET MAX` / `PRESET MIN`); a new
  press held `override_ms` (3 s) at that bound steps once beyond it (a recorded override),
  never beyond the depth limit or 0.
- Any button while asleep: wake up only (the press does nothing else).
Nothing dangerous follows from one accidental press: running needs an earlier deliberate 1 s
hold (arm) and a confirmed cartridge; depth moves only while stopped.

`update(mask, now_ms)` is the whole logic (synchronous, tested with synthetic timelines);
`run()` is the asyncio task that samples the buttons every `poll_ms`.
"""

import asyncio
import time

from micropython import const

from firmware import errors as E
from firmware import pen as P
from firmware.errors import Refused
from firmware.schema import fmt_mm

START = const(1)
PLUS = const(2)
MINUS = const(4)

# Refusal code -> the display's words (two lines of at most 16 characters).
REFUSAL_TEXT = {
    E.NOT_HOMED: ("NOT HOMED", "wait for homing"),
    E.NOT_ARMED: ("NOT ARMED", "hold START 1s"),
    E.NO_CARTRIDGE: ("NO CARTRIDGE", "hold + and - 1s"),
    E.FAULT_ACTIVE: ("FAULT LATCHED", "hold START:clear"),
    E.MOTOR_RUNNING: ("STOP FIRST", ""),
    E.OUT_OF_RANGE: ("AT LIMIT", ""),
    E.BUSY: ("BUSY", ""),
}


class UI:
    poll_ms = 5
    debounce_ms = 20  # a level must hold this long to count (contact bounce is < 10 ms)
    long_press_ms = 1000  # arm / disarm / clear / cartridge: deliberate holds
    chord_ms = 120  # plus then minus within this is "together" (no depth step)
    repeat_delay_ms = 500  # hold plus/minus this long before it repeats
    repeat_ms = 150  # then one step per repeat_ms
    message_ms = 3000  # how long a message stays on the display
    override_ms = 3000  # a new press held this long at a preset's bound steps beyond it

    def __init__(self, pen, read=None, buzzer=None, clock=None):
        self.pen = pen
        self._read = read  # () -> bit mask of pressed buttons (START | PLUS | MINUS)
        self.buzzer = buzzer
        self._ms = clock or time.ticks_ms
        self.held = 0  # debounced mask
        self._raw = 0
        self._raw_t = 0
        self._used = 0  # buttons whose current press is used up (act again after release)
        self._start_t = 0
        self._pend = 0  # plus/minus waiting out the chord window
        self._pend_t = 0
        self._rep = 0  # button repeating, and what it repeats: "depth" or "rate"
        self._rep_what = None
        self._rep_next = 0
        self._chord_t = None
        self._start_rate = False  # the held start press is being used for rate steps
        self._ovr = 0  # the button held at a preset's bound (override after override_ms)
        self._ovr_t = 0
        self._at_preset = False  # the last depth limit signalled was a preset's bound
        self.msg = None  # (line1, line2)
        self._msg_until = 0
        self._waking = False  # the buttons of the gesture that woke the pen, until released
        pen.listeners.append(self._on_event)

    # -- feedback -------------------------------------------------------------------------
    def message(self, line1, line2="", ms=None):
        self.msg = (line1, line2)
        self._msg_until = time.ticks_add(self._ms(), self.message_ms if ms is None else ms)

    def current_message(self):
        if self.msg is not None and time.ticks_diff(self._msg_until, self._ms()) <= 0:
            self.msg = None
        return self.msg

    def buzz(self, name):
        if self.buzzer is not None:
            self.buzzer.play(name)

    def _on_event(self, ev):
        kind = ev.get("event")
        if kind == "fault":
            self.msg = None  # the fault screen takes over
            self.buzz("fault")
        elif kind == "limit":
            self.buzz("limit")
            what = ev.get("what", "")
            if what.startswith("depth"):
                self._at_preset = bool(ev.get("preset"))
                t = self.pen.targets
                lo, hi = t.depth_bounds() if self._at_preset else (0, t.limit_um())
                top = what == "depth_max"
                self.message("%s %s %s" % (
                    "PRESET" if self._at_preset else "DEPTH", "MAX" if top else "MIN",
                    fmt_mm(hi if top else lo)),
                    "hold 3s:override" if self._at_preset else "")  # fmt: skip
            else:
                lo, hi = self.pen.targets.rate_limits()
                self.message("RATE %s %dHz" % ("MAX" if what == "rate_max" else "MIN",
                                               hi if what == "rate_max" else lo))
        elif kind == "cartridge":
            what = ev.get("what")
            if what == "new":
                self.buzz("cartridge")
                self.message("CARTRIDGE %d" % ev.get("cartridge", 0), "new session")
            elif what == "warn":
                self.buzz("warn")
                left = ev.get("limit", 0) - ev.get("strokes", 0)
                self.message("CARTRIDGE LOW", "%d strokes left" % left, 5000)
            elif what == "limit":
                self.buzz("spent")
                self.message("CARTRIDGE USED", "fit a new one", 10000)
        elif kind == "preset":
            self.buzz("ready")
            self.message(ev.get("preset", "")[:16], "%.2f-%.2f %dHz" % (
                ev.get("depth_min_mm", 0), ev.get("depth_max_mm", 0), ev.get("target_hz", 0)))
        elif kind == "override":
            self.buzz("warn")
            self.message("OVERRIDE %.2f" % ev.get("to_mm", 0), "preset " + (ev.get("preset")
                                                                           or "")[:9])
        elif kind == "state":
            to = ev.get("to")
            if to == "ARMED" and ev.get("from") == "READY":
                self.buzz("armed")
            elif to == "READY" and ev.get("from") == "ARMED":
                self.buzz("disarmed")
            elif to == "READY" and ev.get("from") == "HOMING":
                self.buzz("ready")

    def _do(self, name, fn, *args):
        """Carry out one gesture; a refusal is shown in words and buzzed, never raised."""
        self.pen.activity()
        try:
            return fn(*args)
        except Refused as r:
            words = REFUSAL_TEXT.get(r.code)
            if r.message.startswith("cause still"):
                words = ("CAUSE STILL ON", "see fault")
            elif r.message == "disarm first":
                words = ("DISARM FIRST", "hold START 1s")
            if words is None:
                words = (r.message[:16].upper(), r.message[16:32])
            self.message(words[0], words[1])
            self.buzz("refused")
            return None

    # -- the gesture machine ------------------------------------------------------------------
    def update(self, raw, now):
        """One sample of the buttons' raw mask at `now` (ms)."""
        if raw != self._raw:
            self._raw = raw
            self._raw_t = now
        elif raw != self.held and time.ticks_diff(now, self._raw_t) >= self.debounce_ms:
            pressed = raw & ~self.held
            released = self.held & ~raw
            self.held = raw
            if released:
                self._released(released, now)
            if pressed:
                self._pressed(pressed, now)
        self._timers(now)

    def _pressed(self, bits, now):
        pen = self.pen
        if pen.state == P.SLEEP or self._waking:
            # any button while asleep: wake up only; the buttons pressed before all are
            # released belong to that gesture too (UI-20)
            self._used |= self.held
            if pen.state == P.SLEEP:
                self._waking = True
                self._do("wake", pen.wake)
            return
        if bits & START:
            self._start_t = now
            if pen.state == P.RUNNING:
                self._used |= START
                self._do("stop", pen.stop, "button")
            elif pen.state == P.STOPPING:
                self._used |= START
            elif self.held & PLUS and self.held & MINUS:
                # plus + minus held, then start: the next preset on a ready pen, refused in
                # any other state (never a run, never a cartridge).
                self._chord_t = None
                self._pend = self._rep = self._ovr = 0
                self._used |= START | PLUS | MINUS
                self._do("preset", pen.targets.next_preset)
                return  # plus/minus pressed in the same sample belong to this gesture
            elif self.held & (PLUS | MINUS) and not bits & (PLUS | MINUS):
                # UI-20: start pressed while plus or minus is already held is no gesture: it
                # neither runs, arms, disarms, clears nor steps the rate (a run needs START
                # pressed and released on its own), and the plus/minus press ends there (no
                # further step, no repeat, no override) until every button is released.
                self._used |= START | (self.held & (PLUS | MINUS))
                self._pend = self._rep = self._ovr = 0
                self._chord_t = None
                self.message("ONE AT A TIME", "release + and -")
                self.buzz("refused")
        for b in (PLUS, MINUS):
            if not bits & b:
                continue
            other = MINUS if b == PLUS else PLUS
            start_free = not self._used & START or self._start_rate
            if self.held & START and start_free and pen.state != P.RUNNING:
                # start + plus/minus: stroke rate. The start press is used up.
                self._used |= START
                self._start_rate = True
                self._step("rate", b)
                self._rep, self._rep_what = b, "rate"
                self._rep_next = time.ticks_add(now, self.repeat_delay_ms)
            elif self.held & other:
                # Both held: the cartridge chord. The other one's pending step is cancelled.
                if self._pend == other:
                    self._pend = 0
                self._rep = self._ovr = 0
                self._chord_t = now
            else:
                self._pend = b
                self._pend_t = now

    def _released(self, bits, now):
        if not self.held:
            self._waking = False
        if bits & START:
            if not self._used & START:
                if time.ticks_diff(now, self._start_t) < self.long_press_ms:
                    self._short_start()
            self._used &= ~START
            self._start_rate = False
        for b in (PLUS, MINUS):
            if bits & b:
                if self._pend == b:
                    self._pend = 0
                    if not self._used & b:
                        self._step(None, b)
                if self._rep == b:
                    self._rep = 0
                if self._ovr == b:
                    self._ovr = 0
                self._used &= ~b
        if not (self.held & PLUS and self.held & MINUS):
            if self._chord_t is not None:
                # The chord ends; the buttons still held do nothing more until released.
                self._used |= self.held & (PLUS | MINUS)
                self._chord_t = None

    def _timers(self, now):
        pen = self.pen
        held = self.held
        if self._pend and held & self._pend and self._chord_t is None:
            if time.ticks_diff(now, self._pend_t) >= self.chord_ms:
                b = self._pend
                self._pend = 0
                if not self._used & b:
                    what = self._step(None, b)
                    if what is not None:
                        self._rep, self._rep_what = b, what
                        self._rep_next = time.ticks_add(self._pend_t, self.repeat_delay_ms)
        if self._rep and held & self._rep and time.ticks_diff(now, self._rep_next) >= 0:
            self._rep_next = time.ticks_add(self._rep_next, self.repeat_ms)
            if self._step(self._rep_what, self._rep) != 1:
                self._rep = 0  # at the limit: hold does nothing more (one limit signal)
        if self._ovr and held & self._ovr and time.ticks_diff(now, self._ovr_t) >= 0:
            b = self._ovr
            self._ovr = 0
            self._used |= b
            self._do("override", pen.targets.step_depth, 1 if b == PLUS else -1, True)
        if self._chord_t is not None and held & PLUS and held & MINUS:
            if time.ticks_diff(now, self._chord_t) >= self.long_press_ms:
                self._chord_t = None
                self._used |= PLUS | MINUS
                self._do("cartridge", pen.confirm_cartridge)
        if held & START and not self._used & START:
            if time.ticks_diff(now, self._start_t) >= self.long_press_ms:
                self._used |= START
                self._long_start()

    def _step(self, what, b):
        """One plus/minus step: depth while stopped, rate while running (or `what` given).
        With `what` None: returns the kind of step if it moved and may repeat, else None.
        With `what` given: returns the pen's answer (1 moved, 2 onto the limit, 0 / None not)."""
        pen = self.pen
        d = 1 if b == PLUS else -1
        kind = what
        if kind is None:
            kind = "rate" if pen.state in (P.RUNNING, P.STOPPING) else "depth"
        if kind == "rate":
            r = self._do("rate+" if d > 0 else "rate-", pen.targets.step_rate, d)
        else:
            self._at_preset = False
            r = self._do("depth+" if d > 0 else "depth-", pen.targets.step_depth, d)
            if what is None and r == 0 and self._at_preset and self.held & b:
                # A new press at the preset's bound: held on, it becomes an override.
                self._ovr = b
                self._ovr_t = time.ticks_add(self._pend_t, self.override_ms)
        if what is not None:
            return r
        return kind if r == 1 else None

    def _short_start(self):
        # run() itself refuses with the reason (not homed / not armed / no cartridge / fault).
        self._do("run", self.pen.run)

    def _long_start(self):
        pen = self.pen
        s = pen.state
        if s == P.READY:
            self._do("arm", pen.arm)
        elif s == P.ARMED:
            self._do("disarm", pen.disarm)
        elif s == P.FAULT:
            self._do("clear", pen.clear_fault)
        elif s == P.LOCKED:
            self._do("home", pen.home)
        elif s == P.HOMING:
            self._do("arm", pen.arm)  # refused: not homed (shown)

    # -- the task -------------------------------------------------------------------------
    async def run(self, checkin=None):
        read = self._read
        while True:
            self.update(read(), self._ms())
            if checkin is not None:
                checkin()
            await asyncio.sleep_ms(self.poll_ms)
