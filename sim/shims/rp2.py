"""`rp2` for the virtual pen: PIO programs assembled to real instruction words, state machines
whose behaviour comes from a model of the program registered by the simulated board.

Running PIO instruction by instruction at 125 MHz inside MicroPython would be far too slow for a
physics simulation, so each of the pen's PIO programs has a behavioural model (in `sim/`),
registered in `MODELS` under the program's function name. That the model and the assembled
program agree is checked by CPython tests that run the words in an instruction-level PIO
emulator.
"""

import simrt
from pioasm import (  # noqa: F401  (the DSL names, as rp2 exports them)
    PIOASMError,
    asm_pio,
)

_SIM = simrt.SIM

# program name -> factory(state_machine) returning a model with step(now_us, dt_us)
MODELS = {}


class PIO:
    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2
    IRQ_SM0 = 0x100
    IRQ_SM1 = 0x200
    IRQ_SM2 = 0x400
    IRQ_SM3 = 0x800

    def __init__(self, id):
        self.id = id

    def state_machine(self, n, *args, **kw):
        return StateMachine(self.id * 4 + n, *args, **kw)

    def remove_program(self, prog=None):
        pass

    def add_program(self, prog):
        pass


_MACHINES = {}


class StateMachine:
    def __new__(cls, id, *args, **kw):
        sm = _MACHINES.get(id)
        if sm is None:
            sm = object.__new__(cls)
            sm._setup(id)
            _MACHINES[id] = sm
        return sm

    def __init__(self, id, prog=None, freq=-1, **kw):
        if prog is not None:
            self.init(prog, freq, **kw)

    def _setup(self, id):
        self.id = id
        self.prog = None
        self.freq_hz = 125_000_000
        self.config = {}
        self.tx = []
        self.rx = []
        self.tx_depth = 4
        self.rx_depth = 4
        self.model = None
        self.running = False
        self.irq_handler = None
        self.words_read = 0  # RX words the program's user took (tests: completed segments)

    def init(self, prog, freq=-1, **kw):
        if self.model is not None and self.model in _SIM.devices:
            _SIM.devices.remove(self.model)
        self.prog = prog
        self.freq_hz = freq if freq > 0 else 125_000_000
        self.config = kw
        join = kw.get("fifo_join", prog.config.get("fifo_join", PIO.JOIN_NONE))
        self.tx_depth = 8 if join == PIO.JOIN_TX else (0 if join == PIO.JOIN_RX else 4)
        self.rx_depth = 8 if join == PIO.JOIN_RX else (0 if join == PIO.JOIN_TX else 4)
        self.tx = []
        self.rx = []
        factory = MODELS.get(prog.name)
        if factory is None:
            raise ValueError("virtual pen has no model for PIO program %r" % prog.name)
        self.model = factory(self)
        self.running = False

    def active(self, v=None):
        if v is None:
            return self.running
        v = bool(v)
        if v and not self.running and self.model is not None:
            _SIM.devices.append(self.model)
        if not v and self.running and self.model in _SIM.devices:
            _SIM.devices.remove(self.model)
        self.running = v
        return v

    def restart(self):
        self.tx = []
        self.rx = []
        if self.model is not None and hasattr(self.model, "restart"):
            self.model.restart()

    def exec(self, instr):
        if self.model is not None and hasattr(self.model, "exec"):
            self.model.exec(instr)

    def put(self, value, shift=0):
        if isinstance(value, int):
            values = (value,)
        else:
            values = value
        for v in values:
            while len(self.tx) >= self.tx_depth:
                # Blocks like the real FIFO: time passes until the program pulls.
                _SIM.sleep_us(10)
            self.tx.append((v << shift) & 0xFFFFFFFF)

    def get(self, buf=None, shift=0):
        while not self.rx:
            _SIM.sleep_us(10)
        v = self.rx.pop(0) >> shift
        self.words_read += 1
        if buf is not None:
            buf[0] = v
        return v

    def rx_fifo(self):
        return len(self.rx)

    def tx_fifo(self):
        return len(self.tx)

    def irq(self, handler=None, trigger=0, hard=False):
        self.irq_handler = handler

    # -- used by the models ----------------------------------------------------------------
    def model_push(self, value):
        """The program pushes (noblock): a full RX FIFO drops the word, as `push(noblock)`."""
        if len(self.rx) < self.rx_depth:
            self.rx.append(value & 0xFFFFFFFF)
            return True
        return False

    def model_pull(self):
        return self.tx.pop(0) if self.tx else None


def reset_all():
    """Forget every state machine (a fresh board)."""
    _MACHINES.clear()


class Flash:
    pass


def bootsel_button():
    return 0


def country(c=None):
    return "XX"
