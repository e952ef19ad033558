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


@pytest.mark.req("HT-11", "HT-51", "HT-52", "SF-08")
def test_deploy_replaces_stale_sources(vpen_factory, tmp_path, capsys, monkeypatch):
    """HT-11, HT-51, HT-52, SF-08: a flash holding the sources (.py, which MicroPython would
    import before an .mpy), a module that no longer exists and an edited main.py, none placed
    by deploy: --dry-run leaves the running application alone (its uptime goes on) and changes
    nothing; without the secret deploy is refused (it says how to reach service mode); with it,
    the pen is asked for service mode (START held on the pen) and deploy refuses to remove
    files it did not place, naming them; with --adopt it removes them and copies the rest; data
    files are never touched."""
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
    rc, out, err = run_pen(capsys, "--port", pen.port, "status", "--json")
    assert rc == 0, err
    up0 = json.loads(out)["status"]["uptime_ms"]

    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--dry-run")
    assert rc == 0, err
    assert "does not stop it" in out and "nothing changed" in out
    assert flash_files(flash) == before
    rc, out, err = run_pen(capsys, "--port", pen.port, "status", "--json")
    assert rc == 0, err
    assert json.loads(out)["status"]["uptime_ms"] > up0  # the same application: not restarted

    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy")
    assert rc == 1 and "service mode" in err and "START" in err, err
    monkeypatch.setenv("PEN_SECRET", b"virtual-pen-test-secret-not-real".hex())
    # the foreign settings.dat latched settings_corrupt: service mode is refused until cleared
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy")
    assert rc == 1 and "fault" in err, err
    _clear_and_wait(pen.port)
    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy")
    assert rc == 1 and "firmware/obsolete.py" in err and "--adopt" in err, err
    assert flash_files(flash) == before

    rc, out, err = run_pen(capsys, "--port", pen.port, "deploy", "--adopt", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert "firmware/obsolete.py" in res["remove"] and "main.py" in res["copy"]
    assert set(flash_files(flash)) == expected_layout()
    assert (flash / "settings.dat").read_bytes() == b"data the pen keeps"
    assert res["hello"]["protocol_version"] == 1
    placed = json.loads((flash / D.MANIFEST).read_text())["files"]
    assert set(placed) == expected_layout()


@pytest.mark.req("HT-11")
def test_flash_dir_deploy_and_verify(tmp_path, capsys):
    """HT-11, HT-52: `--flash-dir` deploys into a folder (a pen's flash) with the same plan
    and verification; a stale source deploy did not place is refused until --adopt; a second
    run copies nothing; a module an earlier deploy placed (named in the manifest) and no
    longer built is removed, and nothing else."""
    flash = tmp_path / "flash"
    (flash / "drivers").mkdir(parents=True)
    (flash / "drivers" / "board.py").write_text("# stale source\n")
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert rc == 1 and "drivers/board.py" in err
    assert (flash / "drivers" / "board.py").exists()
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--adopt", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["remove"] == ["drivers/board.py"]
    assert set(flash_files(flash)) == expected_layout()
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert json.loads(out)["copy"] == []
    # A module a former deploy placed, gone from the checkout since; and one it did not place.
    man = json.loads((flash / D.MANIFEST).read_text())
    man["files"]["firmware/gone.mpy"] = "x"
    (flash / D.MANIFEST).write_text(json.dumps(man))
    (flash / "firmware" / "gone.mpy").write_bytes(b"M\x06")
    (flash / "firmware" / "mine.py").write_text("# the user's\n")
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert rc == 1 and "firmware/mine.py" in err and "firmware/gone.mpy" not in err
    (flash / "firmware" / "mine.py").unlink()
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(flash), "--json")
    assert rc == 0, err
    assert json.loads(out)["remove"] == ["firmware/gone.mpy"]
    assert not (flash / "firmware" / "gone.mpy").exists()


@pytest.mark.req("HT-53")
@pytest.mark.parametrize("where", ["missing", "checkout", "contains"])
def test_flash_folder_must_exist_and_not_be_a_checkout(tmp_path, capsys, where):
    """HT-53: `pen sim --flash DIR` and `pen deploy --flash-dir DIR` refuse a folder that does
    not exist (no silent fallback to the current directory) and a folder that is or contains a
    source checkout; nothing in it changes."""
    if where == "missing":
        folder = tmp_path / "no-such-folder"
    elif where == "checkout":
        folder = tmp_path / "co"
        (folder / "firmware").mkdir(parents=True)
        (folder / "pyproject.toml").write_text("[project]\n")
        (folder / "firmware" / "app.py").write_text("A = 1\n")
    else:
        folder = tmp_path / "outer"
        (folder / "deep" / "co" / ".git").mkdir(parents=True)
        (folder / "deep" / "co" / "main.py").write_text("# source\n")
    before = sorted(p.as_posix() for p in tmp_path.rglob("*"))
    rc, out, err = run_pen(capsys, "deploy", "--flash-dir", str(folder))
    assert rc == 1 and ("no such folder" in err or "source checkout" in err), err
    rc, out, err = run_pen(capsys, "sim", "--flash", str(folder))
    assert rc == 1 and ("no such folder" in err or "source checkout" in err), err
    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == before
    assert not (ROOT / "firmware" / "app.mpy").exists()


