"""The files generated from the firmware's tables are up to date, and the settings schema's hash
is the same computed by CPython (the host) and by MicroPython (the pen) (SP-2, SP-51)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from loadfile import load_file

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs():
    return load_file("tools/gen_docs.py", "gen_docs")


@pytest.mark.req("SP-51")
def test_generated_files_are_up_to_date():
    """SP-51: docs/errors.csv, docs/settings.md and firmware/help.py are what tools/gen_docs.py
    makes from firmware/errors.py, firmware/schema.py and the cmd_* docstrings."""
    res = subprocess.run([sys.executable, "tools/gen_docs.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.req("SP-51")
def test_error_table_csv_lists_every_code_once():
    """SP-51: one numbered error table, published as CSV: codes 1..N, each once, with a name
    and a message."""
    errors, _ = _gen_docs()._import_firmware()
    rows = list(csv.DictReader((ROOT / "docs/errors.csv").open()))
    assert [int(r["code"]) for r in rows] == sorted(errors.TABLE)
    assert all(r["name"] and r["message"] for r in rows)
    assert len({r["name"] for r in rows}) == len(rows)


@pytest.mark.req("SP-2")
def test_schema_hash_same_on_host_and_pen():
    """SP-2: the schema hash the pen reports at `hello` (MicroPython) equals the one the host
    computes from the same schema (CPython), and the one published in docs/settings.md."""
    _, schema = _gen_docs()._import_firmware()
    host = schema.schema_hash()
    exe = Path(sys.executable).with_name("micropython")
    res = subprocess.run(
        [str(exe), "-c", "import sys; sys.path[:0] = ['']; import firmware.schema as s; "
         "print(s.schema_hash())"],
        cwd=ROOT, capture_output=True, text=True, env={"MICROPYPATH": ""},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == host
    assert host in (ROOT / "docs/settings.md").read_text()
