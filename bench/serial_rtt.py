"""Serial round trip over the virtual pen's pseudo-terminal: `status` (a full command: line
assembly, protocol, JSON reply) and the real-time `?` byte (a `~S` status line), many times,
from a plain pyserial host; median, 95th percentile and worst, wall-clock time.

    .venv/bin/python bench/serial_rtt.py [--n 500]

The virtual pen runs in real time (`pen sim --speed 1`): its link task polls the port every
4 ms like the pen's, so the figures include that wait, but not USB's 1 ms frames.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from benchlib import emit  # noqa: E402


def read_until(s: serial.Serial, prefix: bytes, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = s.readline()
        if line.startswith(prefix):
            return line
    raise TimeoutError(f"no line starting {prefix!r}")


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="round trips of each kind")
    args = ap.parse_args(argv)
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pen")), "sim"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)  # fmt: skip
    try:
        port = proc.stdout.readline().strip()
        with serial.Serial(port, 115200, timeout=2) as s:
            s.reset_input_buffer()
            s.write(b"\n")
            time.sleep(0.2)
            s.reset_input_buffer()
            for i in range(20):  # warm-up
                s.write(f"#{i} status\n".encode())
                read_until(s, f"#{i} ok".encode())
            rtt = []
            for i in range(1000, 1000 + args.n):
                t0 = time.perf_counter()
                s.write(f"#{i} status\n".encode())
                read_until(s, f"#{i} ok".encode())
                rtt.append((time.perf_counter() - t0) * 1000)
            rt = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                s.write(b"?")
                read_until(s, b"~S ")
                rt.append((time.perf_counter() - t0) * 1000)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    how = (f"{args.n} round trips over the virtual pen's pty (pen sim, real time), pyserial "
           "host, wall clock")
    for name, xs in (("`status` command", rtt), ("`?` real-time status", rt)):
        med, p95, worst = statistics.median(xs), percentile(xs, 95), max(xs)
        print(f"{name}: median {med:.2f} ms, p95 {p95:.2f} ms, worst {worst:.2f} ms "
              f"({len(xs)} round trips)")  # fmt: skip
        emit(f"Serial round trip, {name}, median", round(med, 2), "ms", how)
        emit(f"Serial round trip, {name}, p95", round(p95, 2), "ms", how)
    return 0


if __name__ == "__main__":
    sys.exit(main())
