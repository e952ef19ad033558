"""The real viper tick on MicroPython with the hardware's extreme inputs, every call with the
heap locked (as the hard IRQ on the RP2040): pegged and dead ADC inputs, FIFO words from 0 and
a 1 µs glitch to the longest period, starts, stops and every trip. Nothing may allocate or
raise, and what the tick leaves (rate, duty, the PWM compare register) stays in its range.
tests/test_needle_ranges.py re-runs the same source with range-checked integers: no
intermediate reaches 2**30."""

import micropython
import rp2
from mphelp import SIM, check, req
from needle_rig import Rig, fresh_board

import hardware.pins as P

LIMIT = 1_000_000


def _rig():
    fresh_board()
    r = Rig(timer=False)
    import pio_hall

    pio_hall._by_sm[0].detach()  # the test, not the plant, makes the FIFO words
    return r


def _inputs(i16, b16):
    SIM.board.adc[P.MOTOR_CURRENT] = lambda: i16
    SIM.board.adc[P.BATTERY] = lambda: b16


def _ticks(r, n, words=()):
    sm = rp2.StateMachine(0)
    for w in words:
        sm.model_push(w)
    pwm = SIM.board.pwm[P.MOTOR_IN1]
    d = r.drive
    for _ in range(n):
        SIM.advance(1000)  # the plant and the ADC's conversion between two ticks
        micropython.heap_lock()
        try:
            d.tick()
        finally:
            micropython.heap_unlock()
        check(0 <= d.duty <= d.DUTY_MAX, "duty %d" % d.duty)
        check(0 <= d.rate_mhz <= 500_000, "rate %d" % d.rate_mhz)
        check(0 <= pwm.cc <= pwm.top + 1, "compare %d" % pwm.cc)


@req("ND-15", "ND-19")
def test_extremes_under_the_heap_lock():
    """ND-15, ND-19: every extreme input through the real tick with the heap locked."""
    base = LIMIT + 2
    for i16, b16 in ((65535, 65535), (0, 65535), (65535, 0), (0, 0), (9920, 38720)):
        r = _rig()
        _inputs(i16, b16)
        _ticks(r, 8, [0, base - 1, 1, LIMIT, 0])
        _inputs(9920, 38720)  # 200 mA, 3.9 V
        _ticks(r, 8)
        r.drive.start(150)
        for words in ([0], [base - 6667] * 3, [base - 1] * 4, [base - 2000], [LIMIT, 1, 0],
                      [base - 13334], [], [base - 3, base - 6664]):  # fmt: skip
            _inputs(i16, b16)
            _ticks(r, 7, words)
        _ticks(r, 200)  # no strokes: a trip (stall, or another protection first)
        check(r.drive.fault != 0, "no trip with inputs %d/%d" % (i16, b16))
        r.drive.kill()


@req("ND-13", "ND-15")
def test_every_trip_under_the_heap_lock():
    """ND-13, ND-15: stall, sensor loss, over-current, runaway, battery low, overheat and the
    dead-man trip from inside a heap-locked tick, each with its fault latched."""
    base = LIMIT + 2
    cases = (
        ("stall", 0, 65535, []),
        ("pegged current", 65535, 65535, [base - 6667] * 30),
        ("runaway", 9920, 65535, [base - 2000] * 60),
        ("battery", 9920, 0, [base - 6667] * 30),
        ("dead-man", 9920, 38720, [base - 6667] * 60),
    )
    for name, i16, b16, words in cases:
        r = _rig()
        _inputs(9920, 38720)
        _ticks(r, 4)
        r.drive.start(150)  # (Refused if not)
        if name == "dead-man":
            r.drive.watch_loop(20)
        _ticks(r, 3, [0, base - 6667, base - 6667])
        _inputs(i16, b16)
        n = 0
        while not r.drive.fault and n < 300:
            _ticks(r, 1, words[:1] if n % 6 == 0 else ())
            if n % 6 == 0:
                words = words[1:]
            n += 1
        check(r.drive.fault != 0, "%s: no trip" % name)
        check(not r.drive.running and not SIM.board.out.get(P.MOTOR_SLEEP_N), "%s: not off" % name)
