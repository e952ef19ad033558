"""`machine` for the virtual pen: the RP2040 peripherals the drivers use, on the simulated board.

The objects record what the drivers program at the level of the RP2040's registers (PWM TOP and
compare values, the clock divider) so tests can check the values the hardware would receive."""


import simrt

_SIM = simrt.SIM
_BOARD = _SIM.board

PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 4  # not an rp2 cause: machine.soft_reset()/bootloader() here (VM restart only)
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
    # As on the RP2040 (ports/rp2/modmachine.c): machine.reset() is watchdog_reboot(), and
    # reset_cause() reads WDT_RESET after it, the same as after a watchdog timeout.
    _SIM.reset_requested = WDT_RESET
    raise SimReset(WDT_RESET)


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
            _BOARD.pwm.pop(self.id, None)  # gpio_set_function(SIO): no longer a PWM output
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


# -- PWM: the RP2040's register block, and machine.PWM as ports/rp2/machine_pwm.c drives it ----
# Eight slices, each one counter with one divider and one TOP (so one frequency), and two
# compare channels: A on even GPIOs, B on odd, slice = (gpio >> 1) & 7. The registers live in
# `_BOARD.pwm_regs` (32-bit words, the chip's layout: per slice CSR, DIV, CTR, CC, TOP), which
# the plant reads and which a driver may write directly (register_address()). machine.PWM
# objects are views of one slice's channel, as on the chip: PWM(Pin(2)) and PWM(Pin(18)) are the
# same object (slice 1 channel A), and a frequency set through any of them is the slice's.
_PWM_BASE = 0x40050000
_PWM_STRIDE = 0x14
_CSR = 0
_DIV = 1
_CC = 3
_TOP = 4
_VALUE_NOT_SET = -1
_DUTY_NOT_SET = 0
_DUTY_U16 = 1
_DUTY_NS = 2


def _pwm_reg(sl, reg):
    return _BOARD.pwm_regs[sl * 5 + reg]


def _pwm_set(sl, reg, v):
    _BOARD.pwm_regs[sl * 5 + reg] = v & 0xFFFFFFFF


_pwm_channels = {}  # slice * 2 + channel -> the one PWM object of that channel
_slice_freq_set = [False] * 8


def _pwm_users():
    return _BOARD.pwm


