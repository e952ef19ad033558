"""Property: no sequence of commands moves the depth stop beyond the depth limit.

Randomised (fixed seed, hundreds of operations per test) over every entry point of the axis
that the state machine, the buttons (+/- = move_to_um of the next depth), the protocol and the
settings reach: move_to_um, move_steps, set_limit_um, set_calibration, home, rehome_check,
retract, clear_fault, plus switch glitches and arbitrary waits with irregular poll periods.
The invariant is checked after every 100 µs plant step, on the pulses the PIO actually emitted
(not on what the firmware believes): once homed, the stop never moves outwards to beyond the
limit's step. (A limit lowered below the stop leaves it beyond until it has moved back, which
it does at once; that motion is inwards.)"""

from depth_rig import Rig
from mphelp import SIM, Rand, check, info, req

from firmware.errors import Refused


class Watch:
    """Tick hook: where the stop really is, in the firmware's step frame, against the limit."""

    def __init__(self, rig, gauge_tol_um=None):
        self.rig = rig
        self.offset = None
        self.prev = None
        self.prev_um = None
        self.worst = -10**9  # deepest (position - limit step) seen, steps
        self.worst_um = -10**9  # deepest (gauge - limit) seen, µm
        self.checks = 0
        self.gauge_tol_um = gauge_tol_um
        SIM.tick_hooks.append(self.hook)

    def sync(self):
        """After a poll: relate the plant's pulse count to the firmware's step frame."""
        ax = self.rig.axis
        st = self.rig.stepper
        if not ax._pos_known:
            self.offset = None
            self.prev = None
        elif not st.busy:
            off = self.rig.plant.pulses - st.position
            if off != self.offset:
                self.offset = off
                self.prev = None

    def hook(self, now):
        if self.offset is None:
            return
        ax = self.rig.axis
        p = self.rig.plant.pulses - self.offset
        lim = ax.max_steps()
        self.checks += 1
        deeper = self.prev is None or p > self.prev
        if deeper and p - lim > self.worst:
            self.worst = p - lim  # deepest excursion while moving out (or at a new frame)
        check(p <= lim or not deeper,
              "stop moved to step %d beyond the limit's step %d (limit %d um)"
              % (p, lim, ax.limit_um))  # fmt: skip
        self.prev = p
        if self.gauge_tol_um is not None:
            g = int(self.rig.plant.protrusion_mm() * 1000)
            over = g - ax.limit_um
            deeper = self.prev_um is None or g > self.prev_um
            if deeper and over > self.worst_um:
                self.worst_um = over
            check(over <= self.gauge_tol_um or not deeper,
                  "true protrusion %d um beyond the limit %d um" % (g, ax.limit_um))
            self.prev_um = g


def _wait(rig, rnd, watch, ms):
    t_end = SIM.now + ms * 1000
    while SIM.now < t_end:
        SIM.advance(rnd.int(1000, 5000))  # the asyncio task polls every 1..5 ms
        rig.axis.poll()
        watch.sync()


def _settle(rig, watch, max_ms=5000):
    """Poll (and keep the watch's frame in step) until the axis is idle."""
    t_end = SIM.now + max_ms * 1000
    while rig.axis.busy and SIM.now < t_end:
        SIM.advance(2000)
        rig.axis.poll()
        watch.sync()
    check(not rig.axis.busy, "still busy")


def _random_table(rnd):
    n = rnd.int(2, 5)
    s = rnd.int(0, 60)
    u = rnd.int(-250, -20)
    flat = [s, u]
    for _ in range(n - 1):
        ds = rnd.int(150, 700)
        s += ds
        u += ds * rnd.int(2000, 3300) // 1000
        flat += [s, u]
    if rnd.int(0, 4) == 0:
        flat[rnd.int(0, len(flat) - 1)] += rnd.int(-3000, 3000)  # often invalid
    return flat


