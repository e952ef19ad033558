"""The pen's state machine (firmware/pen.py) against fakes of the needle drive and depth axis."""

from mphelp import check, raises, req
from mptest_pen_fakes import make_pen

from firmware import errors as E
from firmware import faults as F
from firmware import pen as P
from firmware.errors import Refused


def _armed_with_cartridge():
    pen, needle, depth, clock, events = make_pen()
    pen.arm()
    pen.confirm_cartridge()
    return pen, needle, depth, clock, events


@req("PS-1")
def test_boot_locks_then_homes_by_itself():
    """PS-1: after boot the pen is locked (not homed) and starts homing by itself; READY only
    when the axis reports homed."""
    pen, needle, depth, clock, events = make_pen(home=False)
    check(pen.state == P.HOMING, "homing after boot, got %s" % P.NAMES[pen.state])
    check(depth.homing, "the axis was asked to home")
    pen.poll()
    check(pen.state == P.HOMING, "still homing")
    depth.finish_home()
    pen.poll()
    check(pen.state == P.READY, "ready once homed")
    check(depth.position_um == pen.targets.depth_um, "the stop goes to the target once homed")
    names = [(e["from"], e["to"]) for e in events if e["event"] == "state"]
    check(names == [("BOOT", "LOCKED"), ("LOCKED", "HOMING"), ("HOMING", "READY")], str(names))


@req("PS-2")
def test_run_refused_unless_homed_armed_and_cartridge():
    """PS-2: run is refused with the reason when not homed, not armed or without a confirmed
    cartridge, and the motor is never started."""
    pen, needle, depth, clock, events = make_pen(home=False)
    e = raises(Refused, pen.run)
    check(e.code == E.NOT_HOMED, "not homed: %r" % (e.args,))
    depth.finish_home()
    pen.poll()
    e = raises(Refused, pen.run)
    check(e.code == E.NOT_ARMED, "not armed")
    pen.arm()
    e = raises(Refused, pen.run)
    check(e.code == E.NO_CARTRIDGE, "no cartridge")
    check(needle.starts == 0 and not needle.running, "the motor never started")
    pen.confirm_cartridge()
    pen.run()
    check(pen.state == P.RUNNING and needle.running and needle.starts == 1)


@req("PS-2", "PS-3")
def test_no_path_to_running_without_homed_and_armed():
    """PS-2, PS-3: random sequences of every facade call and plant event (fixed seed, 3000
    steps): the motor runs only in RUNNING/STOPPING, and RUNNING is entered only from ARMED with
    the axis homed and a cartridge confirmed; every transition is in the table."""
    pen, needle, depth, clock, events = make_pen(home=False)
    seed = [12345]

    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 8) % n

    ops = (
        lambda: pen.home(), lambda: pen.arm(), lambda: pen.disarm(), lambda: pen.run(),
        lambda: pen.run(120), lambda: pen.stop(),
        lambda: pen.targets.change("depth", rnd(350) * 10),
        lambda: pen.targets.step_depth(1), lambda: pen.targets.step_depth(-1),
        lambda: pen.targets.step_rate(1),
        lambda: pen.clear_fault(), lambda: pen.confirm_cartridge(), lambda: pen.enter_service(),
        lambda: pen.exit_service(), lambda: pen.move_steps(10), lambda: depth.finish_home(True),
        lambda: depth.finish_home(False), lambda: needle.finish_stop(), lambda: needle.spin(50),
        lambda: needle.trip(F.STALL, False), lambda: depth.trip(F.LOST_STEPS, False),
        lambda: clock.advance(200_000), lambda: pen.wake(),
        lambda: setattr(depth, "cause_present", False),
    )  # fmt: skip
    seen = set()
    for _ in range(3000):
        before = pen.state
        was_armed = before == P.ARMED
        homed = depth.homed
        cart = pen.cart.ok
        try:
            ops[rnd(len(ops))]()
        except Refused:
            pass
        pen.poll()
        seen.add(pen.state)
        if needle.running:
            check(pen.state in (P.RUNNING, P.STOPPING), "motor on in %s" % P.NAMES[pen.state])
        if pen.state == P.RUNNING and before != P.RUNNING:
            check(was_armed and homed and cart, "RUNNING entered from %s" % P.NAMES[before])
        if pen.state == P.FAULT:
            check(not needle.running, "fault: motor off")
    for ev in events:
        if ev["event"] == "state" and ev["to"] != "FAULT":
            frm = P.NAMES.index(ev["from"])
            to = P.NAMES.index(ev["to"])
            check(to in P._ALLOWED[frm], "transition %s->%s" % (ev["from"], ev["to"]))
    check(P.RUNNING in seen and P.FAULT in seen and P.SERVICE in seen, "the walk covered them")


