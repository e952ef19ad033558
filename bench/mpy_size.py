"""Size of the pen's compiled files: every file `pen deploy` compiles, with
`mpy-cross -march=armv6m` (the RP2040's Cortex-M0+), per folder and in total, next to the
source size; the largest modules.

    .venv/bin/python bench/mpy_size.py      (from the repository root)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "host_tools")]

from benchlib import emit  # noqa: E402

from pen.deploy import build  # noqa: E402


def main() -> int:
    files = build(ROOT, target_arch="armv6m")
    mpy = [f for f in files if f.dest.endswith(".mpy")]
    by_dir: dict[str, int] = defaultdict(int)
    src_total = 0
    for f in mpy:
        by_dir[f.dest.split("/")[0]] += len(f.data)
        src_total += (ROOT / f.source).stat().st_size
    total = sum(len(f.data) for f in mpy)
    print(f"compiled with mpy-cross -march=armv6m: {len(mpy)} modules")
    for d in sorted(by_dir):
        print(f"  {d + '/':<12} {by_dir[d]:>7} bytes")
    print(f"  {'total':<12} {total:>7} bytes (source {src_total} bytes, "
          f"{100 * total / src_total:.0f} %)")  # fmt: skip
    largest = sorted(mpy, key=lambda f: -len(f.data))[:3]
    print("  largest: " + ", ".join(f"{f.dest} {len(f.data)}" for f in largest))
    how = "sum of the .mpy files `pen deploy` builds (mpy-cross -march=armv6m, the pen's file set)"
    emit("Compiled .mpy size, all pen modules", round(total / 1024, 1), "KB",
         f"{how}; {len(mpy)} modules, source {src_total / 1024:.1f} KB")
    for d in sorted(by_dir):
        emit(f"  of which {d}/", round(by_dir[d] / 1024, 1), "KB", how)
    f = largest[0]
    emit(f"Largest module ({f.dest})", round(len(f.data) / 1024, 1), "KB",
         "one .mpy file of that build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
