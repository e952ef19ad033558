"""Needle motor H-bridge (DRV8833 class): forward drive by PWM on IN1 with IN2 held low, the
bridge enabled by nSLEEP.

The PWM period and duty are hardware: the control tick only writes a new compare value, which
costs one register write and allocates nothing. The tick writes it directly (`cc_addr`, the
slice's CC register, with `top1` = TOP + 1 counts per period: compare = duty_u16 * top1 /
65535); `drive()` does the same through machine.PWM for callers outside the tick. The motor
owns its PWM slice (hardware/pins.py): the tick writes the whole CC word, the other channel's
half 0 (IN2 is a plain output, not a PWM pin). `coast()` is the safe state (nSLEEP low:
outputs off, the winding open) and is callable from any context, including an IRQ.

Bridge truth table (forward-only pen):
  nSLEEP=0            -> outputs off, motor coasts         (safe state)
  IN1=PWM, IN2=0      -> drive during the on-time
  IN1=1,   IN2=1      -> brake (winding shorted through the low sides)
"""

from micropython import const

_DUTY_FULL = const(65535)


class Motor:
    """H-bridge driver.

    pwm_in1: machine.PWM on IN1; in2: machine.Pin (output) on IN2; sleep_n: machine.Pin (output)
    on nSLEEP; in1_gpio: IN1's GPIO number (its PWM slice and channel: the register the tick
    writes). The constructor leaves the bridge disabled with zero duty."""

    FREQ_HZ = 20_000  # above hearing; 125 MHz / 20 kHz = 6250 duty levels (TOP = 6249)
    SYS_HZ = 125_000_000

    def __init__(self, pwm_in1, in2, sleep_n, in1_gpio, freq_hz=None):
        from drivers import regs

        self._pwm = pwm_in1
        self._in2 = in2
        self._sleep = sleep_n
        self.duty = 0  # duty_u16 last programmed by drive() (0..65535)
        self.enabled = False
        self.braking = False
        self._sleep.value(0)
        self._in2.value(0)
        f = freq_hz or self.FREQ_HZ
        # TOP + 1 at divider 1 (machine_pwm.c's rounding); duty_u16 * top1 must stay a small
        # int in the tick: top1 < 16384, i.e. a frequency above 7.6 kHz.
        self.top1 = (self.SYS_HZ + f // 2) // f
        if not 1000 <= self.top1 < 16384:
            raise ValueError("motor PWM 7.7..125 kHz")
        self._pwm.freq(f)
        self._pwm.duty_u16(0)
        self.cc_addr, self.cc_shift = regs.pwm_cc(in1_gpio)
        # Single C calls for the tick: nSLEEP low (a protection's first act), IN2 high (with
        # the compare at TOP + 1 the brake; enable() and coast() put IN2 back low).
        self.off = sleep_n.off
        self.in2_on = in2.on

    def freq(self):
        return self._pwm.freq()

    def enable(self):
        """Wake the bridge for forward drive at the current duty (IN2 low)."""
        self._in2.value(0)
        self.braking = False
        self._sleep.value(1)
        self.enabled = True

    def drive(self, duty_u16):
        """Forward drive at duty_u16 (0..65535, clamped). Allocation-free: tick-safe."""
        if duty_u16 < 0:
            duty_u16 = 0
        elif duty_u16 > _DUTY_FULL:
            duty_u16 = _DUTY_FULL
        if self.braking:
            self._in2.value(0)
            self.braking = False
        self._pwm.duty_u16(duty_u16)
        self.duty = duty_u16

    def brake(self):
        """Short the winding through the bridge (both inputs high): stops the rotor fast."""
        self._pwm.duty_u16(_DUTY_FULL)
        self._in2.value(1)
        self._sleep.value(1)
        self.duty = 0
        self.braking = True
        self.enabled = True

    def coast(self):
        """Safe state: outputs off (nSLEEP low), zero duty. Any context, allocation-free."""
        self._sleep.value(0)
        self._pwm.duty_u16(0)
        self._in2.value(0)
        self.duty = 0
        self.braking = False
        self.enabled = False
