"""Depth-axis benchmark on the virtual pen: positioning error over 0..3.0 mm before and after
calibration, full-range move time, homing time, homing repeatability over 50 homes.

    .venv/bin/python bench/depth_axis.py        (from the repository root)

Under CPython this starts the `micropython` binary on this same file; there it builds the
virtual board (plant with pitch error, offset, backlash, bow, switch scatter), runs the
firmware's DepthAxis on the virtual clock and prints the figures, then one JSON line.
Virtual time, so the figures are the same on every machine.
"""

import sys

if sys.implementation.name != "micropython":
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    mp = Path(sys.executable).with_name("micropython")
    res = subprocess.run(
        [str(mp) if mp.exists() else "micropython", "-X", "heapsize=190K",
         str(Path(__file__).resolve())],
        cwd=root, env=dict(os.environ, MICROPYPATH=""),
    )  # fmt: skip
    sys.exit(res.returncode)

sys.path[:] = ["", "tests/mp", "sim", ".frozen"]

import simrt  # noqa: E402

simrt.install(realtime=False)

import json  # noqa: E402

from depth_rig import Rig, mean_sd  # noqa: E402


def sweep(rig, step_um):
    """Every target 0..3000 µm, from above and from below: errors (gauge - target) in µm."""
    errs = []
    lim = rig.axis.limit_um
    for um in range(0, 3001, step_um):
        for start in (um + 300, um - 300):
            rig.go(max(0, min(lim, start)))
            rig.go(um)
            errs.append(rig.gauge_um() - um)
    return errs


def summary(errs):
    worst = max(errs, key=abs)
    rms = (sum(e * e for e in errs) / len(errs)) ** 0.5
    return worst, rms


def main():
    out = {}
    # Homing time from the far end of the travel (the longest seek), polled every 1 ms so the
    # figure resolves to 1 ms; the re-homes below are polled the same way.
    rig = Rig(start_usteps=1400, poll_us=1000)
    out["home_ms_far_end"] = rig.home()

    # Before calibration: the nominal (conservative) table.
    worst, rms = summary(sweep(rig, 100))
    out["err_uncal_worst_um"] = worst
    out["err_uncal_rms_um"] = round(rms, 1)

    # Calibrate from the gauge, home again, sweep in 0.05 mm steps.
    table = rig.calibrate()
    rig.home()
    worst, rms = summary(sweep(rig, 50))
    out["err_cal_worst_um"] = worst
    out["err_cal_rms_um"] = round(rms, 1)
    out["calibration_points"] = len(table)

    # Full-range move time (poll every 1 ms: the figure is the PIO's, to 1 ms).
    rig.go(0)
    out["full_range_out_ms"] = rig.go(3000)
    out["full_range_in_ms"] = rig.go(0)

    # Homing repeatability: 50 homes from different depths, then the same depth, gauged.
    readings = []
    times = []
    for i in range(50):
        rig.go(300 + (i * 397) % 2600)
        times.append(rig.home())
        rig.go(1000)
        readings.append(rig.gauge_um())
    m, sd = mean_sd(readings)
    out["home_repeat_sd_um"] = round(sd, 2)
    out["home_repeat_range_um"] = max(readings) - min(readings)
    out["rehome_ms_max"] = max(times)
    out["rehome_ms_mean"] = sum(times) // len(times)
    out["missed_steps"] = rig.plant.missed

    print("depth axis on the virtual pen (virtual clock)")
    print("  homing from the far end              %5d ms" % out["home_ms_far_end"])
    print("  re-home from 0.3..2.9 mm (50 runs)   %5d ms mean, %d ms longest"
          % (out["rehome_ms_mean"], out["rehome_ms_max"]))  # fmt: skip
    print("  homing repeatability (50 homes)   sd %5.2f um, range %d um"
          % (out["home_repeat_sd_um"], out["home_repeat_range_um"]))  # fmt: skip
    print("  full-range move 0 -> 3.0 mm          %5d ms" % out["full_range_out_ms"])
    print("  full-range move 3.0 -> 0 mm          %5d ms" % out["full_range_in_ms"])
    print("  error before calibration (0..3 mm)   worst %+d um, rms %.1f um"
          % (out["err_uncal_worst_um"], out["err_uncal_rms_um"]))  # fmt: skip
    print("  error after calibration  (0..3 mm)   worst %+d um, rms %.1f um (%d points)"
          % (out["err_cal_worst_um"], out["err_cal_rms_um"], out["calibration_points"]))
    print("  steps missed by the motor            %5d" % out["missed_steps"])
    print(json.dumps(out))
    emit_figures(out)


def emit_figures(out):
    """The figures as BENCH lines (bench/benchlib.py) for `make bench`."""
    sweep = "every 0.1 mm (0.05 mm calibrated) of 0..3 mm, from above and below, dial gauge " \
            "of the plant (pitch error, offset, backlash, bow), virtual clock"  # fmt: skip
    figs = (
        ("Depth error before calibration, worst", out["err_uncal_worst_um"], "um", sweep),
        ("Depth error before calibration, rms", out["err_uncal_rms_um"], "um", sweep),
        ("Depth error after calibration, worst", out["err_cal_worst_um"], "um",
         sweep + "; %d-point table fitted from the gauge" % out["calibration_points"]),
        ("Depth error after calibration, rms", out["err_cal_rms_um"], "um", sweep),
        ("Homing time from the far end of the travel", out["home_ms_far_end"], "ms",
         "virtual clock, axis polled every 1 ms"),
        ("Re-home time, mean of 50", out["rehome_ms_mean"], "ms", "from 0.3..2.9 mm"),
        ("Re-home time, longest of 50", out["rehome_ms_max"], "ms", "from 0.3..2.9 mm"),
        ("Homing repeatability, sd over 50 homes", out["home_repeat_sd_um"], "um",
         "gauge at 1.00 mm after each home"),
        ("Homing repeatability, range over 50 homes", out["home_repeat_range_um"], "um",
         "gauge at 1.00 mm after each home"),
        ("Full-range move 0 -> 3.0 mm", out["full_range_out_ms"], "ms", "virtual clock"),
        ("Full-range move 3.0 -> 0 mm", out["full_range_in_ms"], "ms", "virtual clock"),
        ("Steps missed by the motor", out["missed_steps"], "steps", "plant's count"),
    )
    for figure, value, unit, how in figs:
        print("BENCH " + json.dumps({"figure": figure, "value": value, "unit": unit,
                                      "how": how}))  # fmt: skip


main()