@req("PS-4")
def test_needle_fault_latches_safe_state_until_cleared():
    """PS-4: a needle fault while running: motor killed, depth stop retracted, FAULT latched;
    run and arm refused; clear refused while the cause stands; after the cause is gone a clear
    leaves the pen READY and disarmed (never running again by itself)."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    pen.disarm()
    pen.targets.change("depth", 1500)
    pen.arm()
    pen.run()
    needle.spin(300)
    needle.trip(F.STALL, cause=True)
    pen.poll()
    check(pen.state == P.FAULT and pen.fault == F.STALL, "latched")
    check(not needle.running and depth.position_um == 0, "motor off, depth stop retracted")
    check(any(e["event"] == "fault" and e["fault"] == "stall" for e in events), "reported")
    for op in (pen.run, pen.arm, pen.confirm_cartridge):
        e = raises(Refused, op)
        check(e.code == E.FAULT_ACTIVE, "refused in FAULT")
    e = raises(Refused, pen.clear_fault)
    check(e.code == E.FAULT_ACTIVE and "still" in e.message, "cause present: not cleared")
    check(pen.state == P.FAULT)
    for _ in range(10):
        clock.advance(1000)
        pen.poll()
    check(pen.state == P.FAULT, "stays latched")
    needle.cause_present = False
    pen.clear_fault()
    check(pen.state == P.READY and pen.fault == F.NONE, "cleared -> READY")
    check(depth.position_um == 1500, "the depth target is restored (motor off)")
    check(raises(Refused, pen.run).code == E.NOT_ARMED, "disarmed after a clear")


@req("PS-4", "PS-5")
def test_depth_fault_clears_into_rehoming():
    """PS-4, PS-5: a depth-stop fault latches; its clear re-homes (position in doubt)."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    pen.run()
    depth.trip(F.LOST_STEPS, cause=False)
    pen.poll()
    check(pen.state == P.FAULT and not needle.running)
    pen.clear_fault()
    check(pen.state == P.HOMING, "re-homing after a depth fault, got %s" % P.NAMES[pen.state])
    depth.finish_home()
    pen.poll()
    check(pen.state == P.READY)


@req("PS-6")
def test_stop_ramp_then_armed_and_second_stop_coasts():
    """PS-6: stop is a controlled ramp (STOPPING) ending ARMED; a second stop during the ramp
    coasts the motor at once."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    pen.run()
    pen.stop()
    check(pen.state == P.STOPPING and needle.stopping)
    needle.finish_stop()
    pen.poll()
    check(pen.state == P.ARMED, "armed again for the next pass")
    pen.run()
    pen.stop()
    kills = needle.kills
    pen.stop()
    check(needle.kills == kills + 1 and not needle.running, "second stop coasts")
    pen.poll()
    check(pen.state == P.ARMED)


@req("PS-7")
def test_depth_only_while_stopped_and_within_limit():
    """PS-7: the depth target moves only while the needle is stopped and the axis homed;
    beyond the limit is refused (never clamped) with a limit event."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    pen.targets.change("depth", 2000)
    check(depth.position_um == 2000)
    check(raises(Refused, pen.targets.change, "depth", 3001).code == E.OUT_OF_RANGE)
    check(raises(Refused, pen.targets.change, "depth", -1).code == E.OUT_OF_RANGE)
    check(pen.targets.depth_um == 2000, "unchanged after a refusal")
    check(any(e["event"] == "limit" for e in events), "limit reported")
    pen.run()
    e = raises(Refused, pen.targets.change, "depth", 1000)
    check(e.code == E.MOTOR_RUNNING, "not while running")
    check(raises(Refused, pen.targets.step_depth, 1).code == E.MOTOR_RUNNING)
    check(depth.position_um == 2000)


