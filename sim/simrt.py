"""Virtual pen runtime: the virtual clock, the scheduler and the simulated board's state.

Runs only inside the `micropython` binary (the unix port). The shims in `sim/shims/`
(`machine`, `rp2`, `time`, `select`) replace MicroPython's built-in modules of the same names
(a file earlier on the module path wins over an extensible built-in), so the pen's own
`drivers/` run unchanged against the objects here.

Time is an integer count of microseconds, `SIM.now`. It only moves in `advance_to()`, which
steps the plant (the physics model) in `PLANT_DT_US` steps and fires timer callbacks on their
due microsecond. Two modes:
- deterministic: sleeping and idle waits advance virtual time at once (tests, benchmarks);
- real time: virtual time follows the wall clock (times `speed`), idle waits really wait for
  serial input (the pseudo-terminal), so host tools talk to the pen as to hardware.

A hard timer callback runs with the heap locked, as on the RP2040 where a hard IRQ cannot
allocate: any allocation in the control tick raises MemoryError in every simulated run.
"""

import sys
from array import array

import micropython

# The built-in modules, captured by `install()` before the shims shadow them.
real_time = None
real_select = None

PLANT_DT_US = 100
TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms/ticks_us wrap here on every port


class Board:
    """Levels and peripheral state of the simulated board, keyed by GPIO number."""

    def __init__(self):
        self.out = {}  # gpio -> level driven by the firmware (Pin.value(v))
        self.inp = {}  # gpio -> level driven by the plant (buttons, endstop, hall)
        self.pull = {}  # gpio -> Pin.PULL_UP / PULL_DOWN / None
        self.mode = {}  # gpio -> Pin.IN / Pin.OUT / ...
        self.pwm = {}  # gpio -> machine.PWM shim object
        self.adc = {}  # gpio -> function returning the raw 16-bit reading
        self.i2c = {}  # 7-bit address -> device model with write(buf) / read(n)
        self.uart = {}  # uart id -> device model
        self.irqs = {}  # gpio -> Pin with an irq handler
        # Register files of the peripherals a driver may access directly (32-bit words, the
        # RP2040's layout): the PWM block (8 slices x CSR, DIV, CTR, CC, TOP) and the two PIO
        # blocks' first registers (CTRL, FSTAT, FDEBUG, FLEVEL, TXF0-3, RXF0-3).
        self.pwm_regs = array("I", [0, 16, 0, 0, 0xFFFF] * 8)
        self.adc_regs = array("I", [0] * 5)  # ADC: CS, RESULT, FCS, FIFO, DIV
        self.pio_regs = {0x50200000: array("I", [0, 0x0F000F00] + [0] * 10),
                         0x50300000: array("I", [0, 0x0F000F00] + [0] * 10)}

    def set_input(self, gpio, level):
        """The plant drives an input; edge interrupts fire as the RP2040's would."""
        old = self.level(gpio)
        self.inp[gpio] = level
        if level == old:
            return
        p = self.irqs.get(gpio)
        if p is not None and p._irq is not None:
            trig = 8 if level else 4  # IRQ_RISING / IRQ_FALLING
            if p._irq_trigger & trig:
                p._irq(p)

    def level(self, gpio):
        """What a Pin in input mode reads: plant input, else own output, else its pull."""
        v = self.inp.get(gpio)
        if v is not None:
            return v
        v = self.out.get(gpio)
        if v is not None:
            return v
        return 1 if self.pull.get(gpio) == 1 else 0


