"""Every intermediate of the needle's control tick, and of the paths it calls from the hard IRQ
(the trips), stays within the RP2040's small-int range, |x| < 2**30, for every input the
hardware can produce (ND-15, ND-19).

The tick is `@micropython.viper` code: on the pen a product past 2**31 would wrap silently, and
a value past 2**30 handed back to Python would allocate a long int inside the IRQ. The unix
port's integers are 64-bit, so the virtual pen cannot see either. Here the same source runs
under CPython with every integer that comes from the state, the registers or the drivers
replaced by a range-checked integer: each arithmetic result is checked, so one intermediate
>= 2**30 anywhere fails the test. The inputs are the hardware's extremes (pegged and dead
ADC, the shortest and longest FIFO words, a glitch of 1 µs, saturated controllers, every trip)
and, with hypothesis, random sequences of them. (tests/mp/mptest_needle_ranges.py runs the
same extremes through the real viper tick on MicroPython with the heap locked.)"""

from __future__ import annotations

import ast
import sys
import types
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
LIM = 1 << 30


class RangeError(AssertionError):
    pass


def _v(x):
    return x.v if isinstance(x, R) else x


class R:
    """An integer whose every arithmetic result must stay within +-2**30."""

    __slots__ = ("v",)

    def __init__(self, v):
        v = _v(v)
        if not -LIM < v < LIM:
            raise RangeError(f"intermediate {v} outside the small-int range")
        self.v = v

    def _op(f):  # noqa: N805
        return lambda a, b: R(f(a.v, _v(b)))

    def _rop(f):  # noqa: N805
        return lambda a, b: R(f(_v(b), a.v))

    __add__ = _op(lambda a, b: a + b)
    __radd__ = _rop(lambda a, b: a + b)
    __sub__ = _op(lambda a, b: a - b)
    __rsub__ = _rop(lambda a, b: a - b)
    __mul__ = _op(lambda a, b: a * b)
    __rmul__ = _rop(lambda a, b: a * b)
    __floordiv__ = _op(lambda a, b: a // b)
    __rfloordiv__ = _rop(lambda a, b: a // b)
    __mod__ = _op(lambda a, b: a % b)
    __lshift__ = _op(lambda a, b: a << b)
    __rlshift__ = _rop(lambda a, b: a << b)
    __rshift__ = _op(lambda a, b: a >> b)
    __rrshift__ = _rop(lambda a, b: a >> b)
    __and__ = _op(lambda a, b: a & b)
    __rand__ = _rop(lambda a, b: a & b)
    __or__ = _op(lambda a, b: a | b)
    __ror__ = _rop(lambda a, b: a | b)
    __xor__ = _op(lambda a, b: a ^ b)

    def __neg__(self):
        return R(-self.v)

    def __bool__(self):
        return self.v != 0

    def __index__(self):
        return self.v

    __int__ = __index__

    def __eq__(self, o):
        return self.v == _v(o)

    def __ne__(self, o):
        return self.v != _v(o)

    def __lt__(self, o):
        return self.v < _v(o)

    def __le__(self, o):
        return self.v <= _v(o)

    def __gt__(self, o):
        return self.v > _v(o)

    def __ge__(self, o):
        return self.v >= _v(o)

    def __hash__(self):
        return hash(self.v)

    def __repr__(self):
        return f"R({self.v})"


class Checked:
    """The state array as both the viper code (ptr32) and the Python paths see it."""

    def __init__(self, arr):
        self.arr = arr

    def __getitem__(self, i):
        return R(self.arr[_v(i)])

    def __setitem__(self, i, v):
        self.arr[_v(i)] = R(v).v


class Reg:
    """A peripheral register word (fake address -> this)."""

    def __init__(self, rd=None):
        self.words = [0, 0]
        self.rd = rd

    def __getitem__(self, i):
        if self.rd is not None:
            return R(self.rd(_v(i)))
        return R(self.words[_v(i)])

    def __setitem__(self, i, v):
        self.words[_v(i)] = R(v).v


ADDR_FSTAT, ADDR_CC, ADDR_ADC = 0x1000, 0x2000, 0x3000
LIMIT = 1_000_000
RX_EMPTY = 1 << 8


class Hw:
    """Fake drivers over fake registers: scripted FIFO words and ADC inputs."""

    def __init__(self):
        self.fifo: list[int] = []
        self.adc_in = [0, 0]  # raw 12-bit per input (0 current, 1 battery)
        self.fstat = Reg(rd=lambda i: 0 if self.fifo else RX_EMPTY)
        self.cc = Reg()
        self.adc = Reg()
        self.regs = {ADDR_FSTAT: self.fstat, ADDR_CC: self.cc, ADDR_ADC: self.adc}
        # motor
        self.top1 = 6250
        self.cc_shift = 0
        self.cc_addr = ADDR_CC
        self.enabled = False
        # stroke
        self.fstat_addr = ADDR_FSTAT
        self.rx_empty = RX_EMPTY
        self.base = LIMIT + 2
        # analog
        ns = _load_plain("drivers/analog.py")
        self.i_mul, self.i_shift = ns["_q_scale"](3300 * 1000, 4095 * 2500)
        self.b_mul, self.b_shift = ns["_q_scale"](3300 * 2, 4095)
        self.current_full_scale_ma = (4095 * self.i_mul) >> self.i_shift
        self.cs_addr = ADDR_ADC
        self.current_ain = 0
        self.battery_ain = 1

    def get(self):
        return self.fifo.pop(0)

    def battery_mv(self):
        return (self.adc_in[1] * self.b_mul) >> self.b_shift

    def enable(self):
        self.enabled = True

    def coast(self):
        self.enabled = False
        self.cc.words[0] = 0

    def off(self):
        self.sleep = 0

    def in2_on(self):
        self.in2 = 1

    def brake(self):
        self.enabled = True

    def convert(self):
        """The ADC between two ticks: a started conversion is done."""
        w = self.adc.words
        if w[0] & 4:
            w[1] = self.adc_in[(w[0] >> 12) & 7]
            w[0] = (w[0] & ~4) | 0x100


def _stub_modules():
    mp = types.ModuleType("micropython")
    mp.const = lambda x: x
    mp.viper = lambda f: f
    return {"micropython": mp}


def _load_plain(rel):
    ns: dict = {}
    saved = {k: sys.modules.get(k) for k in _stub_modules()}
    sys.modules.update(_stub_modules())
    try:
        exec(compile((ROOT / rel).read_text(), rel, "exec"), ns)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return ns


class _Viper(ast.NodeTransformer):
    """The viper functions as plain Python: int() -> R, ptr32() -> a checked view."""

    def visit_FunctionDef(self, node):
        viper = any(ast.unparse(d) == "micropython.viper" for d in node.decorator_list)
        if viper:
            node.decorator_list = []
            node.returns = None
            for a in node.args.args:
                a.annotation = None
            node = self.generic_visit(node)
            for n in ast.walk(node):
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                    if n.func.id == "int":
                        n.func.id = "_R"
                    elif n.func.id == "ptr32":
                        n.func.id = "_P"
        return node


def load_needle(hw: Hw):
    src = (ROOT / "firmware" / "needle.py").read_text()
    tree = _Viper().visit(ast.parse(src))
    ast.fix_missing_locations(tree)
    mods = ("micropython", "firmware.faults", "firmware.errors", "firmware")
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(_stub_modules())
    sys.path.insert(0, str(ROOT))
    try:
        sys.modules.pop("firmware.faults", None)
        sys.modules.pop("firmware.errors", None)
        import firmware.errors  # noqa: F401  (with the stub's const)
        import firmware.faults  # noqa: F401

        ns: dict = {"__name__": "needle_checked"}

        def _p(x):
            if isinstance(x, (Checked, Reg)):
                return x
            if isinstance(x, array):
                raise AssertionError("the state must be the checked view")
            return hw.regs[_v(x)]

        ns["_R"] = R
        ns["_P"] = _p
        exec(compile(tree, "firmware/needle.py", "exec"), ns)
    finally:
        sys.path.remove(str(ROOT))
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    ns["time"] = types.SimpleNamespace(ticks_ms=lambda: 123_456)
    return ns


def make_drive(hw: Hw, cls_attrs=None, battery_raw=2420):
    ns = load_needle(hw)
    cls = ns["NeedleDrive"]
    if cls_attrs:
        cls = type("Tuned", (cls,), cls_attrs)
    hw.adc_in[1] = battery_raw
    d = cls(hw, hw, hw)
    d._s = Checked(d._s)  # from here on every read of the state is range-checked
    return d


def run(d, hw: Hw, ticks, words=(), i_raw=None, b_raw=None):
    if i_raw is not None:
        hw.adc_in[0] = i_raw
    if b_raw is not None:
        hw.adc_in[1] = b_raw
    hw.fifo.extend(words)
    for _ in range(ticks):
        hw.convert()
        d.tick()


def _try(fn, *args):
    """A command the drive may refuse (firmware.errors.Refused): refusals are fine here."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        if type(e).__name__ != "Refused":
            raise


def word(period_us):
    return LIMIT + 2 - period_us


@pytest.mark.req("ND-15", "ND-19")
@pytest.mark.parametrize("i_raw,b_raw", [(4095, 4095), (0, 4095), (4095, 0), (0, 0), (620, 2420)])
def test_extreme_inputs_stay_small(i_raw, b_raw):
    """ND-15, ND-19: pegged and dead ADC inputs, FIFO words from the longest measurable period
    to a 1 µs glitch, a zero period word, a start, a stop, every trip: no intermediate reaches
    2**30."""
    hw = Hw()
    d = make_drive(hw)
    run(d, hw, 10, [0, word(1), word(LIMIT), 1, LIMIT], i_raw, b_raw)
    hw.adc_in = [620, 2420]
    run(d, hw, 8)
    _try(d.clear_fault)
    _try(d.start, 150)
    # strokes at every extreme: glitches of 1 µs, a 2 ms period, a missed pulse, nothing
    for ws in ([0], [word(6667)] * 4, [word(1)] * 4, [word(2000)], [word(13334)], [],
               [word(1), word(6666)], [LIMIT, 0, 1]):  # fmt: skip
        run(d, hw, 7, ws, i_raw, b_raw)
    run(d, hw, 400, [], i_raw, b_raw)  # no strokes: stall (or another trip first)
    assert d.fault != 0
    d.kill()
    d.fault = 0
    run(d, hw, 300, [], 0, 4095)  # cools down, rotor stands
    d.clear_fault()
    assert not d.fault
    d.start(50)
    d.watch_loop(5)
    run(d, hw, 20, [word(20000)] * 2, 4095, 4095)
    d.stop()
    run(d, hw, 400, [word(20000)] * 10, 620, 2420)


@pytest.mark.req("ND-15", "ND-19")
def test_every_trip_path_stays_small():
    """ND-15, ND-19: each protection's trip (the back-EMF judgement of stall vs sensor loss
    included) with the inputs at their extremes."""
    cases = [
        ("stall, no current", dict(i=0, b=4095, words=[])),
        ("stall, pegged current", dict(i=4095, b=4095, words=[])),
        ("sensor loss, turning", dict(i=300, b=4095, words=[])),
        ("over-current pegged", dict(i=4095, b=4095, words=[word(6667)] * 20)),
        ("runaway, 2 ms periods", dict(i=300, b=4095, words=[word(2000)] * 40)),
        ("battery dead", dict(i=300, b=0, words=[word(6667)] * 20)),
    ]
    for name, c in cases:
        hw = Hw()
        d = make_drive(hw, battery_raw=4095)
        d.start(150)
        assert d.running, name
        run(d, hw, 3, [0, word(6667), word(6667)], 300, 4095)
        for _ in range(60):
            run(d, hw, 5, c["words"][:1], c["i"], c["b"])
            c["words"] = c["words"][1:]
            if d.fault:
                break
        assert d.fault, name


@pytest.mark.req("ND-15", "ND-19")
def test_overheat_trip_with_the_largest_settings():
    """ND-15, ND-19: the I2t accumulator at its widest (the largest shift the constructor
    accepts) with a pegged current trips without leaving the range."""
    hw = Hw()
    d = make_drive(hw, dict(OVERHEAT_SHIFT=12, OVERHEAT_MA=100), battery_raw=4095)
    _try(d.start, 150)
    for _ in range(4000):
        run(d, hw, 1, [word(6667)] if _ % 7 == 0 else [], 4095 if _ > 20 else 300, 4095)
        if d.fault:
            break
    assert d.fault


@pytest.mark.req("ND-19")
def test_settings_that_would_leave_the_range_are_refused():
    """ND-19: a tuning whose worst case passes 2**30 is refused at construction."""
    for attrs in (dict(KP=20_000), dict(FF_UV_PER_HZ=200_000), dict(OVERHEAT_SHIFT=20)):
        hw = Hw()
        ns = load_needle(hw)
        cls = type("Bad", (ns["NeedleDrive"],), attrs)
        hw.adc_in[1] = 2420
        with pytest.raises(ValueError):
            cls(hw, hw, hw)


_word = st.one_of(st.just(0), st.integers(0, LIMIT), st.sampled_from([1, LIMIT, word(1)]),
                  st.integers(2000, 40_000).map(word))  # fmt: skip
_raw = st.one_of(st.sampled_from([0, 4095]), st.integers(0, 4095))
_cmd = st.one_of(st.none(), st.integers(50, 150).map(lambda h: ("start", h)),
                 st.just(("stop",)), st.just(("kill",)), st.just(("clear",)),
                 st.integers(50, 150).map(lambda h: ("target", h)),
                 st.integers(1, 300).map(lambda m: ("watch", m)))  # fmt: skip
_step = st.tuples(st.integers(1, 40), st.lists(_word, max_size=6), _raw, _raw, _cmd)


@pytest.mark.req("ND-15", "ND-19")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, min_size=1, max_size=25))
def test_random_sequences_stay_small(steps):
    """ND-15, ND-19: any sequence of commands, FIFO words and ADC inputs (extremes included)
    keeps every intermediate of the tick and its trips within +-2**30."""
    hw = Hw()
    d = make_drive(hw)
    for n, words, i_raw, b_raw, cmd in steps:
        if cmd is not None:
            op = cmd[0]
            if op == "start":
                _try(d.start, cmd[1])
            elif op == "stop":
                d.stop()
            elif op == "kill":
                d.kill()
            elif op == "clear":
                _try(d.clear_fault)
            elif op == "target":
                d.set_target(cmd[1])
            elif op == "watch":
                d.watch_loop(cmd[1])
        run(d, hw, n, words, i_raw, b_raw)
        assert 0 <= d.duty <= 65535 and 0 <= d.rate_mhz <= 500_000


def test_the_checker_catches_an_overflow():
    """The range check itself fails on a value >= 2**30 (so the tests above can fail)."""
    with pytest.raises(RangeError):
        R(1 << 20) * (1 << 10)
    with pytest.raises(RangeError):
        1_000_000_000 + R(100_000_000)
    assert (R(1 << 29) + ((1 << 29) - 1)).v == (1 << 30) - 1