@req("UI-3")
def test_depth_steps_stop_at_limit():
    """UI-3 (logic): plus/minus steps by depth_step and stops exactly at the limit."""
    pen, needle, depth, clock, events = make_pen(config={"depth_step": 250})
    pen.targets.change("depth", 2600)
    check(pen.targets.step_depth(1) and pen.targets.depth_um == 2850)
    check(pen.targets.step_depth(1) and pen.targets.depth_um == 3000, "last step: the limit")
    n = len([e for e in events if e["event"] == "limit"])
    check(n == 1, "limit signalled when reached")
    check(not pen.targets.step_depth(1) and pen.targets.depth_um == 3000, "no further")
    check(len([e for e in events if e["event"] == "limit"]) == 2)
    pen.targets.change("depth", 100)
    check(pen.targets.step_depth(-1) and pen.targets.depth_um == 0)


@req("UI-5")
def test_rate_steps_and_limits():
    """UI-5 (logic): the stroke rate moves in steps within its limits, stopped or running;
    while running the drive's target follows and a new pass begins."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    r0 = pen.targets.rate_hz
    pen.targets.step_rate(1)
    check(pen.targets.rate_hz == r0 + 5)
    pen.run()
    pen.targets.step_rate(-1)
    check(needle.target_hz == r0, "drive target follows: %d" % needle.target_hz)
    for _ in range(40):
        pen.targets.step_rate(1)
    check(pen.targets.rate_hz == 150 and needle.target_hz == 150)
    check(raises(Refused, pen.run, 151).code == E.OUT_OF_RANGE)


@req("PS-8")
def test_cartridge_warns_then_stops_at_limit():
    """PS-8: strokes count per cartridge; a warning at cartridge_warn_pct, a controlled stop at
    the limit, then run refused until a new cartridge is confirmed."""
    pen, needle, depth, clock, events = make_pen(config={"cartridge_stroke_limit": 1000,
                                                           "cartridge_warn_pct": 80})
    pen.arm()
    pen.confirm_cartridge()
    pen.run()
    needle.spin(700)
    pen.poll()
    check(not [e for e in events if e["event"] == "cartridge" and e["what"] == "warn"])
    needle.spin(150)
    pen.poll()
    check([e for e in events if e["event"] == "cartridge" and e["what"] == "warn"], "warned")
    needle.spin(200)
    pen.poll()
    check(pen.state == P.STOPPING, "stopping at the limit")
    needle.finish_stop()
    pen.poll()
    check(pen.state == P.READY, "disarmed after a spent cartridge")
    pen.arm()
    check(raises(Refused, pen.run).code == E.NO_CARTRIDGE)
    pen.confirm_cartridge()
    check(pen.cart.strokes == 0)
    pen.run()
    check(pen.state == P.RUNNING)


@req("PS-9")
def test_idle_disarms_then_sleeps_and_wakes():
    """PS-9: an armed pen left alone disarms; a stopped pen left alone sleeps; a user action
    wakes it to READY (never armed)."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    clock.advance(pen.settings.get("disarm_after_s") * 1000 + 1)
    pen.poll()
    check(pen.state == P.READY, "disarmed by inactivity")
    clock.advance(pen.settings.get("sleep_s") * 1000 + 1)
    pen.poll()
    check(pen.state == P.SLEEP)
    check(raises(Refused, pen.run).code == E.NOT_ARMED, "a command wakes, run still refused")
    check(pen.state == P.READY)


@req("PS-9")
def test_running_never_sleeps():
    """PS-9: inactivity never stops or sleeps a running needle."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    pen.run()
    for _ in range(20):
        clock.advance(60_000)
        needle.spin(10)
        pen.poll()
    check(pen.state == P.RUNNING)


@req("PS-10")
def test_service_state():
    """PS-10: service only from a stopped, disarmed pen; raw steps only in service; leaving it
    re-homes."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    check(raises(Refused, pen.enter_service).code == E.BUSY, "not while armed")
    check(raises(Refused, pen.move_steps, 10).code == E.BUSY, "no raw steps outside service")
    pen.disarm()
    pen.enter_service()
    check(pen.state == P.SERVICE)
    pen.move_steps(-40)
    check(depth.moves[-1] == ("steps", -40))
    check(raises(Refused, pen.arm).code in (E.BUSY, E.NOT_HOMED))
    check(raises(Refused, pen.run).code in (E.NOT_ARMED, E.BUSY))
    pen.exit_service()
    check(pen.state == P.HOMING)


