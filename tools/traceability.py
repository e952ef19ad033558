"""Requirements traceability: docs/requirements.md -> the tests that verify each requirement ->
their result in the last test run, written to docs/traceability.md.

A test verifies a requirement when it declares it: `@pytest.mark.req("ND-01", ...)` on a CPython
test, `@req("ND-01", ...)` (tests/mp/mphelp.py) on a MicroPython test. An ID written anywhere
else (docstring, body) is credited to nothing; a test whose docstring opens with IDs but that
declares no marker is a problem (tools/req_markers.py converts it). NOT_VERIFIED lists the
requirements whose bound no test asserts yet: each is a problem until a test asserts it.
Results come from the JUnit XML the last `make test` wrote (build/junit.xml); with --run, or when
there is none, the tests are run first. Exit status 1 when a requirement has no test, a test
names an unknown ID (a known prefix with a number that is not defined, or an ID-shaped token in
a docstring with a prefix no section defines), requirements.md breaks its format (a duplicate
ID, an ID-shaped token that is not a requirement), or a verifying test did not pass.
`--check` does everything but the results (no test is run): the format and the mapping.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import req_markers  # noqa: E402

REQS = ROOT / "docs" / "requirements.md"
JUNIT = ROOT / "build" / "junit.xml"
OUT = ROOT / "docs" / "traceability.md"
ID_RE = re.compile(r"\b([A-Z]{2,5})-(\d{1,3})\b")
# A definition: the ID first on a table row, a list item or a heading, with its text after it.
DEF_RE = re.compile(r"^(?:\|\s*|[-*]\s+|#+\s+)\**([A-Z]{2,5}-\d{1,3})\**\s*[|:.\-—]*\s*(.*)$")
# ID-shaped names of standards and encodings a test's docstring may mention (not requirements).
NOT_IDS = ("SHA", "UTF", "CRC", "ISO", "IEC", "RFC", "HMAC")
# Requirements a test names but whose stated bound no test asserts: listed, so the report says
# so (and fails) instead of crediting a test that checks less than the requirement states.
NOT_VERIFIED: dict[str, str] = {}


def requirements() -> dict[str, str]:
    reqs: dict[str, str] = {}
    for line in REQS.read_text().splitlines():
        m = DEF_RE.match(line.strip())
        if m and m.group(1) not in reqs:
            text = m.group(2).split("|")[0].strip().strip("*").strip()
            reqs[m.group(1)] = text
    return reqs


def format_problems() -> list[str]:
    """requirements.md itself: every ID defined once; every ID-shaped token elsewhere in it
    refers to a defined requirement (so a checker never mistakes a name for an ID)."""
    out = []
    seen: set[str] = set()
    lines = REQS.read_text().splitlines()
    defined = {m.group(1) for m in map(DEF_RE.match, (x.strip() for x in lines)) if m}
    for n, line in enumerate(lines, 1):
        m = DEF_RE.match(line.strip())
        if m:
            if m.group(1) in seen:
                out.append(f"requirements.md:{n}: {m.group(1)} defined twice")
            seen.add(m.group(1))
        for t in ID_RE.finditer(line):
            if t.group(0) not in defined:
                out.append(f"requirements.md:{n}: {t.group(0)} looks like a requirement ID but "
                           "is none (write it without the hyphen)")  # fmt: skip
    return out


def test_functions():
    """Yield (test_id, source_text, declared IDs or None) for every test function under
    tests/."""
    for path in sorted((ROOT / "tests").rglob("*.py")):
        is_mp = path.parent.name == "mp"
        if is_mp and not path.name.startswith("mptest_"):
            continue
        if not is_mp and not path.name.startswith("test_"):
            continue
        src = path.read_text()
        tree = ast.parse(src)
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                name = f"[micropython]{node.name}" if is_mp else node.name
                yield (f"{rel}::{name}", ast.get_source_segment(src, node) or "",
                       req_markers.declared(node))  # fmt: skip


def results() -> dict[str, str]:
    """test id (file::function, parameters folded) -> passed/failed/skipped."""
    out: dict[str, str] = {}
    if not JUNIT.exists():
        return out
    for case in ET.parse(JUNIT).getroot().iter("testcase"):
        cls = case.get("classname", "")
        name = case.get("name", "")
        if name.startswith("[micropython]"):
            # pytest's JUnit writer treats the leading '[' as the start of parameters and
            # closes it at the end: "[micropython]test_x]"; undo that.
            base = name[:-1] if name.count("]") > name.count("[") else name
        else:
            base = name.split("[")[0]
        path = cls.replace(".", "/")
        # classname is the dotted module path (plus class name for methods).
        file = None
        for cand in (path + ".py", path.rsplit("/", 1)[0] + ".py"):
            if (ROOT / cand).exists():
                file = cand
                break
        if file is None:
            continue
        status = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            status = "failed"
        elif case.find("skipped") is not None:
            status = "skipped"
        key = f"{file}::{base}"
        if out.get(key) in (None, "passed"):
            out[key] = status if out.get(key) != "failed" else "failed"
    return out


def trace() -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(requirements, requirement -> the tests naming it, problems) without any test result."""
    reqs = requirements()
    prefixes = {r.split("-")[0] for r in reqs}
    verified: dict[str, list[str]] = defaultdict(list)
    problems = format_problems()
    for test_id, src, claims in test_functions():
        if claims is None:
            lead = req_markers.lead_ids(_docstring(src))
            if lead:
                problems.append(f"{test_id} names {', '.join(lead)} in its docstring but "
                                "declares no req marker (tools/req_markers.py adds it)")
            continue
        for rid in claims:
            m = ID_RE.fullmatch(rid)
            if m is None:
                problems.append(f"{test_id} declares {rid!r}, which is no requirement ID")
                continue
            if m.group(1) not in prefixes:
                problems.append(f"{test_id} names unknown {rid} (no section defines "
                                f"{m.group(1)}-)")  # fmt: skip
                continue
            if rid not in reqs:
                problems.append(f"{test_id} names unknown {rid}")
            elif test_id not in verified[rid]:
                verified[rid].append(test_id)
    for rid in reqs:
        if not verified.get(rid):
            problems.append(f"{rid} has no test")
    for rid, why in NOT_VERIFIED.items():
        problems.append(f"{rid} not verified: {why}")
    return reqs, verified, list(dict.fromkeys(problems))


