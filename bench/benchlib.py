"""The benchmarks' convention: every figure a benchmark measures is printed as one line

    BENCH {"figure": "...", "value": 12.3, "unit": "ms", "how": "how it was measured"}

next to the benchmark's own human-readable output. `bench/run_all.py` (`make bench`) runs every
benchmark, collects these lines and writes the table to bench/results.md. A benchmark that
runs inside the `micropython` binary prints the same line itself (`print("BENCH " + json)`).
"""

from __future__ import annotations

import json
import sys

PREFIX = "BENCH "


def line(figure: str, value, unit: str, how: str) -> str:
    return PREFIX + json.dumps({"figure": figure, "value": value, "unit": unit, "how": how})


def emit(figure: str, value, unit: str, how: str) -> None:
    print(line(figure, value, unit, how), flush=True)


def parse(text: str) -> list[dict]:
    """The figures in a benchmark's output, in order."""
    out = []
    for raw in text.splitlines():
        if raw.startswith(PREFIX):
            try:
                d = json.loads(raw[len(PREFIX) :])
            except ValueError:
                continue
            if isinstance(d, dict) and "figure" in d and "value" in d:
                out.append(d)
    return out


def micropython() -> str:
    """The unix-port `micropython` next to this Python (the venv), else the one on PATH."""
    from pathlib import Path

    cand = Path(sys.executable).with_name("micropython")
    return str(cand) if cand.exists() else "micropython"


MPY_DIR = "build/mp-bench"  # the pen's modules as bytecode for the benchmarks' micropython runs


def compile_pen_files(root=None) -> str:
    """Compile the pen's modules to .mpy under build/mp-bench (as the tests' harness does for
    build/mp-test), so a benchmark runs this checkout's firmware as bytecode, as on the pen;
    returns the folder (relative to the repository root)."""
    import shutil
    import subprocess
    from pathlib import Path

    from pen import paths
    from pen.deploy import mpy_cross_binary

    root = Path(root) if root else Path(__file__).resolve().parents[1]
    out_dir = root / MPY_DIR
    if out_dir.exists():
        shutil.rmtree(out_dir)
    import platform
    import re

    m = platform.machine().lower()
    host = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "i686": "x86"}.get(m, m)
    for rel in paths.pen_source_files(root):
        if rel.parent == Path("."):
            continue
        out = out_dir / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        # a module with native code (viper) is compiled for this host's CPU, as the tests do
        native = re.search(r"^\s*@micropython\.(viper|native)", (root / rel).read_text(), re.M)
        arch = [f"-march={host}"] if native else []
        subprocess.run([mpy_cross_binary(), *arch, "-o", str(out), str(rel)], cwd=root,
                       check=True)  # fmt: skip
    # The virtual board's plant as bytecode too, as the tests' harness has it: compiled from
    # source inside a 190 KB heap it fragments the heap before the benchmark starts (the
    # depth benchmark's rig failed to import with MemoryError once the plant grew).
    for src in sorted((root / "sim").glob("plant_*.py")) + [root / "sim" / "board_sim.py"]:
        subprocess.run([mpy_cross_binary(), "-o", str(out_dir / (src.stem + ".mpy")),
                        str(src.relative_to(root))], cwd=root, check=True)  # fmt: skip
    return MPY_DIR
