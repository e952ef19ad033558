"""The button gestures (firmware/ui.py) on synthetic button timelines, against the state
machine with fake drive and axis. Time is the fake clock: every verdict is deterministic."""

from mphelp import check, req
from mptest_pen_fakes import make_pen

from firmware import faults as F
from firmware import pen as P
from firmware.ui import MINUS, PLUS, START, UI


class FakeBuzzer:
    def __init__(self):
        self.played = []

    def play(self, name):
        self.played.append(name)


def rig(**kw):
    pen, needle, depth, clock, events = make_pen(**kw)
    bz = FakeBuzzer()
    ui = UI(pen, buzzer=bz, clock=clock)
    return ui, pen, needle, depth, clock, bz


def hold(ui, clock, mask, ms, bounce=False):
    """Hold `mask` for `ms` (sampled every 5 ms), optionally with contact bounce at the start."""
    end = clock.t + ms
    if bounce:
        for m in (mask, 0, mask, 0):
            ui.update(m, clock.t)
            clock.advance(1)
    while clock.t < end:
        ui.update(mask, clock.t)
        clock.advance(5)


def tap(ui, clock, mask, ms=100):
    hold(ui, clock, mask, ms)
    hold(ui, clock, 0, 60)


@req("UI-1", "PS-2")
def test_short_start_refused_when_not_armed_says_why():
    """UI-1, PS-2: a short start on a ready (unarmed) pen is refused, the display message says
    why and the motor never starts; on a homing pen it says not homed."""
    ui, pen, needle, depth, clock, bz = rig(home=False)
    tap(ui, clock, START)
    check(ui.current_message()[0] == "NOT HOMED", repr(ui.msg))
    depth.finish_home()
    pen.poll()
    tap(ui, clock, START)
    check(ui.current_message()[0] == "NOT ARMED", repr(ui.msg))
    check(bz.played.count("refused") == 2)
    check(needle.starts == 0)


@req("UI-2")
def test_hold_start_arms_short_start_runs_and_stops():
    """UI-2: hold start 1 s arms (not before 1 s); a short press runs an armed pen with a
    cartridge; a press while running stops at the press (not at its release)."""
    ui, pen, needle, depth, clock, bz = rig()
    hold(ui, clock, START, 900)
    check(pen.state == P.READY, "not armed before 1 s")
    hold(ui, clock, START, 200)
    check(pen.state == P.ARMED, "armed at 1 s while still held")
    hold(ui, clock, 0, 60)
    check(pen.state == P.ARMED, "release does nothing more")
    check("armed" in bz.played)
    hold(ui, clock, PLUS | MINUS, 1100)
    hold(ui, clock, 0, 60)
    check(pen.cart.ok and pen.cart.number == 1, "cartridge confirmed by the chord")
    tap(ui, clock, START)
    check(pen.state == P.RUNNING, "short start runs")
    hold(ui, clock, START, 30)  # debounced press, still held
    check(pen.state == P.STOPPING, "stop acts on the press")
    hold(ui, clock, 0, 60)
    needle.finish_stop()
    pen.poll()
    check(pen.state == P.ARMED, "the release of the stop press did not run again")


@req("UI-1")
def test_bounce_and_glitches_ignored():
    """UI-1: contact bounce shorter than debounce_ms is no press; a 10 ms glitch is no press."""
    ui, pen, needle, depth, clock, bz = rig()
    t0 = pen.targets.depth_um
    for _ in range(5):
        hold(ui, clock, PLUS, 10)
        hold(ui, clock, 0, 30)
    check(pen.targets.depth_um == t0, "glitches did not step")
    hold(ui, clock, PLUS, 80, bounce=True)
    hold(ui, clock, 0, 60)
    check(pen.targets.depth_um == t0 + 50, "one bouncy press = one step: %d" % pen.targets.depth_um)


@req("UI-3")
def test_depth_steps_repeat_and_stop_at_limit():
    """UI-3: plus/minus move the target by depth_step; holding repeats every repeat_ms after
    repeat_delay_ms; at the limit the target stops and the limit buzz sounds once."""
    ui, pen, needle, depth, clock, bz = rig()
    pen.targets.change("depth", 2500)
    tap(ui, clock, PLUS)
    check(pen.targets.depth_um == 2550)
    tap(ui, clock, MINUS)
    tap(ui, clock, MINUS)
    check(pen.targets.depth_um == 2450)
    hold(ui, clock, PLUS, ui.repeat_delay_ms + 3 * ui.repeat_ms + 20)
    check(pen.targets.depth_um == 2450 + 4 * 50, "1 + 3 repeats: %d" % pen.targets.depth_um)
    hold(ui, clock, PLUS, 3000)
    hold(ui, clock, 0, 60)
    check(pen.targets.depth_um == 3000, "stopped at the limit: %d" % pen.targets.depth_um)
    check(bz.played.count("limit") == 1, "one limit signal: %r" % bz.played)
    check(ui.msg is not None and ui.msg[0].startswith("DEPTH MAX"))


