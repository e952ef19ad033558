"""Hall edges as the field gives them, scripted: double edges (contact bounce right after the
real edge, a spurious edge inside a stroke) and missed pulses, fed to the real drive as the
PIO capture's FIFO words at their virtual times. The hall model is detached from the plant, so
the periods are exactly the script's; the drive runs on its hard-timer tick (heap locked).

Tolerated (ND-18): any number of double edges as long as each stroke has at most one spurious
edge; single missed pulses at 50..150 Hz with at least one good stroke between two of them.
Two missed pulses in a row are a stall (STALL, fail safe)."""

import random

import pio_hall
import rp2
from mphelp import SIM, check, info, req
from needle_rig import Rig, fresh_board

import hardware.pins as P
from firmware import faults


def _rig(hz):
    fresh_board()
    r = Rig()
    pio_hall._by_sm[0].detach()  # the script, not the plant, makes the hall edges
    raw = 200 * P.CURRENT_MV_PER_A * 4095 // 1000 // P.ADC_VREF_MV  # 200 mA
    SIM.board.adc[P.MOTOR_CURRENT] = lambda: (raw << 4) | (raw >> 8)
    sm = rp2.StateMachine(0)
    base = r.stroke.base
    ahead = [0]  # µs the clock already ran past the last edge (to let the tick read it)

    def edge(period_us, settle=True):
        """An edge `period_us` after the last one; with `settle`, the clock then runs 1.1 ms
        on, so the tick has taken the word when the test looks at the rate."""
        adv = period_us - ahead[0]
        if adv > 0:
            SIM.advance(adv)
        sm.model_push(base - period_us if period_us else 0)
        ahead[0] = 0
        if settle:
            SIM.advance(1100)
            ahead[0] = 1100

    r.drive.start(hz)  # (Refused if not)
    edge(0)  # the first edge: period unknown
    t = 1_000_000 // hz
    for _ in range(30):
        edge(t)
    check(r.drive.fault == faults.NONE and r.drive.running, "clean run: %d" % r.drive.fault)
    return r, edge, t


def _rate_ok(r, hz, what):
    m = r.drive.rate_mhz
    check(abs(m - hz * 1000) <= hz * 10, "%s: rate %d mHz at %d Hz" % (what, m, hz))


@req("ND-18")
def test_double_edges_are_one_stroke():
    """ND-18: a second edge 5..500 µs after the real one (bounce) or anywhere inside the stroke
    (a spurious edge, periods down to 1 µs) counts no stroke and moves no rate: at 50, 100 and
    150 Hz, with a double edge in every second stroke, the measured rate stays within 1 % after
    every stroke, the stroke count is exact and nothing trips."""
    rnd = random.Random(7) if hasattr(random, "Random") else random
    for hz in (50, 100, 150):
        r, edge, t = _rig(hz)
        n0 = r.drive.strokes
        for k in range(60):
            if k & 1:
                d = rnd.randint(5, 500) if k & 2 else rnd.randint(1, t - 1)
                edge(d, False)
                edge(t - d)
            else:
                edge(t)
            _rate_ok(r, hz, "stroke %d" % k)
        check(r.drive.strokes - n0 == 60, "strokes %d for 60" % (r.drive.strokes - n0))
        check(r.drive.fault == faults.NONE and r.drive.running, "fault %d" % r.drive.fault)
        r.drive.kill()


@req("ND-18")
def test_single_missed_pulses_are_two_strokes():
    """ND-18: a missed hall pulse (one period of twice the length) at 50, 100 and 150 Hz, in
    every third stroke: two strokes at the true rate, no STALL (the stall limit is three
    periods), no rate step for the PI."""
    for hz in (50, 100, 150):
        r, edge, t = _rig(hz)
        n0 = r.drive.strokes
        real = 0
        for k in range(45):
            if k % 3 == 2:
                edge(2 * t)
                real += 2
            else:
                edge(t)
                real += 1
            _rate_ok(r, hz, "stroke %d" % k)
        check(r.drive.strokes - n0 == real, "strokes %d for %d" % (r.drive.strokes - n0, real))
        check(r.drive.fault == faults.NONE and r.drive.running, "fault %d" % r.drive.fault)
        r.drive.kill()


@req("ND-18")
def test_mixed_field_faults_never_trip():
    """ND-18: random mixes of clean strokes, double edges and missed pulses (never two
    missed pulses in a row) for 600 strokes at a random rate: no fault, the rate within 1 %
    after every stroke."""
    for seed in (1, 2, 3):
        random.seed(seed)
        hz = random.randint(50, 150)
        r, edge, t = _rig(hz)
        last_missed = False
        for k in range(600):
            x = random.randint(0, 9)
            if x == 0 and not last_missed:
                edge(2 * t)
                last_missed = True
                continue
            last_missed = False
            if x == 1:
                d = random.randint(1, t - 1)
                edge(d, False)
                edge(t - d)
            else:
                edge(t)
            _rate_ok(r, hz, "seed %d stroke %d" % (seed, k))
        check(r.drive.fault == faults.NONE and r.drive.running, "fault %d" % r.drive.fault)
        info("seed %d: %d Hz, 600 strokes, double edges, missed pulses: no fault" % (seed, hz))
        r.drive.kill()


@req("ND-18", "ND-07")
def test_two_missed_pulses_in_a_row_are_a_stall_and_a_real_speed_change_is_followed():
    """ND-18, ND-07: past the tolerance the drive fails safe: two missed pulses in a row (no
    stroke for three periods) latch STALL. A real change of rate (4 % per stroke, faster and
    slower) is followed, not filtered away."""
    r, edge, t = _rig(100)
    p = t
    for _ in range(6):
        p = p * 96 // 100
        edge(p)
        check(abs(r.drive.rate_mhz - 1_000_000_000 // p) <= 1_000_000_000 // p // 100,
              "faster: %d mHz for %d us" % (r.drive.rate_mhz, p))  # fmt: skip
    for _ in range(6):
        p = p * 104 // 100
        edge(p)
        check(abs(r.drive.rate_mhz - 1_000_000_000 // p) <= 1_000_000_000 // p // 100,
              "slower: %d mHz for %d us" % (r.drive.rate_mhz, p))  # fmt: skip
    check(r.drive.fault == faults.NONE, "fault %d" % r.drive.fault)
    for _ in range(5):
        edge(t)
    SIM.advance(3 * t + 2000)  # two missed pulses: no edge for three periods
    check(r.drive.fault == faults.STALL and not r.drive.running,
          "fault %s" % faults.name(r.drive.fault))  # fmt: skip