class PWM:
    """rp2 machine.PWM: TOP and divider follow from the frequency exactly as
    ports/rp2/machine_pwm.c computes them (TOP at most 65534, divider 1 when possible); a
    frequency change re-applies the duty of both channels of the slice; deinit() stops the
    whole slice; the duty read back comes from the CC register."""

    _TOP_MAX = 65534

    def __new__(cls, pin, *args, **kw):
        gpio = pin.id if isinstance(pin, Pin) else int(pin)
        key = ((gpio >> 1) & 7) * 2 + (gpio & 1)
        obj = _pwm_channels.get(key)
        if obj is None:
            obj = object.__new__(cls)
            obj.slice = key >> 1
            obj.channel = key & 1
            obj._base = obj.slice * 5  # this slice's first word in the register file
            obj._sh = 16 * obj.channel  # this channel's half of CC
            _pwm_channels[key] = obj
        return obj

    def __init__(self, pin, freq=_VALUE_NOT_SET, duty_u16=_VALUE_NOT_SET, duty_ns=_VALUE_NOT_SET,
                 invert=_VALUE_NOT_SET):  # fmt: skip
        self.gpio = pin.id if isinstance(pin, Pin) else int(pin)
        self.invert = 0
        self._duty_type = _DUTY_NOT_SET
        self._duty = 0
        _BOARD.mode[self.gpio] = Pin.ALT  # gpio_set_function(gpio, GPIO_FUNC_PWM)
        _BOARD.pwm[self.gpio] = self
        self.init(freq, duty_u16, duty_ns, invert)

    def init(self, freq=_VALUE_NOT_SET, duty_u16=_VALUE_NOT_SET, duty_ns=_VALUE_NOT_SET,
             invert=_VALUE_NOT_SET):  # fmt: skip
        if freq is None:
            freq = _VALUE_NOT_SET
        if freq != _VALUE_NOT_SET:
            self._freq_set(freq)
        if duty_u16 is not None and duty_u16 != _VALUE_NOT_SET:
            self._duty_set_u16(duty_u16, False)
        if duty_ns is not None and duty_ns != _VALUE_NOT_SET:
            self._duty_set_ns(duty_ns, False)
        if invert is not None and invert != _VALUE_NOT_SET:
            self.invert = 1 if invert else 0
        self._start()

    # -- what the registers say (the plant and the tests read these) ---------------------------
    # (The plant reads these every plant step: kept to one register read each.)
    @property
    def top(self):
        return _BOARD.pwm_regs[self._base + _TOP]

    @property
    def div16(self):
        return _BOARD.pwm_regs[self._base + _DIV]

    @property
    def cc(self):
        return (_BOARD.pwm_regs[self._base + _CC] >> self._sh) & 0xFFFF

    @property
    def enabled(self):
        return bool(_BOARD.pwm_regs[self._base] & 1)

    @property
    def duty_requested(self):
        return self._duty if self._duty_type == _DUTY_U16 else 0

    # -- machine.PWM ------------------------------------------------------------------------
    def _start(self):
        # Allocation-free: a hard-IRQ tick sets duties through here with the heap locked.
        if _slice_freq_set[self.slice] and self._duty_type != _DUTY_NOT_SET:
            other = self._other()
            inv_o = other.invert if other is not None else 0
            if self.channel:
                inv = (inv_o << 2) | (self.invert << 3)
            else:
                inv = (self.invert << 2) | (inv_o << 3)
            csr = _pwm_reg(self.slice, _CSR) & ~0xC
            _pwm_set(self.slice, _CSR, csr | 1 | inv)

    def _other(self):
        return _pwm_channels.get(self.slice * 2 + (self.channel ^ 1))

    def freq(self, f=None):
        if f is None:
            return _SYS_HZ * 16 // (self.div16 * (self.top + 1))
        self._freq_set(f)

    def _freq_set(self, f):
        if f <= 0:
            raise ValueError("freq too small")
        if (_SYS_HZ + f // 2) // f < self._TOP_MAX:
            div16 = 16
            top = (_SYS_HZ + f // 2) // f - 1
        else:
            div16 = (16 * _SYS_HZ + f * self._TOP_MAX - 1) // (f * self._TOP_MAX)
            top = (16 * _SYS_HZ + div16 * f // 2) // (div16 * f) - 1
        if div16 < 16:
            raise ValueError("freq too large")
        if div16 >= 256 * 16:
            raise ValueError("freq too small")
        # One divider and one TOP per slice: both channels' outputs change frequency.
        _pwm_set(self.slice, _DIV, div16)
        _pwm_set(self.slice, _TOP, top)
        _slice_freq_set[self.slice] = True
        self._reapply()
        other = self._other()
        if other is not None:
            other._reapply()

    def _reapply(self):
        if self._duty_type == _DUTY_U16:
            self._duty_set_u16(self._duty)
        elif self._duty_type == _DUTY_NS:
            self._duty_set_ns(self._duty)

    def duty_u16(self, d=None):
        if d is None:
            top = self.top
            return (self.cc * 65535 + (top + 1) // 2) // (top + 1)
        self._duty_set_u16(d)

    def _duty_set_u16(self, d, start=True):
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be 0..65535")
        # machine_pwm.c: cc = duty_u16 * (top + 1) / 65535, rounded; one CC word per slice
        # holds both channels (A in bits 0..15, B in 16..31).
        cc = (d * (self.top + 1) + 65535 // 2) // 65535
        self._set_cc(cc)
        self._duty = d
        self._duty_type = _DUTY_U16
        if start:
            self._start()

    def _set_cc(self, cc):
        shift = 16 * self.channel
        word = _pwm_reg(self.slice, _CC) & ~(0xFFFF << shift)
        _pwm_set(self.slice, _CC, word | ((cc & 0xFFFF) << shift))

    def _slice_hz(self):
        return (16 * _SYS_HZ + self.div16 // 2) // self.div16

    def duty_ns(self, ns=None):
        hz = self._slice_hz()
        if ns is None:
            return (self.cc * 1_000_000_000 + hz // 2) // hz
        self._duty_set_ns(ns)

    def _duty_set_ns(self, ns, start=True):
        cc = (ns * self._slice_hz() + 500_000_000) // 1_000_000_000
        if cc > 65535:
            raise ValueError("duty larger than period")
        self._set_cc(cc)
        self._duty = ns
        self._duty_type = _DUTY_NS
        if start:
            self._start()

    def fraction_q16(self):
        """The output's high time as a fraction of the period, 0..65536 (what the plant sees).
        A stopped slice holds its output low here."""
        regs = _BOARD.pwm_regs
        b = self._base
        csr = regs[b]
        if not csr & 1:
            return 0
        f = ((regs[b + _CC] >> self._sh) & 0xFFFF) * 65536 // (regs[b + _TOP] + 1)
        if f > 65536:
            f = 65536
        return 65536 - f if csr & (4 << self.channel) else f

    def deinit(self):
        # machine_pwm.c: pwm_set_enabled(slice, false): the whole slice, both channels.
        _pwm_set(self.slice, _CSR, _pwm_reg(self.slice, _CSR) & ~1)

    def __repr__(self):
        return "<PWM slice=%d channel=%d invert=%d>" % (self.slice, self.channel, self.invert)


def register_address(addr):
    """The virtual pen's answer to a raw peripheral register address (RP2040 datasheet): the
    address of the word in the simulated register file that stands for it, so a driver that
    writes registers directly (viper ptr32, machine.mem32 on the chip) writes what the plant
    reads. On the chip there is no such function: drivers use the address itself."""
    import uctypes

    if _PWM_BASE <= addr < _PWM_BASE + 8 * _PWM_STRIDE:
        return uctypes.addressof(_BOARD.pwm_regs) + (addr - _PWM_BASE)
    if _ADC_BASE <= addr < _ADC_BASE + 4 * len(_BOARD.adc_regs):
        return uctypes.addressof(_BOARD.adc_regs) + (addr - _ADC_BASE)
    for base, regs in _BOARD.pio_regs.items():
        if base <= addr < base + 4 * len(regs):
            return uctypes.addressof(regs) + (addr - base)
    raise ValueError("no register at 0x%08x on the virtual pen" % addr)


def reset_pwm():
    """Power-on state of the PWM block (a fresh board)."""
    regs = _BOARD.pwm_regs
    for sl in range(8):
        for reg, v in ((_CSR, 0), (_DIV, 16), (2, 0), (_CC, 0), (_TOP, 0xFFFF)):
            regs[sl * 5 + reg] = v
        _slice_freq_set[sl] = False
    _pwm_channels.clear()


# -- ADC: the register block (CS, RESULT) and machine.ADC ---------------------------------------
_ADC_BASE = 0x4004C000
_ADC_EN = 1
_ADC_START_ONCE = 4
_ADC_READY = 0x100


class _AdcBlock:
    """The ADC's registers as a driver may use them directly: a write of CS with START_ONCE
    starts a conversion of the input AINSEL (CS bits 12..14, channel = gpio - 26), which is in
    RESULT (12 bits) with READY set at the next plant step (the chip takes 2 µs)."""

    def step(self, now, dt):
        regs = _BOARD.adc_regs
        cs = regs[0]
        if cs & _ADC_START_ONCE:
            regs[1] = _adc_raw16(26 + ((cs >> 12) & 7)) >> 4
            regs[0] = (cs & ~_ADC_START_ONCE) | _ADC_READY


def _adc_raw16(gpio):
    f = _BOARD.adc.get(gpio)
    return f() if f is not None else 0


_SIM.peripherals.append(_AdcBlock())


class ADC:
    CORE_TEMP = 4

    def __init__(self, pin):
        self.gpio = pin.id if isinstance(pin, Pin) else (26 + pin if pin < 5 else pin)
        _BOARD.adc_regs[0] |= _ADC_EN | _ADC_READY

    def read_u16(self):
        # adc_select_input + adc_read, as ports/rp2 does: AINSEL and RESULT change (a tick
        # that started a conversion of another input sees AINSEL moved and its sample gone).
        raw = _adc_raw16(self.gpio) >> 4
        regs = _BOARD.adc_regs
        regs[0] = (regs[0] & ~(7 << 12) & ~_ADC_START_ONCE) | ((self.gpio - 26) << 12) | _ADC_READY
        regs[1] = raw
        return (raw << 4) | (raw >> 8)


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