def _docstring(src: str) -> str:
    try:
        fn = ast.parse(src).body[0]
    except (SyntaxError, IndexError):
        return ""
    return ast.get_docstring(fn) or "" if isinstance(fn, ast.FunctionDef) else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true", help="run the test suite first")
    ap.add_argument("--check", action="store_true",
                    help="format and mapping only: no results, nothing run or written")
    args = ap.parse_args()
    reqs, verified, problems = trace()
    if args.check:
        for p in problems:
            print(p)
        print(f"{len(reqs)} requirements, {len(problems)} problems")
        return 1 if problems else 0
    if args.run or not JUNIT.exists():
        subprocess.run([sys.executable, "-m", "pytest"], cwd=ROOT)
    res = results()
    lines = [
        "# Traceability",
        "",
        "Generated by `make report` (tools/traceability.py) from `docs/requirements.md`, the",
        "tests that name each requirement ID, and the results of the last test run.",
        "",
        "| requirement | text | tests | result |",
        "|---|---|---|---|",
    ]
    for rid, text in reqs.items():
        tests = verified.get(rid, [])
        states = [res.get(t, "not run") for t in tests]
        for t, st in zip(tests, states):
            if st != "passed":
                problems.append(f"{rid}: {t} {st}")
        overall = "passed" if tests and all(st == "passed" for st in states) else (
            "NO TEST" if not tests else "FAILED/NOT RUN")  # fmt: skip
        if rid in NOT_VERIFIED:
            overall = "NOT VERIFIED: " + NOT_VERIFIED[rid]
        cell = "<br>".join(f"`{t}` ({st})" for t, st in zip(tests, states)) or "—"
        lines.append(f"| {rid} | {text} | {cell} | {overall} |")
    lines += ["", f"{len(reqs)} requirements, {sum(1 for r in reqs if verified.get(r))} with "
              f"tests; problems: {len(problems)}.", ""]  # fmt: skip
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(reqs)} requirements, {len(problems)} problems")
    for p in problems:
        print("  " + p)
    if any(p.endswith(" not run") for p in problems):
        print(f"hint: {JUNIT.relative_to(ROOT)} holds the last pytest run only; after a partial "
              "run, `make test` first (or tools/traceability.py --run)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
