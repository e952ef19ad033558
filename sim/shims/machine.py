"""`machine` for the virtual pen: the RP2040 peripherals the drivers use, on the simulated board.

The objects record what the drivers program at the level of the RP2040's registers (PWM TOP and
compare values, the clock divider) so tests can check the values the hardware would receive."""


import simrt

_SIM = simrt.SIM
_BOARD = _SIM.board

PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 4  # not an rp2 cause; used for machine.reset() in the virtual pen
_RESET_EXIT = {PWRON_RESET: 80, WDT_RESET: 83, SOFT_RESET: 84}
_SYS_HZ = 125_000_000
_cause = PWRON_RESET


class SimReset(SystemExit):
    """The virtual pen resets: the process ends (its exit status tells the supervisor the
    cause) and the supervisor boots it again. A SystemExit, so no `except Exception` in the
    firmware can swallow it, and the REPL exits on it too."""

    def __init__(self, cause):
        super().__init__(_RESET_EXIT.get(cause, 84))
        self.cause = cause


def _set_cause(c):
    global _cause
    _cause = c


def reset_cause():
    return _cause


def reset():
    _SIM.reset_requested = SOFT_RESET
    raise SimReset(SOFT_RESET)


def soft_reset():
    reset()


def freq(hz=None):
    return _SYS_HZ


def unique_id():
    return b"\xe6\x61\x38\x52\x83\x2a\x4b\x21"


def idle():
    _SIM.sleep_us(10)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def bootloader():
    raise SimReset(SOFT_RESET)


def lightsleep(ms=None):
    _SIM.sleep_us((ms or 1) * 1000)


deepsleep = lightsleep


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._irq = None
        self._irq_trigger = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            _BOARD.mode[self.id] = mode
        if pull != -1:
            _BOARD.pull[self.id] = pull
        if value is not None:
            _BOARD.out[self.id] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            if _BOARD.mode.get(self.id) == Pin.OUT:
                return _BOARD.out.get(self.id, 0)
            return _BOARD.level(self.id)
        _BOARD.out[self.id] = 1 if v else 0

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    high = on
    low = off

    def toggle(self):
        self.value(0 if _BOARD.out.get(self.id, 0) else 1)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self._irq = handler
        self._irq_trigger = trigger
        _BOARD.irqs[self.id] = self if handler else None

    def __repr__(self):
        return "Pin(GPIO%d)" % self.id