@req("UI-4", "PS-7")
def test_depth_buttons_while_running_change_rate_not_depth():
    """UI-4, PS-7: while running, plus/minus never move the depth; they change the rate."""
    ui, pen, needle, depth, clock, bz = rig()
    pen.arm()
    pen.confirm_cartridge()
    pen.run()
    d0, r0 = pen.targets.depth_um, pen.targets.rate_hz
    tap(ui, clock, PLUS)
    check(pen.targets.depth_um == d0 and depth.position_um == d0, "depth unchanged")
    check(pen.targets.rate_hz == r0 + 5 and needle.target_hz == pen.targets.rate_hz)


@req("UI-5")
def test_start_plus_changes_rate_and_uses_up_start():
    """UI-5: holding start and pressing plus/minus changes the stroke rate; the start press is
    then used up (no arm at 1 s, no run at release)."""
    ui, pen, needle, depth, clock, bz = rig()
    r0 = pen.targets.rate_hz
    hold(ui, clock, START, 200)
    hold(ui, clock, START | PLUS, 100)
    hold(ui, clock, START, 100)
    hold(ui, clock, START | PLUS, 100)
    hold(ui, clock, START, 1500)
    hold(ui, clock, 0, 60)
    check(pen.targets.rate_hz == r0 + 10, "two rate steps: %d" % pen.targets.rate_hz)
    check(pen.state == P.READY, "start used up: not armed")
    check(pen.targets.depth_um == 500, "depth untouched")


@req("UI-6")
def test_cartridge_chord_needs_both_for_one_second():
    """UI-6: plus+minus held together 1 s confirm a cartridge; shorter, or one alone, does
    not; the chord does not step the depth."""
    ui, pen, needle, depth, clock, bz = rig()
    d0 = pen.targets.depth_um
    hold(ui, clock, PLUS | MINUS, 800)
    hold(ui, clock, 0, 60)
    check(pen.cart.number == 0, "0.8 s is not enough")
    hold(ui, clock, PLUS, 40)  # plus first, minus joins within the chord window
    hold(ui, clock, PLUS | MINUS, 1100)
    hold(ui, clock, 0, 60)
    check(pen.cart.number == 1 and "cartridge" in bz.played)
    check(pen.targets.depth_um == d0, "no depth step from the chord: %d" % pen.targets.depth_um)


@req("UI-7", "PS-4")
def test_hold_start_clears_fault_only_when_cause_gone():
    """UI-7, PS-4: in FAULT a short start is refused (shown); holding start 1 s clears the fault
    if its cause is gone, else shows that it is still present; after a clear the pen is not
    armed, and holding on does not arm it."""
    ui, pen, needle, depth, clock, bz = rig()
    pen.arm()
    pen.confirm_cartridge()
    pen.run()
    needle.trip(F.STALL, cause=True)
    pen.poll()
    check(pen.state == P.FAULT and "fault" in bz.played)
    tap(ui, clock, START)
    check(ui.msg[0] == "FAULT LATCHED")
    hold(ui, clock, START, 1100)
    hold(ui, clock, 0, 60)
    check(pen.state == P.FAULT and ui.msg[0].startswith("CAUSE STILL"), repr(ui.msg))
    needle.cause_present = False
    hold(ui, clock, START, 2500)
    hold(ui, clock, 0, 60)
    check(pen.state == P.READY, "cleared, not armed: %s" % P.NAMES[pen.state])


@req("UI-8")
def test_any_button_wakes_and_does_nothing_else():
    """UI-8: any press on a sleeping pen (START, PLUS, MINUS, PLUS+MINUS, START+PLUS; a tap or
    a 2 s hold) only wakes it: READY, the depth untouched, the needle never started, no
    cartridge confirmed."""
    for mask in (START, PLUS, MINUS, PLUS | MINUS, START | PLUS):
        for ms in (60, 2000):
            ui, pen, needle, depth, clock, bz = rig()
            clock.advance(pen.settings.get("sleep_s") * 1000 + 1)
            pen.poll()
            check(pen.state == P.SLEEP)
            d0, p0, c0 = pen.targets.depth_um, depth.position_um, pen.cart.number
            hold(ui, clock, mask, ms)
            hold(ui, clock, 0, 60)
            where = "mask %d for %d ms" % (mask, ms)
            check(pen.state == P.READY, "%s: state %r" % (where, pen.state))
            moved = "%s moved the depth" % where
            check(pen.targets.depth_um == d0 and depth.position_um == p0, moved)
            check(needle.starts == 0, "%s started the needle" % where)
            check(pen.cart.number == c0 and not pen.cart.ok, "%s: a cartridge" % where)


@req("UI-9")
def test_single_accidental_press_never_runs():
    """UI-9: from READY with a cartridge, no single press or hold of any button (0.05..3 s)
    starts the needle."""
    for mask in (START, PLUS, MINUS, PLUS | MINUS):
        for ms in (50, 300, 1200, 3000):
            ui, pen, needle, depth, clock, bz = rig()
            pen.confirm_cartridge()
            tap(ui, clock, mask, ms)
            check(needle.starts == 0, "mask %d for %d ms started the motor" % (mask, ms))
