"""Behavioural model of the depth stepper's PIO program (`stepper_segments` in
drivers/stepper_pio.py), cycle-exact at the level the firmware and the plant observe.

The program, per FIFO word (see the driver's docstring for the word layout):
    cycle 0                 pull (stalls while the TX FIFO is empty)
    cycle DIR_CYCLE (3)     out pins, 1   -> DIR pin = the word's dir bit
    cycle FIRST_STEP (5)    first STEP rising edge; then one every (delay + 12) cycles,
                            each high for 8 cycles
    steps * (delay + 12) + 5   push (noblock) the completion token (the delay value)
    steps * (delay + 12) + 6   pull of the next word
The functions below are that arithmetic; tests/host/test_pio_stepper.py runs the assembled
program in an instruction-level emulator and checks it against them.
"""

import hardware.pins as P

STEP_CYCLES = 12
FIRST_STEP_CYCLES = 5
DIR_CYCLE = 3
SEG_CYCLES = 6
HIGH_CYCLES = 8


def decode(word):
    """-> (steps, delay, direction)"""
    return (word >> 17) + 1, word & 0xFFFF, (word >> 16) & 1


def rising_edges(word):
    """Cycles (from the pull) of each STEP rising edge of one segment."""
    steps, delay, _ = decode(word)
    period = delay + STEP_CYCLES
    return [FIRST_STEP_CYCLES + k * period for k in range(steps)]


def push_cycle(word):
    steps, delay, _ = decode(word)
    return FIRST_STEP_CYCLES + steps * (delay + STEP_CYCLES)


def segment_cycles(word):
    """Cycles from this segment's pull to the next pull."""
    return push_cycle(word) + 1


class StepperModel:
    """Consumes the state machine's TX words at the times the program would, calls the plant's
    `on_step(t_us, direction)` at each STEP rising edge and pushes the completion tokens."""

    def __init__(self, sm, pen):
        self.sm = sm
        self.pen = pen
        self.board = pen.sim.board
        self.cycle_ns = 1_000_000_000 // sm.freq_hz
        self.ready_ns = None  # when the program reaches `pull` (None: since it started)
        self.word = None  # the segment being executed
        self.t0_ns = 0  # its pull time
        self.k = 0  # next step index
        self.last_ns = None  # end of the last step() window (detects pauses: active(0))
        self.steps_emitted = 0
        self.segments = 0
        self.log = None  # e.g. a bytearray: each pulse's direction appended (tests)

    def restart(self):
        self.word = None
        self.ready_ns = None

    def exec(self, instr):
        pass

    def step(self, now, dt):
        start_ns = now * 1000
        end_ns = (now + dt) * 1000
        if self.last_ns is not None and start_ns > self.last_ns:
            # the state machine was stopped (active(0)): it resumes where it was
            gap = start_ns - self.last_ns
            if self.word is not None:
                self.t0_ns += gap
            elif self.ready_ns is not None:
                self.ready_ns += gap
        self.last_ns = end_ns
        cyc = self.cycle_ns
        while True:
            if self.word is None:
                if not self.sm.tx:
                    if self.ready_ns is not None and self.ready_ns < start_ns:
                        self.ready_ns = start_ns  # stalled on pull
                    return
                t = start_ns if self.ready_ns is None or self.ready_ns < start_ns else (
                    self.ready_ns)  # fmt: skip
                if t >= end_ns:
                    return
                self.word = self.sm.model_pull()
                self.t0_ns = t
                self.k = 0
                self.board.out[P.DIR] = (self.word >> 16) & 1
            steps, delay, direction = decode(self.word)
            period = (delay + STEP_CYCLES) * cyc
            while self.k < steps:
                te = self.t0_ns + FIRST_STEP_CYCLES * cyc + self.k * period
                if te >= end_ns:
                    return
                self.k += 1
                self.steps_emitted += 1
                if self.log is not None:
                    self.log.append(direction)
                self.pen.depth.on_step(te // 1000, direction)
            tp = self.t0_ns + push_cycle(self.word) * cyc
            if tp >= end_ns:
                return
            self.sm.model_push(delay)
            self.segments += 1
            self.ready_ns = tp + cyc
            self.word = None


def register(models, pen):
    models["stepper_segments"] = lambda sm: StepperModel(sm, pen)