class Sim:
    def __init__(self, realtime=False, speed=1):
        self.now = 0
        self.realtime = realtime
        self.speed = speed
        self.board = Board()
        self.timers = []  # machine.Timer shims that are armed
        self.devices = []  # objects with step(now_us, dt_us): the plant, PIO programs' models
        self.tick_hooks = []  # functions called after every plant step (side channel, probes)
        # The chip's own peripherals that work on their own time (the ADC converting), stepped
        # before the plant; a test's fresh board keeps them.
        self.peripherals = []
        self.irq_count = 0
        self.reset_requested = None
        self._wall0 = None
        self._virt0 = 0

    # -- virtual clock -------------------------------------------------------------------
    def advance_to(self, t):
        """Run the plant and the timers until virtual time `t` (µs)."""
        while self.now < t:
            step = t - self.now
            if step > PLANT_DT_US:
                step = PLANT_DT_US
            due = self._next_timer_due()
            if due is not None and due - self.now < step:
                step = due - self.now
                if step < 0:
                    step = 0
            if step:
                for d in self.peripherals:
                    d.step(self.now, step)
                for d in self.devices:
                    d.step(self.now, step)
                self.now += step
                for h in self.tick_hooks:
                    h(self.now)
            self._fire_timers()

    def advance(self, dt_us):
        self.advance_to(self.now + dt_us)

    def _next_timer_due(self):
        due = None
        for tm in self.timers:
            if due is None or tm.due < due:
                due = tm.due
        return due

    def _fire_timers(self):
        for tm in self.timers:
            if tm.due <= self.now:
                tm.fire(self.now)

    def sleep_us(self, us):
        if us <= 0:
            return
        target = self.now + us
        if self.realtime:
            self._wait_real(None, target)
        else:
            self.advance_to(target)

    # -- idle wait (asyncio's select.poll) ------------------------------------------------
    def wait_io(self, poller, timeout_ms):
        """Wait for I/O on a real poll object for up to `timeout_ms` of virtual time.

        Returns the real poller's result list (possibly empty)."""
        ready = poller.poll(0)
        if ready:
            return ready
        if timeout_ms == 0:
            return ready
        if self.realtime:
            target = None if timeout_ms < 0 else self.now + timeout_ms * 1000
            return self._wait_real(poller, target)
        # Deterministic: nothing external can arrive, so the wait is only a passage of time.
        if timeout_ms < 0:
            timeout_ms = 1000
        self.advance_to(self.now + timeout_ms * 1000)
        return poller.poll(0)

    def _wall_us(self):
        return real_time.ticks_diff(real_time.ticks_us(), self._wall0)

    def _wait_real(self, poller, target):
        """Real-time mode: step virtual time along with the wall clock until `target`."""
        if self._wall0 is None:
            self._wall0 = real_time.ticks_us()
            self._virt0 = self.now
        while target is None or self.now < target:
            nxt = self.now + 1000
            if target is not None and nxt > target:
                nxt = target
            self.advance_to(nxt)
            # Where the wall clock says virtual time should be; wait the difference.
            ahead_us = (self.now - self._virt0) // self.speed - self._wall_us()
            if ahead_us < -200000:
                # Fell far behind (a slow host, a debugger): don't try to catch up in a burst.
                self._virt0 = self.now
                self._wall0 = real_time.ticks_us()
                ahead_us = 0
            wait_ms = ahead_us // 1000 if ahead_us > 0 else 0
            if poller is not None:
                ready = poller.poll(wait_ms)
                if ready:
                    return ready
            elif wait_ms:
                real_time.sleep_ms(wait_ms)
        return []


SIM = None


def install(realtime=False, speed=1, shims_dir=None):
    """Create the simulation and put the shims in front of the built-in modules.

    Must run before anything imports `time`, `select`, `machine` or `rp2`."""
    global SIM, real_time, real_select
    import select as _select
    import time as _time

    real_time = _time
    real_select = _select
    SIM = Sim(realtime=realtime, speed=speed)
    if shims_dir is None:
        here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
        shims_dir = here + "/shims"
    if shims_dir not in sys.path:
        sys.path.append(shims_dir)
    # The unix port's C `_asyncio` queue stamps a task pushed without a key with the real
    # ticks_ms(); this wrapper stamps it with the virtual clock instead.
    sys.modules["_asyncio"] = _asyncio_on_virtual_clock()
    for name in ("time", "select", "machine", "rp2", "asyncio"):
        # Anything imported before install() bound the built-ins; forget it.
        if name in sys.modules:
            del sys.modules[name]
    return SIM


def _asyncio_on_virtual_clock():
    import _asyncio as c

    class TaskQueue:
        def __init__(self):
            self._q = c.TaskQueue()

        def peek(self):
            return self._q.peek()

        def push(self, v, key=None):
            self._q.push(v, (SIM.now // 1000) % TICKS_PERIOD if key is None else key)

        def pop(self):
            return self._q.pop()

        def remove(self, v):
            self._q.remove(v)

    class Namespace:
        pass

    ns = Namespace()
    ns.TaskQueue = TaskQueue
    ns.Task = c.Task
    return ns


def heap_locked_call(fn, arg):
    """Call fn(arg) with the heap locked, as a hard IRQ runs on the RP2040."""
    micropython.heap_lock()
    try:
        fn(arg)
    finally:
        micropython.heap_unlock()
