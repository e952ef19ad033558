"""Guided depth calibration, in the spirit of a 3D printer's probe calibration.

1. Home the depth axis; read the pen's current table (`calib get`) and depth limit.
2. In the service state, move the stop to `points` positions across the range (raw microstep
   moves, `move_steps`), each approached from the retracted side (back off, then out), and read
   the dial gauge `repeats` times per point: automatically (`--gauge PORT`, a serial indicator;
   `--gauge virtual`, the virtual pen's) or typed by the operator.
3. Fit the table: one knot per point (the mean of its readings), in the firmware's own format
   (`firmware.calib.CalibrationTable`: strictly increasing steps and µm, plausible slope),
   extended along the end segment when the measured range stops short of 0 or the depth limit.
   Residuals of every reading (max, RMS), repeatability per point (range, σ) and each point's
   deviation from a smooth curve through all of them are reported; a fit that fails a limit is
   rejected with the reason, and nothing is written.
4. After confirmation, write the table (`calib set`; the service state and the table both need
   the clinician unlock, done with the secret before each).
5. Verification pass: set depths 0 .. the limit (alternately from the shallow and the deep end,
   so both approach directions are exercised) and read the gauge. Errors beyond the tolerance
   where the table was extended are re-measured once (the stop now reaches there); otherwise the
   previous table is restored and the calibration rejected.
6. A JSON report and a PNG plot (measured vs set depth, residuals) are saved.

The gauge must read the needle protrusion: zero it with the needle tips flush with the stop's
face before starting (the virtual gauge reads the true protrusion).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .link import LinkError, PenLink, PenRefused, firmware_module

# Wire commands (docs/protocol.md); adapt here, and only here.
CMD_CALIB_GET = "calib get"
CMD_CALIB_SET = "calib set {json}"
CMD_MOVE_STEPS = "move_steps {n}"
CMD_SERVICE_ENTER = "service enter"  # needs the unlock
CMD_SERVICE_EXIT = "service exit"  # the pen homes again
CMD_HOME = "home"
CMD_DEPTH = "depth {mm:.3f}"
CMD_LIMIT_KEY = "depth_limit"


class CalibrationError(Exception):
    """The procedure could not go on (pen refused, gauge failed, operator aborted)."""


class CalibrationRejected(CalibrationError):
    """The measurements or the verification failed a limit: nothing (more) is written."""

    def __init__(self, reasons: list[str], report: dict | None = None):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.report = report


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
    ax = getattr(dep, "DepthAxis", None)
    return {
        "min_steps": getattr(ax, "MIN_STEPS", 16),
        "takeup_steps": getattr(ax, "TAKEUP_STEPS", 24),
        "travel_steps": getattr(ax, "TRAVEL_STEPS", 1440),
        "limit_max_um": getattr(ax, "LIMIT_MAX_UM", 3000),
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


def _interp(table_flat: list[int], steps: float) -> float:
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
    res = [mm - _interp(flat, s) / 1000 for s, mm in readings] if flat else [0.0]
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


# -- gauges ------------------------------------------------------------------------------------
_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


class VirtualGauge:
    """The virtual pen's dial gauge (its side channel: `pen sim-ctl gauge`)."""

    name = "virtual"

    def __init__(self, pen_port: str):
        self.port = pen_port

    def read(self, prompt: str = "") -> float:
        from .sim import ctl_command

        try:
            reply = ctl_command(self.port, "gauge")
        except (OSError, ConnectionError) as exc:
            raise CalibrationError(f"the virtual gauge did not answer: {exc}") from exc
        if not reply.startswith("ok"):
            raise CalibrationError(f"the virtual gauge: {reply}")
        return float(reply[2:].strip())

    def close(self) -> None:
        pass


