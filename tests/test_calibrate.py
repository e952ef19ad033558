"""Guided depth calibration (`pen.calibrate`): the fit and its rejections, the gauges, and the
whole procedure against a CPython model of the lead screw (pitch error, offset, backlash, bow)."""

from __future__ import annotations

import json

import pytest

from pen import calibrate as C


class Plant:
    """Lead screw like sim/plant_depth.py: protrusion = offset + nut (1 + pitch) + bow."""

    UM_PER_STEP = 2.5
    pitch_error = 0.03
    offset_mm = -0.12
    backlash_mm = 0.03
    nonlinear_mm = 0.04
    travel_mm = 3.6

    def __init__(self):
        self.steps = 400
        self.nut = self.steps * self.UM_PER_STEP / 1000

    def step_to(self, target: int) -> None:
        d = 1 if target > self.steps else -1
        half = self.backlash_mm / 2
        while self.steps != target:
            self.steps += d
            pos = self.steps * self.UM_PER_STEP / 1000
            if pos - self.nut > half:
                self.nut = pos - half
            elif self.nut - pos > half:
                self.nut = pos + half

    def protrusion(self) -> float:
        x = self.nut * (1 + self.pitch_error)
        return self.offset_mm + x + self.nonlinear_mm * 4 * (x / self.travel_mm) * (
            1 - x / self.travel_mm
        )


class FakeOps:
    """The pen's depth axis as the firmware runs it (soft range through the table, every move
    ending outwards), without the serial link."""

    def __init__(self, plant: Plant, flat=(0, -100, 1440, 3680), limit_um=3000):
        self.plant = plant
        self.flat = list(flat)
        self.limit = limit_um
        self.service = False
        self.writes: list[list[int]] = []
        self.homed = False

    def _table(self):
        return C.make_table(self.flat)

    def _go(self, target: int) -> None:
        hi = min(self._table().steps_at_most(self.limit), 1440)
        target = max(16, min(hi, target))
        if target < self.plant.steps:
            self.plant.step_to(max(16, target - 24))
        self.plant.step_to(target)

    def home(self):
        self.plant.step_to(-20)
        self.plant.step_to(0)  # the switch point: step 0, approached outwards after back-off
        self.homed = True
        self._go(self._table().steps_for_um(0))
        return {"state": "READY", "homed": True, "firmware_version": "test"}

    def limit_um(self):
        return self.limit

    def calib_get(self):
        return list(self.flat)

    def calib_set(self, flat):
        C.make_table(flat)
        self.flat = list(flat)
        self.writes.append(list(flat))

    def enter_service(self):
        self.service = True

    def exit_service(self):
        self.service = False
        self.home()

    def position_steps(self, table, st=None):
        return self.plant.steps

    def move_steps(self, n, table):
        assert self.service
        self._go(self.plant.steps + n)
        return self.plant.steps

    def set_depth(self, mm):
        assert not self.service
        self._go(self._table().steps_for_um(int(round(mm * 1000))))
        return {}


class PlantGauge:
    name = "model"

    def __init__(self, plant, noise=None):
        self.plant = plant
        self.noise = noise or (lambda: 0.0)

    def read(self, prompt=""):
        return round(self.plant.protrusion() + self.noise(), 4)

    def close(self):
        pass


def quiet_ui(answers=True):
    return C.Ui(info=lambda m: None, confirm=lambda q: answers)


@pytest.mark.req("HT-40", "HT-41", "HT-42")
def test_procedure_calibrates_the_model_within_tolerance(tmp_path):
    """HT-40, HT-41, HT-42: home, measure points approached from one side with repeats,
    fit, write after confirmation (unlocking first), verify: every depth 0..3 mm in 0.05 mm
    steps is then within ±0.02 mm of the true protrusion; the report (JSON, PNG) is saved."""
    plant = Plant()
    ops = FakeOps(plant)
    unlocked = []
    cal = C.Calibrator(ops, PlantGauge(plant), C.Config(points=8, repeats=2), quiet_ui(),
                       unlock=lambda: unlocked.append(1))  # fmt: skip
    rep = cal.run()
    assert rep["verdict"] == "accepted"
    assert ops.writes and len(unlocked) >= 2 * len(ops.writes)  # service and each write
    assert max(abs(v["error_mm"]) for v in rep["verify"]) <= 0.02
    # Independent check on a finer grid than the verification pass, from both sides.
    table = C.make_table(ops.flat)
    for i in list(range(0, 61)) + list(range(60, -1, -1)):
        mm = i * 0.05
        ops.set_depth(mm)
        assert abs(plant.protrusion() - mm) <= 0.02, (mm, plant.protrusion())
    assert table.covers(0, 3000)
    js, png = C.save_report(rep, tmp_path / "rep")
    data = json.loads(js.read_text())
    assert data["verdict"] == "accepted" and data["table_after"] == ops.flat
    assert {"residual_max_mm", "residual_rms_mm", "repeat_std_mm"} <= set(data["rounds"][0]["fit"])
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.req("HT-42")
def test_declined_confirmation_writes_nothing():
    """HT-42: the table is written only after confirmation."""
    plant = Plant()
    ops = FakeOps(plant)
    cal = C.Calibrator(ops, PlantGauge(plant), C.Config(points=6, repeats=1), quiet_ui(False))
    with pytest.raises(C.CalibrationError) as exc:
        cal.run()
    assert "declined" in str(exc.value) and ops.writes == []


