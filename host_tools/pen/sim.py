"""The virtual pen's supervisor: a pseudo-terminal as the pen's USB port, the `micropython`
process that runs the pen's own files on the simulated board, its reboots, and the side channel.

    pen sim [--flash DIR] [--speed N] [--port-file PATH] [--unit N]

prints the port path as its first line and runs until interrupted. The process is rebooted
whenever it ends (machine.reset(), the watchdog, Ctrl-D in the REPL), with the reset cause
passed on, like the RP2040 coming out of reset. The side channel (`pen sim-ctl`) reaches the
running process through a Unix socket registered under the port's name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tty
from pathlib import Path

from . import paths

# The heap of the virtual pen's process, set from the chip. On the RP2040 the pen's modules run
# from ROMFS (bytecode in flash); on the emulated chip (bench/chip.py, bench/results.md: the
# pen's base image in rp2040py, the modules in ROMFS as `pen deploy` builds them) the GC heap is
# 245,888 B and 181,680 B of it are free once every pen module is imported: that is what the
# firmware's data (board, telemetry ring, buffers, app objects) has there. This process holds
# three things in one heap: that budget, the simulator's own objects, and the application's
# bytecode loaded from .mpy files (which the chip keeps in flash). The two allowances are
# measured by bench/memory.py (unix port); the sum is rounded up here.
FIRMWARE_HEAP_K = 177  # the chip's heap free after importing every pen module (181,680 B)
# The plant, shims and side channel (bench/memory.py: ~99 KB with the unit population, the
# sensor glitches and the TMC2209 model; it was 77 KB), plus the same ~20 KB of headroom as
# before: the simulator's many small, short-lived objects share the heap with the firmware and
# fragment it (at 96 KB, below the measured share, `telemetry fetch` and `help` ran out of
# memory late in long sessions).
SIM_ALLOWANCE_K = 120
BYTECODE_ALLOWANCE_K = 208  # the application's .mpy bytecode in RAM (bench: ~183 KB)
HEAP = f"{FIRMWARE_HEAP_K + SIM_ALLOWANCE_K + BYTECODE_ALLOWANCE_K}K"
_EXIT_CAUSE = {80: 1, 83: 3, 84: 4}  # exit status -> machine reset cause (PWRON, WDT, SOFT)


def populate_flash(flash: Path, root: Path | None = None) -> None:
    """Put the pen's files into a flash folder as `pen deploy` would: compiled to .mpy
    (boot.py and main.py as source)."""
    from .deploy import build, local_micropython_arch

    for f in build(root or paths.checkout_root(), target_arch=local_micropython_arch()):
        dst = flash / f.dest
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.data)


class Supervisor:
    def __init__(self, flash: Path | None = None, speed: int = 1, log=None, hold: str = "",
                 unit: int = 0):
        self.state_dir = Path(tempfile.mkdtemp(prefix="pen-sim-"))
        if flash is None:
            flash = self.state_dir / "flash"
            flash.mkdir()
            populate_flash(flash)
        else:
            from .deploy import DeployError, check_flash_folder

            try:
                flash = check_flash_folder(Path(flash))  # exists, and is no source checkout
            except DeployError:
                shutil.rmtree(self.state_dir, ignore_errors=True)
                raise
        self.flash = Path(flash).resolve()
        self.speed = speed
        self.hold = hold
        self.unit = unit  # which pen of the population the plant is (sim/plant_units.py)
        self.log = log
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.proc: subprocess.Popen | None = None
        self.ctl_w: int | None = None
        self.ctl_r: int | None = None
        self.ctl_lock = threading.Lock()
        self.boots = 0
        self.stopping = False
        self.cause = 1
        self.sock_path = str(self.state_dir / "ctl.sock")
        self.registry = paths.runtime_dir() / (Path(self.port).name + ".json")
        self._ready = threading.Event()

    # -- the micropython process ---------------------------------------------------------
    def _spawn(self) -> None:
        r_in, w_in = os.pipe()  # supervisor -> pen
        r_out, w_out = os.pipe()  # pen -> supervisor
        env = dict(
            os.environ,
            PEN_SIM_FLASH=str(self.flash),
            PEN_SIM_SPEED=str(self.speed),
            PEN_SIM_CTL=f"{r_in},{w_out}",
            PEN_SIM_CAUSE=str(self.cause),
            PEN_SIM_STATE=str(self.state_dir / "mechanism"),
            PEN_SIM_HOLD=self.hold if self.boots == 0 else "",
            PEN_SIM_UNIT=str(self.unit),
        )
        vpen = paths.checkout_root() / "sim" / "vpen.py"
        stderr = open(self.state_dir / "stderr.log", "ab")
        self.proc = subprocess.Popen(
            [paths.micropython_binary(), "-X", f"heapsize={HEAP}", "-i", str(vpen)],
            stdin=self.master,
            stdout=self.master,
            stderr=stderr,
            env=env,
            pass_fds=(r_in, w_out),
            start_new_session=True,
        )
        stderr.close()
        os.close(r_in)
        os.close(w_out)
        with self.ctl_lock:
            self.ctl_w, self.ctl_r = w_in, r_out
        self.boots += 1
        self._ready.set()

    def _close_ctl(self) -> None:
        with self.ctl_lock:
            for fd in (self.ctl_w, self.ctl_r):
                if fd is not None:
                    os.close(fd)
            self.ctl_w = self.ctl_r = None

    def ctl(self, line: str, timeout: float = 10.0) -> str:
        """Send one side-channel command to the running pen, return its reply line."""
        deadline = time.monotonic() + timeout
        while True:
            with self.ctl_lock:
                if self.ctl_w is not None:
                    try:
                        os.write(self.ctl_w, line.strip().encode() + b"\n")
                        return self._read_reply(self.ctl_r, deadline)
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                return "error the virtual pen is not running"
            time.sleep(0.05)

    @staticmethod
    def _read_reply(fd, deadline) -> str:
        import select

        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return "error no reply from the virtual pen"
            chunk = os.read(fd, 4096)
            if not chunk:
                return "error the virtual pen rebooted"
            buf += chunk
        return buf.decode().strip()

    def _serve_ctl(self, server: socket.socket) -> None:
        while not self.stopping:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                f = conn.makefile("rwb")
                for raw in f:
                    reply = self.ctl(raw.decode())
                    f.write(reply.encode() + b"\n")
                    f.flush()

    def run(self, port_file: str | None = None, on_ready=None) -> int:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.sock_path)
        server.listen(4)
        threading.Thread(target=self._serve_ctl, args=(server,), daemon=True).start()
        self.registry.write_text(
            json.dumps({"port": self.port, "ctl": self.sock_path, "pid": os.getpid(),
                        "flash": str(self.flash), "state_dir": str(self.state_dir)})
        )  # fmt: skip
        if port_file:
            Path(port_file).write_text(self.port + "\n")
        if on_ready:
            on_ready(self.port)
        try:
            while not self.stopping:
                self._spawn()
                rc = self.proc.wait()
                # sim/vpen.py leaves its exit status in a file when it has to kill itself.
                status_file = self.state_dir / "mechanism.exit"
                if status_file.exists():
                    rc = int(status_file.read_text().strip() or rc)
                    status_file.unlink()
                self._close_ctl()
                if self.stopping:
                    break
                self.cause = _EXIT_CAUSE.get(rc, 1)
                if self.log:
                    self.log(f"virtual pen exited with status {rc}; rebooting (cause {self.cause})")
                time.sleep(0.05)
        finally:
            self.stop()
            server.close()
        return 0

    def stop(self) -> None:
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for p in (self.registry, Path(self.sock_path)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        # Scratch state (and a flash the supervisor made itself); a --flash folder is the caller's.
        shutil.rmtree(self.state_dir, ignore_errors=True)


def find_registry(port: str) -> dict:
    entry = paths.runtime_dir() / (Path(port).name + ".json")
    if not entry.exists():
        raise FileNotFoundError(f"no virtual pen is running on {port}")
    return json.loads(entry.read_text())


def ctl_command(port: str, line: str, timeout: float = 15.0) -> str:
    """Send one side-channel command to the virtual pen on `port`; return the reply line."""
    reg = find_registry(port)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(reg["ctl"])
        s.sendall(line.strip().encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode().strip()
