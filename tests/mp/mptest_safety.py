"""The cross-cutting safety requirements (SF-) on the whole application (firmware/app.py on the
virtual board, deterministic virtual clock): every way to start the needle or to set a depth,
from the buttons down to the needle drive and the depth axis, tried in every state where it
must be refused; the plant's truth (the rotor's turns, the bridge's nSLEEP, the dial gauge)
shows what really happened. SF-03 (every fault) is the fault matrix, mptest_fault_matrix.py."""

# mp-timeout: 120
# mp-heap: 576K
# (the simulator, this harness and the application's bytecode besides the firmware's data)

from app_rig import AppRig
from mphelp import check, info, raises, req

from firmware import errors as E
from firmware.errors import Refused


async def _try_to_run(r, why):
    """Every way to start the needle: the protocol (`run`, `run HZ`), the START button, the
    state machine's run(), the needle drive's start(); all refused, the motor never driven."""
    state = r.state()
    for line in ("run", "run 120"):
        reply = r.cmd(line)
        check(reply.startswith("error:"), "%s in %s (%s): %s" % (line, state, why, reply))
    r.hw.buttons.press("start", 100)
    await r.sleep(250)
    check(r.state() != "RUNNING", "START ran the needle in %s (%s)" % (state, why))
    raises(Refused, r.app.pen.run)
    if state != "ARMED":
        # Below the state machine: the drive's own interlock (armed, homed, stop still).
        raises(Refused, r.app.needle.start, 100)
    await r.sleep(50)
    check(not r.motor_driven() and not r.app.needle.running, "motor driven in %s" % state)


@req("SF-01", "PS-2", "UI-9")
def test_needle_never_runs_unless_homed_and_armed():
    """SF-01, PS-2, UI-9: while homing, homed but not armed, armed without a cartridge, in
    FAULT with the axis unhomed and after the fault is cleared, every way to start the needle
    (protocol, START button, state machine, needle drive) is refused and the motor is never
    driven; once homed, armed and with a cartridge, it runs."""
    rig = AppRig()
    w = rig.watch
    seen = []

    async def scenario(r):
        await r.sleep(2)
        w.start()
        turns0 = r.hw.motor.turns
        check(r.state() == "HOMING" and not r.app.depth.homed, "homing after boot")
        await _try_to_run(r, "not homed")
        seen.append("HOMING")
        await r.ready()
        await _try_to_run(r, "not armed")
        seen.append("READY")
        r.ok("arm")
        await _try_to_run(r, "no cartridge")
        seen.append("ARMED")
        r.ok("disarm")
        r.inject("endstop_closed")  # the switch sticks: ENDSTOP_STUCK, the axis unhomed
        await r.until(lambda: r.state() == "FAULT", 200, "FAULT")
        check(not r.app.depth.homed, "unhomed by the fault")
        await _try_to_run(r, "fault latched")
        seen.append("FAULT")
        r.inject("none")
        await r.sleep(20)  # the switch reads open again (plant step, debounce)
        r.ok("clear")
        await r.until(lambda: r.state() == "HOMING", 100, "re-homing after the clear")
        await _try_to_run(r, "re-homing")
        await r.until(lambda: r.state() == "READY", 2000, "READY")
        await _try_to_run(r, "cleared, never armed")
        seen.append("CLEARED")
        check(not w.was_driven and r.hw.motor.turns == turns0, "the needle moved")
        # The one path: homed, armed, a cartridge: it runs (the checks above can fail).
        r.ok("arm")
        r.ok("cartridge new")
        await r.position_checked()
        r.ok("run 100")
        await r.until(lambda: r.true_hz() > 90, 500, "running")
        check(w.was_driven and r.state() == "RUNNING", "the one path runs")

    rig.run(scenario)
    check(seen == ["HOMING", "READY", "ARMED", "FAULT", "CLEARED"], repr(seen))
    rig.close()


@req("SF-02", "PS-7", "DS-10", "DS-12", "SP-7")
def test_depth_never_beyond_the_limit_at_any_layer():
    """SF-02, PS-7, DS-10, DS-12, SP-7: a depth beyond the limit is refused by the protocol
    (`depth`, `set depth`), the state machine and the depth axis; PLUS held stops at the
    limit; a raw service move is clamped to it; the limit cannot be lowered below the depth set;
    no depth change while the needle runs; the true protrusion never exceeds the limit."""
    rig = AppRig()
    w = rig.watch

    async def scenario(r):
        await r.ready()
        app = r.app
        lim = app.depth.limit_um
        over = "%d.%02d" % ((lim + 10) // 1000, (lim + 10) % 1000 // 10)
        for line in ("depth " + over, "set depth " + over, "depth 9.99", "depth -0.10"):
            reply = r.cmd(line)
            check(reply.startswith("error:"), "%s: %s" % (line, reply))
        e = raises(Refused, app.pen.targets.change, "depth", lim + 10)
        check(e.code == E.OUT_OF_RANGE, "state machine: %r" % (e.args,))
        e = raises(Refused, app.depth.move_to_um, lim + 10)
        check(e.code == E.OUT_OF_RANGE, "axis: %r" % (e.args,))
        check(app.pen.targets.depth_um <= lim and app.depth.target_um <= lim, "a target moved")
        # The buttons: PLUS held from 0.2 mm below the limit stops at the limit.
        r.ok("depth %d.%02d" % ((lim - 200) // 1000, (lim - 200) % 1000 // 10))
        await r.until(lambda: not app.depth.busy, 1000, "move")
        r.hw.buttons.press("plus", 3000)
        await r.sleep(3300)
        await r.until(lambda: not app.depth.busy, 1000, "move")
        check(app.pen.targets.depth_um == lim, "PLUS ended at %d um" % app.pen.targets.depth_um)
        # The limit cannot go below the depth set (SP-7), so the stop is never left beyond it.
        check(r.cmd("set depth_limit 1.00").startswith("error:"), "limit lowered")
        # Running: no depth change at all.
        r.ok("arm")
        r.ok("cartridge new")
        await r.position_checked()
        r.ok("run 100")
        await r.sleep(200)
        check(r.cmd("depth 1.00").startswith("error:17"), "depth changed while running")
        r.ok("stop")
        await r.until(lambda: r.state() == "ARMED", 1000, "stopped")
        r.ok("disarm")
        # The service path (calibration): a raw move far out is clamped to the limit's step.
        app.pen.enter_service()
        app.pen.move_steps(app.depth.TRAVEL_STEPS - app.depth.position_steps)  # to the far end
        await r.until(lambda: not app.depth.busy, 2000, "service move")
        check(app.depth.position_steps <= app.depth.max_steps(), "service move not clamped")
        app.pen.exit_service()
        await r.until(lambda: r.state() == "READY", 2000, "READY after service")

    rig.run(scenario)
    lim_mm = rig.app.depth.limit_um / 1000
    info("deepest true protrusion %.3f mm, limit %.2f mm" % (w.max_depth_mm, lim_mm))
    check(w.max_depth_mm <= lim_mm, "true protrusion %.3f mm > limit %.2f" % (w.max_depth_mm,
                                                                             lim_mm))
    rig.close()
