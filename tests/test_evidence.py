"""The evidence tools guard their inputs cheaply (nothing here runs the test suite):
requirements traceability (tools/traceability.py), the fault matrix page (tools/gen_faults.py)
and the benchmark table (bench/run_all.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from loadfile import load_file

ROOT = Path(__file__).resolve().parents[1]


def _load(rel: str, name: str):
    return load_file(rel, name)


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
    # (prefixes no section defines yet, and requirements listed as not verified, are `make
    # report`'s to fail on)
    mine = [p for p in problems if "no section defines" not in p and " not verified: " not in p]
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
        "import pytest\n\n\n"
        '@pytest.mark.req("TH-1", "TH-9")\ndef test_a():\n    """One known, one unknown."""\n\n\n'
        '@pytest.mark.req("QQ-3")\ndef test_b():\n'
        '    """A prefix nobody defines; UTF-8 is no ID."""\n'
        '\n\ndef test_c():\n    """Mentions TH-2 in passing: not a claim."""\n    x = "TH-2"\n'
        '\n\ndef test_d():\n    """TH-2: claimed the old way, in the docstring only."""\n'
    )
    monkeypatch.setattr(tr, "ROOT", tmp_path)
    monkeypatch.setattr(tr, "REQS", reqs)
    monkeypatch.setattr(tr, "NOT_VERIFIED", {"TH-1": "its bound is not asserted"})
    got, verified, problems = tr.trace()
    assert list(got) == ["TH-1", "TH-2"]
    assert verified["TH-1"] == ["tests/test_x.py::test_a"]
    assert not verified.get("TH-2"), "a mention is no claim"
    text = "\n".join(problems)
    assert "TH-2 has no test" in text
    assert "names unknown TH-9" in text
    assert "names unknown QQ-3" in text
    assert "UTF-8" not in text
    assert "SHA-256 looks like a requirement ID" in text
    assert "TH-1 defined twice" in text
    assert "test_d names TH-2 in its docstring but declares no req marker" in text
    assert "TH-1 not verified: its bound is not asserted" in text


@pytest.mark.req("PL-1")
def test_req_marker_conversion_is_exact_and_rerunnable(tmp_path, monkeypatch):
    """PL-1: tools/req_markers.py turns exactly the IDs a docstring opens with into a marker
    (CPython: pytest.mark.req, MicroPython: mphelp.req), leaves a test that already declares
    alone, never converts a mention elsewhere, and a second run changes nothing."""
    rm = _load("tools/req_markers.py", "req_markers_guard")
    (tmp_path / "tests" / "mp").mkdir(parents=True)
    cpy = tmp_path / "tests" / "test_x.py"
    cpy.write_text(
        '"""Module; from here on."""\n\nimport os\n\n\n'
        'def test_a():\n    """TH-1, TH-2: both."""\n\n\n'
        'def test_b():\n    """Mentions TH-3, claims nothing."""\n\n\n'
        '@pytest.mark.req("TH-4")\ndef test_c():\n    """TH-5: the marker decides."""\n'
    )
    mp = tmp_path / "tests" / "mp" / "mptest_y.py"
    mp.write_text('from mphelp import SIM, check\n\n\ndef test_m():\n    """TH-6: mp."""\n')
    monkeypatch.setattr(rm, "ROOT", tmp_path)
    assert [p.name for p in rm.test_files(tmp_path)] == ["mptest_y.py", "test_x.py"]
    assert rm.convert(cpy) == 1 and rm.convert(mp) == 1
    text = cpy.read_text()
    assert '@pytest.mark.req("TH-1", "TH-2")\ndef test_a' in text
    assert "import pytest" in text and text.index("import pytest") > text.index('"""Module')
    assert '"TH-3"' not in text and '"TH-5"' not in text
    assert "from mphelp import SIM, check, req" in mp.read_text()
    assert '@req("TH-6")\ndef test_m' in mp.read_text()
    before = (cpy.read_text(), mp.read_text())
    assert rm.convert(cpy) == 0 and rm.convert(mp) == 0
    assert (cpy.read_text(), mp.read_text()) == before


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


@pytest.mark.req("SF-03")
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


@pytest.mark.req("PL-6")
def test_readme_key_figures_are_generated_from_the_results():
    """PL-6: the README's key-figures table is exactly what bench/keyfigures.py makes of
    bench/results.md and docs/faults.md (no typed figure), the results name the commit they
    measured and whether the tree was clean, and a figure missing from the results shows as
    not measured, never as an old number."""
    kf = _load("bench/keyfigures.py", "keyfigures_guard")
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "bench/results.md").read_text()
    faults = (ROOT / "docs/faults.md").read_text()
    assert kf.render(readme, results, faults) == readme, "run bench/keyfigures.py"
    assert re.search(r"^Commit [0-9a-f]{12} \(tree (clean|with uncommitted changes: \d+ files)",
                     results, re.M), "bench/results.md does not name its commit"  # fmt: skip
    block = readme.split(kf.BEGIN)[1].split(kf.END)[0]
    assert "Commit " in block
    # Every number in the table comes from the results (or the fault page): drop a figure
    # and its cell says so.
    figs, _ = kf.read_results(results)
    name = "Homing repeatability, sd over 50 homes"
    assert name in figs
    cut = "\n".join(x for x in results.splitlines() if f"| {name} |" not in x)
    assert "sd not measured µm" in "\n".join(kf.table(cut, faults))
    ra = _load("bench/run_all.py", "run_all_guard2")
    assert re.fullmatch(r"Commit ([0-9a-f]{12}|unknown) \(.*\)", ra.provenance())
