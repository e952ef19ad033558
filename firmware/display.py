"""The pen's display: four lines of sixteen characters (8x8 font) on the 128x32 OLED.

    READY     3.90V      state, battery
    DEPTH 0.50mm         depth (actual > target while the stop moves)
    RATE 100Hz   C3      stroke rate (measured/target while running), cartridge
    hold START 1s        a message (refusal, limit, cartridge), else a hint for the state

In FAULT the fault is shown in words (the fault table's text) with how to clear it.
`lines()` decides the text (pure, tested); `draw()` puts it into the framebuf.FrameBuffer of
the driver (`drivers/ssd1306.py`) and sends it only when it changed.
"""

import asyncio

from firmware import faults as F
from firmware import pen as P
from firmware.schema import fmt_mm

COLS = 16

_HINT = {
    "LOCKED": "hold START:home",
    "HOMING": "homing...",
    "READY": "hold START:arm",
    "ARMED": "START: run",
    "RUNNING": "START: stop",
    "STOPPING": "stopping",
    "SERVICE": "service mode",
}


def _mm(um):
    return fmt_mm(um if um > 0 else 0, 2)


def _lr(left, right):
    """`left` and `right` on one line, right-aligned (MicroPython's str has no rjust)."""
    gap = COLS - len(left) - len(right)
    return left + " " * gap + right if gap > 0 else left


def _wrap(text, width=COLS):
    """Words onto lines of `width` (at most two lines)."""
    lines = [""]
    for w in text.split():
        if not lines[-1]:
            lines[-1] = w
        elif len(lines[-1]) + 1 + len(w) <= width:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return [ln[:width] for ln in lines[:2]]


class Display:
    refresh_ms = 100

    def __init__(self, dev, pen, ui=None):
        self.dev = dev  # framebuf.FrameBuffer subclass with show(), poweron(), poweroff()
        self.pen = pen
        self.ui = ui
        self.shown = None  # the lines last sent to the panel
        self._on = True
        self.frames = 0

    def lines(self):
        pen = self.pen
        st = pen.state
        name = P.NAMES[st]
        mv = pen.needle.battery_mv
        top = _lr(name, "%d.%02dV" % (mv // 1000, mv % 1000 // 10))
        msg = self.ui.current_message() if self.ui is not None else None
        if st == P.FAULT:
            words = _wrap(F.text(pen.fault))
            while len(words) < 2:
                words.append("")
            # The clear hint, unless a clear was just refused (the cause is still there).
            last = msg[0] if msg is not None and msg[0].startswith("CAUSE") else "hold START:clear"
            return (top, words[0], words[1], last[:COLS])
        d = pen.depth
        pos = d.position_um
        target = pen.targets.depth_um
        if d.homed and pos is not None:
            depth = "DEPTH " + _mm(pos) + "mm"
            if d.busy and abs(pos - target) > 5:
                depth = "DEPTH %s>%s" % (_mm(pos), _mm(target))
        else:
            depth = "DEPTH --"  # position unknown: never the target in its place (SF-06)
        if st in (P.RUNNING, P.STOPPING):
            m = pen.needle.rate_mhz
            rate = "RATE %d.%d/%d" % (m // 1000, m % 1000 // 100, pen.targets.rate_hz)
        else:
            rate = "RATE %dHz" % pen.targets.rate_hz
        cart = ("C%d" % pen.cart.number) if pen.cart.ok else "C-"
        rate = _lr(rate, cart)
        if msg is not None:
            return (top, depth[:COLS], msg[0][:COLS], msg[1][:COLS])
        return (top, depth[:COLS], rate[:COLS], _HINT.get(name, "")[:COLS])

    def draw(self, lines=None):
        """Render the lines if they changed; returns True if the panel was updated."""
        if lines is None:
            lines = self.lines()
        if lines == self.shown:
            return False
        fb = self.dev
        fb.fill(0)
        for i, text in enumerate(lines):
            fb.text(text, 0, i * 8, 1)
        fb.show()
        self.shown = lines
        self.frames += 1
        return True

    def sleep(self, asleep):
        if asleep == (not self._on):
            return
        self._on = not asleep
        if asleep:
            self.dev.poweroff()
        else:
            self.dev.poweron()
            self.shown = None

    async def run(self, checkin=None):
        while True:
            try:
                self.sleep(self.pen.state == P.SLEEP)
                if self._on:
                    self.draw()
            except OSError:
                # An I2C error (loose display) must not stop the pen; try again next time.
                self.shown = None
            if checkin is not None:
                checkin()
            await asyncio.sleep_ms(self.refresh_ms)
