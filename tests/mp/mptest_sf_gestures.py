"""Every pair of buttons, in every order, in every state (UI-20), on synthetic timelines against
the state machine with a fake drive and axis (firmware/ui.py, firmware/pen.py; fake clock).

For each state (LOCKED, HOMING, READY, ARMED without and with a cartridge, RUNNING, STOPPING,
FAULT, SERVICE, SLEEP) and each gesture: one button tapped or held; two buttons pressed
one after the other (30 ms, 300 ms or 1100 ms apart) or together, released in either order
after a short or a 1.2 s hold, every ordered pair. Checked against docs/ui.md's rules:
  - the needle starts only from START pressed and released alone, briefly, on an armed pen
    with a cartridge (never when PLUS or MINUS is held at any time during the START press);
  - the pen arms only from START held alone 1 s on a READY pen;
  - the depth target changes only from PLUS/MINUS (START not held, or already used up by
    its 1 s hold), on READY/ARMED;
  - while running, any gesture with START stops the needle, and the depth never changes;
  - a cartridge is confirmed only by PLUS+MINUS held 1 s without START (not RUNNING/FAULT);
  - asleep, any gesture only wakes the pen.
"""

# mp-timeout: 300

from mphelp import check, info, req
from mptest_pen_fakes import make_pen

from firmware import faults as F
from firmware import pen as P
from firmware.ui import MINUS, PLUS, START, UI

NAMES = {START: "S", PLUS: "P", MINUS: "M"}
STATES = ("LOCKED", "HOMING", "READY", "ARMED", "ARMED+C", "RUNNING", "STOPPING", "FAULT",
          "SERVICE", "SLEEP")  # fmt: skip


def _setup(state):
    pen, needle, depth, clock, events = make_pen(home=state not in ("LOCKED", "HOMING"))
    ui = UI(pen, clock=clock)
    if state == "LOCKED":
        pass  # homing started by itself; make it LOCKED
    if state == "HOMING":
        pass
    if state in ("ARMED", "ARMED+C", "RUNNING", "STOPPING"):
        pen.arm()
    if state in ("ARMED+C", "RUNNING", "STOPPING"):
        pen.confirm_cartridge()
    if state in ("RUNNING", "STOPPING"):
        pen.run()
        needle.spin(10)
    if state == "STOPPING":
        pen.stop()
    if state == "FAULT":
        needle.trip(F.STALL, cause=False)
        pen.poll()
    if state == "SERVICE":
        pen.enter_service()
    if state == "SLEEP":
        pen._goto(P.SLEEP, "test")
    if state == "LOCKED":
        depth.homing = False
        depth.busy = False
        pen.state = P.LOCKED
    got = P.NAMES[pen.state]
    want = state.split("+")[0]
    check(got == want, "set-up %s: %s" % (state, got))
    return ui, pen, needle, depth, clock


def _sample(ui, clock, mask, ms):
    end = clock.t + ms
    while clock.t < end:
        ui.update(mask, clock.t)
        clock.advance(5)


def _gestures():
    """(name, timeline [(mask, ms), ...], lone_start_short, start_involved, first, second)."""
    out = []
    for b in (START, PLUS, MINUS):
        n = NAMES[b]
        out.append(("tap " + n, [(b, 100), (0, 200)]))
        out.append(("hold " + n, [(b, 1200), (0, 200)]))
    for a in (START, PLUS, MINUS):
        for b in (START, PLUS, MINUS):
            if a == b:
                continue
            for gap in (30, 300, 1100):
                for hold_ms in (100, 1200):
                    for first_up in (a, b):
                        other = b if first_up == a else a
                        tl = [(a, gap), (a | b, hold_ms), (other, 100), (0, 200)]
                        out.append(("%s,+%dms %s, hold %d, %s up first" % (
                            NAMES[a], gap, NAMES[b], hold_ms, NAMES[first_up]), tl))
            if a < b:
                for hold_ms in (100, 1200):
                    out.append(("%s%s together, hold %d" % (NAMES[a], NAMES[b], hold_ms),
                                [(a | b, hold_ms), (0, 200)]))  # fmt: skip
    return out


