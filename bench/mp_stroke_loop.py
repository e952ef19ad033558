# Runs inside the `micropython` binary (unix port) on the virtual pen, started by
# bench/stroke_loop.py from the repository root:
#   micropython -X heapsize=256K bench/mp_stroke_loop.py loop HZ
#   micropython -X heapsize=256K bench/mp_stroke_loop.py tick
#   micropython -X heapsize=256K bench/mp_stroke_loop.py units FIRST LAST LOAD [LOAD ...]
# Prints one JSON line with the figures (`units`: one line per unit, rate and load).
import sys

sys.path[:] = ["build/mp-bench", "", "tests/mp", "sim", ".frozen"]  # bench/benchlib.py

import simrt  # noqa: E402

simrt.install(realtime=False)

import gc  # noqa: E402
import json  # noqa: E402

import machine  # noqa: E402
import micropython  # noqa: E402
from mphelp import SIM  # noqa: E402
from needle_rig import Rig, fresh_board  # noqa: E402

SETTLE_MS = 400
MEAN_MS = 500  # the loaded mean is taken STEP_MS .. STEP_MS + MEAN_MS after the load step
STEP_MS = 300
BAND_PCT = 3.0
RATES = (50, 100, 150)


def _step(rig, hz):
    """Load step none -> full now: worst deviation % and recovery ms (last stroke outside the
    band; None if still outside at the end of the window)."""
    t0 = SIM.now
    worst = 0.0
    rec = 0
    trace = rig.trace_hz(STEP_MS)
    for t, h in trace:
        dev = (h - hz) * 100.0 / hz
        if abs(dev) > abs(worst):
            worst = dev
        if abs(dev) > BAND_PCT:
            rec = (t - t0) // 1000
    if trace and abs(trace[-1][1] - hz) * 100.0 / hz > BAND_PCT:
        rec = None
    return worst, rec


def units(first, last, loads):
    """Closed loop on units first..last (inclusive), each rate, each load step none -> load."""
    for u in range(first, last + 1):
        for hz in RATES:
            for load in loads:
                fresh_board()
                gc.collect()
                r = Rig(unit=u)
                r.drive.start(hz)
                r.run_ms(SETTLE_MS)
                free = r.mean_hz(MEAN_MS)
                r.plant.load = load
                worst, rec = _step(r, hz)
                loaded = r.mean_hz(MEAN_MS)
                r.stop_timer()
                print(json.dumps({"unit": u, "hz": hz, "load": load,
                                  "err_free": (free - hz) * 100 / hz,
                                  "err_load": (loaded - hz) * 100 / hz, "worst": worst,
                                  "recovery_ms": rec, "fault": r.drive.fault}))  # fmt: skip


def loop(hz, tick_hz=1000):
    r = Rig(tick_hz=tick_hz)
    out = {"hz": hz}
    # Closed loop.
    r.drive.start(hz)
    r.run_ms(SETTLE_MS)
    free = r.mean_hz(MEAN_MS)
    r.plant.load = 1.0
    worst, rec = _step(r, hz)
    loaded = r.mean_hz(MEAN_MS)
    out["closed"] = {"err_free": (free - hz) * 100 / hz, "err_load": (loaded - hz) * 100 / hz,
                     "worst": worst, "recovery_ms": rec, "fault": r.drive.fault}  # fmt: skip
    # Open loop: the closed loop's own steady duty without load, held fixed.
    r.plant.load = 0.0
    r.run_ms(SETTLE_MS)
    # the duty the drive programs (its tick writes the PWM compare register itself, so the
    # Motor object's own `duty` is not it)
    duty = r.drive.duty
    r.stop_timer()
    r.motor.drive(duty)
    r.run_ms(SETTLE_MS)
    free = r.mean_hz(MEAN_MS)
    r.plant.load = 1.0
    worst, rec = _step(r, hz)
    loaded = r.mean_hz(MEAN_MS)
    out["open"] = {"err_free": (free - hz) * 100 / hz, "err_load": (loaded - hz) * 100 / hz,
                   "worst": worst, "recovery_ms": rec, "duty": duty}  # fmt: skip
    print(json.dumps(out))


