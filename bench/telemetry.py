"""Telemetry over the virtual pen's serial port: `telemetry on 200` for a long virtual session,
with the host disconnected for 30 virtual seconds in the middle; the missed samples are fetched
back from the pen's ring buffer (`telemetry fetch`). Prints the samples received (streamed and
fetched), the gaps left (must be 0) and the sample rate in the pen's own time.

    .venv/bin/python bench/telemetry.py [--minutes 10] [--speed 4] [--disconnect-s 30]

The protocol-level counterpart of bench/telemetry_log.py (which goes through `pen log`): here
the host side is a plain serial reader, so the figures are the firmware's. `--disconnect-s` is
in the pen's (virtual) seconds. Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parents[1]
FETCH_N = 50  # the pen's FETCH_MAX (firmware/protocol.py)


class Collector:
    """A host that reads `~T` lines, notices sequence gaps and fetches them back."""

    def __init__(self, port: str, ctl=None, log=print):
        self.port = port
        self.ctl = ctl  # side channel: the pen's virtual time (for the disconnect)
        self.log = log
        self.t = {}  # seq -> t_ms, streamed or fetched
        self.states: dict[str, int] = {}  # state -> samples
        self.streamed = 0
        self.fetched = 0
        self.s: serial.Serial | None = None
        self.buf = b""
        self.tag = 0
        self.replies: dict[int, str] = {}

    # -- the port --------------------------------------------------------------------------
    def open(self):
        self.s = serial.Serial(self.port, 115200, timeout=0.05)
        self.s.reset_input_buffer()  # what the pen wrote while we were away is stale
        self.buf = b""
        self.s.write(b"\n")  # ends any half line the pen holds (earns one error reply)

    def close(self):
        if self.s is not None:
            self.s.close()
            self.s = None

    def pump(self) -> None:
        data = self.s.read(self.s.in_waiting or 1)
        if not data:
            return
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if line.startswith("~T "):
                try:
                    d = json.loads(line[3:])
                except ValueError:
                    continue  # a line cut by the reconnect
                if d["seq"] not in self.t:
                    self.streamed += 1
                    self.states[d["state"]] = self.states.get(d["state"], 0) + 1
                self.t[d["seq"]] = d["t_ms"]
            elif line.startswith("#"):
                num, _, rest = line[1:].partition(" ")
                if num.isdigit():
                    self.replies[int(num)] = rest

    def command(self, line: str, timeout: float = 20.0) -> str:
        self.tag += 1
        tag = self.tag
        self.s.write(f"#{tag} {line}\n".encode())
        deadline = time.monotonic() + timeout
        while tag not in self.replies:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {line!r}")
            self.pump()
        return self.replies.pop(tag)

    # -- what the pen sent ------------------------------------------------------------------
    def span(self) -> tuple[int, int]:
        return min(self.t), max(self.t)

    def missing(self) -> list[int]:
        lo, hi = self.span()
        return [q for q in range(lo, hi + 1) if q not in self.t]

    def pen_ms(self) -> int:
        """The pen's time (ms) by its newest sample."""
        return self.t[max(self.t)] if self.t else 0

    def backfill(self) -> int:
        """Fetch every missing sample in range; returns how many were fetched."""
        got = 0
        for _ in range(5):  # a stream skip during a long fetch leaves a small new gap
            miss = self.missing()
            if not miss:
                break
            q = miss[0]
            while q <= miss[-1]:
                reply = self.command(f"telemetry fetch {q} {FETCH_N}")
                if not reply.startswith("ok "):
                    raise RuntimeError(f"fetch refused: {reply}")
                samples = json.loads(reply[3:])
                if not samples:
                    break
                for d in samples:
                    if d["seq"] not in self.t:
                        got += 1
                        self.states[d["state"]] = self.states.get(d["state"], 0) + 1
                    self.t[d["seq"]] = d["t_ms"]
                q = samples[-1]["seq"] + 1
                while q <= miss[-1] and q in self.t:
                    q += 1
        self.fetched += got
        return got

    def run_for(self, pen_ms: int) -> None:
        """Read the stream until the pen's clock has advanced pen_ms."""
        start = self.pen_ms()
        while self.pen_ms() - start < pen_ms:
            self.pump()

    def virtual_us(self) -> int:
        reply = self.ctl("truth")
        return int(reply.split("t_us=")[1].split()[0])

    def session(self, total_s: float, disconnect_at_s: float, disconnect_s: float, hz=200,
                needle_hz=100):  # fmt: skip
        """Stream for total_s of the pen's time, with the host away for disconnect_s; the needle
        runs at needle_hz meanwhile (0: the pen stays idle)."""
        self.open()
        if needle_hz:
            deadline = time.monotonic() + 30
            while True:  # the pen homes by itself after boot
                st = json.loads(self.command("status")[3:])
                if st.get("state") == "READY":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the pen did not become ready: {st}")
                time.sleep(0.1)
            for line in ("cartridge new", "arm", f"run {needle_hz}"):
                r = self.command(line)
                while line.startswith("run") and r.startswith("error:10 "):
                    # the stop's position is checked at the endstop first (SF-13)
                    if time.monotonic() > deadline + 10:
                        break
                    time.sleep(0.1)
                    r = self.command(line)
                if not r.startswith("ok"):
                    raise RuntimeError(f"{line}: {r}")
        r = self.command(f"telemetry on {hz}")
        if not r.startswith("ok "):
            raise RuntimeError(f"telemetry on refused: {r}")
        t_wall = time.monotonic()
        while not self.t:
            self.pump()
        self.run_for(int(disconnect_at_s * 1000))
        self.log(f"disconnect at pen t = {(self.pen_ms() - self.t[min(self.t)]) / 1000:.1f} s")
        last_before = max(self.t)
        self.close()
        v0 = self.virtual_us()
        while self.virtual_us() - v0 < disconnect_s * 1e6:
            time.sleep(0.1)
        self.open()
        while max(self.t) <= last_before + 1:  # until the stream is back, past the gap
            self.pump()
        gap = len(self.missing())
        fetched = self.backfill()
        self.log(f"reconnected: {gap} samples missing, {fetched} fetched from the ring")
        first = self.t[min(self.t)]
        self.run_for(max(0, int(total_s * 1000) - (self.pen_ms() - first)))
        self.backfill()
        self.command("telemetry off")
        if needle_hz:
            self.command("stop")
        wall = time.monotonic() - t_wall
        self.close()
        lo, hi = self.span()
        span_ms = self.t[hi] - self.t[lo]
        steps = [self.t[q + 1] - self.t[q] for q in range(lo, hi) if q in self.t and q + 1 in
                 self.t]  # fmt: skip
        return {
            "samples": len(self.t), "streamed": self.streamed, "fetched": self.fetched,
            "gaps": len(self.missing()), "first_seq": lo, "last_seq": hi,
            "pen_seconds": span_ms / 1000, "rate_hz": (hi - lo) * 1000 / span_ms,
            "max_step_ms": max(steps), "wall_seconds": round(wall, 1), "states": self.states,
        }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="virtual minutes streamed")
    ap.add_argument("--speed", type=int, default=4, help="virtual seconds per real second")
    ap.add_argument("--disconnect-s", type=float, default=30.0, help="virtual seconds away")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "host_tools"))
    from pen.sim import ctl_command

    proc = subprocess.Popen([str(Path(sys.executable).with_name("pen")), "sim", "--speed",
                             str(args.speed)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = proc.stdout.readline().strip()
        time.sleep(1.0)
        c = Collector(port, ctl=lambda line: ctl_command(port, line))
        total = args.minutes * 60
        fig = c.session(total, total / 2 - args.disconnect_s / 2, args.disconnect_s)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"telemetry at 200 Hz for {fig['pen_seconds']:.1f} s of the pen's time "
          f"({fig['wall_seconds']} s wall at speed {args.speed}), host away "
          f"{args.disconnect_s:.0f} s in the middle")
    print(f"  samples {fig['samples']} (streamed {fig['streamed']}, fetched from the ring "
          f"{fig['fetched']}), gaps {fig['gaps']}")
    print(f"  rate {fig['rate_hz']:.2f} Hz in pen time, largest step {fig['max_step_ms']} ms")
    print(json.dumps(fig))
    return 0 if fig["gaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
