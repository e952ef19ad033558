"""Generate docs/faults.md, the fault-injection matrix, from the tests that assert it.

The rows and their bounds are MATRIX in tests/mp/mptest_fault_matrix.py (the bounds its tests
assert); the measured times come from running those tests in the `micropython` binary now
(deterministic virtual clock, a few seconds); the fault codes from firmware/faults.py.

    python tools/gen_faults.py           run the matrix tests, write docs/faults.md
    python tools/gen_faults.py --check   exit 1 if docs/faults.md is not what MATRIX gives
                                         (the measured column is not compared)

Exit status 1 also when a matrix test fails, a bound is not met, a fault the virtual pen's
plant can inject (sim/board_sim.py FAULTS) has no row, or a referenced test does not exist.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "faults.md"
MODULE = "mptest_fault_matrix"
SOURCE = ROOT / "tests" / "mp" / f"{MODULE}.py"
HEAP_RE = re.compile(r"^# mp-heap: (\d+K)", re.M)
BOUND_WORDS = (
    ("off_ms", "motor off"),
    ("reset_ms", "watchdog reset"),
    ("latch_ms", "FAULT latched, `~E` sent"),
    ("safe_ms", "stop retracted"),
)
MEASURED_COL = 6  # index of the "measured" column in the matrix table
SHORT = {"off_ms": "off", "reset_ms": "reset", "latch_ms": "latched", "safe_ms": "retracted",
         "bound_ms": "detected"}  # fmt: skip
EXTRA = {"ready_ms": "READY after {} ms", "lost_steps": "{} steps lost by the bind",
         "errors": "{} error replies", "gap_samples": "{} samples missed live",
         "lost": "{} lost after the backfill", "start_stop_ms": "START stopped it in {} ms"}


def run_mp(function: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """One function of the matrix module, run as `make test` runs it: through the test
    harness (tests/conftest.py), which compiles the pen's modules by its one rule (native
    modules for this host's CPU) and sizes the heap as the module declares."""
    for p in (ROOT / "host_tools", ROOT / "tests"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    from loadfile import load_file  # (tests/: `import conftest` may name tests/chip's)

    harness = load_file("tests/conftest.py", "pen_tests_harness")
    m = HEAP_RE.search(SOURCE.read_text())
    return harness.run_micropython(MODULE, function, timeout, m.group(1) if m else "190K")


def declared() -> list[dict]:
    """MATRIX as the micropython binary evaluates it (its bounds use firmware constants)."""
    res = run_mp("dump_matrix")
    for line in res.stdout.splitlines():
        if line.startswith("@@MATRIX "):
            return json.loads(line[len("@@MATRIX ") :])
    raise SystemExit(f"gen_faults: dump_matrix failed:\n{res.stdout}{res.stderr}")


def measure(row: dict) -> tuple[dict | None, str]:
    """Run the row's test; (its FAULTROW measurements, '' or the failure)."""
    res = run_mp(row["test"])
    if res.returncode != 0 or "@@PASS" not in res.stdout:
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        return None, " / ".join(tail)
    for line in res.stdout.splitlines():
        if line.startswith("@@INFO FAULTROW "):
            return json.loads(line[len("@@INFO FAULTROW ") :])["measured"], ""
    return None, "no FAULTROW line"


def plant_faults() -> list[str]:
    """The fault names sim/board_sim.py's side channel can inject (without 'none')."""
    tree = ast.parse((ROOT / "sim" / "board_sim.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FAULTS":
            return [n for n in ast.literal_eval(node.value) if n != "none"]
    raise SystemExit("gen_faults: FAULTS not found in sim/board_sim.py")


def fault_codes() -> list[tuple[int, str, str]]:
    if "micropython" not in sys.modules:
        mod = types.ModuleType("micropython")
        mod.const = lambda x: x  # type: ignore[attr-defined]
        sys.modules["micropython"] = mod
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import firmware.faults as faults

    return [(c, n, t) for c, (n, t) in sorted(faults.TABLE.items())]


def _claims(src: str) -> dict[str, list[str]]:
    """test name -> the IDs its @req(...) declares (tools/req_markers.py reads them alike)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import req_markers

    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef):
            ids = req_markers.declared(node)
            if ids is not None:
                out[node.name] = ids
    return out


def problems(rows: list[dict]) -> list[str]:
    """What makes the matrix incomplete: a plant fault without a row, a missing test."""
    out = []
    injected = " ".join(r["inject"] for r in rows)
    for name in plant_faults():
        if f"`fault {name}`" not in injected:
            out.append(f"the plant's fault `{name}` has no row in MATRIX")
    src = SOURCE.read_text()
    claims = _claims(src)
    for r in rows:
        if f"\ndef {r['test']}(" not in src:
            out.append(f"{r['test']} is not a test in {SOURCE.relative_to(ROOT)}")
        want = {x.strip() for x in r["reqs"].split(",") if x.strip()}
        have = claims.get(r["test"])
        if have is not None and set(have) != want:
            out.append(f"{r['test']}: its row names {', '.join(sorted(want))} but the test "
                       f"declares @req({', '.join(have)})")
        for ref in r.get("also", []):
            path, _, fn = ref.partition("::")
            p = ROOT / path
            if not p.exists() or f"def {fn}(" not in p.read_text():
                out.append(f"{r['test']}: referenced test {ref} does not exist")
    return out


def _bounds(r: dict) -> list[tuple[str, str, int]]:
    out = [(k, words, r[k]) for k, words in BOUND_WORDS if r.get(k) is not None]
    if r.get("bound_ms") is not None:
        out.insert(0, ("bound_ms", r.get("detect", "detected"), r["bound_ms"]))
    return out


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


# What a failed flash write means (firmware/targets.py decides it; docs/architecture.md).
STORAGE_TEXT = [
    "",
    "## A failed flash write",
    "",
    "Not a latched fault: the pen stays usable and says so. A settings change made while the",
    "needle is stopped (`set`, `depth`, `run HZ`, a button, a preset, `defaults`) is written at",
    "once; when the write fails it is refused with `error:15` (STORAGE) and nothing changed: the",
    "owner of the treatment targets (`firmware/targets.py`) puts the actuators it had commanded",
    "(depth stop, limit, calibration, running rate) back to the stored targets, and the settings",
    "keep their old values (`Settings.commit` replaces them only after the atomic write). A",
    "change made while the needle runs is written by `flush()` once it has stopped; a failed",
    "flush leaves the change in effect and unsaved (`save` tries again). A session record that",
    "cannot be written never stops the pen: it is reported as a `~E` `storage` event.",
]


def render(rows: list[dict], measured: dict[str, dict | None] | None) -> str:
    lines = [
        "# Faults",
        "",
        "Generated by `make report` (`tools/gen_faults.py`) from the fault-injection tests in",
        f"`tests/mp/{MODULE}.py`: do not edit. Every fault the virtual pen's plant can inject",
        "(`pen sim-ctl fault NAME`, `sim/board_sim.py`), plus power loss, settings corruption,",
        "serial garbage and disconnect and a hung task, is injected into the whole application",
        "(`firmware/app.py` on the virtual board, deterministic virtual clock) while it does what",
        "the *when* column says. Each test asserts every bound in its row, the safe state and the",
        "record; the bounds are the ones in the test (`MATRIX`), the measured values are from the",
        "run of the tests that generated this page (virtual time, 0.1 ms steps; ms from the",
        "injection, the boot or the command that meets the fault).",
        "",
        "Motor off: the H-bridge's nSLEEP low. Stop retracted: the needle's true protrusion (the",
        "plant's dial gauge) at 0 mm or less. A retract with the position unknown drives the stop",
        "the whole travel inwards (blind). `python tools/gen_faults.py --check` tells whether",
        "this page is current.",
        "",
        "## Fault-injection matrix",
        "",
        "| fault | injected | when | detected as | requirements | detection bound (asserted) "
        "| measured | safe state reached (asserted) | record left (asserted) | tests |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = _bounds(r)
        bound = "<br>".join(f"{w} ≤ {v} ms" for _, w, v in b)
        meas = ""
        if measured is not None:
            m = measured.get(r["test"])
            if m is None:
                meas = "FAILED"
            else:
                parts = [f"{SHORT[k]} {m[k]} ms" for k, _, _ in b if k in m]
                keys = {k for k, _, _ in b}
                parts += [EXTRA.get(k, k + " {}").format(v) for k, v in sorted(m.items())
                          if k not in keys]  # fmt: skip
                meas = "<br>".join(parts)
        tests = [f"`tests/mp/{MODULE}.py::{r['test']}`"] + [f"`{t}`" for t in r.get("also", [])]
        code = r["code"]
        code = code if code.startswith("(") else f"`{code}`"
        cells = [r["fault"], r["inject"], r["when"], code, r["reqs"], bound, meas, r["safe"],
                 r["record"], "<br>".join(tests)]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Depth errors that can go unnoticed (SF-13)",
        "",
        "- During a move that reaches 4000 steps/s (longer than about 80 microsteps, 0.2 mm),",
        "  StallGuard (the TMC2209's load reading, over its UART) is judged every 4 ms from 20 ms",
        "  into the move: a slip latches `lost_steps` within the bound of the row *Missed steps",
        "  during a move*, and the stop is driven fully in. The needle never runs meanwhile: the",
        "  depth never changes while it runs.",
        "- Moves too short or too slow for StallGuard (a button's 0.05 mm step, the ramps at the",
        "  start and end of longer moves) are not watched. Steps they lose go unnoticed until the",
        "  next endstop check, a re-home that compares where it finds the switch (6 steps, 15 µm,",
        "  tolerated): at the next cartridge confirmation (before the session's first run: `run`",
        "  and START are refused until the check is done), `home`, a clear, or power-up. So the",
        "  worst unnoticed error is what such moves lost since the last check, for at most the",
        "  rest of that session (between its passes); it is at most the sum of their lengths,",
        "  and the needle stays between the shallowest and the deepest depth set since the check",
        "  (so never beyond the depth limit): lost outward steps leave it shallower than shown,",
        "  lost inward ones deeper than shown. In the virtual plant's bind (one outward step in",
        "  12 lost) eight",
        "  0.05 mm steps lose the steps measured in the row *Missed steps on short moves* (2.5 µm",
        "  each), found at the cartridge confirmation.",
        "",
        "## Fault codes",
        "",
        "Latched faults (`firmware/faults.py`): shown on the display in words, in `status`",
        "(`fault`, `fault_code`), in the `faults` log and as `~E` events; cleared only by a person",
        "(`clear`, or holding START 1 s) once the cause is gone.",
        "",
        "| code | name | meaning |",
        "|---|---|---|",
    ]
    for code, name, text in fault_codes():
        lines.append(f"| {code} | `{name}` | {text} |")
    lines += STORAGE_TEXT
    lines.append("")
    return "\n".join(lines)


def strip_measured(text: str) -> str:
    """The page with the matrix's measured cells emptied (they vary; the rest must not)."""
    out = []
    in_matrix = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_matrix = line == "## Fault-injection matrix"
        if in_matrix and line.startswith("| ") and not line.startswith("| fault |"):
            cells = re.split(r"(?<!\\)\|", line)  # cells[0] and cells[-1] are the outer edges
            if len(cells) > MEASURED_COL + 1:
                cells[MEASURED_COL + 1] = " "
            line = "|".join(cells)
        out.append(line)
    return "\n".join(out)


def check() -> list[str]:
    """Problems with docs/faults.md as it is (nothing is run but `dump_matrix`)."""
    rows = declared()
    out = problems(rows)
    want = strip_measured(render(rows, {}))
    have = strip_measured(OUT.read_text()) if OUT.exists() else ""
    if want != have:
        out.append(f"{OUT.relative_to(ROOT)} is out of date: run `make report`")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare, write nothing")
    args = ap.parse_args(argv)
    if args.check:
        errs = check()
        for e in errs:
            print(e)
        return 1 if errs else 0
    rows = declared()
    errs = problems(rows)
    measured: dict[str, dict | None] = {}
    for r in rows:
        m, why = measure(r)
        measured[r["test"]] = m
        if m is None:
            errs.append(f"{r['test']} failed: {why}")
    OUT.write_text(render(rows, measured))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} faults, {len(errs)} problems")
    for e in errs:
        print("  " + e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
