"""The procedure: measure, fit, confirm, write, verify (rounds), with the operator's UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..link import LinkError
from .errors import CalibrationError, CalibrationRejected
from .fit import Config, axis_constants, fit_table, make_table, plan_points, verify_depths
from .pen_ops import PenOps


@dataclass
class Ui:
    info: Callable[[str], None] = print
    confirm: Callable[[str], bool] = lambda q: True
    progress: Callable[[str, int, int], None] = lambda what, done, total: None


class Calibrator:
    def __init__(self, ops: PenOps, gauge, cfg: Config, ui: Ui,
                 unlock: Callable[[], None] | None = None,
                 save: Callable[[dict], None] | None = None,
                 resume: list[tuple[int, float]] | None = None):  # fmt: skip
        """`save(report)` runs after each round's readings are taken, before anything is sent
        to the pen; `resume`: readings saved by an earlier run, used for the first round
        instead of measuring again."""
        self.save = save
        self.resume = resume
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
            if round_no == 1 and self.resume:
                readings = [(int(s), float(mm)) for s, mm in self.resume]
                rep["resumed_readings"] = len(readings)
                self.ui.info(f"round 1: {len(readings)} saved readings, not measured again")
            else:
                if self.unlock:
                    self.unlock()  # the service state (raw moves) needs the unlock
                self.ops.enter_service()
                try:
                    readings = self.measure(current, plan, round_no)
                finally:
                    self.ops.exit_service()
            rnd: dict[str, Any] = {"round": round_no, "plan_steps": plan, "readings": readings}
            rep["rounds"].append(rnd)
            if self.save:
                self.save(rep)  # the readings are kept before anything is sent
            fit = fit_table(readings, limit_um, cfg)
            rnd["fit"] = asdict(fit)
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


