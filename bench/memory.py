"""Memory of the pen's firmware on the virtual pen, measured inside the `micropython` binary
(unix port):

    .venv/bin/python bench/memory.py        (from the repository root)

The pen's own heap figures (free after boot, live while running, the application's share) are
measured on the emulated chip by bench/chip.py; this benchmark measures what only the virtual
pen has, to size its heap. The virtual pen's process holds three things in one heap
(host_tools/pen/sim.py, HEAP): the simulator (plant, shims, side channel), the application's
bytecode (loaded from .mpy files; on the RP2040 it runs from ROMFS and takes no heap) and the
firmware's data (board, telemetry ring, application objects), which must fit the heap the chip
leaves it (`FIRMWARE_HEAP_K`, from bench/chip.py). Each share is the growth of
`gc.mem_alloc()` (after `gc.collect()`) across the step that adds it:

1. pass 1, heap as the virtual pen's: the shares, then a session on the virtual board in
   deterministic mode (boot and homing, 2 s idle, then `telemetry on 200` and the needle at
   100 Hz under skin load at 1.00 mm for 10 s, then a stop);
2. pass 2: the same with `-X heapsize` chosen so that exactly the RP2040's budget is free
   when the firmware starts; it must boot and run the session without a MemoryError.

During the session every idle wait of the firmware (asyncio's poll in the `select` shim, or a
sleep on the virtual clock: where the plant runs) ends with a `gc.collect()`: the heap in use
after it is the firmware's live data (its peak: the peak heap while running); what
`gc.mem_alloc()` grew by until the next idle wait is what the firmware's tasks allocated (the
allocation rate; the simulator's own allocations happen inside the waits and are not counted;
the Python shims of the peripherals the tasks call, C on the pen, are: an upper bound). The
hard timer's control tick runs with the heap locked: it allocates nothing.
"""

import sys