@req("PS-11")
def test_watchdog_reset_latches_fault_at_boot():
    """PS-11: after a watchdog reset the pen boots into FAULT (watchdog), not homing."""
    from mptest_pen_fakes import FakeClock, FakeDepth, FakeNeedle

    needle, depth = FakeNeedle(), FakeDepth()
    pen = P.Pen(needle, depth, clock=FakeClock())
    pen.start(F.WATCHDOG)
    check(pen.state == P.FAULT and pen.fault == F.WATCHDOG)
    check(not depth.homing, "no motion before the user clears it")
    pen.clear_fault()
    check(pen.state == P.HOMING)


@req("PS-12")
def test_event_log_is_bounded_and_ordered():
    """PS-12: every transition is logged in a preallocated log (fixed size, newest kept)."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    for _ in range(30):
        pen.run()
        pen.stop()
        needle.finish_stop()
        pen.poll()
    ev = pen.events()
    check(len(ev) == 32, "bounded: %d" % len(ev))
    check(all(ev[i][0] <= ev[i + 1][0] for i in range(len(ev) - 1)), "time ordered")
    last = ev[-1]
    check(last[1] == P.EV_STATE and last[2] == (P.STOPPING << 8 | P.ARMED), "newest last")


@req("PS-13")
def test_status_has_the_protocol_fields():
    """PS-13: status() carries every field of docs/protocol.md's Status JSON."""
    pen, needle, depth, clock, events = _armed_with_cartridge()
    st = pen.status()
    for k in ("state", "homed", "armed", "depth_mm", "target_depth_mm", "measured_hz",
              "target_hz", "duty", "current_ma", "battery_mv", "fault", "fault_code",
              "cartridge", "cartridge_strokes", "uptime_ms"):  # fmt: skip
        check(k in st, k)
    check(st["state"] == "ARMED" and st["armed"] and st["homed"] and st["cartridge"] == 1)


@req("PS-4")
def test_axis_fault_at_boot_latches_instead_of_crashing():
    """PS-4: an axis that comes up with a latched fault (e.g. an invalid calibration) makes
    the pen FAULT at its first poll; start-up itself does not fail."""
    from mptest_pen_fakes import FakeClock, FakeDepth, FakeNeedle

    needle, depth = FakeNeedle(), FakeDepth()
    depth.fault = F.CALIBRATION_INVALID

    def refusing_home():
        raise Refused(E.FAULT_ACTIVE)

    depth.home = refusing_home
    pen = P.Pen(needle, depth, clock=FakeClock())
    pen.start()
    pen.poll()
    check(pen.state == P.FAULT and pen.fault == F.CALIBRATION_INVALID)


@req("TM-3")
def test_telemetry_sample_matches_status():
    """TM-3: the allocation-free telemetry sample (pen.telemetry_into, taken 200 times a second)
    says what status() says, field by field, in every state a session passes through."""
    from array import array

    from firmware import telemetry as T

    pen, needle, depth, clock, events = _armed_with_cartridge()
    v = array("i", [0] * 9)
    for step in ("armed", "running", "fault"):
        if step == "running":
            pen.run(120)
            needle.rate_mhz = 119_950
            needle.duty = 21_000
            needle.current_ma = 230
        elif step == "fault":
            needle.fault = F.STALL
            pen.poll()
        pen.telemetry_into(v)
        st = pen.status()
        want = (T.STATES.index(st["state"]), int(round(st["measured_hz"] * 10)), st["target_hz"],
                st["duty"], int(round((st["depth_mm"] or 0) * 1000)),
                int(round(st["target_depth_mm"] * 1000)), st["current_ma"], st["battery_mv"],
                st["fault_code"])  # fmt: skip
        check(tuple(v) == want, "%s: %r != %r" % (step, tuple(v), want))
