"""The stroke capture PIO program, instruction by instruction, against its behavioural model.

`drivers/stroke_pio.py`'s program is assembled by the virtual pen's assembler
(`sim/shims/pioasm.py`, the same words the RP2040 runs) and executed in the `rp2040-pio-emulator`
(`pioemu`) with a hall-like square wave on its pin. The words it pushes must equal what
`sim/pio_hall.py` (the model the virtual pen runs) pushes for the same edges, and must measure
the period: period_us = LIMIT + 2 - word (ND-03).

(No `from __future__ import annotations` here: pioemu reads the input function's `int`
annotation at run time.)"""

import importlib
import sys
import types
from collections import deque
from pathlib import Path

import pytest
from pioemu import State, emulate

ROOT = Path(__file__).resolve().parents[2]
CYCLES_PER_US = 2  # the state machine runs at 2 MHz


@pytest.fixture
def pio(monkeypatch):
    """(drivers.stroke_pio, sim.pio_hall) imported under CPython: `rp2` is the assembler shim,
    `micropython` a stand-in with const()."""
    fake_mp = types.ModuleType("micropython")
    fake_mp.const = lambda v: v
    monkeypatch.setitem(sys.modules, "micropython", fake_mp)
    monkeypatch.syspath_prepend(str(ROOT / "sim" / "shims"))
    monkeypatch.syspath_prepend(str(ROOT / "sim"))
    monkeypatch.syspath_prepend(str(ROOT))
    pioasm = importlib.import_module("pioasm")
    monkeypatch.setitem(sys.modules, "rp2", pioasm)
    for name in ("drivers.stroke_pio", "pio_hall"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    drv = importlib.import_module("drivers.stroke_pio")
    model = importlib.import_module("pio_hall")
    yield drv, model
    for name in ("drivers.stroke_pio", "pio_hall"):
        sys.modules.pop(name, None)


def square_wave(edges_cyc, high_cyc):
    """Pin level (bit 0) per clock: high for `high_cyc` cycles from each rising edge."""
    edges = sorted(edges_cyc)

    def level(clock: int) -> int:
        for e in edges:
            if e <= clock < e + high_cyc:
                return 1
        return 0

    return level


def run_program(drv, limit, edges_cyc, high_cyc, extra=200):
    """Run the assembled program over the given rising edges; return the words it pushed."""
    prog = drv.stroke_period
    end = max(edges_cyc) + extra
    words = []
    gen = emulate(
        prog.words,
        stop_when=lambda _op, st: st.clock >= end,
        initial_state=State(transmit_fifo=deque([limit])),
        input_source=square_wave(edges_cyc, high_cyc),
        jmp_pin=0,
        wrap_target=prog.wrap_target,
        wrap_top=prog.wrap,
    )
    for _before, after in gen:
        while after.receive_fifo:
            words.append(after.receive_fifo.popleft())
    return words


class FakeSM:
    def __init__(self, limit):
        self.running = True
        self.model = None
        self.tx = [limit]
        self.rx = []

    def model_pull(self):
        return self.tx.pop(0) if self.tx else None

    def model_push(self, v):
        self.rx.append(v & 0xFFFFFFFF)
        return True


def model_words(model, limit, edges_us):
    motor = types.SimpleNamespace(edge_listeners=[])
    sm = FakeSM(limit)
    m = model.StrokePeriodModel(sm, motor)
    sm.model = m
    m.step(0, 100)
    for t in edges_us:
        for f in motor.edge_listeners:
            f(t)
    return sm.rx


def test_program_shape(pio):
    drv, model = pio
    prog = drv.stroke_period
    assert prog.name == model.PROGRAM == "stroke_period"
    assert len(prog.words) <= 32
    assert drv.OVERHEAD_US == model.OVERHEAD_US == 2
    assert drv.SM_FREQ_HZ == CYCLES_PER_US * 1_000_000


@pytest.mark.req("ND-03")
@pytest.mark.parametrize("periods_us", [[1000, 1000, 1000], [6667, 7100, 6400], [2500, 900, 4000]])
def test_words_equal_the_model_and_measure_the_period(pio, periods_us):
    """ND-03: each pushed word is LIMIT + 2 - period (µs), the first edge pushes 0, and the
    model the virtual pen runs pushes the same words."""
    drv, model = pio
    limit = 20_000
    t0 = 137  # µs: the program starts mid-low, not on an edge
    edges_us = [t0]
    for p in periods_us:
        edges_us.append(edges_us[-1] + p)
    edges_cyc = [t * CYCLES_PER_US for t in edges_us]
    high = min(periods_us) * CYCLES_PER_US // 12  # hall high for 30 degrees
    words = run_program(drv, limit, edges_cyc, high)
    assert words == model_words(model, limit, edges_us)
    assert words[0] == 0
    assert [limit + drv.OVERHEAD_US - w for w in words[1:]] == periods_us


@pytest.mark.req("ND-03")
def test_period_longer_than_limit_reads_unknown_then_resumes(pio):
    """ND-03: a gap longer than LIMIT (X runs out while low, or while high) pushes 0 (period
    unknown), and the next period is measured again; every word stays <= LIMIT (small ints)."""
    drv, model = pio
    limit = 3000
    # gap 5000 > LIMIT while low; then 1200; then a pulse held high for 4000 (> LIMIT); then 1500
    edges_us = [100, 1300, 6300, 7500, 12500, 14000]
    highs = {100: 100, 1300: 100, 6300: 100, 7500: 4000, 12500: 100, 14000: 100}
    edges_cyc = [t * CYCLES_PER_US for t in edges_us]

    def level(clock: int) -> int:
        for e in edges_us:
            if e * CYCLES_PER_US <= clock < (e + highs[e]) * CYCLES_PER_US:
                return 1
        return 0

    prog = drv.stroke_period
    end = edges_cyc[-1] + 200
    words = []
    for _b, after in emulate(prog.words, stop_when=lambda _o, st: st.clock >= end,
                             initial_state=State(transmit_fifo=deque([limit])),
                             input_source=level, jmp_pin=0, wrap_target=prog.wrap_target,
                             wrap_top=prog.wrap):  # fmt: skip
        while after.receive_fifo:
            words.append(after.receive_fifo.popleft())
    assert words == [0, limit + 2 - 1200, 0, limit + 2 - 1200, 0, limit + 2 - 1500]
    assert words == model_words(model, limit, edges_us)
    assert all(0 <= w <= limit for w in words)


def test_half_microsecond_phase_jitter_averages_out(pio):
    """An edge between the program's 1 µs samples is seen up to one sample late: single words
    move by at most 1 µs and the mean period is still exact (no accumulation)."""
    drv, _model = pio
    limit = 20_000
    period_cyc = 2 * 1500 + 1  # 1500.5 µs: the sampling phase walks
    edges_cyc = [301 + k * period_cyc for k in range(7)]
    words = run_program(drv, limit, edges_cyc, 250)
    measured = [limit + 2 - w for w in words[1:]]
    assert all(abs(m - 1500.5) <= 1 for m in measured)
    assert set(measured) == {1500, 1501}  # the phase does walk: both readings occur
    # The error does not accumulate: the words' sum spans the edges' total time within 1 µs.
    assert abs(sum(measured) - 1500.5 * len(measured)) <= 1