@pytest.mark.req("HT-54")
def test_romfs_image_is_what_the_chip_boots():
    """HT-54: the ROMFS image is built by mpremote's ROMFS writer from the armv6m .mpy files
    (never boot.py/main.py), byte-identical on every build, and fits the 256 KiB partition."""
    from mpremote.romfs import VfsRomWriter

    files = D.build(target_arch="armv6m")
    img = D.build_romfs(files)
    assert img.startswith(VfsRomWriter.ROMFS_HEADER)
    assert D.build_romfs(D.build(target_arch="armv6m")) == img
    assert len(img) <= 256 * 1024
    for f in files:
        name = f.dest.rsplit("/", 1)[-1].encode()
        assert (name in img) == (f.dest not in D.SOURCE_ONLY), f.dest


class _RomfsPen(D.Target):
    """A pen with a ROMFS partition, as SerialTarget sees one (the calls, not the wire)."""

    name = "romfs-pen"

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.rom = b""
        self.rom_writes = 0

    def info(self):
        return {"mpy": None, "arch": "armv6m", "romfs": True}

    def app_files(self):
        return {p: hashlib.sha256(d).hexdigest() for p, d in self.files.items()
                if p.endswith((".py", ".mpy"))}  # fmt: skip

    def write(self, dest, data):
        self.files[dest] = data

    def remove(self, dest):
        self.files.pop(dest, None)

    def read(self, dest):
        return self.files.get(dest)

    def romfs_state(self):
        return (len(self.rom), hashlib.sha256(self.rom).hexdigest()) if self.rom else (0, None)

    def romfs_deploy(self, image):
        self.rom = image
        self.rom_writes += 1


@pytest.mark.req("HT-54", "HT-52")
def test_romfs_route_puts_only_boot_and_main_on_the_filesystem():
    """HT-54, HT-52: on a pen with ROMFS the modules go in one image, the filesystem gets only
    boot.py/main.py and the manifest; .mpy modules an earlier file deploy placed (which would
    shadow ROMFS) are removed; the image and every file are verified; a second deploy writes
    nothing."""
    old = {f.dest: f.data for f in D.build(target_arch="armv6m")}
    pen = _RomfsPen(old)
    pen.files[D.MANIFEST] = json.dumps({"files": {p: "" for p in old}}).encode()
    res = D.deploy(pen)
    assert pen.rom_writes == 1 and pen.rom == res.plan.romfs
    assert set(pen.app_files()) == {"boot.py", "main.py"}
    assert res.verified == 3
    assert set(json.loads(pen.files[D.MANIFEST])["files"]) == {"boot.py", "main.py"}
    again = D.deploy(pen)
    assert pen.rom_writes == 1 and again.plan.changes == 0


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


class _StatusLink:
    """A link whose `status` replies follow a script of (state, uptime_ms)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def call(self, line):
        assert line == "status"
        self.calls += 1
        state, up = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return {"state": state, "uptime_ms": up}


@pytest.mark.req("SF-08")
@pytest.mark.parametrize("settled", ["READY", "LOCKED", "ARMED", "FAULT"])
def test_service_request_waits_out_boot_and_homing_by_the_pens_clock(settled):
    """SF-08: `pen deploy` asks a pen that is booting or homing (as after a
    deploy's reset; the pen refuses service mode then) only once it has settled, judged by the
    pen's uptime, not the host's clock; a pen still homing after 5 s of its own time is a
    clear error."""
    from pen import service_mode as sm

    link = _StatusLink([("BOOT", 10), ("HOMING", 200), ("HOMING", 600), (settled, 700)])
    assert sm.wait_out_homing(link, pause_s=0)["state"] == settled
    assert link.calls == 4
    stuck = _StatusLink([("HOMING", 100 + 400 * i) for i in range(20)])
    with pytest.raises(sm.ServiceModeError, match="still HOMING"):
        sm.wait_out_homing(stuck, pause_s=0)
    assert stuck.calls == 14  # 5 s of the pen's time: 100 + 400 * 13 > 5100
    looping = _StatusLink([("HOMING", 900), ("BOOT", 20), ("HOMING", 900), ("BOOT", 20)])
    with pytest.raises(sm.ServiceModeError, match="restarted"):
        sm.wait_out_homing(looping, pause_s=0)  # a pen in a boot loop: no wait without end
