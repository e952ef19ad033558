"""The whole pen application (firmware/app.py) on the virtual board, on the deterministic
virtual clock: the board as drivers/board.py builds it from hardware/pins.py, the plant of the
virtual pen (sim/board_sim.py, with its side-channel faults), the serial port replaced by a
host-side fake (`HostPort`), and a scratch folder as the pen's flash (settings, sessions).

For the fault-injection matrix (tests/mp/mptest_fault_matrix.py) and the memory benchmark
(bench/memory.py). A scenario is an `async def scenario(rig)` run next to the application's
own tasks by `rig.run(scenario)`; `Watch` records, on the plant's 100 µs steps, when the motor
went off, when the pen latched FAULT and when the depth stop was back at the safe depth.
"""

import json
import os
import sys

import board_sim
import machine
import rp2
from mphelp import SIM, check

import hardware.pins as P
from firmware.pen import FAULT


def _absolute_module_path():
    """Module path entries relative to the repository root (and the paths of packages already
    imported from them) become absolute, so the scratch flash folder can be the working
    directory, as the flash is on the pen."""
    root = os.getcwd().rstrip("/") + "/"
    for i, p in enumerate(sys.path):
        if not p.startswith("/") and not p.startswith("."):  # ".frozen" is not a folder
            sys.path[i] = root + p if p else root.rstrip("/")
    for mod in sys.modules.values():
        p = getattr(mod, "__path__", None)
        if isinstance(p, str) and not p.startswith("/") and not p.startswith("."):
            mod.__path__ = root + p
    return root.rstrip("/")


ROOT = _absolute_module_path()


def scratch_flash():
    """A new empty folder in the temporary directory: the pen's flash for one test."""
    tmp = (os.getenv("TMPDIR") or "/tmp").rstrip("/")
    name = tmp + "/pen-rig-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(name)
    return name


def remove_flash(path):
    """Remove the scratch flash folder and what is in it (folders too: the session store)."""
    try:
        for entry in os.ilistdir(path):
            p = path + "/" + entry[0]
            if entry[1] == 0x4000:
                remove_flash(p)
            else:
                os.remove(p)
        os.rmdir(path)
    except OSError:
        pass


class HostPort:
    """The pen's USB serial port as the link sees it (read_into / writable / write), with the
    host on the other side: `send()` queues bytes for the pen; what the pen writes is split
    into lines: `~T` lines are counted, `~E` events parsed and kept, replies kept. With
    parse=False it only counts the bytes (the memory benchmark: no host work in the pen's
    process)."""

    def __init__(self, keep=64, parse=True):
        self.parse = parse
        self.bytes_out = 0
        self.inbox = bytearray()
        self.open = True  # False: the host does not read (a pulled cable); writes are refused
        self.partial = b""
        self.keep = keep
        self.replies = []
        self.events = []
        self.samples = 0
        self.last_seq = None
        self.seq_gaps = 0
        self.dropped = 0
        self.intr = 3  # Ctrl-C until the application turns it off

    def send(self, data):
        self.inbox += data

    def kbd_intr(self, ch):
        """drivers/serial_link.py's: the byte that interrupts (-1: none; SF-07)."""
        self.intr = ch

    def read_into(self, buf, limit=None):
        n = min(len(buf) if limit is None else limit, len(self.inbox))
        if n:
            buf[:n] = self.inbox[:n]
            self.inbox = self.inbox[n:]
        return n

    def writable(self):
        return self.open

    def write(self, data):
        if not self.open:
            self.dropped += 1
            return False
        if not self.parse:
            self.bytes_out += len(data)
            return True
        data = self.partial + (data.encode() if isinstance(data, str) else bytes(data))
        while True:
            i = data.find(b"\n")
            if i < 0:
                break
            self._line(data[:i].decode())
            data = data[i + 1 :]
        self.partial = data
        return True

    def _line(self, line):
        if line.startswith("~T "):
            self.samples += 1
            seq = json.loads(line[3:])["seq"]
            if self.last_seq is not None and seq != self.last_seq + 1:
                self.seq_gaps += 1
            self.last_seq = seq
            return
        if line.startswith("~E "):
            self.events.append(json.loads(line[3:]))
            if len(self.events) > self.keep:
                self.events.pop(0)
            return
        if line:
            self.replies.append(line)
            if len(self.replies) > self.keep:
                self.replies.pop(0)


