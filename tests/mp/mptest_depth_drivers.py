"""The depth stop's drivers on the virtual board: the PIO step generator (segment words,
exact direction changes, completion counting, enable pin) and the debounced endstop."""

import machine
import micropython
from depth_rig import Rig
from mphelp import SIM, check, raises, req

import hardware.pins as P
from drivers.endstop import Endstop
from drivers.stepper_pio import StepperPIO, encode, word_steps


class _Recorder:
    """Stands in for the plant's on_step: records (t_us, direction) of every STEP edge."""

    def __init__(self, plant):
        self.plant = plant
        self.t = []
        self.d = bytearray()
        self._orig = plant.on_step
        plant.on_step = self.on_step

    def on_step(self, t_us, direction):
        self.t.append(t_us)
        self.d.append(direction)
        self._orig(t_us, direction)


@req("DS-50")
def test_segment_words():
    """DS-50: a segment encodes as delay | dir << 16 | (steps - 1) << 17, below 2**30;
    segments the program cannot run are refused."""
    w = encode(5, 100, 1)
    check(w == (4 << 17) | (1 << 16) | 88, hex(w))
    check(word_steps(w) == 5 and word_steps(encode(7, 500, 0)) == -7)
    check(encode(8192, 12 + 0xFFFF, 1) < (1 << 30))
    for bad in ((0, 100, 1), (8193, 100, 1), (1, 11, 0), (1, 12 + 0x10000, 0)):
        raises(ValueError, encode, *bad)


@req("DS-51")
def test_pulses_intervals_and_direction_changes_are_exact():
    """DS-51: queued segments come out as exactly their steps, at exactly their interval
    within a segment, with the direction switching exactly between segments; the count of
    completed steps equals the pulses the driver emitted."""
    rig = Rig()
    st = rig.stepper
    rec = _Recorder(rig.plant)
    st.enable(True)
    plan = ((5, 400, 1), (3, 250, 0), (7, 1000, 1), (1, 100, 0), (4, 120, 1))
    for s, iv, d in plan:
        check(st.queue(s, iv, d))
    for _ in range(40):
        st.service()
        SIM.advance(1000)
    st.service()
    expect = bytearray()
    for s, _, d in plan:
        expect.extend(bytes([d]) * s)
    check(rec.d == expect, "directions %r" % rec.d)
    i = 0
    for s, iv, _ in plan:
        for k in range(1, s):
            check(rec.t[i + k] - rec.t[i + k - 1] == iv, "interval in segment %d" % i)
        i += s
    check(st.position == 5 - 3 + 7 - 1 + 4 and not st.busy and st._sm.words_read == 5)
    check(rig.plant.pulses == st.position)


@req("DS-52")
def test_in_flight_never_exceeds_the_rx_fifo():
    """DS-52: at most 4 segments are handed to the state machine before their completion
    tokens are read, so push(noblock) can never drop a token and the count stays exact even if
    the driver is serviced late."""
    rig = Rig()
    st = rig.stepper
    st.enable(True)
    for _ in range(8):
        st.queue(2, 50, 1)
    check(not st.queue(2, 50, 1), "queue should be full")
    st.service()
    check(st.in_flight == 4 and st.space() == 4)
    SIM.advance(50_000)  # serviced very late: all four done
    check(len(st._sm.rx) == 4)
    st.service()
    check(st.position == 8 and st.in_flight == 4)
    SIM.advance(50_000)
    st.service()
    check(st.position == 16 and not st.busy)
    st.queue(3, 50, 0)
    st.flush()
    check(not st.busy and st.position == 16)


@req("DS-53")
def test_disabled_driver_moves_nothing():
    """DS-53: with ENN high (the default after construction) the driver ignores pulses;
    enable() drives ENN low."""
    rig = Rig()
    st = rig.stepper
    check(not st.enabled and SIM.board.out.get(P.STEP_EN_N) == 1)
    u0 = rig.plant.motor_usteps
    st.queue(10, 500, 1)
    for _ in range(8):
        st.service()
        SIM.advance(1000)
    check(not st.busy and rig.plant.motor_usteps == u0 and rig.plant.pulses == 0)
    st.enable(True)
    check(st.enabled and SIM.board.out.get(P.STEP_EN_N) == 0)
    st.queue(10, 500, 1)  # 2000 steps/s: a rate the motor starts at from rest
    for _ in range(8):
        st.service()
        SIM.advance(1000)
    check(rig.plant.motor_usteps == u0 + 10, "at %d" % rig.plant.motor_usteps)


class _FakePin:
    def __init__(self, v=1):
        self.v = v

    def value(self):
        return self.v


@req("DS-54")
def test_endstop_debounce_integrator():
    """DS-54: the endstop (active low) changes state only after SAMPLES consistent
    readings; a glitch shorter than that never changes it; the state has hysteresis."""
    pin = _FakePin(1)
    es = Endstop(pin)
    check(not es.closed and es.settled and not es.raw())
    pin.v = 0
    check(es.raw())
    check(not es.sample() and not es.sample() and not es.settled)
    pin.v = 1
    es.sample()
    es.sample()
    check(not es.closed and es.settled, "a 2-sample glitch changed the state")
    pin.v = 0
    for _ in range(Endstop.SAMPLES - 1):
        check(not es.sample())
    check(es.sample() and es.closed and es.settled)
    pin.v = 1
    check(es.sample() and not es.settled)  # one open reading: still closed
    pin.v = 0
    check(es.sample() and es.settled)
    pin.v = 1
    for _ in range(Endstop.SAMPLES):
        es.sample()
    check(not es.closed)
    hi = Endstop(_FakePin(1), active_low=False, samples=2)
    check(hi.closed and hi.raw())
    es2 = Endstop(_FakePin(0))
    check(es2.closed, "prime() takes the power-up reading")


@req("DS-54", "DS-55")
def test_endstop_sampling_allocates_nothing_and_sees_the_switch():
    """DS-54, DS-55: sample() runs under heap_lock (it may run in an IRQ); wired to the
    virtual board, the switch reads closed at the retracted end."""
    rig = Rig()
    es = Endstop(machine.Pin(P.ENDSTOP_N, machine.Pin.IN, machine.Pin.PULL_UP))
    check(not es.closed)
    rig.place(-20)
    SIM.advance(1000)
    micropython.heap_lock()
    try:
        for _ in range(Endstop.SAMPLES):
            es.sample()
    finally:
        micropython.heap_unlock()
    check(es.closed)


def test_stepper_needs_its_own_state_machine_model():
    """The virtual pen runs the step program through its registered model (sim/pio_stepper)."""
    rig = Rig()
    check(type(rig.model).__name__ == "StepperModel")
    check(isinstance(rig.stepper, StepperPIO))
