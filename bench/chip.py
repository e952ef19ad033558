"""The pen on its chip: the control tick's cost and the heap, measured on the emulated RP2040
(the pen's base MicroPython image in rp2040py, the modules in ROMFS as `pen deploy` builds them,
the plant on the pins; chip/).

    .venv/bin/python bench/chip.py        (from the repository root)

Tick: the core's exception number is sampled every 0.4 emulated µs from outside the firmware
(chip.emu.IrqSampler); a run of samples inside the timer interrupt is one tick. For each phase
(needle stopped in READY; running at 100 Hz and at 150 Hz under full skin load, after 0.4 s to
settle) 0.5 s of emulated time, about 500 ticks: the mean, the maximum and the share of the CPU.
The emulator models no flash wait states: on a real RP2040 code runs from XIP flash, so real
times are higher, not lower.

Heap: main.py on the bench's littlefs is the pen's main.py behind a probe that, before the
application is imported, after its modules are imported (from ROMFS) and then whenever the bench
raises a spare pin (GP28; a soft pin IRQ), runs gc.collect() and prints
gc.mem_free()/gc.mem_alloc(). Free after boot: the
first probe with the pen homed and READY; live while running: the largest gc.mem_alloc() after
a collection while the needle runs; the app's share: what the application holds after boot
(allocated after boot minus allocated before the import). The probe itself holds one Pin,
its IRQ and one closure (< 200 B).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "host_tools")]

from benchlib import emit  # noqa: E402

PROBE_PIN = 28  # free on the pen's board (hardware/pins.py): the bench raises it to ask
PROBE_MAIN = b"""import gc, machine
gc.collect()
print('@@MEM start %d %d' % (gc.mem_free(), gc.mem_alloc()))
def _probe(p):
    gc.collect()
    print('@@MEM run %d %d' % (gc.mem_free(), gc.mem_alloc()))