@pytest.mark.req("HT-42")
def test_failed_verification_restores_the_previous_table():
    """HT-42: a table that does not verify is replaced by the previous one again."""
    plant = Plant()
    ops = FakeOps(plant)
    drift = {"mm": 0.0}

    class DriftingGauge(PlantGauge):
        def read(self, prompt=""):
            if prompt.startswith("verify"):
                drift["mm"] += 0.004  # the gauge slips during verification
            return super().read(prompt) + drift["mm"]

    before = list(ops.flat)
    cal = C.Calibrator(ops, DriftingGauge(plant), C.Config(points=6, repeats=1), quiet_ui())
    with pytest.raises(C.CalibrationRejected) as exc:
        cal.run()
    assert "restored" in str(exc.value)
    assert ops.flat == before and exc.value.report["restored"]


def _readings(plant, plan, repeats=2):
    out = []
    for s in plan:
        for _ in range(repeats):
            plant.step_to(s - 24)
            plant.step_to(s)
            out.append((s, plant.protrusion()))
    return out


PLAN = [40, 200, 360, 520, 680, 840, 1000, 1180]


@pytest.mark.req("HT-41")
def test_fit_reports_residuals_and_extends_to_the_limit():
    """HT-41: the table's knots are the points' means; residuals and repeatability are
    reported; the table is extended along its end segment to cover the depth limit."""
    fit = C.fit_table(_readings(Plant(), PLAN), 3000, C.Config())
    assert not fit.problems
    assert fit.residual_max_mm < 1e-3 and fit.repeat_range_max_mm < 1e-3
    assert fit.extended["high"] is not None and fit.table[-1] >= 3000
    assert C.make_table(fit.table).covers(0, 3000)


@pytest.mark.req("HT-41")
@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda r: r.__setitem__(5, (r[5][0], r[5][1] + 0.03)), "scatter"),
        (lambda r: [r.__setitem__(i, (r[i][0], r[i][1] - 0.5)) for i in (6, 7)], "increase"),
        (lambda r: [r.__setitem__(i, (r[i][0], r[i][1] + 0.05)) for i in (8, 9)], "off the curve"),
    ],
)
def test_bad_fits_are_rejected_with_the_reason(spoil, words):
    """HT-41: scattered repeats, a non-increasing depth and a point off the curve are each
    rejected, saying why and what to do."""
    r = _readings(Plant(), PLAN)
    spoil(r)
    fit = C.fit_table(r, 3000, C.Config())
    assert fit.problems and any(words in p for p in fit.problems), fit.problems


@pytest.mark.req("HT-41")
def test_range_short_of_the_limit_is_rejected():
    """HT-41: a measured range far short of the depth limit is not extrapolated."""
    fit = C.fit_table(_readings(Plant(), PLAN[:5]), 3000, C.Config())
    assert any("short of the depth limit" in p for p in fit.problems)


@pytest.mark.req("HT-42")
def test_verify_order_comes_from_both_sides():
    """HT-42: the verification pass alternates shallow and deep depths."""
    v = C.verify_depths(3.0, 0.5)
    assert v == [0.0, 3.0, 0.5, 2.5, 1.0, 2.0, 1.5]


@pytest.mark.req("HT-40")
def test_typed_and_serial_gauges():
    """HT-40: an operator's typed reading, and a serial indicator's line, are read in mm."""
    answers = iter(["x", "1,250"])
    assert C.TypedGauge(lambda q: next(answers)).read("p") == 1.25
    with pytest.raises(C.CalibrationError):
        C.TypedGauge(lambda q: "abort").read("p")

    class Ser:
        def __init__(self):
            self.data = b"junk\r\n+001.234 mm\r\n"

        def reset_input_buffer(self):
            pass

        def write(self, b):
            pass

        def read(self, n):
            out, self.data = self.data[:n], self.data[n:]
            return out

        def close(self):
            pass

    g = C.SerialGauge("/dev/gauge", serial_factory=lambda p: Ser(), timeout=1.0)
    assert g.read() == pytest.approx(1.234)


