"""Faults are never lost and never cleared while their cause stands (SF-11, SF-12), on the whole
application (firmware/app.py on the virtual board, deterministic virtual clock), through the
user's road: plant faults injected, `clear` and `faults` over the protocol, the session record
on flash."""

# mp-timeout: 180
# mp-heap: 576K
# (the simulator, this harness and the application's bytecode besides the firmware's data)

from app_rig import AppRig
from mphelp import check, info, req


async def _run_and_fault(r, plant_fault):
    r.ok("arm")
    r.ok("run 100")
    await r.until(lambda: r.state() == "RUNNING", 1000, "running")
    await r.sleep(150)
    r.inject(plant_fault)
    await r.until(lambda: r.state() == "FAULT", 500, "fault latched")
    r.inject("none")
    await r.until(lambda: not r.app.depth.busy and not r.app.needle.running, 2000, "safe")
    # the needle must stand still first: the user tries again until it is accepted
    await r.until(lambda: r.cmd("clear").startswith("ok"), 3000, "clear accepted", step_ms=50)
    await r.until(lambda: r.state() == "READY" and not r.app.depth.busy, 3000, "ready again")


@req("SF-11", "SP-30")
def test_every_fault_since_boot_in_the_log_and_the_session():
    """SF-11, SP-30: ten plant faults (stall and over-current in turn) in one session, each
    cleared: the `faults` log lists all ten, in order (the event log of 32 entries would have
    lost the first ones), and the stored session record holds every one."""
    r = AppRig()
    seen = []

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "stop at its depth")
        r.ok("cartridge new")
        await r.position_checked()
        for k in range(10):
            f = ("stall", "short")[k % 2]
            await _run_and_fault(r, f)
        log = r.ok("faults")
        seen.extend(e["fault"] for e in log["log"])
        check(log["dropped"] == 0, repr(log))
        check(len(r.app.pen.events()) == 32, "the event log wrapped")

    try:
        r.run(scenario, max_ms=120_000)
        check(seen == ["stall", "overcurrent"] * 5, repr(seen))
        rec = r.app.sessions.current
        codes = [f["code"] for f in rec["faults"]]
        n = len(codes) + rec.get("faults_not_itemised", 0)
        check(n == 10, "session faults %r + %r" % (codes, rec.get("faults_not_itemised")))
        import gc

        gc.collect()
        last = r.ok("session summary last")  # what is stored on flash
        check(last["id"] == rec["id"], "the session is on flash")
        check(len(last["faults"]) + last.get("faults_not_itemised", 0) == 10, repr(last))
    finally:
        r.close()
    info("faults %r" % seen)


@req("SF-11")
def test_fault_log_is_bounded_with_an_overflow_count():
    """SF-11: more faults since boot than the log itemises (120): the first one and the newest
    48 are listed, `dropped` counts the rest, and nothing else is lost: listed + dropped = all."""
    r = AppRig()

    async def scenario(r):
        await r.ready()
        pen = r.app.pen
        from firmware import faults as F

        codes = (F.STALL, F.OVERCURRENT, F.RUNAWAY)
        for k in range(120):
            pen.latch_fault(codes[k % 3], "test %d" % k)
            pen.fault = F.NONE  # what a clear does to the state machine's latch
            pen.state = 3  # READY
        log = r.ok("faults")
        names = [e["fault"] for e in log["log"]]
        check(len(names) == 49 and log["dropped"] == 120 - 49, "%d %r" % (len(names), log))
        check(names[0] == "stall" and names[-1] == F.name(codes[119 % 3]), repr(names[:3]))
        check(pen.faults_since_boot == 120)

    try:
        r.run(scenario, max_ms=20_000)
    finally:
        r.close()


@req("SF-12", "DS-41")
def test_clear_refused_while_the_endstop_still_reads_closed():
    """SF-12, DS-41: the home switch sticks closed while the needle runs: FAULT latched; `clear`
    and the START hold are refused with the reason (error:9, the endstop reads closed) while it
    stays closed, and the pen stays in FAULT (it does not trip again); once it reads open,
    `clear` is accepted and the pen re-homes."""
    r = AppRig()

    async def scenario(r):
        await r.running()
        r.inject("endstop_closed")
        await r.until(lambda: r.state() == "FAULT", 500, "fault latched")
        await r.until(lambda: not r.app.depth.busy, 2000, "retracted")
        n_faults = r.app.pen.faults_since_boot
        reply = r.cmd("clear")
        check(reply.startswith("error:9 ") and "endstop" in reply, reply)
        r.hw.buttons.press("start", 1200)
        await r.sleep(1400)
        check(r.state() == "FAULT", r.state())
        check(r.app.pen.faults_since_boot == n_faults, "tripped again")
        r.inject("none")
        await r.sleep(50)
        check(r.cmd("clear").startswith("ok"), "clear with the switch open")
        await r.until(lambda: r.state() == "READY", 3000, "re-homed")

    try:
        r.run(scenario, max_ms=30_000)
    finally:
        r.close()
