"""The depth stepper's PIO program, instruction by instruction, against its behavioural model.

`drivers/stepper_pio.py`'s program is assembled by the virtual pen's assembler
(`sim/shims/pioasm.py`: the words the RP2040 runs) and executed in the `rp2040-pio-emulator`
(`pioemu`) on a queue of segment words. The STEP edges, pulse widths, intervals, the DIR level
at each edge and the completion tokens must equal the arithmetic of `sim/pio_stepper.py`, and
the model class the virtual pen runs must put its steps at exactly the emulator's cycles
(DS-50, DS-51). At 1 MHz one cycle is one µs.
"""

import importlib
import sys
import types
from collections import deque
from pathlib import Path

import pytest
from pioemu import State, emulate

ROOT = Path(__file__).resolve().parents[2]
STEP, DIR = 10, 11  # hardware/pins.py


@pytest.fixture
def pio(monkeypatch):
    """(drivers.stepper_pio, sim.pio_stepper) under CPython: `rp2` is the assembler shim plus
    the PIO constants, `micropython` a stand-in with const()."""
    fake_mp = types.ModuleType("micropython")
    fake_mp.const = lambda v: v
    monkeypatch.setitem(sys.modules, "micropython", fake_mp)
    monkeypatch.syspath_prepend(str(ROOT / "sim" / "shims"))
    monkeypatch.syspath_prepend(str(ROOT / "sim"))
    monkeypatch.syspath_prepend(str(ROOT))
    pioasm = importlib.import_module("pioasm")
    rp2 = types.ModuleType("rp2")
    rp2.asm_pio = pioasm.asm_pio
    rp2.PIO = types.SimpleNamespace(OUT_LOW=2, OUT_HIGH=3, SHIFT_LEFT=0, SHIFT_RIGHT=1)
    monkeypatch.setitem(sys.modules, "rp2", rp2)
    names = ("drivers.stepper_pio", "pio_stepper")
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    drv = importlib.import_module("drivers.stepper_pio")
    model = importlib.import_module("pio_stepper")
    yield drv, model
    for name in names:
        sys.modules.pop(name, None)


def run_program(drv, words, cycles):
    """Run the program on a TX FIFO holding `words`; returns (rising, falling, dir_at_rise,
    pushes): cycle lists of STEP edges, the DIR level at each rising edge, and (cycle, word)
    of each push."""
    prog = drv.stepper_segments
    assert prog.config["out_shiftdir"] == 1  # shift right: delay is the low half-word
    gen = emulate(
        prog.words,
        stop_when=lambda _op, st: st.clock >= cycles,
        initial_state=State(transmit_fifo=deque(words)),
        shift_osr_right=True,
        out_base=DIR,
        out_count=1,
        set_base=STEP,
        set_count=1,
        wrap_target=prog.wrap_target,
        wrap_top=prog.wrap,
    )
    rising, falling, dirs, pushes = [], [], [], []
    for before, after in gen:
        was = (before.pin_values >> STEP) & 1
        now = (after.pin_values >> STEP) & 1
        if now and not was:
            rising.append(before.clock)
            dirs.append((after.pin_values >> DIR) & 1)
        elif was and not now:
            falling.append(before.clock)
        while after.receive_fifo:
            pushes.append((before.clock, after.receive_fifo.popleft()))
    return rising, falling, dirs, pushes


def expected(model, words):
    """The model's arithmetic for the same words: rising edges, dirs, pushes."""
    t0 = 0
    rising, dirs, pushes = [], [], []
    for w in words:
        steps, delay, d = model.decode(w)
        rising += [t0 + c for c in model.rising_edges(w)]
        dirs += [d] * steps
        pushes.append((t0 + model.push_cycle(w), delay))
        t0 += model.segment_cycles(w)
    return rising, dirs, pushes, t0


SEGMENTS = [(5, 100, 1), (3, 37, 0), (1, 12, 1), (4, 250, 1), (2, 20, 0), (6, 13, 0)]