class Watch:
    """First virtual times (µs, from `start()`) at which: the bridge was off (nSLEEP low),
    the pen was in FAULT, the depth stop was at the safe depth, and `extra()` was true."""

    def __init__(self, rig):
        self.rig = rig
        self.t0 = None
        self.motor_off = None
        self.fault = None
        self.retracted = None
        self.max_depth_mm = rig.gauge_mm()  # since the rig was built
        self.was_driven = False  # since start()
        SIM.tick_hooks.append(self._hook)

    def start(self):
        self.t0 = SIM.now
        self.motor_off = self.fault = self.retracted = None
        self.was_driven = False

    def _hook(self, now):
        r = self.rig
        mm = r.gauge_mm()
        if mm > self.max_depth_mm:
            self.max_depth_mm = mm
        if self.t0 is None or r.app is None:
            return
        dt = now - self.t0
        on = SIM.board.out.get(P.MOTOR_SLEEP_N, 0)
        if on:
            self.was_driven = True
        if self.motor_off is None and not on:
            self.motor_off = dt
        if self.fault is None and r.app.pen.state == FAULT:
            self.fault = dt
        if self.retracted is None and self.fault is not None and mm <= r.SAFE_MM:
            self.retracted = dt

    @staticmethod
    def ms(us):
        return None if us is None else us / 1000


