"""Test harness: collects MicroPython test modules (tests/mp/mptest_*.py) and runs each test
function in its own `micropython` process with the heap limited like the RP2040's, so one
pytest run (one summary line) counts the firmware tests the real MicroPython executed.

Each item's name is prefixed `[micropython]`. A test fails on an exception (including a
MemoryError from an allocation under `micropython.heap_lock()`), a crash or a timeout.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MP_DIR = ROOT / "tests" / "mp"
HEAP = "190K"
DEFAULT_TIMEOUT = 300


def micropython_binary() -> str:
    cand = Path(sys.executable).with_name("micropython")
    return str(cand) if cand.exists() else "micropython"


MPY_DIR = ROOT / "build" / "mp-test"
_compiled = False
# Bytes by which the host's native code of the pen's viper/native modules exceeds the
# RP2040's (armv6m Thumb code is denser than x86-64): added to a test's heap, so the limit
# keeps standing for what the pen's own heap holds.
_native_extra = 0


def compile_pen_files():
    """Compile the pen's files to .mpy once per run, as `pen deploy` puts them on the pen: the
    firmware tests then import bytecode, not source, so the 190 KB heap holds what the pen's
    would (compiling a large module from source needs far more transient heap than running
    it). Bytecode only (no -march), so it runs on the unix port as on the RP2040; a module
    with native code (@micropython.viper/native) is compiled for this host's CPU instead, as
    `pen deploy` compiles it for the RP2040's (armv6m)."""
    global _compiled, _native_extra
    if _compiled:
        return
    from pen import paths
    from pen.deploy import mpy_cross_binary

    if MPY_DIR.exists():
        shutil.rmtree(MPY_DIR)
    for rel in paths.pen_source_files(ROOT):
        if rel.parent == Path("."):
            continue  # boot.py / main.py run from source on the pen too
        out = MPY_DIR / rel.with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        arch = []
        if re.search(r"^\s*@micropython\.(viper|native)", (ROOT / rel).read_text(), re.M):
            arch = [f"-march={_host_march()}"]
            pen = out.with_suffix(".armv6m")
            subprocess.run([mpy_cross_binary(), "-march=armv6m", "-o", str(pen), str(rel)],
                           cwd=ROOT, check=True)  # fmt: skip
        subprocess.run([mpy_cross_binary(), *arch, "-o", str(out), str(rel)], cwd=ROOT,
                       check=True)  # fmt: skip
        if arch:
            _native_extra += max(0, out.stat().st_size - pen.stat().st_size)
            pen.unlink()
    # The virtual board's plant as bytecode too (imported by plain name from the folder's
    # top): compiling it from source inside the test's heap would fragment it before the test.
    for src in sorted((ROOT / "sim").glob("plant_*.py")) + [ROOT / "sim" / "board_sim.py"]:
        subprocess.run([mpy_cross_binary(), "-o", str(MPY_DIR / (src.stem + ".mpy")),
                        str(src.relative_to(ROOT))], cwd=ROOT, check=True)  # fmt: skip
    _compiled = True


def _host_march() -> str:
    import platform

    m = platform.machine().lower()
    return {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "i686": "x86"}.get(m, m)


