"""The calibration's pure maths: the plan of points, the fit of the table (in the firmware's
own format, validated by firmware/calib.py), its residuals and limits; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..link import firmware_module
from .errors import CalibrationError, CalibrationRejected


@dataclass
class Config:
    points: int = 8
    repeats: int = 3
    tol_mm: float = 0.02  # verification: every depth within this of the gauge
    max_scatter_mm: float = 0.010  # repeatability: range of one point's readings
    max_curve_dev_mm: float = 0.020  # a point this far off the smooth curve: misread?
    max_extend_mm: float = 0.30  # how far the table may be extended past the measured range
    verify_step_mm: float = 0.10
    rounds: int = 3  # measure -> write -> verify rounds (the stop reaches further each time)
    settle_polls: int = 3
    move_timeout_s: float = 10.0



# -- the firmware's own table and axis constants ---------------------------------------------
def _calib_mod():
    mod = firmware_module("firmware.calib")
    if mod is None:
        raise CalibrationError("firmware/calib.py is missing from this checkout")
    return mod


def axis_constants() -> dict[str, int]:
    dep = firmware_module("firmware.depth")
    if dep is None:
        raise CalibrationError("firmware/depth.py is missing from this checkout")
    ax = dep.DepthAxis
    return {
        "min_steps": ax.MIN_STEPS,
        "takeup_steps": ax.TAKEUP_STEPS,
        "travel_steps": ax.TRAVEL_STEPS,
        "limit_max_um": ax.LIMIT_MAX_UM,
    }


def make_table(flat: list[int], limit_um: int | None = None):
    """The firmware's CalibrationTable, validated exactly as the pen will: against the axis's
    mechanics and, with `limit_um`, for 0..limit within the travel (firmware.calib.check_table,
    SF-04, SF-05), so a table the pen would refuse is never sent."""
    mod = _calib_mod()
    try:
        if limit_um is None:
            return mod.CalibrationTable(list(flat))
        ax = axis_constants()
        return mod.check_table(list(flat), limit_um, ax["travel_steps"], ax["min_steps"])
    except Exception as exc:  # firmware.errors.Refused
        msg = getattr(exc, "message", None) or str(exc)
        raise CalibrationRejected([f"the table is not valid for the pen: {msg}"]) from None


# -- planning ---------------------------------------------------------------------------------
def plan_points(table, limit_um: int, n: int, ax: dict) -> list[int]:
    """Microstep positions to measure, from just below 0 to the deepest reachable step.

    The lowest is far enough from the closest allowed step for a full backlash take-up from
    below; the deepest is what the pen lets a service move reach (its limit through the current
    table, within the travel)."""
    lo = ax["min_steps"] + ax["takeup_steps"]
    hi = min(table.steps_at_most(limit_um), ax["travel_steps"])
    if n < 3:
        raise CalibrationError("at least 3 points are needed")
    if hi - lo < 4 * n:
        raise CalibrationError(f"the reachable range ({lo}..{hi} steps) is too short")
    return sorted({round(lo + (hi - lo) * i / (n - 1)) for i in range(n)})


def verify_depths(limit_mm: float, step_mm: float) -> list[float]:
    """0 .. limit in `step_mm`, ordered shallow, deep, next shallow, next deep, ... so the
    stop comes from both sides."""
    n = int(round(limit_mm / step_mm))
    grid = [round(min(i * step_mm, limit_mm), 3) for i in range(n + 1)]
    if grid[-1] < limit_mm:
        grid.append(round(limit_mm, 3))
    out = []
    i, j = 0, len(grid) - 1
    while i <= j:
        out.append(grid[i])
        if i != j:
            out.append(grid[j])
        i += 1
        j -= 1
    return out


# -- fitting -----------------------------------------------------------------------------------
@dataclass
class Fit:
    table: list[int]
    points: list[dict]  # per point: steps, mean_mm, range_mm, std_mm, curve_dev_mm
    residual_max_mm: float
    residual_rms_mm: float
    repeat_range_max_mm: float
    repeat_std_mm: float
    curve_dev_max_mm: float
    extended: dict  # {"low": steps or None, "high": steps or None}
    problems: list[str] = field(default_factory=list)


def interp(table_flat: list[int], steps: float) -> float:
    s = table_flat[0::2]
    u = table_flat[1::2]
    i = 0
    while i < len(s) - 2 and steps > s[i + 1]:
        i += 1
    return u[i] + (steps - s[i]) * (u[i + 1] - u[i]) / (s[i + 1] - s[i])


def fit_table(readings: list[tuple[int, float]], limit_um: int, cfg: Config) -> Fit:
    """Readings (steps, mm) -> the table, its residuals and the reasons to reject it."""
    import numpy as np

    by: dict[int, list[float]] = {}
    for s, mm in readings:
        by.setdefault(int(s), []).append(float(mm))
    steps = sorted(by)
    problems: list[str] = []
    if len(steps) < 3:
        raise CalibrationRejected([f"only {len(steps)} distinct points were measured (3 needed)"])
    means = [sum(by[s]) / len(by[s]) for s in steps]
    ranges = [max(by[s]) - min(by[s]) for s in steps]
    devs = [v - means[i] for i, s in enumerate(steps) for v in by[s]]
    dof = sum(len(by[s]) - 1 for s in steps)
    repeat_std = math.sqrt(sum(d * d for d in devs) / dof) if dof > 0 else 0.0
    for s, m, r in zip(steps, means, ranges):
        if r > cfg.max_scatter_mm:
            problems.append(
                f"the readings at {s} steps (~{m:.3f} mm) scatter by {r * 1000:.0f} µm (limit "
                f"{cfg.max_scatter_mm * 1000:.0f} µm): check that the gauge and the stop are "
                "firmly held"
            )
    for i in range(1, len(steps)):
        if means[i] <= means[i - 1]:
            problems.append(
                f"the depth does not increase from {steps[i - 1]} to {steps[i]} steps "
                f"({means[i - 1]:.3f} -> {means[i]:.3f} mm): a mistyped reading, a gauge that "
                "slipped, or a stop that did not move (missed steps)"
            )
    deg = min(3, len(steps) - 2) if len(steps) >= 4 else 1
    coef = np.polyfit(np.array(steps, float), np.array(means, float), deg)
    curve = np.polyval(coef, np.array(steps, float))
    cdev = [float(means[i] - curve[i]) for i in range(len(steps))]
    for s, m, d in zip(steps, means, cdev):
        if len(steps) >= 5 and abs(d) > cfg.max_curve_dev_mm:
            problems.append(
                f"the point at {s} steps ({m:.3f} mm) lies {d * 1000:+.0f} µm off the curve "
                f"through the others (limit {cfg.max_curve_dev_mm * 1000:.0f} µm): re-measure it"
            )
    knots = [(s, int(round(m * 1000))) for s, m in zip(steps, means)]
    extended: dict[str, Any] = {"low": None, "high": None}
    if not problems:
        ax = axis_constants()
        # Extend along the end segments so the table covers 0 .. the depth limit.
        (s0, u0), (s1, u1) = knots[0], knots[1]
        if u0 > 0:
            if u0 > cfg.max_extend_mm * 1000:
                problems.append(
                    f"the shallowest point reads {u0 / 1000:.3f} mm: the range must start at or "
                    "below 0 mm (is the gauge zeroed at flush?)"
                )
            else:
                slope = (u1 - u0) / (s1 - s0)
                s_new = int(math.floor(s0 - (u0 + 20) / slope))
                s_new = max(s_new, ax["min_steps"] - 16)
                knots.insert(0, (s_new, int(round(u0 - (s0 - s_new) * slope))))
                extended["low"] = s_new
        (sa, ua), (sb, ub) = knots[-2], knots[-1]
        want = limit_um + 20
        if ub < want:
            if want - ub > cfg.max_extend_mm * 1000:
                problems.append(
                    f"the deepest point reads {ub / 1000:.3f} mm, short of the depth limit "
                    f"{limit_um / 1000:.2f} mm by more than {cfg.max_extend_mm:.2f} mm"
                )
            else:
                slope = (ub - ua) / (sb - sa)
                s_new = int(math.ceil(sb + (want - ub) / slope))
                knots.append((s_new, int(round(ub + (s_new - sb) * slope))))
                extended["high"] = s_new
    flat = [v for k in knots for v in k]
    if not problems:
        make_table(flat, limit_um)  # the firmware's own checks (raises CalibrationRejected)
    res = [mm - interp(flat, s) / 1000 for s, mm in readings] if flat else [0.0]
    rmax = max(abs(r) for r in res)
    rms = math.sqrt(sum(r * r for r in res) / len(res))
    pts = [
        {"steps": s, "mean_mm": round(m, 5), "range_mm": round(r, 5),
         "readings_mm": [round(v, 5) for v in by[s]], "curve_dev_mm": round(d, 5)}
        for s, m, r, d in zip(steps, means, ranges, cdev)
    ]  # fmt: skip
    return Fit(
        table=flat, points=pts, residual_max_mm=round(rmax, 5), residual_rms_mm=round(rms, 5),
        repeat_range_max_mm=round(max(ranges), 5), repeat_std_mm=round(repeat_std, 5),
        curve_dev_max_mm=round(max(abs(d) for d in cdev), 5), extended=extended,
        problems=problems,
    )  # fmt: skip