if sys.implementation.name != "micropython":
    import json
    import math
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    ROOT = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "host_tools")]
    from benchlib import emit, micropython

    def _kib(n):
        return round(n / 1024, 1)

    def _run(heap, flash):
        res = subprocess.run(
            [micropython(), "-X", "heapsize=" + heap, str(Path(__file__).resolve()), str(flash)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env=dict(os.environ, MICROPYPATH=""),
        )  # fmt: skip
        for line in res.stdout.splitlines():
            if line.startswith("@@MEM "):
                return json.loads(line[6:])
        raise SystemExit("memory bench: micropython failed (heap %s):\n%s%s"
                         % (heap, res.stdout[-2000:], res.stderr[-2000:]))  # fmt: skip

    def main():
        from pen import sim

        budget_k = sim.FIRMWARE_HEAP_K  # measured on the chip (bench/chip.py)
        with tempfile.TemporaryDirectory(prefix="pen-mem-") as tmp:
            flash = Path(tmp) / "flash"
            flash.mkdir()
            sim.populate_flash(flash, ROOT)  # the .mpy files `pen deploy` would write
            p1 = _run(sim.HEAP, flash)
            heap1 = int(sim.HEAP.rstrip("K")) * 1024
            usable_ratio = p1["usable"] / heap1
            need = p1["before_app"] + budget_k * 1024
            heap2_k = math.ceil(need / usable_ratio / 1024)
            p2 = _run("%dK" % heap2_k, flash)
        mib = p2["session_s"]
        print("memory of the pen's firmware (micropython unix port, virtual board)")
        print("  simulator (plant, shims, side channel)   %6.1f KB  (allowance %s KB)"
              % (_kib(p1["sim"]), getattr(sim, "SIM_ALLOWANCE_K", "?")))  # fmt: skip
        print("  application bytecode from .mpy           %6.1f KB  (allowance %s KB; 0 on the "
              "pen: ROMFS)" % (_kib(p1["code"]), getattr(sim, "BYTECODE_ALLOWANCE_K", "?")))
        print("  firmware data after construction        %6.1f KB  of the %d KB budget"
              % (_kib(p1["data"]), budget_k))  # fmt: skip
        print("    of which the telemetry ring            %6.1f KB" % _kib(p1["ring"]))
        print("    of which the board (drivers)           %6.1f KB" % _kib(p1["board"]))
        print("  pass 2: heap %d KB, free when the firmware starts %.1f KB"
              % (heap2_k, _kib(p2["free_before_app"])))  # fmt: skip
        print("  heap free after boot (homed, READY)      %6.1f KB" % _kib(p2["free_after_boot"]))
        print("  peak firmware data during the session    %6.1f KB (%.1f KB with the garbage "
              "between two collections)" % (_kib(p2["peak_live"]), _kib(p2["peak_inuse"])))
        print("  lowest heap free during the session      %6.1f KB" % _kib(p2["min_free"]))
        print("  allocation rate, needle + telemetry 200 Hz %7.0f bytes/s (%d s virtual)"
              % (p2["alloc_running"] / mib, mib))  # fmt: skip
        print("  allocation rate, idle READY                %7.0f bytes/s"
              % (p2["alloc_idle"] / p2["idle_s"]))  # fmt: skip
        how1 = ("gc.mem_alloc() growth after gc.collect(), micropython -X heapsize=%s (the "
                "virtual pen's heap)" % sim.HEAP)
        free0 = _kib(p2["free_before_app"])
        how2 = ("session on the virtual board (deterministic), micropython -X heapsize=%dK: "
                "%.0f KB free when the firmware starts, like the RP2040" % (heap2_k, free0))
        emit("Simulator's share of the virtual pen's heap", _kib(p1["sim"]), "KB",
             how1 + "; plant, shims, side channel")
        emit("Application bytecode in RAM (import of every pen module from .mpy)",
             _kib(p1["code"]), "KB", how1 + "; 0 on the RP2040, where it runs from ROMFS in flash")
        emit("Firmware data after construction (board, telemetry ring, app objects)",
             _kib(p1["data"]), "KB", how1 + "; budget %d KB on the RP2040" % budget_k)
        emit("  of which the telemetry ring", _kib(p1["ring"]), "KB", how1)
        emit("  of which the board (drivers)", _kib(p1["board"]), "KB", how1)
        emit("Heap free after boot (homed, READY)", _kib(p2["free_after_boot"]), "KB",
             how2 + "; gc.mem_free() after gc.collect()")
        emit("Peak firmware data while running", _kib(p2["peak_live"]), "KB",
             how2 + "; live heap after a gc.collect() at every idle wait, 10 s at 100 Hz with "
             "telemetry at 200 Hz")
        emit("Peak firmware heap incl. garbage between idle waits", _kib(p2["peak_inuse"]), "KB",
             how2 + "; gc.mem_alloc() just before each collection")
        emit("Lowest heap free while running", _kib(p2["min_free"]), "KB",
             how2 + "; no MemoryError")
        emit("Allocation rate, needle at 100 Hz + telemetry 200 Hz",
             round(p2["alloc_running"] / mib), "bytes/s",
             "gc.mem_alloc() growth between the firmware's idle waits over %d s virtual "
             "(the simulator's allocations excluded; the Python peripheral shims included)"
             % mib)
        emit("Allocation rate, idle (READY)", round(p2["alloc_idle"] / p2["idle_s"]), "bytes/s",
             "as above, %d s virtual in READY" % p2["idle_s"])
        emit("Control tick allocations during the session", p2["tick_alloc"], "bytes",
             "gc.mem_alloc() before and after each of the session's %d hard-timer ticks, each "
             "run under micropython.heap_lock() (an allocation would have raised MemoryError)"
             % p2["tick_calls"])
        return 0

    sys.exit(main())

# -- inside the micropython binary ---------------------------------------------------------------
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

RUN_S = 10
IDLE_S = 2


def _measure(flash):
    gc.collect()
    base = gc.mem_alloc()
    root = os.getcwd()
    # The pen's flash (.mpy files) first, as in the virtual pen; the simulator's sources after.
    sys.path[:] = [flash, root + "/sim", ".frozen"]
    import simrt

    simrt.install(realtime=False)
    import asyncio  # noqa: F401
    import select  # noqa: F401
    import time  # noqa: F401

    import board_sim
    import ctl  # noqa: F401  (the side channel, as the virtual pen loads it)
    import machine  # noqa: F401
    import rp2  # noqa: F401

    pen_hw = board_sim.VirtualPen(simrt.SIM)
    gc.collect()
    a_sim = gc.mem_alloc()
    # The application's bytecode: every module of the pen's file set, from the .mpy files.
    for pkg in ("hardware", "drivers", "firmware"):
        for entry in sorted(os.ilistdir(flash + "/" + pkg)):
            name = entry[0]
            if name.endswith(".mpy") or (name.endswith(".py") and name != "__init__.py"):
                __import__(pkg + "." + name.rsplit(".", 1)[0])
    gc.collect()
    a_code = gc.mem_alloc()
    # The harness (tests/mp/app_rig.py): small, counted apart.
    sys.path.append(root + "/tests/mp")
    import app_rig

    gc.collect()
    a_harness = gc.mem_alloc()
    from firmware.telemetry import Telemetry

    rings = [Telemetry()]
    gc.collect()
    ring_bytes = gc.mem_alloc() - a_harness
    rings.clear()
    gc.collect()
    out = {"base": base, "sim": a_sim - base, "code": a_code - a_sim,
           "harness": a_harness - a_code, "ring": ring_bytes}  # fmt: skip
    out["before_app"] = gc.mem_alloc()
    out["usable"] = gc.mem_alloc() + gc.mem_free()
    out["free_before_app"] = gc.mem_free()
    port = app_rig.HostPort(parse=False)
    rig = app_rig.AppRig(hw=pen_hw, port=port, app=False)
    gc.collect()
    out["board"] = gc.mem_alloc() - out["before_app"]
    rig.start_app()
    gc.collect()
    out["data"] = gc.mem_alloc() - out["before_app"]
    _session(rig, out)
    rig.close()
    print("@@MEM " + json.dumps(out))


def _session(rig, out):
    import select

    import simrt

    SIM = simrt.SIM
    before = out["before_app"]
    # [counting?, live after the last collection, allocated while counting, peak live,
    #  peak in use, lowest free, nesting depth of the idle wait]
    m = [0, gc.mem_alloc(), 0, 0, 0, gc.mem_free(), 0]

    def enter():
        # The firmware's tasks ran since the last idle wait: what they allocated.
        m[6] += 1
        if m[6] == 1:
            a = gc.mem_alloc()
            if m[0]:
                m[2] += a - m[1]
            if a > m[4]:
                m[4] = a
            f = gc.mem_free()
            if f < m[5]:
                m[5] = f

    def leave():
        m[6] -= 1
        if m[6] == 0:
            gc.collect()
            live = gc.mem_alloc()
            m[1] = live
            if live > m[3]:
                m[3] = live

    # An idle wait is asyncio's poll (the select shim: on the pen it is C and allocates
    # nothing; here it runs the plant) or a sleep on the virtual clock.
    P = select._Poll
    orig = (P.ipoll, P.poll, SIM.advance_to)

    def ipoll(self, timeout=-1, flags=0):
        enter()
        try:
            return orig[0](self, timeout, flags)
        finally:
            leave()

    def poll(self, timeout=-1):
        enter()
        try:
            return orig[1](self, timeout)
        finally:
            leave()

    def advance_to(t):
        enter()
        try:
            orig[2](t)
        finally:
            leave()

    P.ipoll = ipoll
    P.poll = poll
    SIM.advance_to = advance_to
    # Every hard-timer callback (the control tick) of the session: count it and measure what
    # it allocated (it runs with the heap locked, as on the RP2040).
    locked = simrt.heap_locked_call
    ticks = [0, 0]  # calls, bytes

    def counted(fn, arg):
        a = gc.mem_alloc()
        locked(fn, arg)
        ticks[1] += gc.mem_alloc() - a
        ticks[0] += 1

    simrt.heap_locked_call = counted

    async def scenario(r):
        await r.ready()
        await r.sleep(100)
        gc.collect()
        out["free_after_boot"] = gc.mem_free()
        m[2] = 0
        m[0] = 1
        await r.sleep(IDLE_S * 1000)
        m[0] = 0
        out["alloc_idle"] = m[2]
        r.ok("depth 1.00")
        await r.until(lambda: not r.app.depth.busy, 2000, "depth")
        r.ok("arm")
        r.ok("cartridge new")
        await r.position_checked()
        r.hw.motor.load = 0.8
        r.ok("telemetry on 200")
        r.ok("run 100")
        await r.sleep(300)
        b0 = r.port.bytes_out
        m[2] = 0
        m[0] = 1
        await r.sleep(RUN_S * 1000)
        m[0] = 0
        out["alloc_running"] = m[2]
        out["stream_bytes"] = r.port.bytes_out - b0
        out["running"] = r.state() == "RUNNING" and r.app.pen.fault == 0
        r.ok("stop")
        await r.until(lambda: r.state() == "ARMED", 2000, "stopped")

    rig.run(scenario)
    P.ipoll, P.poll, SIM.advance_to = orig
    simrt.heap_locked_call = locked
    out["tick_calls"] = ticks[0]
    out["tick_alloc"] = ticks[1]
    if not ticks[0]:
        raise AssertionError("no control tick ran in the session")
    if not out["running"]:
        raise AssertionError("the needle did not run through the session")
    out["session_s"] = RUN_S
    out["idle_s"] = IDLE_S
    out["peak_live"] = m[3] - before
    out["peak_inuse"] = m[4] - before
    out["min_free"] = m[5]


_measure(sys.argv[1])
