"""`pen sim --unit N` and the side channel's population commands, from the host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from loadfile import load_file

ROOT = Path(__file__).resolve().parents[1]


def _units():
    return load_file("sim/plant_units.py", "plant_units_host")


@pytest.mark.req("PL-2")
def test_pen_sim_unit_is_the_same_draw_as_under_cpython(vpen_factory):
    """PL-2: `pen sim --unit 3` runs unit 3: the side channel's `unit` line (computed in the
    micropython binary) is the line sim/plant_units.py gives for unit 3 under CPython; unit 0
    is the nominal; `glitch` sets and reports a rate and refuses a bad one, changing
    nothing."""
    pu = _units()
    pen = vpen_factory(unit=3)
    assert pen.ctl("unit") == pu.describe(pu.draw(3))
    assert pen.ctl("unit") != pu.describe(pu.draw(0))
    assert pen.ctl("glitch", "hall_miss", "0.01") == ""
    assert "hall_miss=0.01/" in pen.ctl("glitch")
    for bad in (["glitch", "hall_miss", "2"], ["glitch", "bogus", "0.1"], ["glitch", "hall_miss"],
                ["load", "2.5"]):  # fmt: skip
        with pytest.raises(RuntimeError):
            pen.ctl(*bad)
    assert "hall_miss=0.01/" in pen.ctl("glitch") and "hall_double=0/" in pen.ctl("glitch")
    assert pen.ctl("glitch", "none") == "" and "hall_miss=0/" in pen.ctl("glitch")


@pytest.mark.req("PL-2")
def test_pen_sim_refuses_a_bad_unit():
    """PL-2: `pen sim --unit` takes an integer 0..999999 and refuses anything else with a
    clear message, starting nothing."""
    pen = str(Path(sys.executable).with_name("pen"))
    for bad in ("-1", "x", "1.5", "1000000"):
        res = subprocess.run([pen, "sim", "--unit", bad], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        assert res.returncode == 2 and "unit must be an integer" in res.stderr, res.stderr
        assert not res.stdout.startswith("/dev/")
