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
_PIO_BASE = (0x50200000, 0x50300000)
_FSTAT = 1  # word index of FSTAT (offset 0x04) in a PIO block's register file
_FLEVEL = 3  # FLEVEL (offset 0x0c)


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
        self._sync_regs()

    def _sync_regs(self):
        """FSTAT and FLEVEL of this machine's PIO block say what its FIFOs hold, as on the chip
        (a driver may poll them directly: machine.register_address). Allocation-free."""
        regs = _SIM.board.pio_regs[_PIO_BASE[self.id >> 2]]
        n = self.id & 3
        rx = len(self.rx)
        tx = len(self.tx)
        st = regs[_FSTAT] & ~((1 << n) | (1 << (8 + n)) | (1 << (16 + n)) | (1 << (24 + n)))
        if self.rx_depth and rx >= self.rx_depth:
            st |= 1 << n
        if not rx:
            st |= 1 << (8 + n)
        if self.tx_depth and tx >= self.tx_depth:
            st |= 1 << (16 + n)
        if not tx:
            st |= 1 << (24 + n)
        regs[_FSTAT] = st
        lv = regs[_FLEVEL] & ~(0xFF << (8 * n))
        regs[_FLEVEL] = lv | ((tx & 15) << (8 * n)) | ((rx & 15) << (8 * n + 4))

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
        self._sync_regs()
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
            self._sync_regs()

    def get(self, buf=None, shift=0):
        while not self.rx:
            _SIM.sleep_us(10)
        v = self.rx.pop(0) >> shift
        self.words_read += 1
        self._sync_regs()
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
            self._sync_regs()
            return True
        return False

    def model_pull(self):
        if not self.tx:
            return None
        v = self.tx.pop(0)
        self._sync_regs()
        return v


def reset_all():
    """Forget every state machine (a fresh board)."""
    _MACHINES.clear()
    for regs in _SIM.board.pio_regs.values():
        for i in range(len(regs)):
            regs[i] = 0
        regs[_FSTAT] = 0x0F000F00  # every FIFO empty


class Flash:
    pass


def bootsel_button():
    return 0


def country(c=None):
    return "XX"
