"""The harness itself: the virtual clock, the hard-timer heap lock, the PWM register model."""

import time

import machine
import micropython
from mphelp import SIM, check, raises


def test_virtual_clock_advances_only_when_told():
    t0 = time.ticks_ms()
    SIM.advance(250_000)
    check(time.ticks_diff(time.ticks_ms(), t0) == 250, "virtual ms")
    time.sleep_ms(100)
    check(time.ticks_diff(time.ticks_ms(), t0) == 350, "sleep advances the clock")


def test_allocating_tick_fails_under_heap_lock():
    """The proof harness for allocation-free loops: a hard-timer callback that allocates
    raises MemoryError, one that does not runs a whole simulated second."""
    sink = []

    def bad_tick(t):
        sink.append([1, 2, 3])  # allocates a list

    tm = machine.Timer(-1, freq=1000, callback=bad_tick, hard=True)
    e = raises(MemoryError, SIM.advance, 5_000)
    check(isinstance(e, MemoryError))
    check(not sink, "the allocation never succeeded")
    tm.deinit()

    count = bytearray(4)

    def good_tick(t):
        n = count[0] + 1
        count[0] = n & 0xFF

    tm = machine.Timer(-1, freq=1000, callback=good_tick, hard=True)
    SIM.advance(1_000_000)
    check(tm.calls == 1000, "1000 ticks in one simulated second, got %d" % tm.calls)
    tm.deinit()


def test_float_in_tick_is_an_allocation():
    """Floats are heap objects on the RP2040 port (and here): a float in the tick fails."""
    acc = [0]

    def float_tick(t):
        acc[0] = acc[0] * 0.5 + 1

    tm = machine.Timer(-1, freq=1000, callback=float_tick, hard=True)
    raises(MemoryError, SIM.advance, 2_000)
    tm.deinit()


def test_heap_unlocked_after_tick_failure():
    micropython.heap_lock()
    micropython.heap_unlock()
    x = [0] * 10  # allocation works again
    check(len(x) == 10)


def test_pwm_registers_follow_the_rp2_formulas():
    """20 kHz from 125 MHz: TOP = 6249 (6250 duty levels), divider 1; duty maps to CC."""
    pwm = machine.PWM(machine.Pin(2), freq=20_000, duty_u16=0)
    check(pwm.top == 6249, "TOP %d" % pwm.top)
    check(pwm.div16 == 16, "divider")
    check(pwm.freq() == 20_000, "freq readback")
    pwm.duty_u16(32768)
    check(pwm.cc == 3125, "CC at half duty: %d" % pwm.cc)
    pwm.duty_u16(65535)
    check(pwm.cc == 6250, "full duty")
    raises(ValueError, pwm.duty_u16, 70000)