class AppRig:
    SAFE_MM = 0.01  # the stop counts as retracted at tips flush (0 mm) within 10 µm

    def __init__(self, flash=None, cause=None, depth_usteps=None, hw=None, port=None, app=True):
        self.flash = flash or scratch_flash()
        os.chdir(self.flash)
        machine._set_cause(cause or machine.PWRON_RESET)
        self.hw = hw or board_sim.VirtualPen(SIM)  # the plant and its side channel
        if depth_usteps is not None:
            d = self.hw.depth
            d.motor_usteps = depth_usteps
            d.nut_mm = depth_usteps * d.UM_PER_USTEP / 1000
            d._update_endstop()
        import drivers.board as board_mod

        self.board = board_mod.build()
        self.port = port or HostPort()
        self.board.serial = self.port
        self.app = None
        self.watch = None
        if app:
            self.start_app()

    def start_app(self):
        """Build the application on the board (AppRig(app=False) stops before this)."""
        from firmware.app import App

        self.app = App(self.board)
        self.app.link.serial = self.port
        self.watch = Watch(self)

    # -- the plant -----------------------------------------------------------------------------
    def gauge_mm(self):
        """The dial gauge: the needle's true protrusion (mm)."""
        return self.hw.depth.protrusion_mm()

    def inject(self, name):
        reply = self.hw.inject(name)
        check(reply == "ok", reply)

    def motor_driven(self):
        return bool(SIM.board.out.get(P.MOTOR_SLEEP_N, 0))

    def true_hz(self):
        return self.hw.motor.stroke_hz()

    # -- the host side -------------------------------------------------------------------------
    def cmd(self, line):
        """A protocol command as the host sends it; its reply line (str)."""
        r = self.app.protocol.handle(line.encode())
        return r if isinstance(r, str) else "".join(r)

    def ok_raw(self, line):
        r = self.cmd(line)
        check(r.startswith("ok"), "%s -> %s" % (line, r))
        return r[2:].strip()

    def fetch(self, seq, n):
        """`telemetry fetch SEQ N`: the samples (dicts). The reply comes in parts, one sample
        each, parsed one by one (a long reply needs no contiguous block of the heap)."""
        r = self.app.protocol.handle(("telemetry fetch %d %d" % (seq, n)).encode())
        parts = [r] if isinstance(r, str) else r
        check(parts[0].startswith("ok"), "fetch %d -> %r" % (seq, parts[0]))
        return [json.loads(p) for p in parts if p.startswith("{")]

    def ok(self, line):
        rest = self.ok_raw(line)
        return json.loads(rest) if rest else None

    def state(self):
        return self.app.pen.status()["state"]

    # -- running -------------------------------------------------------------------------------
    def run(self, scenario, max_ms=60_000):
        """Run the application's tasks with `scenario(rig)` beside them until it returns.
        A machine.SimReset (watchdog, power cut) ends the run and is returned, else None."""
        import asyncio

        app = self.app
        deadline = SIM.now + max_ms * 1000
        out = [None]

        async def main():
            task = asyncio.create_task(app.main())
            try:
                await scenario(self)
            finally:
                task.cancel()
            check(SIM.now <= deadline, "scenario ran past %d ms" % max_ms)

        try:
            asyncio.run(main())
        except machine.SimReset as e:
            out[0] = e
        finally:
            asyncio.new_event_loop()
            # A reset leaves the loop in the middle of a task: forget it, so the application
            # it belongs to can be collected before the reboot builds the next one.
            import asyncio.core as core

            core.cur_task = None
            core._exc_context["future"] = None
            core._exc_context["exception"] = None
        return out[0]

    async def until(self, pred, max_ms, what="condition", step_ms=1):
        """Wait (virtual time) until pred() is true; returns the ms waited."""
        import asyncio

        t0 = SIM.now
        while not pred():
            if SIM.now - t0 > max_ms * 1000:
                raise AssertionError("%s not reached in %d ms (state %s, fault %s)"
                                     % (what, max_ms, self.state(), self.app.pen.fault))
            await asyncio.sleep_ms(step_ms)
        return (SIM.now - t0) // 1000

    async def sleep(self, ms):
        import asyncio

        await asyncio.sleep_ms(ms)

    async def position_checked(self):
        """After a cartridge confirmation: the endstop check of the stop's position (SF-13)."""
        ax = self.app.depth
        await self.until(lambda: not ax.busy and ax.homed and not self.app.pen._verify_due,
                         2000, "the stop's position checked")  # fmt: skip

    async def ready(self):
        """Boot -> homing -> READY."""
        await self.until(lambda: self.state() == "READY", 5000, "READY after boot")

    async def running(self, depth="1.00", hz=100, load=0.8, settle_ms=300):
        """READY -> the needle running at `hz` under skin load at `depth` mm in a session."""
        await self.ready()
        self.ok("depth " + depth)
        ax = self.app.depth
        await self.until(lambda: not ax.busy, 2000, "depth reached")
        self.ok("arm")
        self.ok("cartridge new")
        await self.position_checked()
        self.hw.motor.load = load
        self.ok("run %d" % hz)
        await self.until(lambda: abs(self.true_hz() - hz) < 0.03 * hz, 1000, "rate reached")
        await self.sleep(settle_ms)
        check(self.state() == "RUNNING" and self.motor_driven(), "running before the fault")

    def reboot(self, cause, hold=None):
        """The pen resets (watchdog, power cut): a fresh board and application on the same
        flash, the mechanism where it was (it does not move on a reset)."""
        d = self.hw.depth
        usteps = d.motor_usteps
        self.app.shutdown()
        SIM.devices.clear()
        SIM.timers.clear()
        SIM.tick_hooks.clear()
        b = SIM.board
        for x in (b.out, b.inp, b.pull, b.mode, b.pwm, b.adc, b.irqs, b.i2c):
            x.clear()
        rp2.reset_all()
        SIM.hang = False
        SIM.reset_requested = None
        self.app = None
        import gc

        gc.collect()
        return AppRig(self.flash, cause=cause, depth_usteps=usteps)

    def close(self):
        os.chdir(ROOT)
        remove_flash(self.flash)
