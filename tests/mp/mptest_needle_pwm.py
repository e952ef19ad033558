"""The motor's PWM and the buzzer's on the virtual pen's PWM block, which models the RP2040's
slices (one counter, one divider, one TOP per slice; channels A/B; one machine.PWM object per
slice channel, as ports/rp2/machine_pwm.c): the board's wiring keeps the motor at 20 kHz and
its duty through every buzzer tone, and the first draft's wiring (buzzer on GP18, the motor's
slice 1 A) is caught."""

import board_sim
import machine
from mphelp import SIM, check, req
from needle_rig import fresh_board

import hardware.pins as P


def _board(buzzer_gpio):
    """The board construction (drivers/board.py) with the buzzer on `buzzer_gpio`."""
    fresh_board()
    board_sim.VirtualPen(SIM)
    old = P.BUZZER
    P.BUZZER = buzzer_gpio
    try:
        from drivers.board import Board

        return Board()
    finally:
        P.BUZZER = old


def _interference(buzzer_gpio):
    """What a tone and buzzer.off() do to the running motor's PWM: a list of problems."""
    b = _board(buzzer_gpio)
    pwm = SIM.board.pwm[P.MOTOR_IN1]
    problems = []
    if pwm.freq() != 20_000:
        problems.append("motor PWM %d Hz after Board()" % pwm.freq())
    b.motor.enable()
    b.motor.drive(30000)
    cc = pwm.cc
    b.buzzer._tone(880)
    if pwm.freq() != 20_000:
        problems.append("motor PWM %d Hz during an 880 Hz tone" % pwm.freq())
    if pwm.fraction_q16() * 65535 // 65536 not in range(29990, 30010):
        problems.append("motor duty %d during a tone" % (pwm.fraction_q16() * 65535 // 65536))
    b.buzzer.off()
    if pwm.cc != cc or not pwm.enabled:
        problems.append("buzzer.off() changed the motor's compare %d -> %d" % (cc, pwm.cc))
    b.motor.coast()
    return problems


@req("HW-2")
def test_the_board_wiring_keeps_motor_and_buzzer_apart():
    """HW-2: on the board's wiring the motor PWM stays at 20 kHz with its duty through a
    buzzer tone and buzzer.off(); the buzzer plays its own frequency."""
    check(_interference(P.BUZZER) == [], "%r" % _interference(P.BUZZER))
    buz = SIM.board.pwm[P.BUZZER]
    mot = SIM.board.pwm[P.MOTOR_IN1]
    check(buz.slice != mot.slice, "buzzer on the motor's slice %d" % mot.slice)


@req("HW-2")
def test_the_old_wiring_is_caught_on_the_virtual_pen():
    """HW-2: the first draft's wiring (buzzer on GP18 = slice 1 A, the motor's channel) shows
    on the virtual pen what it did on the chip: the motor PWM at the buzzer's 2 kHz after
    Board(), retuned by a tone, its duty zeroed by buzzer.off()."""
    probs = _interference(18)
    check(len(probs) >= 3, "the shared slice went unnoticed: %r" % probs)
    check("motor PWM 2000 Hz after Board()" in probs, "%r" % probs)


@req("HW-3")
def test_slice_channels_share_counter_and_frequency():
    """HW-3: the PWM model follows machine_pwm.c: channels A and B of one slice share the
    frequency (setting it on one retunes the other and re-applies its duty), two pins on one
    slice channel are one object, deinit() on either stops the slice."""
    fresh_board()
    machine.reset_pwm()
    a = machine.PWM(machine.Pin(4), freq=20_000, duty_u16=32768)  # slice 2 A
    b = machine.PWM(machine.Pin(5), freq=1000, duty_u16=16384)  # slice 2 B
    check(a.freq() == 1000 and b.freq() == 1000, "one frequency per slice: %d" % a.freq())
    check(a.duty_u16() in (32767, 32768, 32769), "A's duty re-applied: %d" % a.duty_u16())
    check(abs(a.fraction_q16() - 32768) < 8 and abs(b.fraction_q16() - 16384) < 8, "fractions")
    check(machine.PWM(machine.Pin(20)) is a, "GP20 is slice 2 A too: the same object")
    b.deinit()
    check(not a.enabled and a.fraction_q16() == 0, "deinit of B stops A's counter too")
    a.duty_u16(100)
    check(a.enabled, "a duty on a set-up slice starts it again")
    c = machine.PWM(machine.Pin(6))
    check(c.slice == 3 and c.channel == 0 and not c.enabled, "a fresh slice waits for freq+duty")
    machine.Pin(6, machine.Pin.IN)
    check(6 not in SIM.board.pwm, "a pin set to a GPIO mode is no PWM output any more")
