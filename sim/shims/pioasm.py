"""A PIO assembler for MicroPython's `@rp2.asm_pio` notation, for the virtual pen.

The unix port has no `rp2` module; the virtual pen's `rp2` shim uses this to turn the pen's PIO
programs into the same 16-bit instruction words the RP2040 would run. The encoding follows the
RP2040 datasheet, section 3.4 (PIO instruction set). It runs under MicroPython and CPython, so a
CPython test can feed the words to an instruction-level PIO emulator.

Supported: jmp, wait, in_, out, push, pull, mov (with invert/reverse), irq, set, nop, labels,
wrap_target/wrap, `[delay]` and `.side(v)`.
"""


class _Sym:
    def __init__(self, name, code):
        self.name = name
        self.code = code

    def __repr__(self):
        return self.name


# Operand symbols (the name -> field value of each instruction that takes it).
pins = _Sym("pins", 0)
x = _Sym("x", 1)
y = _Sym("y", 2)
null = _Sym("null", 3)
pindirs = _Sym("pindirs", 4)
pc = _Sym("pc", 5)
status = _Sym("status", 5)
isr = _Sym("isr", 6)
osr = _Sym("osr", 7)
exec_ = _Sym("exec", 7)
gpio = _Sym("gpio", 0)
pin = _Sym("pin", 1)
block = _Sym("block", 1)
noblock = _Sym("noblock", 0)
iffull = _Sym("iffull", 1)
ifempty = _Sym("ifempty", 1)
clear = _Sym("clear", 1)

# jmp conditions
not_x = _Sym("not_x", 1)
x_dec = _Sym("x_dec", 2)
not_y = _Sym("not_y", 3)
y_dec = _Sym("y_dec", 4)
x_not_y = _Sym("x_not_y", 5)
not_osre = _Sym("not_osre", 7)

_JMP_PIN = 6
_MOV_DEST = {"pins": 0, "x": 1, "y": 2, "exec": 4, "pc": 5, "isr": 6, "osr": 7}
_MOV_SRC = {"pins": 0, "x": 1, "y": 2, "null": 3, "status": 5, "isr": 6, "osr": 7}
_IN_SRC = {"pins": 0, "x": 1, "y": 2, "null": 3, "isr": 6, "osr": 7}
_OUT_DEST = {"pins": 0, "x": 1, "y": 2, "null": 3, "pindirs": 4, "pc": 5, "isr": 6, "exec": 7}
_SET_DEST = {"pins": 0, "x": 1, "y": 2, "pindirs": 4}


class _Op:
    def __init__(self, name, code):
        self.name = name  # operand name
        self.code = code  # 2-bit mov operation


def invert(src):
    return _Op(src.name, 1)


def reverse(src):
    return _Op(src.name, 2)


class PIOASMError(Exception):
    pass


class _Instr:
    """One emitted instruction; `[n]` adds delay cycles, `.side(v)` the side-set value."""

    def __init__(self, emit, index):
        self._emit = emit
        self._index = index

    def __getitem__(self, delay):
        self._emit._set_delay(self._index, delay)
        return self

    def side(self, value):
        self._emit._set_side(self._index, value)
        return self


class Program:
    """What `asm_pio` returns: the words plus the configuration a StateMachine needs."""

    def __init__(self, name, words, wrap_target, wrap, sideset_count, sideset_opt, config):
        self.name = name
        self.words = words
        self.wrap_target = wrap_target
        self.wrap = wrap
        self.sideset_count = sideset_count
        self.sideset_opt = sideset_opt
        self.config = config

    def __repr__(self):
        return "<PIO program %s, %d words>" % (self.name, len(self.words))


