"""`pen deploy` onto the virtual pen's flash through its pseudo-terminal (mpremote's raw REPL),
and the deploy logic against a local flash folder."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from pen import deploy as D
from pen import paths
from pen.cli import main as pen_main

ROOT = Path(__file__).resolve().parents[1]


def run_pen(capsys, *argv) -> tuple[int, str, str]:
    rc = pen_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def flash_files(flash: Path) -> dict[str, str]:
    return {
        p.relative_to(flash).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(flash.rglob("*"))
        if p.is_file() and p.suffix in (".py", ".mpy")
    }


def expected_layout() -> set[str]:
    """What a deploy onto the virtual pen (or a flash folder) holds: .mpy files, except
    boot.py/main.py and modules with native code (armv6m code cannot run there: source)."""
    out = set()
    for rel in paths.pen_source_files():
        s = rel.as_posix()
        native = re.search(r"^\s*@micropython\.(viper|native)", (ROOT / rel).read_text(), re.M)
        keep = s in ("boot.py", "main.py") or native
        out.add(s if keep else rel.with_suffix(".mpy").as_posix())
    return out


@pytest.mark.req("HT-10", "HT-11", "HT-12")
def test_deploy_to_empty_virtual_pen_then_nothing_to_copy(vpen_factory, tmp_path, capsys,
                                                          monkeypatch):  # fmt: skip
    """HT-10, HT-11, HT-12: onto an empty flash (the pen sits at its REPL):
    every file compiled for armv6m (boot.py/main.py as source) is copied, its SHA-256 verified
    on the pen, the pen reset and the handshake answered by the new files; a second deploy
    copies nothing."""
    flash = tmp_path / "flash"
    flash.mkdir()
    pen = vpen_factory(flash=flash)
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert set(res["copy"]) == expected_layout() and res["remove"] == []
    assert res["verified"] == len(expected_layout())
    assert res["hello"]["protocol_version"] == 1
    on_flash = flash_files(flash)
    assert set(on_flash) == expected_layout()
    built = {f.dest: f.sha256 for f in D.build(target_arch=D.local_micropython_arch())}
    assert on_flash == built
    # The .mpy files are what the pen runs now: no module source is left on its flash (but
    # the native-code modules, which the virtual pen compiles for its own CPU).
    assert not [p for p in on_flash if p.endswith(".py") and p not in expected_layout()]
    assert (flash / "firmware" / "app.mpy").read_bytes()[:2] == b"M\x06"
    # The application answers (it was started from the new files by the reset).
    rc, out, err = run_pen(capsys, "--port", pen.port, "status", "--json")
    assert rc == 0, err
    assert json.loads(out)["status"]["protocol_version"] == 1

    # the application runs now: the second deploy goes through service mode (SF-08), asked
    # for once the pen has homed (service mode is refused while the stop moves)
    _wait_ready(pen.port)
    monkeypatch.setenv("PEN_SECRET", b"virtual-pen-test-secret-not-real".hex())
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--json")
    assert rc == 0, err
    assert "hold START" in err
    again = json.loads(out)
    assert again["copy"] == [] and again["remove"] == [] and again["copied"] == 0
    assert again["verified"] == len(expected_layout())
    assert flash_files(flash) == on_flash


def _wait_ready(port):
    from pen.link import open_link

    with open_link(port) as link:
        deadline = time.monotonic() + 20  # a time-out, not a verdict: READY is the event
        while link.call("status")["state"] != "READY":
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _clear_and_wait(port):
    from pen.link import open_link

    with open_link(port) as link:
        link.call("clear")
        deadline = time.monotonic() + 20
        while link.call("status")["state"] != "READY":  # homing again after the clear
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.req("HT-11", "SF-08")
def test_deploy_replaces_stale_sources(vpen_factory, tmp_path, capsys, monkeypatch):
    """HT-11, SF-08: a flash holding the sources (.py, which MicroPython would import
    before an .mpy), a module that no longer exists and an edited main.py: --dry-run lists the
    changes and changes nothing; deploy removes the stale files and copies the rest. The
    application runs: without the secret deploy is refused (it says how to reach service
    mode); with it, the pen is asked for service mode and START is held on the pen."""
    flash = tmp_path / "flash"
    for rel in paths.pen_source_files():
        (flash / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, flash / rel)
    (flash / "firmware" / "obsolete.py").write_text("X = 1\n")
    (flash / "main.py").write_text((ROOT / "main.py").read_text() + "# edited on the pen\n")
    (flash / "settings.dat").write_bytes(b"data the pen keeps")  # not the app's: left alone
    pen = vpen_factory(flash=flash)
    before = flash_files(flash)
    monkeypatch.delenv("PEN_SECRET", raising=False)
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--dry-run")
    assert rc == 1 and "service mode" in err and "START" in err, err
    monkeypatch.setenv("PEN_SECRET", b"virtual-pen-test-secret-not-real".hex())
    # the foreign settings.dat latched settings_corrupt: service mode is refused until cleared
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--dry-run")
    assert rc == 1 and "fault" in err, err
    _clear_and_wait(pen.port)

    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--dry-run")
    assert rc == 0, err
    assert "would remove firmware/obsolete.py" in out and "would copy   main.py" in out
    assert "would remove firmware/app.py" in out
    assert flash_files(flash) == before
    rc, out, err = run_pen(capsys, "--port", pen.port, "status", "--json")
    assert rc == 0, err  # the application the dry run interrupted runs again

    _clear_and_wait(pen.port)  # the dry run restarted it: settings_corrupt again
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert "firmware/obsolete.py" in res["remove"] and "main.py" in res["copy"]
    assert set(flash_files(flash)) == expected_layout()
    assert (flash / "settings.dat").read_bytes() == b"data the pen keeps"
    assert res["hello"]["protocol_version"] == 1


@pytest.mark.req("HT-11")
def test_flash_dir_deploy_and_verify(tmp_path, capsys):
    """HT-11: `--flash-dir` deploys into a folder (a pen's flash) with the
    same plan, stale-file removal and verification; a second run copies nothing."""
    flash = tmp_path / "flash"
    (flash / "drivers").mkdir(parents=True)
    (flash / "drivers" / "board.py").write_text("# stale source\n")
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["remove"] == ["drivers/board.py"]
    assert set(flash_files(flash)) == expected_layout()
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert json.loads(out)["copy"] == []


@pytest.mark.req("HT-12")
def test_verify_catches_a_bad_copy():
    """HT-12: a file whose SHA-256 on the pen differs, a missing file and a left-over
    module each fail the verification."""
    files = [D.PenFile(Path("a.py"), "a.py", b"A"), D.PenFile(Path("b.py"), "b.mpy", b"B")]
    good = {"a.py": hashlib.sha256(b"A").hexdigest(), "b.mpy": hashlib.sha256(b"B").hexdigest()}
    assert D.verify(files, good) == []
    problems = D.verify(files, {"a.py": "00" * 32, "firmware/old.py": "x"})
    assert any("a.py SHA-256" in p for p in problems)
    assert "b.mpy missing" in problems and "firmware/old.py left over" in problems


@pytest.mark.req("HT-10")
def test_native_code_is_deployed_as_source_on_another_cpu(tmp_path, monkeypatch):
    """HT-10: armv6m native code cannot run on the virtual pen's x86-64: such a module is
    deployed as source there (and compiled for armv6m for the RP2040)."""
    root = tmp_path / "co"
    (root / "firmware").mkdir(parents=True)
    (root / "sim").mkdir()
    (root / "sim" / "vpen.py").write_text("")
    (root / "main.py").write_text("import firmware.fast\n")
    (root / "firmware" / "__init__.py").write_text("")
    (root / "firmware" / "fast.py").write_text(
        "import micropython\n@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n"
    )
    on_pico = {f.dest: f for f in D.build(root, target_arch="armv6m")}
    assert D.mpy_native_arch(on_pico["firmware/fast.mpy"].data) == D.ARCH_NAMES.index("armv6m")
    on_x64 = {f.dest: f for f in D.build(root, target_arch="x64")}
    assert "firmware/fast.py" in on_x64 and "cannot run" in on_x64["firmware/fast.py"].note
    assert "firmware/__init__.mpy" in on_x64


@pytest.mark.req("HT-10")
def test_mpy_version_mismatch_is_refused():
    """HT-10: a pen whose MicroPython cannot load these .mpy files is refused before
    anything is copied."""
    D.check_compatible({"mpy": 2822})
    with pytest.raises(D.DeployError) as exc:
        D.check_compatible({"mpy": 5})
    assert "mpy-cross" in str(exc.value)


@pytest.mark.req("HT-13")
def test_manifest_freezes_the_pen_packages():
    """HT-13: manifest.py freezes every package that goes onto the pen (boot.py and
    main.py stay on the filesystem) on top of the board's own manifest."""
    calls = []
    env = {
        "include": lambda p, **kw: calls.append(("include", p)),
        "package": lambda name, **kw: calls.append(("package", name)),
        "module": lambda name, **kw: calls.append(("module", name)),
        "freeze": lambda *a, **kw: calls.append(("freeze", a)),
        "require": lambda *a, **kw: calls.append(("require", a)),
        "__file__": str(ROOT / "manifest.py"),
    }
    exec(compile((ROOT / "manifest.py").read_text(), "manifest.py", "exec"), env)
    assert ("include", "$(PORT_DIR)/boards/manifest.py") in calls
    frozen = {name for kind, name in calls if kind == "package"}
    assert frozen == set(paths.PEN_DIRS)
    for d in paths.PEN_DIRS:
        assert (ROOT / d / "__init__.py").exists()


@pytest.mark.req("HT-12")
def test_deploy_is_refused_while_the_needle_runs(vpen_factory, capsys):
    """HT-12: no deploy (which stops the application) while the needle runs."""
    import time

    from pen.link import PenRefused, open_link

    pen = vpen_factory(speed=4)
    with open_link(pen.port) as link:
        deadline = time.monotonic() + 20
        while not (st := link.call("status"))["homed"] or st["state"] != "READY":
            assert time.monotonic() < deadline, st
            time.sleep(0.05)
        link.call("arm")
        link.call("cartridge new")
        while True:
            try:
                link.call("run 100")
                break
            except PenRefused:  # the stop may still be moving to its depth
                assert time.monotonic() < deadline
                time.sleep(0.05)
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy")
    assert rc == 1 and "stop the needle" in err
    with open_link(pen.port) as link:
        assert link.call("status")["state"] == "RUNNING"  # still running its application
        link.call("stop")