class SerialGauge:
    """A digital indicator on a serial port that sends lines with a number in mm (read on
    request when `request` is given, else the next line it sends)."""

    def __init__(self, port: str, baud: int = 9600, request: str | None = None,
                 timeout: float = 3.0, serial_factory=None):  # fmt: skip
        import serial

        self.name = port
        self.request = request
        self.timeout = timeout
        factory = serial_factory or (lambda p: serial.Serial(p, baud, timeout=0.1))
        try:
            self.ser = factory(port)
        except Exception as exc:  # noqa: BLE001 -- serial.SerialException, OSError
            raise CalibrationError(f"cannot open the gauge on {port}: {exc}") from exc

    def read(self, prompt: str = "") -> float:
        try:
            self.ser.reset_input_buffer()  # a reading from before the move is stale
        except Exception:  # noqa: BLE001
            pass
        if self.request:
            self.ser.write(self.request.encode().decode("unicode_escape").encode())
        deadline = time.monotonic() + self.timeout
        buf = b""
        while time.monotonic() < deadline:
            buf += self.ser.read(64)
            while b"\n" in buf or b"\r" in buf:
                cut = min(i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0)
                line, buf = buf[:cut], buf[cut + 1 :]
                m = _NUM.search(line.decode("ascii", "replace"))
                if m:
                    return float(m.group(0).replace(",", "."))
        raise CalibrationError(f"no reading from the gauge on {self.name} within "
                               f"{self.timeout:g} s")  # fmt: skip

    def close(self) -> None:
        self.ser.close()


class TypedGauge:
    """The operator reads the dial and types the value in mm."""

    name = "typed"

    def __init__(self, ask: Callable[[str], str | None]):
        self.ask = ask

    def read(self, prompt: str = "") -> float:
        while True:
            text = self.ask(f"{prompt} -- type the gauge reading in mm (or 'abort'): ")
            if text is None or text.strip().lower() in ("abort", "q", "quit"):
                raise CalibrationError("calibration aborted by the operator")
            m = _NUM.fullmatch(text.strip())
            if m:
                return float(text.strip().replace(",", "."))

    def close(self) -> None:
        pass


