"""`make bench`: run every benchmark under bench/, print one table of their figures and write it
to bench/results.md.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--quick] [-v]

A benchmark is a script `bench/NAME.py` (not this one, not `benchlib.py`, not the `mp_*.py`
parts that run inside micropython for another benchmark). Each prints its own figures as
`BENCH {json}` lines (bench/benchlib.py: figure, value, unit, how it was measured). A benchmark
that prints none but ends with a JSON line of figures is read through an adapter below. A
benchmark that fails or times out is reported in the table with the reason; the others still
run. Exit status 1 if any benchmark failed.

With --only, the rows of the benchmarks run replace theirs in the existing bench/results.md, and
its header says which rows were updated when, from which tree; the other rows stay as the last
full run measured them.

--quick shortens the long telemetry runs (1 virtual minute instead of 10) for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "results.md"
sys.path.insert(0, str(BENCH))
from benchlib import micropython, parse  # noqa: E402

NOT_BENCHMARKS = {"run_all.py", "benchlib.py", "keyfigures.py", "__init__.py"}
# Run order: quick first; the long telemetry runs (10 virtual minutes each at --speed 4) last.
ORDER = ("mpy_size", "stroke_loop", "depth_axis", "memory", "chip", "ingest", "serial_rtt",
         "telemetry", "telemetry_log")  # fmt: skip
QUICK_ARGS = {"telemetry": ["--minutes", "1", "--disconnect-s", "20"],
              "telemetry_log": ["--minutes", "1", "--disconnect-s", "3"]}  # fmt: skip
TIMEOUT_S = 900
LONG_TIMEOUT_S = {"depth_axis": 3600, "stroke_loop": 1800,  # the population runs
                  "chip": 1800}  # about 4 s of an emulated RP2040, 15-30x slower than real time


def benchmarks(only: list[str] | None = None) -> list[Path]:
    found = [p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHMARKS
             and not p.name.startswith("mp_")]  # fmt: skip
    rank = {name: i for i, name in enumerate(ORDER)}
    found.sort(key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))
    if only:
        found = [p for p in found if p.stem in only]
    return found


# -- adapters: benchmarks that end with one JSON line instead of BENCH lines ------------------
def _telemetry(d: dict) -> list[dict]:
    how = (f"`telemetry on 200` over the virtual pen's pty for {d['pen_seconds']:.0f} s of pen "
           f"time ({d['wall_seconds']} s wall), host away 30 s in the middle, gaps fetched "
           "from the ring (`telemetry fetch`)")
    return [
        {"figure": "Telemetry rate without loss (pen time)", "value": round(d["rate_hz"], 2),
         "unit": "Hz", "how": how},
        {"figure": "Telemetry samples missing after backfill", "value": d["gaps"],
         "unit": "samples", "how": how + f"; {d['samples']} samples in all"},
        {"figure": "Telemetry samples fetched back from the ring", "value": d["fetched"],
         "unit": "samples", "how": how},
    ]  # fmt: skip


def _telemetry_log(d: dict) -> list[dict]:
    how = (f"`pen log` of a {d['virtual_s']:.0f} s session (needle at 100 Hz under load, "
           f"telemetry {d['rate_hz']} Hz) on the virtual pen at speed {d['speed']}, the port "
           f"closed {d['disconnect_wall_s']:g} s in the middle; SQLite")
    out = [
        {"figure": "pen log: samples lost over the session", "value": d["lost"],
         "unit": "samples", "how": how + f"; {d['samples']} stored"},
        {"figure": "pen log: samples backfilled after the reconnect", "value": d["backfilled"],
         "unit": "samples", "how": how},
        {"figure": "pen log: ingestion rate, end to end", "value": d["ingest_rate_sps"],
         "unit": "samples/s", "how": how + "; samples stored / wall time"},
    ]  # fmt: skip
    if d.get("backfill_rate_sps"):
        out.append({"figure": "pen log: backfill rate", "value": d["backfill_rate_sps"],
                    "unit": "samples/s", "how": how + "; fetched samples / time fetching"})
    return out


ADAPTERS = {"telemetry": _telemetry, "telemetry_log": _telemetry_log}


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _clean(text: str) -> str:
    """One line of a failure, without this machine's paths."""
    for p in (str(ROOT), os.path.expanduser("~"), sys.prefix):
        text = text.replace(p + os.sep, "").replace(p, ".")
    return " ".join(text.split())[:200]


