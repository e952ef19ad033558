"""The evidence tools guard their inputs cheaply (nothing here runs the test suite):
requirements traceability (tools/traceability.py), the fault matrix page (tools/gen_faults.py)
and the benchmark table (bench/run_all.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(rel: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_requirements_parse_and_each_has_a_test():
    """docs/requirements.md defines every ID once, in a table row, in the ID format,
    with nothing else shaped like an ID; every requirement is named by a test and no test names
    an undefined number of a defined prefix (prefixes no section defines yet are left to
    `make report`)."""
    tr = _load("tools/traceability.py", "traceability_guard")
    reqs, verified, problems = tr.trace()
    assert len(reqs) > 100
    for rid in reqs:
        assert re.fullmatch(r"[A-Z]{2,5}-[0-9]{1,3}", rid), rid
        assert reqs[rid], f"{rid} has no text"
    for rid in ("SF-01", "SF-02", "SF-03"):
        assert verified.get(rid), f"{rid} has no test"
    mine = [p for p in problems if "no section defines" not in p]
    assert not mine, "\n".join(mine)
    rows = [x for x in (ROOT / "docs/requirements.md").read_text().splitlines()
            if re.match(r"^\s*[-*|]\s*\**[A-Z]{2,5}-\d", x)]  # fmt: skip
    assert all(x.startswith("| ") for x in rows), "every requirement is a table row"


def test_traceability_fails_on_a_requirement_without_test_or_an_unknown_id(tmp_path,
                                                                           monkeypatch):
    """The checker reports a requirement no test names, a test naming an undefined ID, an
    ID-shaped token in the requirements, and a duplicate."""
    tr = _load("tools/traceability.py", "traceability_guard2")
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests").mkdir()
    reqs = tmp_path / "docs" / "requirements.md"
    reqs.write_text("# R\n\n## Things (TH)\n| ID | Requirement | Rationale |\n|---|---|---|\n"
                    "| TH-1 | Tested. | |\n| TH-2 | Untested, uses SHA-256. | |\n"
                    "| TH-1 | Again. | |\n")  # fmt: skip
    (tmp_path / "tests" / "test_x.py").write_text(
        'def test_a():\n    """TH-1, TH-9: one known, one unknown."""\n\n\n'
        'def test_b():\n    """QQ-3: a prefix nobody defines; UTF-8 is no ID."""\n'
    )
    monkeypatch.setattr(tr, "ROOT", tmp_path)
    monkeypatch.setattr(tr, "REQS", reqs)
    got, verified, problems = tr.trace()
    assert list(got) == ["TH-1", "TH-2"]
    assert verified["TH-1"] == ["tests/test_x.py::test_a"]
    text = "\n".join(problems)
    assert "TH-2 has no test" in text
    assert "names unknown TH-9" in text
    assert "names unknown QQ-3" in text
    assert "UTF-8" not in text
    assert "SHA-256 looks like a requirement ID" in text
    assert "TH-1 defined twice" in text


def test_traceability_reads_results_of_micropython_and_cpython_tests(tmp_path, monkeypatch):
    """Results come from the JUnit XML as pytest writes it, MicroPython items included (their
    names reach the XML as "[micropython]test_x]")."""
    tr = _load("tools/traceability.py", "traceability_guard3")
    (tmp_path / "tests" / "mp").mkdir(parents=True)
    (tmp_path / "tests" / "mp" / "mptest_x.py").write_text("")
    (tmp_path / "tests" / "test_y.py").write_text("")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.mp.mptest_x" name="[micropython]test_a]" />'
        '<testcase classname="tests.mp.mptest_x" name="[micropython]test_b]"><failure/></testcase>'
        '<testcase classname="tests.test_y" name="test_c[1]" />'
        '<testcase classname="tests.test_y" name="test_c[2]"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    monkeypatch.setattr(tr, "ROOT", tmp_path)
    monkeypatch.setattr(tr, "JUNIT", junit)
    assert tr.results() == {
        "tests/mp/mptest_x.py::[micropython]test_a": "passed",
        "tests/mp/mptest_x.py::[micropython]test_b": "failed",
        "tests/test_y.py::test_c": "skipped",
    }


def test_fault_matrix_page_is_current():
    """SF-03: docs/faults.md is what tools/gen_faults.py makes of the bounds declared in
    tests/mp/mptest_fault_matrix.py (measured values aside); every fault the plant can inject
    has a row; every test a row names exists."""
    gf = _load("tools/gen_faults.py", "gen_faults_guard")
    assert gf.check() == []
    rows = gf.declared()
    for r in rows:
        bounds = [r.get(k) for k in ("off_ms", "reset_ms", "latch_ms", "safe_ms", "bound_ms")]
        assert any(isinstance(b, int) and b > 0 for b in bounds), f"{r['test']} has no bound"
        assert r["safe"] and r["record"], r["test"]


def test_bench_table_collects_figures_and_reports_failures():
    """bench/run_all.py reads BENCH lines (and a telemetry benchmark's JSON line), and a
    benchmark that failed still gets a row saying why."""
    ra = _load("bench/run_all.py", "run_all_guard")
    out = ('noise\nBENCH {"figure": "Tick", "value": 2.5, "unit": "us", "how": "timed"}\n'
           'BENCH not json\n')  # fmt: skip
    assert ra.parse(out) == [{"figure": "Tick", "value": 2.5, "unit": "us", "how": "timed"}]
    tele = {"samples": 120001, "streamed": 114000, "fetched": 6001, "gaps": 0,
            "pen_seconds": 600.0, "rate_hz": 200.0, "max_step_ms": 5, "wall_seconds": 151.2}
    figs = ra.ADAPTERS["telemetry"](tele)
    assert figs[0]["value"] == 200.0 and figs[1]["value"] == 0
    results = [
        {"bench": "a.py", "args": [], "status": "ok", "reason": "", "figures": ra.parse(out)},
        {"bench": "b.py", "args": ["--x"], "status": "failed", "reason": "TimeoutError: no reply",
         "figures": []},
    ]  # fmt: skip
    rows = ra.table(results)
    assert rows[2] == "| `bench/a.py` | Tick | 2.5 | us | timed |"
    assert "**failed** (skipped)" in rows[3] and "TimeoutError" in rows[3]
    assert ra._clean(f"File {ROOT}/bench/x.py, line 3") == "File bench/x.py, line 3"
    names = [p.stem for p in ra.benchmarks()]
    assert {"memory", "stroke_loop", "depth_axis", "serial_rtt", "ingest", "mpy_size"} <= set(
        names)  # fmt: skip
    assert "benchlib" not in names and not any(n.startswith("mp_") for n in names)