def _check_gesture(state, name, tl):
    ui, pen, needle, depth, clock = _setup(state)
    starts0 = needle.starts
    target0 = pen.targets.depth_um
    state0 = pen.state
    cart0 = pen.cart.number
    for mask, ms in tl:
        _sample(ui, clock, mask, ms)
    after = P.NAMES[pen.state]
    masks = [m for m, _ in tl]
    start_alone_short = (len(tl) == 2 and masks[0] == START and tl[0][1] < ui.long_press_ms)
    start_any = any(m & START for m in masks)
    # START held alone 1 s first: its long-press gesture (arm/disarm/clear/home) used it up
    start_long_first = masks[0] == START and tl[0][1] >= ui.long_press_ms
    # PLUS/MINUS alone past the chord window first: its step was taken before START came
    pm_first = masks[0] in (PLUS, MINUS) and tl[0][1] >= ui.chord_ms
    pm_only = not start_any or start_long_first or pm_first
    why = "%s / %s -> %s (message %r)" % (state, name, after, ui.msg)
    # the needle starts only from a lone short START on an armed pen with a cartridge
    ran = needle.starts > starts0
    if ran:
        check(state == "ARMED+C" and start_alone_short, "ran: " + why)
    elif state == "ARMED+C" and start_alone_short:
        check(False, "a lone short START did not run: " + why)
    # arming only from a lone START hold on READY
    if state0 == P.READY and pen.state == P.ARMED:
        check(start_long_first, "armed: " + why)
    # depth only from PLUS/MINUS without START, while stopped
    if pen.targets.depth_um != target0:
        stopped = state in ("READY", "ARMED", "ARMED+C") or (
            start_long_first and after in ("READY", "ARMED"))  # a clear or arm came first
        check(pm_only and stopped, "depth changed: " + why)
    # running: START anywhere in the gesture stops; depth never changes there
    if state == "RUNNING" and start_any:
        check(pen.state == P.STOPPING or not needle.running, "not stopped: " + why)
    # a cartridge only from the PLUS+MINUS hold without START
    if pen.cart.number != cart0:
        check(not start_any and any(m == PLUS | MINUS for m in masks), "cartridge: " + why)
        check(state not in ("RUNNING", "STOPPING", "FAULT", "SERVICE", "SLEEP"),
              "cartridge in " + why)  # fmt: skip
    # asleep: only the wake
    if state == "SLEEP":
        check(not ran and pen.targets.depth_um == target0 and pen.cart.number == cart0,
              "asleep: " + why)  # fmt: skip
    return ran


@req("UI-20", "SF-01", "UI-9")
def test_every_pair_and_order_of_buttons_in_every_state():
    """UI-20, SF-01, UI-9: every button alone, and every ordered pair of buttons (30, 300 or
    1100 ms apart or together; short or 1.2 s holds; released in either order), in every state:
    the needle starts only from a lone short START on an armed pen with a cartridge, never
    when PLUS or MINUS is held during the START press (in either order); arm, depth and
    cartridge only from their own gestures; while running START stops; asleep only wakes."""
    gestures = _gestures()
    runs = 0
    n = 0
    for state in STATES:
        for name, tl in gestures:
            if _check_gesture(state, name, tl):
                runs += 1
            n += 1
    check(runs == 1, "runs %d (only the lone START tap on ARMED+C)" % runs)
    info("%d gestures x states" % n)


@req("UI-20")
def test_plus_held_then_start_never_runs():
    """UI-20: the issue's case: on an armed pen with a cartridge, PLUS held and then START
    pressed (and released first or last) does not run; START then PLUS steps the rate."""
    for first_up in (START, PLUS):
        ui, pen, needle, depth, clock = _setup("ARMED+C")
        _sample(ui, clock, PLUS, 300)
        _sample(ui, clock, PLUS | START, 100)
        _sample(ui, clock, PLUS if first_up == START else START, 100)
        _sample(ui, clock, 0, 200)
        check(needle.starts == 0 and pen.state == P.ARMED, "ran: %r" % (ui.msg,))
        check(ui.msg is not None and ui.msg[0] == "ONE AT A TIME", repr(ui.msg))
    ui, pen, needle, depth, clock = _setup("ARMED+C")
    r0 = pen.targets.rate_hz
    _sample(ui, clock, START, 300)
    _sample(ui, clock, START | PLUS, 100)
    _sample(ui, clock, 0, 200)
    check(needle.starts == 0 and pen.targets.rate_hz != r0, "START then PLUS: %r" % (ui.msg,))