def run_micropython(module: str, test: str, timeout: float, heap: str = HEAP):
    compile_pen_files()
    env = dict(os.environ, MICROPYPATH="")
    m = re.fullmatch(r"(\d+)K", heap)
    if m:
        heap = str(int(m.group(1)) * 1024 + _native_extra)
    return subprocess.run(
        [micropython_binary(), "-X", f"heapsize={heap}", str(MP_DIR / "runner.py"), module, test],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class MpFile(pytest.File):
    def collect(self):
        src = self.path.read_text()
        m = re.search(r"^# mp-timeout: (\d+)", src, re.M)
        timeout = int(m.group(1)) if m else DEFAULT_TIMEOUT
        # A module that runs the whole application holds the simulator and the application's
        # bytecode besides the firmware's data: it names the virtual pen's heap (pen.sim.HEAP).
        m = re.search(r"^# mp-heap: (\d+K)", src, re.M)
        heap = m.group(1) if m else HEAP
        tree = ast.parse(src)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = ast.get_docstring(node) or ""
                item = MpItem.from_parent(
                    self, name=f"[micropython]{node.name}", fn=node.name, timeout=timeout,
                    doc=doc, heap=heap,
                )  # fmt: skip
                ids = _mp_req(node)
                if ids:
                    item.add_marker(pytest.mark.req(*ids))
                why = _mp_xfail(node)
                if why is not None:
                    item.add_marker(pytest.mark.xfail(strict=True, reason=why, raises=MpError))
                yield item


def _mp_req(node: ast.FunctionDef) -> list[str]:
    """The IDs of a MicroPython test's @req("ID", ...) decorators (mphelp.req)."""
    ids = []
    for dec in node.decorator_list:
        if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "req":
            ids += [a.value for a in dec.args if isinstance(a, ast.Constant)]
    return ids


def _mp_xfail(node: ast.FunctionDef) -> str | None:
    """The reason of a MicroPython test's @xfail("...") (mphelp.xfail), or None."""
    for dec in node.decorator_list:
        if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "xfail":
            parts = [a.value for a in dec.args if isinstance(a, ast.Constant)]
            if not parts and dec.args and isinstance(dec.args[0], ast.JoinedStr):
                parts = ["(reason not a constant)"]
            return " ".join(str(p) for p in parts) or "known failure"
    return None


class MpError(Exception):
    pass


class MpItem(pytest.Item):
    def __init__(self, *, fn: str, timeout: int, doc: str, heap: str = HEAP, **kw):
        super().__init__(**kw)
        self.fn = fn
        self.heap = heap
        self.timeout = timeout
        self.doc = doc

    def runtest(self):
        module = self.path.stem
        try:
            res = run_micropython(module, self.fn, self.timeout, self.heap)
        except subprocess.TimeoutExpired as exc:
            raise MpError(f"timed out after {self.timeout}s\n{exc.stdout or ''}") from None
        out = res.stdout + res.stderr
        if res.returncode != 0 or "@@PASS" not in res.stdout:
            raise MpError(f"micropython exit status {res.returncode}\n{out}")
        # Lines a test prints with '@@INFO ' show up in the report (figures, evidence).
        for line in res.stdout.splitlines():
            if line.startswith("@@INFO "):
                self.add_report_section("call", "info", line[7:])

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"[micropython] {self.path.name}::{self.fn}"


def pytest_collect_file(file_path: Path, parent):
    if file_path.parent == MP_DIR and file_path.name.startswith("mptest_"):
        return MpFile.from_parent(parent, path=file_path)
    return None


# -- the virtual pen over its pseudo-terminal ------------------------------------------------


class VirtualPenProcess:
    """`pen sim` in a subprocess; `port` is the pseudo-terminal path host tools open."""

    def __init__(self, flash: Path | None = None, speed: int = 1, hold: str | None = None,
                 unit: int | None = None):
        cmd = [str(Path(sys.executable).with_name("pen")), "sim", "--speed", str(speed)]
        if unit is not None:
            cmd += ["--unit", str(unit)]
        if flash is not None:
            cmd += ["--flash", str(flash)]
        if hold:
            cmd += ["--hold", hold]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("/dev/"):
            self.proc.kill()
            raise RuntimeError(f"pen sim did not print a port: {line!r} {self.proc.stderr.read()}")
        self.port = line

    def ctl(self, *words: str) -> str:
        from pen.sim import ctl_command

        reply = ctl_command(self.port, " ".join(words))
        if not reply.startswith("ok"):
            raise RuntimeError(reply)
        return reply[2:].strip()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def vpen():
    pen = VirtualPenProcess()
    yield pen
    pen.close()


@pytest.fixture
def vpen_factory():
    made = []

    def make(**kw):
        p = VirtualPenProcess(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


class _NotPython(pytest.File):
    """MicroPython test modules are never imported by CPython (named on the command line,
    pytest would otherwise try): MpFile runs them."""

    def collect(self):
        return []


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.parent == MP_DIR:
        return _NotPython.from_parent(parent, path=module_path)
    return None
