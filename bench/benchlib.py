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