class _Fixed:
    """Drivers that answer at once: the firmware's own share of the tick. The registers the
    tick reads and writes (PIO FSTAT, PWM compare, ADC CS/RESULT) are words of an array;
    step() plays the hardware between two ticks (a stroke every 7 ticks, ~143 Hz, on target;
    the ADC's conversion done)."""

    enabled = True
    current_full_scale_ma = 1320
    top1 = 6250
    cc_shift = 0
    rx_empty = 1 << 8
    base = 1_000_002
    current_ain = 0
    battery_ain = 1

    def __init__(self):
        from array import array

        import uctypes

        from drivers.analog import _q_scale

        self.regs = array("I", [0x100, 0, 0, 0])  # FSTAT, CC, ADC CS, ADC RESULT
        a = uctypes.addressof(self.regs)
        self.fstat_addr = a
        self.cc_addr = a + 4
        self.cs_addr = a + 8
        self.i_mul, self.i_shift = _q_scale(3300 * 1000, 4095 * 2500)
        self.b_mul, self.b_shift = _q_scale(3300 * 2, 4095)

    def step(self, k):
        r = self.regs
        r[0] = 0 if k % 7 == 0 else 0x100
        r[2] = (r[2] & ~4) | 0x100
        r[3] = 223 if (r[2] >> 12) & 7 == 0 else 2390  # 180 mA / 3850 mV

    def get(self):
        self.regs[0] = 0x100
        return self.base - 6667  # 150 Hz: on target, so the loop stays in its running path

    def battery_mv(self):
        return 3850

    def enable(self):
        pass

    def off(self):
        pass

    def in2_on(self):
        pass

    def drive(self, d):
        pass

    def brake(self):
        pass

    def coast(self):
        pass


def tick():
    real = simrt.real_time
    acc = [0, 0]
    # 1. The whole tick on the virtual pen (hard timer, heap locked), 150 Hz under full load:
    #    includes the shims' Python peripherals (ADC, PWM, PIO FIFO), which are C on the pen.
    r = Rig(timer=False)
    drive = r.drive

    def timed(_t):
        t0 = real.ticks_us()
        drive.tick()
        acc[0] += real.ticks_diff(real.ticks_us(), t0)
        acc[1] += 1

    tm = machine.Timer(-1, freq=1000, callback=timed, hard=True)
    r.plant.load = 1.0
    drive.start(150)
    SIM.advance(1_000_000)
    whole_us = acc[0] / acc[1]
    locked_ticks = acc[1]
    tm.deinit()
    # 2. The firmware logic alone, on drivers that answer at once (on the pen the drivers'
    #    peripheral calls are C; under the unix port the shims are Python).
    from firmware.needle import NeedleDrive

    f = _Fixed()
    nd = NeedleDrive(f, f, f)
    nd.start(150)
    n = 20_000
    step = f.step
    micropython.heap_lock()  # (a `for` over range() would allocate its iterator)
    try:
        k = n
        t0 = real.ticks_us()
        while k:
            step(k)
            nd.tick()
            k -= 1
        t1 = real.ticks_us()
        k = n
        while k:
            step(k)
            k -= 1
        t2 = real.ticks_us()
    finally:
        micropython.heap_unlock()
    logic_us = (real.ticks_diff(t1, t0) - real.ticks_diff(t2, t1)) / n
    # 3. Allocation per tick with the heap unlocked: gc.mem_alloc() across many ticks.
    gc.collect()
    k = n
    a0 = gc.mem_alloc()
    while k:
        step(k)
        nd.tick()
        k -= 1
    alloc_bytes = gc.mem_alloc() - a0
    print(json.dumps({"whole_us": whole_us, "locked_ticks": locked_ticks, "logic_us": logic_us,
                      "alloc_bytes": alloc_bytes, "alloc_ticks": n,
                      "running": nd.running, "fault": nd.fault}))  # fmt: skip


if sys.argv[1] == "loop":
    loop(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1000)
elif sys.argv[1] == "units":
    units(int(sys.argv[2]), int(sys.argv[3]), [float(x) for x in sys.argv[4:]])
else:
    tick()