def test_program_matches_model_arithmetic(pio):
    drv, model = pio
    words = [drv.encode(s, iv, d) for s, iv, d in SEGMENTS]
    rising, falling, dirs, pushes = run_program(drv, words, 4000)
    exp_rising, exp_dirs, exp_pushes, end = expected(model, words)
    assert end < 4000
    assert rising == exp_rising
    assert dirs == exp_dirs  # the direction changes exactly between segments
    assert pushes == exp_pushes  # one completion token per segment, the delay value
    # every pulse is HIGH_CYCLES wide (the TMC2209 needs 100 ns)
    assert [f - r for r, f in zip(rising, falling)] == [model.HIGH_CYCLES] * len(rising)
    assert len(rising) == sum(s for s, _, _ in SEGMENTS)


def test_interval_is_the_requested_microseconds(pio):
    """Within a segment the STEP period is the interval given to encode(), in µs at 1 MHz;
    across a segment boundary SEG_CYCLES (6) more."""
    drv, model = pio
    assert drv.SM_FREQ_HZ == 1_000_000
    for steps, iv in ((4, 12), (3, 100), (3, 500), (2, 2000)):
        w = drv.encode(steps, iv, 1)
        rising, _, _, _ = run_program(drv, [w, w], 2 * steps * iv + 100)
        gaps = [b - a for a, b in zip(rising, rising[1:])]
        assert gaps == [iv] * (steps - 1) + [iv + model.SEG_CYCLES] + [iv] * (steps - 1)
    assert drv.STEP_CYCLES == model.STEP_CYCLES
    assert drv.SEG_CYCLES == model.SEG_CYCLES
    assert drv.FIRST_STEP_CYCLES == model.FIRST_STEP_CYCLES


def test_dir_is_set_before_the_first_step(pio):
    """DIR is written at DIR_CYCLE, FIRST_STEP_CYCLES - DIR_CYCLE cycles (2 µs) before STEP."""
    drv, model = pio
    prog = drv.stepper_segments
    w = drv.encode(1, 50, 1)
    gen = emulate(prog.words, stop_when=lambda _op, st: st.clock >= 20,
                  initial_state=State(transmit_fifo=deque([w])), out_base=DIR, out_count=1,
                  set_base=STEP, set_count=1, wrap_target=prog.wrap_target,
                  wrap_top=prog.wrap)  # fmt: skip
    dir_at = None
    for before, after in gen:
        if dir_at is None and (after.pin_values >> DIR) & 1:
            dir_at = before.clock
    assert dir_at == model.DIR_CYCLE == drv.DIR_CYCLE
    assert model.FIRST_STEP_CYCLES - model.DIR_CYCLE >= 1


def test_large_segment_counts_and_word_range(pio):
    """The steps field holds 1..8192 steps and the word stays below 2**30 (no long ints on the
    pen); a 300-step segment emits exactly 300 pulses."""
    drv, model = pio
    w = drv.encode(8192, 12 + 0xFFFF, 1)
    assert w < 2**30 and model.decode(w) == (8192, 0xFFFF, 1)
    w = drv.encode(300, 15, 0)
    rising, _, _, pushes = run_program(drv, [w], 300 * 15 + 50)
    assert len(rising) == 300 and len(pushes) == 1


class FakeSM:
    freq_hz = 1_000_000

    def __init__(self, words):
        self.tx = list(words)
        self.rx = []

    def model_pull(self):
        return self.tx.pop(0)

    def model_push(self, v):
        self.rx.append(v)
        return True


class FakePlant:
    def __init__(self):
        self.steps = []

    def on_step(self, t_us, direction):
        self.steps.append((t_us, direction))


def test_model_class_steps_at_the_emulator_cycles(pio):
    """The StepperModel the virtual pen runs, stepped in 100 µs windows like the plant, calls
    on_step at exactly the emulator's rising edges with the emulator's DIR level."""
    drv, model = pio
    words = [drv.encode(s, iv, d) for s, iv, d in SEGMENTS]
    rising, _, dirs, pushes = run_program(drv, words, 4000)
    plant = FakePlant()
    pen = types.SimpleNamespace(sim=types.SimpleNamespace(board=types.SimpleNamespace(out={})),
                                depth=plant)  # fmt: skip
    sm = FakeSM(words)
    m = model.StepperModel(sm, pen)
    for now in range(0, 4000, 100):
        m.step(now, 100)
    assert plant.steps == list(zip(rising, dirs))
    assert sm.rx == [w for _, w in pushes]
    assert m.segments == len(words)
