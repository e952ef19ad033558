"""One emulated pen: the RP2040 emulator rp2040py running the pen's base MicroPython image with
the pen's modules in ROMFS (the image `pen deploy` builds) and boot.py/main.py on littlefs.

The emulator is driven synchronously from the calling thread, batch by batch; every wait is
bounded in *emulated* time (`run_until(pred, emu_s)`), never in host wall time.

Three behaviours of rp2040py 0.3.6 are corrected here (facts: ../shared/rp2/README.md):
1. USB OUT: its host answers every armed CDC OUT buffer at once with a zero-length packet when it
   has nothing to send, so the guest spends most of its cycles in the USB interrupt. A real host
   NAKs: the OUT request is parked while the host has nothing queued and completed when data is.
2. A pin's own driven level is not fed back into its input: each GPIO's driven state is mirrored
   into its pad input through the pin's change listener (a real RP2040 reads its own output).
3. PIO advances at most one instruction per CPU step and an idle jump (WFI) counts as one; a
   machine owed more than 8 cycles when its step comes has the rest written off, so a PIO
   program slows down while the CPU sleeps (the stroke capture counted 15 % slow). An alarm
   placed on each PIO block's next due cycle (at most `IDLE_BOUND_NS` apart) ends every idle
   jump where a state machine is due.
4. UART TX interrupt: its UART raises the TX interrupt again on every register access, so once
   MicroPython's `machine.UART` unmasks it (it does at construction) the core never leaves the
   UART's IRQ: the pen went silent at `Board()` (the TMC2209 UART). On the PL011 the TX
   interrupt follows a transition of the TX FIFO through its trigger level and stays clear once
   cleared (ICR): here it is raised when a byte is written (the emulated FIFO empties at once)
   and stays as the firmware leaves it otherwise.
A second alarm, every `SAMPLE_NS` while enabled, samples the core's exception number (IPSR):
the time spent in each interrupt, measured from outside the firmware.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import image as IMG

SYS_HZ = 125_000_000
# The idle-bound / sampler alarm period. A PIO state machine gets at most one instruction per
# idle jump (rp2040py writes the rest off), so the bound must stay below the fastest machine's
# period: the stroke capture runs at 2 MHz (500 ns).
IDLE_BOUND_NS = 2000
SAMPLE_NS = 400  # the IRQ sampler's period
NS_PER_CYCLE = 8  # 125 MHz
TIMER_IRQS = (16, 17, 18, 19)  # exception numbers of TIMER_IRQ_0..3 (16 + IRQ number)


def littlefs_image(files: dict[str, bytes]) -> bytes:
    """A littlefs image of the pen's filesystem ("/") holding `files` (name -> bytes)."""
    from littlefs import LittleFS, UserContext

    ctx = UserContext(buffsize=IMG.FS_BLOCK_SIZE * IMG.FS_BLOCK_COUNT)
    lfs = LittleFS(context=ctx, block_size=IMG.FS_BLOCK_SIZE, block_count=IMG.FS_BLOCK_COUNT,
                   prog_size=256, disk_version=0x00020000)  # fmt: skip
    for name, data in files.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            try:
                lfs.mkdir(d)
            except Exception:  # noqa: BLE001 -- exists
                pass
        with lfs.open(name, "wb") as fh:
            fh.write(data)
    lfs.unmount()
    return bytes(lfs.context.buffer)


def pen_flash(root: Path | None = None) -> tuple[bytes, dict[str, bytes]]:
    """What `pen deploy` puts on a chip: (ROMFS image of the modules, files for littlefs)."""
    from pen import deploy as D

    files = D.build(root or IMG.ROOT, target_arch="armv6m")
    romfs = D.build_romfs(files)
    fs = {f.dest: f.data for f in files if f.dest in D.SOURCE_ONLY}
    return romfs, fs


class IrqSampler:
    """Time in each exception, sampled from outside the firmware every IDLE_BOUND_NS: a run of
    consecutive samples in one exception number is one entry (an IRQ's duration, within one
    sample period)."""

    def __init__(self):
        self.enabled = False
        self.reset()

    def reset(self):
        self.samples = 0  # samples taken while enabled
        self.in_exc = {}  # exception number -> samples inside it
        self.runs = {}  # exception number -> [run lengths] (one per entry)
        self._cur = 0
        self._len = 0

    def sample(self, ipsr):
        self.samples += 1
        if ipsr:
            self.in_exc[ipsr] = self.in_exc.get(ipsr, 0) + 1
        if ipsr == self._cur:
            self._len += 1
            return
        if self._cur:
            self.runs.setdefault(self._cur, []).append(self._len)
        self._cur = ipsr
        self._len = 1

    def timer_runs(self):
        """(exception number, [durations in µs]) of the timer interrupt entered most often among
        TIMER_IRQ_0..3 (the control tick's hard timer)."""
        best = max(TIMER_IRQS, key=lambda n: len(self.runs.get(n, ())))
        k = SAMPLE_NS / 1000
        return best, [n * k for n in self.runs.get(best, ())]

    def share(self, runs):
        """The CPU share (0..1) of interrupt entries `runs` (µs) over the sampled time."""
        return sum(runs) / (self.samples * SAMPLE_NS / 1000) if self.samples else 0.0


