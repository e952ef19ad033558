"""Host ingestion rate into SQLite: how many telemetry samples per second `pen log`'s own path
(the real `pen.link.PenLink` reading lines, `pen.logger.TelemetryLogger` storing them) takes in
when the port delivers them as fast as it can. The port is a stand-in that answers commands
with `ok` and otherwise returns `~T` lines of the pen's format (docs/protocol.md); the database
is a file in a temporary folder.

    .venv/bin/python bench/ingest.py [--samples 100000]

The pen streams at most 200 samples/s, so this is the host's headroom over the stream (and
what bounds a backfill after a reconnect, next to the serial port's own speed).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "host_tools")]

from benchlib import emit  # noqa: E402

from pen import logger as lg  # noqa: E402
from pen.link import PenLink  # noqa: E402

SAMPLE = ('~T {"seq": %d, "t_ms": %d, "state": "RUNNING", "stroke_hz": 99.8, "target_hz": 100, '
          '"duty": 31296, "depth_mm": 1.0, "target_depth_mm": 1.0, "current_ma": 212, '
          '"battery_mv": 3850, "fault": 0}\n')  # fmt: skip
TAG = re.compile(rb"#(\d+) ")


class StreamingPort:
    """A serial port whose pen streams `~T` lines without end and answers `#N ...` with ok."""

    def __init__(self, chunk: int = 200):
        self.seq = 0
        self.chunk = chunk
        self.pending = bytearray()
        self.idle = False

    @property
    def in_waiting(self) -> int:
        if not self.pending:
            # Every other time the input is drained, nothing is waiting (the reader's poll
            # returns to the logger then, as with a real port between USB frames).
            self.idle = not self.idle
            if self.idle:
                return 0
            lines = [SAMPLE % (self.seq + i, 5 * (self.seq + i)) for i in range(self.chunk)]
            self.seq += self.chunk
            self.pending += "".join(lines).encode()
        return len(self.pending)

    def read(self, n: int = 1) -> bytes:
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    def write(self, data: bytes) -> int:
        for m in TAG.finditer(data):
            self.pending += b"#" + m.group(1) + b" ok\n"
        return len(data)

    def reset_input_buffer(self) -> None:
        self.pending.clear()

    def flush(self) -> None:
        pass


    def close(self) -> None:
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pen-ingest-") as tmp:
        db = lg.open_db(Path(tmp) / "bench.sqlite3")
        link = PenLink("bench-port", serial_factory=lambda _p: StreamingPort()).open(
            handshake=False)  # fmt: skip
        link.hello = {"serial": "bench", "firmware_version": "0.1.0", "protocol_version": 1}
        logger = lg.TelemetryLogger(link, db, rate_hz=200)
        logger.start()
        t0 = time.perf_counter()
        while logger.stats.samples < args.samples:
            logger.pump(0.0)
        wall = time.perf_counter() - t0
        logger.finish()
        stored = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        size = (Path(tmp) / "bench.sqlite3").stat().st_size
        db.close()
    rate = stored / wall
    print(f"host ingestion: {stored} samples stored in {wall:.2f} s = {rate:.0f} samples/s "
          f"({rate / 200:.0f} x the pen's 200 Hz stream); database {size / stored:.0f} "
          "bytes/sample")  # fmt: skip
    emit("Host ingestion rate into SQLite (pen log's path)", round(rate), "samples/s",
         f"{stored} `~T` lines through pen.link.PenLink and pen.logger.TelemetryLogger into a "
         "SQLite file, from a port that streams without pause; wall clock")
    emit("SQLite size per stored sample", round(size / stored), "bytes", "database file / samples")
    return 0 if stored >= args.samples else 1


if __name__ == "__main__":
    sys.exit(main())