def run_one(path: Path, quick: bool, verbose: bool) -> dict:
    args = QUICK_ARGS.get(path.stem, []) if quick else []
    t0 = time.monotonic()
    limit = LONG_TIMEOUT_S.get(path.stem, TIMEOUT_S)
    try:
        res = subprocess.run([sys.executable, str(path), *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=limit)  # fmt: skip
        out, err, rc = res.stdout, res.stderr, res.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {limit} s", -1
    wall = time.monotonic() - t0
    if verbose:
        for line in out.splitlines():
            if not line.startswith("BENCH "):
                print("    " + line)
    figures = parse(out)
    if not figures and path.stem in ADAPTERS:
        d = _last_json(out)
        if d is not None:
            try:
                figures = ADAPTERS[path.stem](d)
            except (KeyError, TypeError, ValueError) as exc:
                err += f"\nits JSON line lacks {exc}"
    status = "ok"
    reason = ""
    if rc != 0:
        status = "failed"
        lines = [x for x in (err or out).strip().splitlines() if x.strip()]
        reason = _clean(lines[-1] if lines else f"exit status {rc}")
    elif not figures:
        status = "failed"
        reason = "printed no figures"
    return {"bench": path.name, "args": args, "status": status, "reason": reason,
            "figures": figures, "wall_s": wall}  # fmt: skip


def _value(v) -> str:
    if isinstance(v, (int, float)) and v == 0:
        return "0"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return str(v)


def table(results: list[dict]) -> list[str]:
    lines = ["| benchmark | figure | value | unit | how measured |", "|---|---|---|---|---|"]
    for r in results:
        name = f"`bench/{r['bench']}`" + (" " + " ".join(r["args"]) if r["args"] else "")
        for f in r["figures"]:
            cells = [name, f["figure"].strip(), _value(f["value"]), f.get("unit", ""),
                     f.get("how", "")]  # fmt: skip
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        if r["status"] != "ok":
            lines.append(f"| {name} | **{r['status']}** (skipped) | — | | {r['reason']} |")
    return lines


def versions() -> str:
    try:
        mp = subprocess.run([micropython(), "-c", "import sys; print(sys.version)"],
                            capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except OSError:
        mp = "?"
    return f"Python {platform.python_version()}, MicroPython {mp.split('; ')[-1]}"


def provenance() -> str:
    """'Commit <sha> (tree clean)' or '... (tree with uncommitted changes: N files)'."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.splitlines()  # fmt: skip
    except OSError:
        return "Commit unknown (no git)"
    if not sha:
        return "Commit unknown (not a git checkout)"
    # The results file itself and the README's generated table are the run's own output.
    dirty = [x for x in dirty if x[3:].strip() not in ("bench/results.md", "README.md")]
    state = "tree clean" if not dirty else f"tree with uncommitted changes: {len(dirty)} files"
    return f"Commit {sha[:12]} ({state})"


def _merge_partial(results, rows, stamp, prov):
    """Only some benchmarks ran: their rows replace theirs in the last full table."""
    ran = {f"`bench/{r['bench']}`" for r in results}
    old = OUT.read_text().splitlines()

    def bench_of(line):
        return line.split(" |")[0][2:]

    kept = [x for x in old if x.startswith("| `bench/") and bench_of(x) not in ran]
    rank = {f"`bench/{n}.py`": i for i, n in enumerate(ORDER)}
    body = sorted(kept + rows[2:], key=lambda x: rank.get(bench_of(x), len(ORDER)))
    # an earlier partial run's line stays unless this run replaces all of its benchmarks
    head = [x for x in old if not x.startswith("|") and not (
        x.startswith("Rows of ") and set(re.findall(r"`bench/[a-z_]+\.py`", x.split(" updated")[0]))
        <= ran)]  # fmt: skip
    while head and not head[-1].strip():
        head.pop()
    head += ["", f"Rows of {', '.join(sorted(ran))} updated on {stamp} (`bench/run_all.py "
             f"--only`), {prov}.", ""]  # fmt: skip
    OUT.write_text("\n".join(head + rows[:2] + body) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="benchmark names (file stems) to run")
    ap.add_argument("--quick", action="store_true", help="short telemetry runs (smoke test)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show each benchmark's output")
    args = ap.parse_args(argv)
    results = []
    t0 = time.monotonic()
    for path in benchmarks(args.only):
        print(f"bench/{path.name} ...", flush=True)
        r = run_one(path, args.quick, args.verbose)
        note = f" ({r['reason']})" if r["reason"] else ""
        print(f"  {r['status']}: {len(r['figures'])} figures in {r['wall_s']:.0f} s{note}",
              flush=True)  # fmt: skip
        results.append(r)
    total = time.monotonic() - t0
    rows = table(results)
    prov = provenance()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.only and OUT.exists():
        _merge_partial(results, rows, stamp, prov)
        print("\n".join(rows))
        print(f"updated {OUT.relative_to(ROOT)} ({total / 60:.1f} min); {prov}")
        import keyfigures

        keyfigures.main([])
        return 0 if all(r["status"] == "ok" for r in results) else 1
    head = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`bench/run_all.py`{' --quick' if args.quick else ''}) on "
        f"{stamp} in {total / 60:.1f} min; {versions()}. Each figure comes from the",
        "benchmark named in its row and says how it was measured. Times on the virtual clock",
        "(virtual pen in deterministic mode) are the same on every machine; wall-clock figures",
        "(tick cost, round trip, ingestion) depend on this machine.",
        "",
        prov + (" — a partial run (--only/--quick)" if (args.only or args.quick) else ""),
        "",
    ]
    OUT.write_text("\n".join(head + rows) + "\n")
    print()
    print("\n".join(rows))
    print()
    print(f"wrote {OUT.relative_to(ROOT)} ({total / 60:.1f} min); {prov}")
    import keyfigures  # the README's key figures, from what was just written

    keyfigures.main([])
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