class PWM:
    """rp2 PWM: one 16-bit counter per slice; TOP and divider follow from the frequency exactly
    as ports/rp2/machine_pwm.c computes them (TOP at most 65534, divider 1 when possible)."""

    _TOP_MAX = 65534

    def __init__(self, pin, freq=None, duty_u16=None, duty_ns=None, invert=False):
        self.gpio = pin.id if isinstance(pin, Pin) else int(pin)
        self.slice = (self.gpio >> 1) & 7
        self.channel = self.gpio & 1
        self.top = 0xFFFF
        self.div16 = 16
        self.cc = 0
        self.duty_requested = 0
        self.invert = invert
        self.enabled = True
        self.history = []  # (time_us, top, cc) each time the compare value changes
        self.history_skipped = 0  # changes made with the heap locked (not logged)
        _BOARD.pwm[self.gpio] = self
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def init(self, freq=None, duty_u16=None, duty_ns=None, invert=None):
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        if invert is not None:
            self.invert = invert
        self.enabled = True

    def freq(self, f=None):
        if f is None:
            return _SYS_HZ * 16 // (self.div16 * (self.top + 1))
        if f <= 0:
            raise ValueError("freq too small")
        if (_SYS_HZ + f // 2) // f < self._TOP_MAX:
            div16 = 16
            top = (_SYS_HZ + f // 2) // f - 1
        else:
            div16 = (16 * _SYS_HZ + f * self._TOP_MAX - 1) // (f * self._TOP_MAX)
            if div16 > 256 * 16:
                raise ValueError("freq too small")
            top = (16 * _SYS_HZ + div16 * f // 2) // (div16 * f) - 1
        # Both channels of a slice share TOP and divider.
        for p in _BOARD.pwm.values():
            if p.slice == self.slice:
                p.top = top
                p.div16 = div16
                p._apply(p.duty_requested)

    def duty_u16(self, d=None):
        if d is None:
            return self.duty_requested
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        self._apply(d)

    def _apply(self, d):
        self.duty_requested = d
        # machine_pwm.c: cc = duty_u16 * (top + 1) / 65535, rounded.
        cc = (d * (self.top + 1) + 65535 // 2) // 65535
        if cc != self.cc:
            self.cc = cc
            try:
                self.history.append((_SIM.now, self.top, cc))
            except MemoryError:
                # A hard-timer tick (heap locked) set the duty: the registers (cc) are
                # updated, only this log entry is skipped.
                self.history_skipped += 1
                return
            if len(self.history) > 64:
                del self.history[0]

    def duty_ns(self, ns=None):
        period_ns = 1_000_000_000 // max(1, self.freq())
        if ns is None:
            return self.duty_requested * period_ns // 65535
        self.duty_u16(min(65535, ns * 65535 // period_ns))

    def fraction_q16(self):
        """The output's high time as a fraction of the period, 0..65536 (what the plant sees)."""
        if not self.enabled:
            return 0
        f = self.cc * 65536 // (self.top + 1)
        if f > 65536:
            f = 65536
        return 65536 - f if self.invert else f

    def deinit(self):
        self.enabled = False
        self.cc = 0


class ADC:
    CORE_TEMP = 4

    def __init__(self, pin):
        self.gpio = pin.id if isinstance(pin, Pin) else (26 + pin if pin < 5 else pin)

    def read_u16(self):
        f = _BOARD.adc.get(self.gpio)
        return f() if f is not None else 0


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, mode=PERIODIC, period=-1, freq=-1, callback=None, hard=True,
                 tick_hz=1000):  # fmt: skip
        self.callback = None
        self.period_us = 0
        self.due = 0
        self.hard = True
        self.mode = mode
        self.calls = 0
        if callback is not None:
            self.init(mode=mode, period=period, freq=freq, callback=callback, hard=hard,
                      tick_hz=tick_hz)  # fmt: skip

    def init(self, mode=PERIODIC, period=-1, freq=-1, callback=None, hard=True, tick_hz=1000):
        if freq > 0:
            self.period_us = 1_000_000 // freq
        elif period > 0:
            self.period_us = period * 1_000_000 // tick_hz
        else:
            raise ValueError("period or freq required")
        self.mode = mode
        self.callback = callback
        self.hard = hard
        self.due = _SIM.now + self.period_us
        if self not in _SIM.timers:
            _SIM.timers.append(self)

    def deinit(self):
        if self in _SIM.timers:
            _SIM.timers.remove(self)

    def fire(self, now):
        if self.mode == Timer.PERIODIC:
            self.due += self.period_us
        else:
            self.deinit()
        self.calls += 1
        cb = self.callback
        if cb is None:
            return
        if self.hard:
            simrt.heap_locked_call(cb, self)
        else:
            cb(self)


class WDT:
    """The RP2040 watchdog (maximum 8388 ms): if not fed in time, the pen resets."""

    def __init__(self, id=0, timeout=5000):
        if not 1 <= timeout <= 8388:
            raise ValueError("timeout 1..8388 ms")
        self.timeout_us = timeout * 1000
        self.last = _SIM.now
        self.feeds = 0  # tests: how often the firmware fed it
        _SIM.devices.append(self)
        _SIM.wdt = self

    def feed(self):
        self.last = _SIM.now
        self.feeds += 1

    def step(self, now, dt):
        if now + dt - self.last > self.timeout_us:
            _SIM.reset_requested = WDT_RESET
            raise SimReset(WDT_RESET)


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400_000):
        self.id = id

    def scan(self):
        return sorted(_BOARD.i2c)

    def _dev(self, addr):
        d = _BOARD.i2c.get(addr)
        if d is None:
            raise OSError(5)  # EIO: no ACK
        return d

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(bytes(buf))
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        d = self._dev(addr)
        data = b"".join(bytes(b) for b in vector)
        d.write(data)
        return len(data)

    def readfrom(self, addr, n, stop=True):
        return self._dev(addr).read(n)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).read(len(buf))
        buf[: len(data)] = data


class UART:
    def __init__(self, id, baudrate=115200, tx=None, rx=None, **kw):
        self.id = id
        self._dev = _BOARD.uart.get(id)

    def write(self, buf):
        if self._dev is not None:
            self._dev.write(bytes(buf))
        return len(buf)

    def read(self, n=-1):
        if self._dev is None:
            return None
        return self._dev.read(n)

    def any(self):
        return 0 if self._dev is None else self._dev.any()


def exit_code(cause):
    """Process exit status that tells the supervisor to boot the pen again with this cause."""
    return _RESET_EXIT.get(cause, 84)


