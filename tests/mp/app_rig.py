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


def _absolute_module_path():
    """Module path entries relative to the repository root become absolute, so the scratch
    flash folder can be the working directory (as the flash is on the pen)."""
    root = os.getcwd()
    if not root.endswith("/"):
        root += "/"
    for i, p in enumerate(sys.path):
        if not p.startswith("/") and not p.startswith("."):  # ".frozen" is not a folder
            sys.path[i] = root + p if p else root.rstrip("/")
    return root


ROOT = _absolute_module_path()


def scratch_flash():
    """A new empty folder under /tmp: the pen's flash for one test."""
    name = "/tmp/pen-rig-" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(name)
    return name


def remove_flash(path):
    try:
        for entry in os.ilistdir(path):
            os.remove(path + "/" + entry[0])
        os.rmdir(path)
    except OSError:
        pass


class HostPort:
    """The pen's USB serial port as the link sees it (read_into / writable / write), with the
    host on the other side: `send()` queues bytes for the pen; what the pen writes is split
    into lines: `~T` lines are counted, `~E` events parsed and kept, replies kept."""

    def __init__(self, keep=64):
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

    def send(self, data):
        self.inbox += data

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
        self.max_depth_mm = None
        self.was_driven = False
        SIM.tick_hooks.append(self._hook)

    def start(self):
        self.t0 = SIM.now
        self.motor_off = self.fault = self.retracted = None
        self.max_depth_mm = 0.0

    def _hook(self, now):
        if self.t0 is None:
            return
        dt = now - self.t0
        r = self.rig
        on = SIM.board.out.get(P.MOTOR_SLEEP_N, 0)
        if on:
            self.was_driven = True
        if self.motor_off is None and not on:
            self.motor_off = dt
        if self.fault is None and r.app.pen.state == 7:  # firmware.pen.FAULT
            self.fault = dt
        mm = r.gauge_mm()
        if mm > self.max_depth_mm:
            self.max_depth_mm = mm
        if self.retracted is None and self.fault is not None and mm <= r.SAFE_MM:
            self.retracted = dt

    @staticmethod
    def ms(us):
        return None if us is None else us / 1000


class AppRig:
    SAFE_MM = 0.01  # the stop counts as retracted at tips flush (0 mm) within 10 µm

    def __init__(self, flash=None, cause=None, depth_usteps=None, hold=None):
        self.flash = flash or scratch_flash()
        os.chdir(self.flash)
        machine._set_cause(cause or machine.PWRON_RESET)
        self.hw = board_sim.VirtualPen(SIM)  # the plant and its side channel
        if depth_usteps is not None:
            d = self.hw.depth
            d.motor_usteps = depth_usteps
            d.nut_mm = depth_usteps * d.UM_PER_USTEP / 1000
            d._update_endstop()
        import drivers.board as board_mod

        self.board = board_mod.build()
        self.port = HostPort()
        self.board.serial = self.port
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

    def ok(self, line):
        r = self.cmd(line)
        check(r.startswith("ok"), "%s -> %s" % (line, r))
        rest = r[2:].strip()
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


def fault_row(name, plant, bound_ms, detect_ms, code, safe, record, test, **extra):
    """One row of docs/faults.md as the test measured it (tools/gen_faults.py reads the
    bounds from the test source; the measured values are evidence in the test report)."""
    row = {"fault": name, "plant": plant, "bound_ms": bound_ms, "detect_ms": detect_ms,
           "code": code, "safe": safe, "record": record, "test": test}  # fmt: skip
    row.update(extra)
    return "FAULTROW " + json.dumps(row)