import drivers.board, firmware.app
gc.collect()
print('@@MEM imported %d %d' % (gc.mem_free(), gc.mem_alloc()))
_probe_pin = machine.Pin(28, machine.Pin.IN, machine.Pin.PULL_DOWN)
_probe_pin.irq(_probe, machine.Pin.IRQ_RISING)
import pen_main
"""

WINDOW_S = 0.5
SETTLE_S = 0.4


def _mem(pen):
    out = []
    for raw in bytes(pen.rx).split(b"\n"):
        if raw.startswith(b"@@MEM "):
            _, kind, free, alloc = raw.decode().split()
            out.append((kind, int(free), int(alloc), pen.now_us))
    return out


def main() -> int:
    from chip import emu, image, plant

    reason = image.missing_reason()
    if reason:
        print(f"chip bench SKIPPED: {reason}")
        return 0
    romfs, fs = emu.pen_flash()
    fs = {"boot.py": fs["boot.py"], "pen_main.py": fs["main.py"], "main.py": PROBE_MAIN}
    pen = emu.ChipPen(romfs, fs)
    pl = plant.ChipPlant(pen)
    pen.boot()
    mem = []

    def probe():
        n = bytes(pen.rx).count(b"@@MEM run")
        pen.mcu.gpio[PROBE_PIN].set_input_value(True)
        pen.run_until(lambda: bytes(pen.rx).count(b"@@MEM run") > n and
                      bytes(pen.rx).endswith(b"\n"), 0.5, "the heap probe")  # fmt: skip
        pen.mcu.gpio[PROBE_PIN].set_input_value(False)
        collect()
        return [m for m in mem if m[0] == "run"][-1]

    def collect():
        mem.extend(_mem(pen))
        keep = bytearray()
        for raw in bytes(pen.rx).split(b"\n")[:-1]:
            if not raw.startswith(b"@@MEM "):
                keep += raw + b"\n"
        tail = bytes(pen.rx).rsplit(b"\n", 1)[-1]
        pen.rx[:] = keep + tail

    pen.run_until(lambda: b'"to": "READY"' in pen.rx, 3.0, "READY")
    collect()
    pen.run_for(0.1)
    after_boot = probe()
    running = []
    ticks = {}

    def window(name):
        pen.sample_irqs(True)
        n0 = len(pl.hall_edges)
        pen.run_for(WINDOW_S)
        pen.sample_irqs(False)
        exc, runs = pen.sampler.timer_runs()
        e = pl.hall_edges[n0:]
        rate = (len(e) - 1) / ((e[-1] - e[0]) / 1e6) if len(e) > 2 else 0.0
        ticks[name] = (runs, pen.sampler.share(runs), rate)

    window("stopped")
    for hz in (100, 150):
        ok, st = pen.call("status")
        if hz == 100:
            assert pen.call("arm")[0] and pen.call("cartridge new")[0]
            for _ in range(100):
                ok, r = pen.call("run 100")
                if ok:
                    break
                pen.run_for(0.02)
            assert ok, r
        else:
            assert pen.call("set stroke_hz 150")[0]
        pl.motor.load = 1.0
        pen.run_for(SETTLE_S)
        window(f"{hz} Hz")
        for _ in range(3):
            running.append(probe())
            pen.run_for(0.05)
    start = [m for m in mem if m[0] == "start"][0]
    imported = [m for m in mem if m[0] == "imported"][0]
    total = start[1] + start[2]
    how_t = ("rp2040py 0.3.6 running the pen's base image (MicroPython v1.28.0, RPI_PICO, ROMFS), "
             "modules in ROMFS as `pen deploy` builds them, plant on the pins; the core's "
             f"exception number sampled every {emu.SAMPLE_NS} emulated ns over {WINDOW_S} "
             "s; no flash wait states modelled (real times are higher)")
    print("the pen on its chip (emulated RP2040)")
    for name, (runs, share, rate) in ticks.items():
        mean = sum(runs) / len(runs) if runs else 0.0
        mx = round(max(runs), 1) if runs else 0
        share *= 100.0
        print(f"  control tick, {name:8s}: {len(runs)} ticks, mean {mean:6.1f} µs, max {mx:6.1f} "
              f"µs, CPU {share:5.1f} %" + (f", rate {rate:.2f} Hz" if rate else ""))
        load = "" if name == "stopped" else " under full skin load"
        emit(f"Chip: control tick mean, {name}{load}", round(mean, 1), "µs", how_t)
        emit(f"Chip: control tick max, {name}{load}", mx, "µs", how_t)
        emit(f"Chip: CPU share of the control tick, {name}{load}", round(share, 1), "%", how_t)
    how_m = ("gc.collect() then gc.mem_free()/mem_alloc() on the emulated chip, from a probe "
             "main.py that imports the pen's main.py (bench/chip.py)")
    print(f"  modules imported from ROMFS: {imported[2] - start[2]} B, then {imported[1]} B free")
    print(f"  GC heap {total} B; free before the app {start[1]} B; free after boot (READY) "
          f"{after_boot[1]} B; app's share {after_boot[2] - start[2]} B; live while running "
          f"(max) {max(m[2] for m in running)} B, lowest free {min(m[1] for m in running)} B")
    emit("Chip: GC heap of the base image", total, "B", how_m)
    emit("Chip: heap free when main.py starts", start[1], "B", how_m)
    emit("Chip: heap taken by importing every pen module from ROMFS", imported[2] - start[2],
         "B", how_m)
    emit("Chip: heap free after the imports (the application's data budget)", imported[1], "B",
         how_m + "; sets the virtual pen's FIRMWARE_HEAP_K (host_tools/pen/sim.py)")
    emit("Chip: heap free after boot (homed, READY)", after_boot[1], "B", how_m)
    emit("Chip: application's share of the heap after boot", after_boot[2] - start[2], "B",
         how_m + "; allocated after boot minus allocated before the import")
    emit("Chip: heap live while running (max after a collection)", max(m[2] for m in running),
         "B", how_m + "; 100 and 150 Hz under load")
    emit("Chip: lowest heap free while running", min(m[1] for m in running), "B", how_m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