class ChipPen:
    """The emulated chip with the pen's files; `plant` (chip.plant.ChipPlant) wires the rest."""

    def __init__(self, romfs: bytes, fs_files: dict[str, bytes]):
        import dataclasses

        from rp2040py.boards import BOARDS
        from rp2040py.device.base_device import BaseDevice

        if len(romfs) > IMG.ROMFS_SIZE:
            raise ValueError(f"ROMFS image of {len(romfs)} B exceeds the partition")
        spec = dataclasses.replace(BOARDS["pico"], image=str(IMG.image_path()))
        self.dev = BaseDevice(board=spec)
        self.mcu = self.dev.mcu
        self.sim = self.dev.simulator
        self.clock = self.sim.clock
        flash = self.mcu.flash
        flash[IMG.ROMFS_OFFSET:IMG.ROMFS_OFFSET + len(romfs)] = romfs
        fs = littlefs_image(fs_files)
        flash[IMG.FS_OFFSET:IMG.FS_OFFSET + len(fs)] = fs
        self.rx = bytearray()  # what the pen wrote to its USB serial
        self._tx = bytearray()  # what the host has queued for the pen
        self._parked = None
        self.connected = False
        self.sampler = IrqSampler()
        self._wire_usb()
        self._wire_pin_feedback()
        self._wire_uart_tx_irq()
        self._alarm = self.clock.create_alarm(self._on_alarm)
        self._alarm.schedule(IDLE_BOUND_NS)
        self._last_delay = IDLE_BOUND_NS // NS_PER_CYCLE
        self._sample_alarm = self.clock.create_alarm(self._on_sample)
        self.plant = None
        self.events = []
        self._tag = 0

    # -- workarounds ---------------------------------------------------------------------
    def _wire_usb(self):
        cdc = self.dev.cdc
        usb = self.mcu.usb_ctrl
        original = usb.on_endpoint_read

        def on_read(endpoint, size):
            if endpoint != cdc._out_endpoint or endpoint <= 0:
                original(endpoint, size)
                return
            if not self._tx:
                self._parked = (endpoint, size)  # NAK until the host has something to send
                return
            self._complete(endpoint, size)

        def on_data(buf):
            self.rx += bytes(buf)

        def on_connected():
            self.connected = True

        reset = usb.on_reset

        def on_reset():
            self._parked = None  # the chip left the bus: its armed buffers are gone
            self.connected = False
            reset()

        usb.on_endpoint_read = on_read
        usb.on_reset = on_reset
        cdc.on_serial_data = on_data
        cdc.on_device_connected = on_connected

    def _complete(self, endpoint, size):
        chunk = bytes(self._tx[:size])
        del self._tx[:size]
        self.mcu.usb_ctrl.endpoint_read_done(endpoint, chunk)

    def _wire_pin_feedback(self):
        from rp2040py.gpio_pin import GPIOPinState

        high, low = GPIOPinState.HIGH, GPIOPinState.LOW
        for pin in self.mcu.gpio:
            def mirror(value, old, pin=pin):
                if value == high:
                    pin.set_input_value(True)
                elif value == low:
                    pin.set_input_value(False)

            pin.add_listener(mirror)

    def _wire_uart_tx_irq(self):
        from rp2040py.peripherals import uart as U

        for u in self.mcu.uart:
            def check(u=u):
                u.rp2040.set_interrupt(u.irq, bool(u._interrupt_status & u._interrupt_mask))

            write = u.write_uint32

            def write_uint32(offset, value, u=u, write=write, check=check):
                write(offset, value)
                if offset == U.UARTDR:  # the byte left: the TX FIFO passed its level
                    u._interrupt_status |= U.UARTTXINTR
                    check()

            u.check_interrupts = check
            u.write_uint32 = write_uint32
            u._interrupt_status &= ~U.UARTTXINTR

    def _on_alarm(self):
        # rp2040py fires alarms before it hands the step's cycles to PIO, so `cycle_fp` may still
        # lack up to the last delay: counting that delay as already gone can only bring the
        # next alarm early (then it just comes again), never late.
        lead = self._last_delay
        delay = IDLE_BOUND_NS // NS_PER_CYCLE
        for pio in self.mcu.pio:
            d = pio.next_due_fp - pio.cycle_fp
            if d < (1 << 40):  # a machine is due (else NEVER_DUE)
                ahead = ((d + 255) >> 8) - lead
                delay = min(delay, max(ahead, 1))
        self._last_delay = delay
        self._alarm.schedule(delay * NS_PER_CYCLE)

    def _on_sample(self):
        if self.sampler.enabled:
            self.sampler.sample(self.mcu.core.ipsr)
            self._sample_alarm.schedule(SAMPLE_NS)

    def sample_irqs(self, on: bool):
        """Start (after a reset of the figures) or stop the IRQ sampler."""
        if on:
            self.sampler.reset()
            self.sampler.enabled = True
            self._sample_alarm.schedule(SAMPLE_NS)
        else:
            self.sampler.enabled = False

    # -- host side -----------------------------------------------------------------------
    def boot(self):
        from rp2040py.memory_map import FLASH_START_ADDRESS

        self.mcu.core.pc = FLASH_START_ADDRESS
        self.sim.stopped = False

    @property
    def now_us(self) -> int:
        return int(self.clock.nanos // 1000)

    def write(self, data: bytes):
        self._tx += data
        if self._parked is not None:
            ep, size = self._parked
            self._parked = None
            self._complete(ep, size)

    def step(self):
        from rp2040py.execute_batch import execute_batch

        execute_batch(self.sim, 1)
        if self.sim.stopped:
            raise RuntimeError("the emulator stopped")

    def run_for(self, emu_s: float):
        end = self.clock.nanos + emu_s * 1e9
        while self.clock.nanos < end:
            self.step()

    def run_until(self, pred, emu_s: float, what: str = "condition"):
        """Run until pred() is true; TimeoutError after emu_s seconds of *emulated* time."""
        end = self.clock.nanos + emu_s * 1e9
        while not pred():
            if self.clock.nanos >= end:
                raise TimeoutError(f"{what}: not within {emu_s} s of emulated time; "
                                   f"serial tail {bytes(self.rx[-300:])!r}")  # fmt: skip
            self.step()

    def read_line(self, emu_s: float = 2.0) -> str:
        self.run_until(lambda: b"\n" in self.rx, emu_s, "a line from the pen")
        i = self.rx.index(b"\n")
        line = bytes(self.rx[:i + 1])
        del self.rx[:i + 1]
        return line.decode(errors="replace").rstrip("\r\n")

    def call(self, command: str, emu_s: float = 2.0) -> tuple[bool, object]:
        """One protocol command, tagged `#N ` so that only its own reply is taken (a stray
        line, e.g. one left by a host tool, gets its reply too); the reply as (ok, payload).
        `~E` events met on the way go to `self.events` (as parsed JSON)."""
        import json

        self._tag += 1
        tag = f"#{self._tag} "
        self.write((tag + command).encode() + b"\n")
        while True:
            line = self.read_line(emu_s)
            if line.startswith("~E "):
                self.events.append(json.loads(line[3:]))
                continue
            if not line.startswith(tag):
                continue  # another line's reply, a `~` line, a boot message
            line = line[len(tag):]
            if line.startswith("ok"):
                rest = line[2:].strip()
                return True, json.loads(rest) if rest else None
            return False, line

    def drain_events(self):
        """Parse the `~E` event lines received so far into `self.events`."""
        import json

        while b"\n" in self.rx:
            i = self.rx.index(b"\n")
            line = bytes(self.rx[:i]).decode(errors="replace").strip()
            del self.rx[:i + 1]
            if line.startswith("~E "):
                self.events.append(json.loads(line[3:]))

    def wait_for_text(self, text: bytes, emu_s: float) -> bytes:
        self.run_until(lambda: text in self.rx, emu_s, f"{text!r} from the pen")
        i = self.rx.index(text) + len(text)
        out = bytes(self.rx[:i])
        del self.rx[:i]
        return out


def run_host_tool(pen: ChipPen, argv: list[str], emu_s: float) -> tuple[int, str, str]:
    """Run a host tool (e.g. `pen --port {port} deploy`) as a process talking to the chip's USB
    serial through a pseudo-terminal, while the emulator runs here; `{port}` in argv is the
    pty. Its (exit status, stdout, stderr); TimeoutError after emu_s of emulated time."""
    import os
    import select
    import subprocess
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    argv = [a.replace("{port}", port) for a in argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = pen.clock.nanos + emu_s * 1e9
    try:
        while proc.poll() is None:
            if pen.clock.nanos >= end:
                raise TimeoutError(f"{argv}: not done within {emu_s} s of emulated time")
            r, _, _ = select.select([master], [], [], 0)
            if r:
                pen.write(os.read(master, 4096))
            if pen.rx:
                os.write(master, bytes(pen.rx))
                pen.rx.clear()
            pen.step()
        out, err = proc.communicate()
        return proc.returncode, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def new_flash_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="pen-chip-"))
