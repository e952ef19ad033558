"""`make demo` (python -m pen.demo) end to end: the virtual pen driven through the host tools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.req("HT-50", "HT-87")
def test_demo_runs_end_to_end(tmp_path):
    """HT-50, HT-60, HT-62, HT-87: the demo boots the virtual pen, handshakes, homes,
    calibrates, sets a depth, arms, confirms a cartridge, runs the needle under skin load with
    live figures, stops, and prints the session's summary and report PNG, every step a `pen`
    command (those during the log through the log's link); it leaves nothing in the temporary
    folder (no secret key file); the whole demo takes at most 60 s of the pen's own time."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out_dir = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "pen.demo", "--out", str(out_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    left = sorted(p.name for p in scratch.rglob("*") if not p.is_dir())
    assert left == [], "files left in the temporary folder"  # (the registry folder may stay)
    tmp_path = out_dir
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    for step in ("$ pen --port", "status", "home: ok; state READY", "calibration accepted",
                 "set depth", "arm: ok", "cartridge new: ok", "run 100: ok",
                 "sim-ctl load 0.8", "stop: ok", "disarm: ok", "$ pen report", "passes: 1",
                 "strokes:", "faults: none"):  # fmt: skip
        assert step in out, step
    assert " 0 missing" in out
    pngs = sorted(p.name for p in tmp_path.glob("session-*.png"))
    assert len(pngs) == 1 and (tmp_path / pngs[0]).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "calibration" / "calibration.png").exists()
    done = [line for line in out.splitlines() if line.startswith("== done in ")]
    assert done, "the demo prints its closing line"
    pen_s = float(done[0].split()[3])  # the pen's own time: its uptime since the demo booted it
    assert 5 <= pen_s <= 60, done[0]