class Emitter:
    def __init__(self, sideset_init=None, side_pindir=False, **config):
        if sideset_init is None:
            self.sideset_count = 0
        elif isinstance(sideset_init, (tuple, list)):
            self.sideset_count = len(sideset_init)
        else:
            self.sideset_count = 1
        self.sideset_opt = bool(config.pop("sideset_opt", False))
        self.config = config
        self.config["sideset_init"] = sideset_init
        self.labels = {}
        self.words = []
        self.delays = []
        self.sides = []
        self.wrap_target_at = 0
        self.wrap_at = None
        self.pass_no = 0
        self._irq_obj = None

    def start_pass(self, n):
        self.pass_no = n
        self.words = []
        self.delays = []
        self.sides = []

    # -- fields ---------------------------------------------------------------------
    def _max_delay(self):
        return (1 << (5 - self.sideset_count - (1 if self.sideset_opt else 0))) - 1

    def _set_delay(self, i, delay):
        if not 0 <= delay <= self._max_delay():
            raise PIOASMError("delay %d out of range 0..%d" % (delay, self._max_delay()))
        self.delays[i] = delay

    def _set_side(self, i, value):
        if not self.sideset_count:
            raise PIOASMError("side() without sideset_init")
        if not 0 <= value < (1 << self.sideset_count):
            raise PIOASMError("side-set value out of range")
        self.sides[i] = value

    def _emit(self, word):
        self.words.append(word)
        self.delays.append(0)
        self.sides.append(None)
        return _Instr(self, len(self.words) - 1)

    def assemble(self):
        """Merge delay and side-set into bits 12..8 of each word."""
        out = []
        n = self.sideset_count
        opt = 1 if self.sideset_opt else 0
        delay_bits = 5 - n - opt
        for w, d, s in zip(self.words, self.delays, self.sides):
            field = d
            if n:
                if s is not None:
                    field |= s << delay_bits
                    if opt:
                        field |= 1 << 4
                elif not opt:
                    raise PIOASMError("side-set value required on every instruction")
            out.append(w | (field << 8))
        return out

    def _label_addr(self, name):
        if self.pass_no == 0:
            return 0
        if name not in self.labels:
            raise PIOASMError("unknown label %r" % name)
        return self.labels[name]

    # -- directives -----------------------------------------------------------------
    def label(self, name):
        if self.pass_no == 0:
            if name in self.labels:
                raise PIOASMError("duplicate label %r" % name)
            self.labels[name] = len(self.words)

    def wrap_target(self):
        self.wrap_target_at = len(self.words)

    def wrap(self):
        if not self.words:
            raise PIOASMError("wrap() before any instruction")
        self.wrap_at = len(self.words) - 1

    # -- instructions ---------------------------------------------------------------
    def nop(self):
        return self.mov(y, y)

    def jmp(self, cond, label=None):
        if label is None:
            cond, label = None, cond
        c = 0
        if cond is pin:
            c = _JMP_PIN
        elif cond is not None:
            c = cond.code
        addr = label if isinstance(label, int) else self._label_addr(label)
        return self._emit(0x0000 | c << 5 | addr)

    def wait(self, polarity, src, index):
        if src is gpio:
            s = 0
        elif src is pin:
            s = 1
        elif src is self._irq_obj:
            s = 2
        else:
            raise PIOASMError("wait source must be gpio, pin or irq")
        return self._emit(0x2000 | (polarity & 1) << 7 | s << 5 | (index & 0x1F))

    def in_(self, src, bits):
        if not 1 <= bits <= 32:
            raise PIOASMError("bit count 1..32")
        return self._emit(0x4000 | _IN_SRC[src.name] << 5 | (bits & 0x1F))

    def out(self, dest, bits):
        if not 1 <= bits <= 32:
            raise PIOASMError("bit count 1..32")
        name = "exec" if dest is exec_ else dest.name
        return self._emit(0x6000 | _OUT_DEST[name] << 5 | (bits & 0x1F))

    def push(self, a=None, b=None):
        iff, blk = 0, 1
        for f in (a, b):
            if f is iffull:
                iff = 1
            elif f is noblock:
                blk = 0
            elif f is block or f is None:
                pass
            else:
                raise PIOASMError("push takes iffull, block, noblock")
        return self._emit(0x8000 | iff << 6 | blk << 5)

    def pull(self, a=None, b=None):
        ife, blk = 0, 1
        for f in (a, b):
            if f is ifempty:
                ife = 1
            elif f is noblock:
                blk = 0
            elif f is block or f is None:
                pass
            else:
                raise PIOASMError("pull takes ifempty, block, noblock")
        return self._emit(0x8080 | ife << 6 | blk << 5)

    def mov(self, dest, src):
        op = 0
        name = src.name
        if isinstance(src, _Op):
            op = src.code
        dname = "exec" if dest is exec_ else dest.name
        return self._emit(0xA000 | _MOV_DEST[dname] << 5 | op << 3 | _MOV_SRC[name])

    def irq(self, mod, index=None):
        clr = wait = 0
        if index is None:
            mod, index = None, mod
        if mod is clear:
            clr = 1
        elif mod is block:
            wait = 1
        return self._emit(0xC000 | clr << 6 | wait << 5 | (index & 0x1F))

    def set(self, dest, data):
        if not 0 <= data <= 31:
            raise PIOASMError("set data 0..31")
        return self._emit(0xE000 | _SET_DEST[dest.name] << 5 | data)


_SYMBOLS = {
    "pins": pins, "x": x, "y": y, "null": null, "pindirs": pindirs, "pc": pc,
    "status": status, "isr": isr, "osr": osr, "exec": exec_, "gpio": gpio, "pin": pin,
    "block": block, "noblock": noblock, "iffull": iffull, "ifempty": ifempty,
    "clear": clear, "not_x": not_x, "x_dec": x_dec, "not_y": not_y, "y_dec": y_dec,
    "x_not_y": x_not_y, "not_osre": not_osre, "invert": invert, "reverse": reverse,
}  # fmt: skip


def asm_pio(**config):
    """Decorator: run the program function twice (labels, then code) with the DSL in scope."""

    def dec(f):
        emit = Emitter(**config)
        dsl = dict(_SYMBOLS)
        for name in ("label", "wrap_target", "wrap", "nop", "jmp", "wait", "in_", "out",
                     "push", "pull", "mov", "irq", "set"):  # fmt: skip
            dsl[name] = getattr(emit, name)
        emit._irq_obj = dsl["irq"]  # `wait(1, irq, n)` names the irq function as its source
        g = f.__globals__
        saved = {k: g[k] for k in dsl if k in g}
        missing = [k for k in dsl if k not in g]
        g.update(dsl)
        try:
            emit.start_pass(0)
            f()
            emit.start_pass(1)
            f()
        finally:
            for k in missing:
                del g[k]
            g.update(saved)
        words = emit.assemble()
        if len(words) > 32:
            raise PIOASMError("program longer than 32 instructions")
        wrap = emit.wrap_at if emit.wrap_at is not None else len(words) - 1
        return Program(f.__name__, words, emit.wrap_target_at, wrap,
                       emit.sideset_count, emit.sideset_opt, emit.config)  # fmt: skip

    return dec
