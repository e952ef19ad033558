"""Depth-axis benchmark on the virtual pen: positioning error over 0..3.0 mm before and after
calibration, full-range move time, homing time, homing repeatability over 50 homes, on the
reference unit; and over the population (units 0..19, sim/plant_units.py): the calibrated
depth error (DS-34) and the homing repeatability (DS-3) of every unit, the latter against the
unit's configured switch scatter and with that scatter set to zero (what the firmware and the
mechanism contribute: step quantisation, backlash, the approach).

    .venv/bin/python bench/depth_axis.py [--units N]       (from the repository root)

Under CPython this starts the `micropython` binary on this same file (the reference run, and
the population in two processes side by side); there it builds the virtual board, runs the
firmware's DepthAxis on the virtual clock and prints JSON lines; the CPython side prints the
figures. Virtual time, so the figures are the same on every machine.
"""

import sys

if sys.implementation.name != "micropython":
    import json
    import os
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "bench"))
    from benchlib import compile_pen_files, emit

    mp = Path(sys.executable).with_name("micropython")

    def _mp(*args):
        # 256 KB: this process holds the plant, the PIO models, this script and the firmware's
        # bytecode besides the axis (at 190 KB importing the rig ran out of memory once the
        # plant grew); the firmware's own heap budget is the tests' and the chip's to check.
        cmd = [str(mp) if mp.exists() else "micropython", "-X", "heapsize=256K",
               str(Path(__file__).resolve())] + list(args)  # fmt: skip
        res = subprocess.run(
            cmd,
            cwd=root, env=dict(os.environ, MICROPYPATH=""), capture_output=True, text=True,
        )  # fmt: skip
        if res.returncode != 0:
            raise SystemExit(f"micropython failed ({' '.join(args)}):\n{res.stdout}{res.stderr}")
        return res.stdout

    def _host(argv):
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("--units", type=int, default=20)
        n = ap.parse_args(argv).units
        compile_pen_files(root)
        half = max(1, n // 2)
        jobs = [("ref",), ("units", "0", str(half - 1))]
        if n > half:
            jobs.append(("units", str(half), str(n - 1)))
        with ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(lambda a: _mp(*a), jobs))
        print(outs[0], end="")  # the reference run's own report and BENCH lines
        rows = [json.loads(x) for o in outs[1:] for x in o.splitlines() if x.startswith("{")]
        return population(rows, n)

    def population(rows, n):
        how = ("units 0..%d (sim/plant_units.py); calibrated from the gauge, then every 0.05 mm "
               "of 0..3 mm from above and below" % (n - 1))
        w = max(rows, key=lambda r: abs(r["err_cal_worst_um"]))
        rms = sorted(r["err_cal_rms_um"] for r in rows)
        sd = max(rows, key=lambda r: r["home_sd_um"])
        fw = max(rows, key=lambda r: r["home_sd_fw_um"])
        ratio = sorted(r["home_sd_um"] / r["trip_noise_um"] for r in rows)
        print()
        print("Population: %d units" % n)
        for r in rows:
            print("  unit %2d: calibrated worst %+3d um rms %.1f; 50 homes sd %.2f um (switch sd "
                  "%.2f um; with the switch's scatter off: %.2f um)%s" % (
                      r["unit"], r["err_cal_worst_um"], r["err_cal_rms_um"], r["home_sd_um"],
                      r["trip_noise_um"], r["home_sd_fw_um"],
                      "; provisional table" if r.get("provisional") else ""))  # fmt: skip
        failing = ["unit %d: DS-34 (worst %+d um)" % (r["unit"], r["err_cal_worst_um"])
                   for r in rows if abs(r["err_cal_worst_um"]) > 20]  # fmt: skip
        failing += ["unit %d: DS-3 (sd %.2f um)" % (r["unit"], r["home_sd_um"])
                    for r in rows if r["home_sd_um"] > 5.0]  # fmt: skip
        emit("Population: depth error after calibration, worst unit", w["err_cal_worst_um"],
             "um", how + "; the worst is unit %d" % w["unit"])
        emit("Population: depth error after calibration, rms: median / worst unit",
             "%.1f / %.1f" % (rms[len(rms) // 2], rms[-1]), "um", how)
        emit("Population: homing repeatability sd over 50 homes, worst unit",
             round(sd["home_sd_um"], 2), "um",
             "gauge at 1.00 mm after each of 50 homes from 0.3..2.9 mm; unit %d, whose switch "
             "is configured at sd %.2f um" % (sd["unit"], sd["trip_noise_um"]))
        emit("Population: homing sd / the switch's configured sd, median (min..max)",
             "%.2f (%.2f..%.2f)" % (ratio[len(ratio) // 2], ratio[0], ratio[-1]), "ratio",
             "measured sd over 50 homes / the plant's trip_noise_um, per unit")
        emit("Population: homing sd with the switch's scatter off (firmware + mechanism), worst",
             round(fw["home_sd_fw_um"], 2), "um",
             "10 homes the same way with trip_noise_um = 0: step quantisation (2.5 um steps), "
             "backlash, the approach; unit %d" % fw["unit"])
        emit("Population: units failing DS-34 or DS-3", len(failing), "units",
             "; ".join(failing) or "every unit within +-20 um after calibration and sd <= 5 um")
        for f in failing:
            print("  FAILS " + f)
        return 1 if failing else 0

    sys.exit(_host(sys.argv[1:]))

sys.path[:] = ["build/mp-bench", "", "tests/mp", "sim", ".frozen"]  # bench/benchlib.py

import simrt  # noqa: E402

simrt.install(realtime=False)

import gc  # noqa: E402
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


def unit_run(u):
    """One unit: calibrate, sweep every 0.05 mm both ways, 50 homes; again with the switch's
    scatter off (10 homes). One JSON line."""
    from needle_rig import fresh_board

    fresh_board()
    gc.collect()
    rig = Rig(start_usteps=1400, poll_us=1000, unit=u)
    rig.home()
    rig.calibrate()
    rig.home()
    worst, rms = summary(sweep(rig, 50))
    out = {"unit": u, "err_cal_worst_um": worst, "err_cal_rms_um": round(rms, 2),
           "trip_noise_um": rig.plant.trip_noise_um}  # fmt: skip
    out["home_sd_um"] = homes(rig)
    rig.plant.trip_noise_um = 0.0
    out["home_sd_fw_um"] = homes(rig, 10)
    out["missed"] = rig.plant.missed
    print(json.dumps(out))


def homes(rig, n=50):
    readings = []
    for i in range(n):
        rig.go(300 + (i * 397) % 2600)
        rig.home()
        rig.go(1000)
        readings.append(rig.plant.protrusion_mm() * 1000)
    return round(mean_sd(readings)[1], 3)


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


if sys.argv[1:2] == ["units"]:
    for _u in range(int(sys.argv[2]), int(sys.argv[3]) + 1):
        unit_run(_u)
else:
    main()