# -- end to end on the virtual pen ---------------------------------------------------------------
TEST_SECRET_HEX = b"virtual-pen-test-secret-not-real".hex()  # the virtual pen's test secret


@pytest.mark.req("HT-43", "HT-40", "HT-42", "HT-22")
def test_calibrate_virtual_pen_end_to_end(vpen_factory, tmp_path, capsys):
    """HT-43, HT-40, HT-42, HT-22: on the virtual pen (lead screw with pitch error, offset,
    backlash and bow, unknown to the firmware) `pen calibrate depth --gauge virtual` writes a
    table after which every depth from 0 to 3 mm in 0.05 mm steps, approached from below and
    from above, is within ±0.02 mm of the true protrusion read from the virtual gauge."""
    from pen.cli import main as pen_main
    from pen.link import open_link

    pen = vpen_factory(speed=4)
    secret = tmp_path / "secret.key"
    secret.write_text(TEST_SECRET_HEX + "\n")
    assert pen_main(["--port", pen.port, "set", "depth_limit", "3.00", "--secret-file",
                     str(secret)]) == 0  # fmt: skip
    capsys.readouterr()
    rc = pen_main(["--port", pen.port, "calibrate", "depth", "--gauge", "virtual", "--points",
                   "8", "--repeats", "2", "--yes", "--secret-file", str(secret), "--report",
                   str(tmp_path / "cal"), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["verdict"] == "accepted" and rep["limit_mm"] == 3.0
    assert (tmp_path / "cal" / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["verdict"] == "accepted"

    grid = [round(i * 0.05, 2) for i in range(61)]
    worst = 0.0
    with open_link(pen.port) as link:
        assert link.call("calib get") == rep["table_after"]
        for mm in grid + grid[::-1]:
            link.call(f"depth {mm:.2f}")
            same, last, waited_ms = 0, None, 0
            while same < 3:  # at rest at its target, on three polls in a row
                st = link.call("status")
                here = st["depth_mm"]
                ok = here is not None and abs(here - mm) <= 0.002
                same = same + 1 if ok and here == last else 0
                last = here
                assert waited_ms < 10000, st  # 10 s of the pen's time
                pen.ctl("wait", "20")  # 20 ms of the pen's own time
                waited_ms += 20
            true_mm = float(pen.ctl("gauge"))
            worst = max(worst, abs(true_mm - mm))
            assert abs(true_mm - mm) <= 0.02, (mm, true_mm)
    print(f"worst error over {2 * len(grid)} depths: {worst * 1000:.1f} µm")


@pytest.mark.req("HT-89")
def test_thirty_points_reach_the_pen_and_saved_readings_resume(vpen_factory, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    """HT-89: `pen calibrate depth --points 30` on the virtual pen: the readings are saved
    before anything is sent (a run stopped at the confirmation keeps all 30 in its report),
    `--resume REPORT` uses them without measuring again, and the 30-point table reaches the
    pen in one `calib set` line (within the line limit) and is accepted."""
    from pen.cli import main as pen_main
    from pen.link import open_link

    monkeypatch.setattr("builtins.input", lambda prompt="": (_ for _ in ()).throw(EOFError))
    pen = vpen_factory(speed=4)
    secret = tmp_path / "secret.key"
    secret.write_text(TEST_SECRET_HEX + "\n")
    assert pen_main(["--port", pen.port, "set", "depth_limit", "3.00", "--secret-file",
                     str(secret)]) == 0  # fmt: skip
    capsys.readouterr()
    base = ["--port", pen.port, "calibrate", "depth", "--gauge", "virtual", "--points", "30",
            "--repeats", "1", "--verify-step", "0.25", "--secret-file", str(secret),
            "--report", str(tmp_path / "cal")]  # fmt: skip
    rc = pen_main(base)  # nobody confirms the write
    _, err = capsys.readouterr()
    assert rc != 0 and "confirmation needed" in err, err
    saved = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert len(saved["rounds"][0]["readings"]) == 30
    with open_link(pen.port) as link:
        before = link.call("calib get")
    assert len(before) < 60, "nothing was written"
    report = str(tmp_path / "cal" / "calibration.json")
    rc = pen_main(base + ["--yes", "--json", "--resume", report])
    out, err = capsys.readouterr()
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["resumed_readings"] == 30 and rep["verdict"] == "accepted"
    assert len(rep["table_after"]) >= 60
    with open_link(pen.port) as link:
        assert link.call("calib get") == rep["table_after"]