def _run_ops(rig, rnd, watch, n_ops, with_calibration):
    """Random operations; returns (refused, accepted per kind, times found at the limit)."""
    ax = rig.axis
    refused = 0
    counts = {}
    at_limit = 0
    for _ in range(n_ops):
        op = rnd.int(0, 19)
        try:
            if op <= 5:  # a depth: half of them near the limit, some out of range
                if rnd.int(0, 1):
                    ax.move_to_um(ax.limit_um + rnd.int(-200, 200))
                else:
                    ax.move_to_um(rnd.int(-300, 3600))
            elif op <= 9:  # service moves, mostly hard outwards
                ax.move_steps(rnd.int(200, 1500) if rnd.int(0, 2) else rnd.int(-1500, 1500))
            elif op <= 11:
                ax.set_limit_um(rnd.int(-100, 3500))
            elif op == 12 and with_calibration:
                ax.set_calibration(_random_table(rnd))
            elif op == 13:
                ax.home()
            elif op == 14:
                ax.rehome_check()
            elif op == 15:
                ax.retract()
            elif op == 16:
                rig.inject("endstop_closed")  # a glitch or a sticking switch
                _wait(rig, rnd, watch, rnd.int(1, 12))
                rig.inject("none")
            if (ax.fault or not ax.homed) and not ax.busy:
                ax.clear_fault()  # what the user does after a fault: clear, home again
                ax.home()
            counts[op] = counts.get(op, 0) + 1
        except Refused:
            refused += 1
        _wait(rig, rnd, watch, rnd.int(0, 250))
        if ax.homed and not ax.busy and ax.position_steps == ax.max_steps():
            at_limit += 1
    return refused, counts, at_limit


@req("DS-10", "DS-13", "DS-14")
def test_no_command_path_goes_beyond_the_limit():
    """DS-10, DS-13, DS-14: 350 random operations (targets, service moves, limits and
    calibration tables in and out of range, homing, faults) never put the stop beyond the limit
    in force, measured on the emitted step pulses after every plant step."""
    rig = Rig()
    rnd = Rand(0x5EED1)
    watch = Watch(rig)
    rig.home()
    watch.sync()
    refused, counts, at_limit = _run_ops(rig, rnd, watch, 350, True)
    _settle(rig, watch)
    info("350 ops: %d refused, %d at the limit, %d invariant checks, deepest %d steps from "
         "the limit" % (refused, at_limit, watch.checks, watch.worst))  # fmt: skip
    check(watch.checks > 100_000, "too few checks: %d" % watch.checks)
    check(refused > 50 and len(counts) >= 8, "the sequence did not exercise the paths")
    check(at_limit > 20, "the sequence rarely pushed against the limit: %d" % at_limit)
    check(watch.worst <= 0, "moved out beyond the limit by %d steps" % watch.worst)
    check(watch.worst > -10, "never came near the limit: the test proves little")


@req("DS-14", "DS-34")
def test_true_protrusion_never_beyond_the_limit_when_calibrated():
    """DS-14, DS-34: with a calibration fitted from the gauge, 220 random operations
    never push the true protrusion (the virtual dial gauge) more than 0.02 mm beyond the limit
    in force."""
    rig = Rig()
    rig.home()
    rig.calibrate()
    rnd = Rand(0xD1A1)
    watch = Watch(rig, gauge_tol_um=20)
    watch.sync()
    refused, _, at_limit = _run_ops(rig, rnd, watch, 220, False)
    _settle(rig, watch)
    info("220 ops: %d refused, %d at the limit; deepest true protrusion %d um from the limit"
         % (refused, at_limit, watch.worst_um))  # fmt: skip
    check(at_limit > 10, "the sequence rarely pushed against the limit: %d" % at_limit)
    check(watch.worst_um <= 20, "moved out to %d um beyond the limit" % watch.worst_um)
    check(watch.worst_um > -100, "never came near the limit: the test proves little")
