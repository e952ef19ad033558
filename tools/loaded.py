"""Run a command with every core busy (one CPU-bound process per core), then stop them:

    python tools/loaded.py -- pytest -q tests/test_device_scenarios.py

`make test-loaded` runs the tests that drive the virtual pen in real time this way: their
verdicts wait on the pen (its state, its own clock), so they must come out the same on a
loaded machine, only later."""

from __future__ import annotations

import os
import subprocess
import sys

HOG = "while True: pass"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(os.cpu_count() or 1)]
    try:
        return subprocess.call(argv)
    finally:
        for h in hogs:
            h.kill()
            h.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