# -- the pen ------------------------------------------------------------------------------------
class PenOps:
    """The calibration's conversation with the pen (only here are wire commands used)."""

    def __init__(self, link: PenLink, cfg: Config):
        self.link = link
        self.cfg = cfg

    def status(self) -> dict:
        return self.link.call("status")

    def limit_um(self) -> int:
        try:
            v = self.link.call(f"get {CMD_LIMIT_KEY}")
            return int(round(float(v[CMD_LIMIT_KEY]) * 1000))
        except (PenRefused, KeyError, TypeError, ValueError):
            return axis_constants()["limit_max_um"]

    def calib_get(self) -> list[int]:
        v = self.link.call(CMD_CALIB_GET)
        if isinstance(v, dict):
            v = v.get("calib") or v.get("table") or v.get("calibration") or next(iter(v.values()))
        return [int(x) for x in v]

    def calib_set(self, flat: list[int]) -> None:
        self.still()  # the axis takes a new table only while the stop is at rest
        self.link.call(CMD_CALIB_SET.format(json=json.dumps(flat, separators=(",", ":"))))

    def still(self) -> dict:
        """Wait until the stop rests at the pen's target depth."""

        def there(st: dict) -> bool:
            d, t = st.get("depth_mm"), st.get("target_depth_mm")
            return d is not None and t is not None and abs(d - t) <= 0.002

        return self._settled(there)

    def wait_state(self, ok: Callable[[dict], bool], what: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.get("fault"):
                raise CalibrationError(f"the pen faulted ({st['fault']}) while {what}: clear it "
                                       "(pen status) and start again")  # fmt: skip
            if ok(st):
                return st
            if time.monotonic() > deadline:
                raise CalibrationError(f"timed out while {what} (state {st.get('state')})")
            time.sleep(0.05)

    def home(self) -> dict:
        st = self.status()
        if st.get("state") in ("ARMED", "RUNNING", "STOPPING"):
            raise CalibrationError(f"the pen is {st['state']}: stop and disarm it first")
        if st.get("homed") and st.get("state") == "READY":
            return st
        if st.get("state") != "HOMING":
            self.link.call(CMD_HOME)
        return self.wait_state(lambda s: s.get("homed") and s.get("state") == "READY",
                               "homing", 20.0)  # fmt: skip

    def enter_service(self) -> None:
        self.link.call(CMD_SERVICE_ENTER)
        self.wait_state(lambda s: s.get("state") == "SERVICE", "entering service", 5.0)

    def exit_service(self) -> None:
        self.link.call(CMD_SERVICE_EXIT)
        self.wait_state(lambda s: s.get("homed") and s.get("state") == "READY",
                        "homing after service", 20.0)  # fmt: skip

    def _settled(self, done: Callable[[dict], bool]) -> dict:
        """Poll until the stop stands still: the same position on several polls in a row
        (polls are tens of ms apart; a move's pauses last a few ms). A stop that stands still
        short of what `done` expects (a clamped move) is accepted after four times as many."""
        same = 0
        last = None
        deadline = time.monotonic() + self.cfg.move_timeout_s
        while True:
            st = self.status()
            if st.get("fault"):
                raise CalibrationError(f"the pen faulted ({st['fault']}) during a move")
            if st.get("moving") is False and done(st):
                return st
            here = (st.get("position_steps"), st.get("depth_mm"))
            same = same + 1 if here == last and st.get("moving") is not True else 0
            last = here
            need = self.cfg.settle_polls if done(st) else 4 * self.cfg.settle_polls
            if same >= need:
                return st
            if time.monotonic() > deadline:
                raise CalibrationError("the depth stop did not come to rest")
            time.sleep(0.03)

    def position_steps(self, table, st: dict | None = None) -> int:
        st = st or self.status()
        if st.get("position_steps") is not None:
            return int(st["position_steps"])
        if st.get("depth_mm") is None:
            raise CalibrationError("the pen does not report the stop's position")
        return table.steps_for_um(int(round(st["depth_mm"] * 1000)))

    def move_steps(self, n: int, table) -> int:
        start = self.position_steps(table)
        if n:
            self.link.call(CMD_MOVE_STEPS.format(n=int(n)))
        st = self._settled(lambda s: self.position_steps(table, s) == start + n)
        return self.position_steps(table, st)

    def set_depth(self, mm: float) -> dict:
        self.link.call(CMD_DEPTH.format(mm=mm))

        def there(st: dict) -> bool:
            d = st.get("depth_mm")
            return d is not None and abs(d - mm) <= 0.002

        return self._settled(there)


# -- the procedure ------------------------------------------------------------------------------
@dataclass
class Ui:
    info: Callable[[str], None] = print
    confirm: Callable[[str], bool] = lambda q: True
    progress: Callable[[str, int, int], None] = lambda what, done, total: None


class Calibrator:
    def __init__(self, ops: PenOps, gauge, cfg: Config, ui: Ui,
                 unlock: Callable[[], None] | None = None):  # fmt: skip
        self.ops = ops
        self.gauge = gauge
        self.cfg = cfg
        self.ui = ui
        self.unlock = unlock
        self.report: dict[str, Any] = {"config": asdict(cfg), "rounds": []}

    def measure(self, table, plan: list[int], round_no: int) -> list[tuple[int, float]]:
        ax = axis_constants()
        back = ax["takeup_steps"]
        total = len(plan) * self.cfg.repeats
        readings: list[tuple[int, float]] = []
        pos = self.ops.position_steps(table)
        done = 0
        for i, target in enumerate(plan):
            for r in range(self.cfg.repeats):
                self.ui.progress(f"round {round_no}: point {i + 1}/{len(plan)}, repeat {r + 1}",
                                 done, total)  # fmt: skip
                # Approach from the retracted side: below the point, then out to it.
                pre = max(ax["min_steps"], target - back)
                pos = self.ops.move_steps(pre - pos, table)
                pos = self.ops.move_steps(target - pos, table)
                if pos != target:
                    raise CalibrationError(
                        f"the stop stopped at {pos} steps instead of {target}: the pen limits "
                        "service moves to its depth limit through the current table"
                    )
                mm = self.gauge.read(f"point {i + 1}/{len(plan)} at {target} steps, repeat "
                                     f"{r + 1}/{self.cfg.repeats}")  # fmt: skip
                readings.append((target, mm))
                done += 1
        self.ui.progress(f"round {round_no}: measured", total, total)
        return readings

    def verify(self, limit_um: int, round_no: int) -> list[dict]:
        depths = verify_depths(limit_um / 1000, self.cfg.verify_step_mm)
        out = []
        for k, d in enumerate(depths):
            self.ui.progress(f"round {round_no}: verify {d:.2f} mm", k, len(depths))
            self.ops.set_depth(d)
            mm = self.gauge.read(f"verify {d:.2f} mm")
            out.append({"set_mm": d, "measured_mm": round(mm, 5), "error_mm": round(mm - d, 5)})
        self.ui.progress(f"round {round_no}: verified", len(depths), len(depths))
        return sorted(out, key=lambda v: v["set_mm"])

    def run(self) -> dict:
        cfg = self.cfg
        rep = self.report
        st = self.ops.home()
        rep["pen"] = {k: st.get(k) for k in ("firmware_version", "state")}
        limit_um = self.ops.limit_um()
        old = self.ops.calib_get()
        rep["limit_mm"] = limit_um / 1000
        rep["table_before"] = old
        ax = axis_constants()
        current = make_table(old)
        written = False
        for round_no in range(1, cfg.rounds + 1):
            plan = plan_points(current, limit_um, cfg.points, ax)
            self.ui.info(f"round {round_no}: measuring {len(plan)} points x {cfg.repeats} "
                         f"({plan[0]}..{plan[-1]} steps)")  # fmt: skip
            if self.unlock:
                self.unlock()  # the service state (raw moves) needs the unlock
            self.ops.enter_service()
            try:
                readings = self.measure(current, plan, round_no)
            finally:
                self.ops.exit_service()
            fit = fit_table(readings, limit_um, cfg)
            rnd: dict[str, Any] = {"round": round_no, "plan_steps": plan,
                                   "readings": readings, "fit": asdict(fit)}  # fmt: skip
            rep["rounds"].append(rnd)
            self.ui.info(
                f"fit: residuals max {fit.residual_max_mm * 1000:.1f} µm, RMS "
                f"{fit.residual_rms_mm * 1000:.1f} µm; repeatability: range max "
                f"{fit.repeat_range_max_mm * 1000:.1f} µm, σ {fit.repeat_std_mm * 1000:.1f} µm; "
                f"curve deviation max {fit.curve_dev_max_mm * 1000:.1f} µm"
            )
            if fit.problems:
                if written:
                    self._restore(old)
                raise CalibrationRejected(fit.problems, rep)
            if not self.ui.confirm(
                f"write the table {fit.table} to the pen (replacing {self._short(old)})?"
            ):
                if written:
                    self._restore(old)
                raise CalibrationError("not written: the operator declined")
            if self.unlock:
                self.unlock()
            self.ops.calib_set(fit.table)
            written = True
            current = make_table(fit.table)
            rep["table_after"] = fit.table
            ver = self.verify(limit_um, round_no)
            rnd["verify"] = ver
            bad = [v for v in ver if abs(v["error_mm"]) > cfg.tol_mm]
            worst = max(ver, key=lambda v: abs(v["error_mm"]))
            rnd["verify_worst_mm"] = worst["error_mm"]
            self.ui.info(f"verification: worst error {worst['error_mm'] * 1000:+.1f} µm at "
                         f"{worst['set_mm']:.2f} mm over {len(ver)} depths")  # fmt: skip
            if not bad:
                rep["verdict"] = "accepted"
                rep["verify"] = ver
                return rep
            # Errors only where the table was extended past the measured points can be
            # measured now: the new table lets the stop reach there.
            lo_mm, hi_mm = fit.points[0]["mean_mm"], fit.points[-1]["mean_mm"]
            in_ext = all(v["set_mm"] > hi_mm or v["set_mm"] < lo_mm for v in bad)
            if not in_ext or round_no == cfg.rounds:
                self._restore(old)
                reasons = [f"verification: {v['set_mm']:.2f} mm measured {v['measured_mm']:.3f} "
                           f"mm (error {v['error_mm'] * 1000:+.0f} µm, tolerance "
                           f"±{cfg.tol_mm * 1000:.0f} µm)" for v in bad[:5]]  # fmt: skip
                rep["verdict"] = "rejected"
                raise CalibrationRejected(reasons + ["the previous table was restored"], rep)
            self.ui.info("the errors are where the table was extended past the measured range: "
                         "measuring again over the range the stop reaches now")  # fmt: skip
        raise CalibrationError("unreachable")  # pragma: no cover

    @staticmethod
    def _short(flat: list[int]) -> str:
        return f"{len(flat) // 2} points" if len(flat) > 8 else str(flat)

    def _restore(self, old: list[int]) -> None:
        try:
            if self.unlock:
                self.unlock()
            self.ops.calib_set(old)
            self.report["table_after"] = old
            self.report["restored"] = True
        except LinkError as exc:
            self.report["restore_failed"] = str(exc)


# -- report ------------------------------------------------------------------------------------
def save_report(rep: dict, folder: Path) -> tuple[Path, Path | None]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "calibration.json"
    js.write_text(json.dumps(rep, indent=2))
    png = folder / "calibration.png"
    try:
        plot_report(rep, png)
    except Exception as exc:  # noqa: BLE001 -- the JSON is the record; the plot is a view
        rep["plot_error"] = str(exc)
        js.write_text(json.dumps(rep, indent=2))
        return js, None
    return js, png


def plot_report(rep: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    tol = rep.get("config", {}).get("tol_mm", 0.02)
    for rnd in rep.get("rounds", []):
        n = rnd["round"]
        rd = rnd["readings"]
        table = rnd["fit"]["table"]
        ax[0][0].plot([s for s, _ in rd], [mm for _, mm in rd], "o", ms=3, label=f"round {n}")
        if table:
            ax[0][0].plot(table[0::2], [u / 1000 for u in table[1::2]], "-", lw=1,
                          label=f"table {n}")  # fmt: skip
            res = [(mm - _interp(table, s) / 1000) * 1000 for s, mm in rd]
            ax[0][1].plot([s for s, _ in rd], res, "o", ms=3, label=f"round {n}")
        ver = rnd.get("verify") or []
        if ver:
            ax[1][0].plot([v["set_mm"] for v in ver], [v["measured_mm"] for v in ver], "o-",
                          ms=3, lw=1, label=f"round {n}")  # fmt: skip
            ax[1][1].plot([v["set_mm"] for v in ver], [v["error_mm"] * 1000 for v in ver], "o-",
                          ms=3, lw=1, label=f"round {n}")  # fmt: skip
    ax[0][0].set(title="measured protrusion vs microsteps", xlabel="microsteps", ylabel="mm")
    ax[0][1].set(title="fit residuals (reading - table)", xlabel="microsteps", ylabel="µm")
    lim = rep.get("limit_mm", 3.0)
    ax[1][0].plot([0, lim], [0, lim], "k--", lw=0.8, label="ideal")
    ax[1][0].set(title="verification: measured vs set depth", xlabel="set mm", ylabel="gauge mm")
    band = f"±{tol * 1000:.0f} µm"
    ax[1][1].axhspan(-tol * 1000, tol * 1000, color="green", alpha=0.1, label=band)
    ax[1][1].set(title="verification error", xlabel="set mm", ylabel="µm")
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.suptitle(f"depth calibration: {rep.get('verdict', 'incomplete')}")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
