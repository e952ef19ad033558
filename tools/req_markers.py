"""Turn the requirement IDs a test's docstring opens with into an explicit claim.

    .venv/bin/python tools/req_markers.py            convert every test under tests/
    .venv/bin/python tools/req_markers.py --check    list what would change; exit 1 if anything
    .venv/bin/python tools/req_markers.py FILE ...   only these files

A test verifies a requirement only when it declares it (tools/traceability.py):
  CPython tests:     @pytest.mark.req("ND-01", "ND-02")   (marker registered in pyproject.toml)
  MicroPython tests: @req("ND-01", "ND-02")               (mphelp.req; tests/conftest.py reads
                                                           it as the same pytest marker)
The suite's convention before markers was a docstring that opens with the IDs ("ND-01, ND-02:
the rate ..."). This script adds the marker for exactly those opening IDs to every test
function that declares none yet, and leaves the docstring as it is. IDs mentioned anywhere else
(later in the docstring, in the body) are never converted: they are listed for a person to
review. Running it again changes nothing (a test with a marker is left alone), so it can be
re-run whenever tests written the old way arrive.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ID_RE = re.compile(r"\b([A-Z]{2,5})-(\d{1,3})\b")
# The docstring's opening list of IDs: "ND-01, ND-02:", "SF-02 / DS-1 and DS-3 (..."
LEAD_RE = re.compile(r"^\s*((?:[A-Z]{2,5}-\d{1,3}(?:\s*(?:,|and|/|\+|&)\s*)?)+)")
NOT_IDS = ("SHA", "UTF", "CRC", "ISO", "IEC", "RFC", "HMAC")


def test_files(root: Path = ROOT) -> list[Path]:
    out = []
    for path in sorted((root / "tests").rglob("*.py")):
        if path.parent.name == "mp" and path.parent.parent.name == "tests":
            if path.name.startswith("mptest_"):
                out.append(path)
        elif path.name.startswith("test_"):
            out.append(path)
    return out


def is_mp(path: Path) -> bool:
    return path.parent.name == "mp"


def lead_ids(doc: str) -> list[str]:
    m = LEAD_RE.match(doc or "")
    if not m:
        return []
    ids = [x.group(0) for x in ID_RE.finditer(m.group(1)) if x.group(1) not in NOT_IDS]
    return list(dict.fromkeys(ids))


def declared(node: ast.FunctionDef) -> list[str] | None:
    """The IDs a test function's req markers declare; None when it has no req marker."""
    out: list[str] | None = None
    for dec in node.decorator_list:
        if not isinstance(dec, ast.Call):
            continue
        f = dec.func
        name = None
        if isinstance(f, ast.Name):
            name = f.id  # @req(...)
        elif isinstance(f, ast.Attribute) and f.attr == "req":
            v = f.value  # @pytest.mark.req(...)
            if isinstance(v, ast.Attribute) and v.attr == "mark":
                name = "req"
        if name != "req":
            continue
        out = out or []
        for a in dec.args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                out.append(a.value)
    return out


def test_nodes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            yield node


def plan(path: Path) -> tuple[list[tuple[ast.FunctionDef, list[str]]], list[str]]:
    """(functions to mark with their IDs, notes for review) for one file."""
    src = path.read_text()
    tree = ast.parse(src)
    todo = []
    notes = []
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    for node in test_nodes(tree):
        doc = ast.get_docstring(node) or ""
        ids = lead_ids(doc)
        have = declared(node)
        if have is None and ids:
            todo.append((node, ids))
        claimed = set(have or ids)
        seg = ast.get_source_segment(src, node) or ""
        other = sorted({m.group(0) for m in ID_RE.finditer(seg) if m.group(1) not in NOT_IDS}
                       - claimed)  # fmt: skip
        if other:
            notes.append(f"{rel}::{node.name} mentions {', '.join(other)} without claiming "
                         "(review: add them to its marker if it verifies them)")  # fmt: skip
    return todo, notes


def _add_import(lines: list[str], mp: bool) -> list[str]:
    text = "".join(lines)
    if mp:
        m = re.search(r"^from mphelp import ([^\n(]+)$", text, re.M)
        if m:
            names = [n.strip() for n in m.group(1).split(",") if n.strip()]
            if "req" in names:
                return lines
            names.append("req")
            names = sorted(set(names), key=lambda n: (not n.isupper(), n))
            for i, line in enumerate(lines):
                if line.startswith("from mphelp import "):
                    lines[i] = "from mphelp import " + ", ".join(names) + "\n"
                    return lines
        anchor = "from mphelp import req\n"
    else:
        if re.search(r"^import pytest$", text, re.M):
            return lines
        anchor = "import pytest\n"
    # Before the first import after the module docstring and any `from __future__` line.
    for node in ast.parse(text).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module",
                                                                      "") != "__future__":
            i = node.lineno - 1
            return lines[:i] + [anchor] + lines[i:]
    return lines + [anchor]


def convert(path: Path) -> int:
    todo, _ = plan(path)
    if not todo:
        return 0
    lines = path.read_text().splitlines(keepends=True)
    mp = is_mp(path)
    # Bottom-up, so earlier line numbers stay right.
    for node, ids in sorted(todo, key=lambda t: -t[0].lineno):
        first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
        indent = re.match(r"\s*", lines[first]).group(0)
        args = ", ".join(f'"{i}"' for i in ids)
        deco = f"@req({args})" if mp else f"@pytest.mark.req({args})"
        lines.insert(first, indent + deco + "\n")
    lines = _add_import(lines, mp)
    path.write_text("".join(lines))
    return len(todo)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="test files (default: every test under tests/)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if pending")
    ap.add_argument("-q", "--quiet", action="store_true", help="no review notes")
    args = ap.parse_args(argv)
    files = [Path(f).resolve() for f in args.files] or test_files()
    pending = 0
    changed = []
    for path in files:
        todo, notes = plan(path)
        if not args.quiet:
            for n in notes:
                print("review: " + n)
        if not todo:
            continue
        pending += len(todo)
        if args.check:
            for node, ids in todo:
                print(f"pending: {path.name}::{node.name} -> {', '.join(ids)}")
        else:
            convert(path)
            changed.append(path)
    if changed:
        import subprocess

        ruff = Path(sys.executable).with_name("ruff")
        if ruff.exists():  # the import lines it added: into isort's order
            subprocess.run([str(ruff), "check", "-q", "--fix", "--select", "I",
                            *map(str, changed)], cwd=ROOT)  # fmt: skip
    verb = "would mark" if args.check else "marked"
    print(f"{verb} {pending} test(s) in {len(changed) if not args.check else '-'} file(s)")
    return 1 if (args.check and pending) else 0


if __name__ == "__main__":
    sys.exit(main())
