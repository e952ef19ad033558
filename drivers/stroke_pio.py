"""Stroke sensor capture: a PIO program measures the hall switch's period in hardware.

One hall pulse per needle stroke. The state machine runs at 2 MHz and counts down X once per
two cycles (1 µs) both while the pin is high and while it is low; on every rising edge it pushes
X (without blocking) and reloads X with LIMIT. So a FIFO word is the number of microseconds left
of LIMIT: period_us = LIMIT + OVERHEAD_US - word. The measurement is taken by the hardware at
the edge, so it carries no interrupt latency; the control tick reads the words at its leisure
(4 deep FIFO: 26 ms of strokes at 150 Hz, the tick reads every 1 ms).

The word 0 means "an edge whose period is unknown": the first edge after start-up, or an edge
after a gap longer than LIMIT µs (X ran out; the program then just waits for the next edge).
Every FIFO word is between 0 and LIMIT, far below 2**30, so `sm.get()` returns a small int and
never allocates on the pen, however long the rotor stood still.

Cycle budget per period (2 MHz, cycle = 0.5 µs): the edge path is 4 cycles (the `jmp pin` that
sees the edge, mov, push, mov), every count 2 cycles: cycles = 4 + 2 * counts, so
period_us = counts + 2 = LIMIT + 2 - word. tests/host/test_pio_hall.py runs these words in an
instruction-level PIO emulator and checks exactly this arithmetic.
"""

import rp2
from micropython import const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rp2.asm_pio import (  # noqa: F401
        block,
        isr,
        jmp,
        label,
        mov,
        noblock,
        null,
        osr,
        pin,
        pull,
        push,
        wait,
        wrap,
        wrap_target,
        x,
        x_dec,
        y,
    )

SM_FREQ_HZ = const(2_000_000)  # 2 cycles per count -> 1 count per µs
OVERHEAD_US = const(2)  # the 4-cycle edge path
LIMIT_US = const(1_000_000)  # longest period measured; longer reads as "unknown" (word 0)


@rp2.asm_pio()
def stroke_period():
    pull(block)  # LIMIT, put once by the driver
    mov(y, osr)
    jmp("sync")  # the first edge has no period before it
    wrap_target()
    label("high")  # pin high: one count per 2 cycles
    jmp(x_dec, "high_more")
    jmp("sync")  # X ran out: the period is longer than LIMIT
    label("high_more")
    jmp(pin, "high")
    label("low")  # pin low: one count per 2 cycles, until the rising edge
    jmp(pin, "edge")
    jmp(x_dec, "low")
    label("sync")  # (X ran out while low) unknown period: push 0 at the next rising edge
    mov(x, null)
    wait(0, pin, 0)
    wait(1, pin, 0)
    label("edge")
    mov(isr, x)
    push(noblock)  # a full FIFO drops the word rather than stall the count
    mov(x, y)
    wrap()


class StrokeCapture:
    """sm_id: the PIO state machine (0..7) to claim; pin: machine.Pin of the hall input."""

    def __init__(self, sm_id, pin, limit_us=LIMIT_US):
        from drivers import regs

        if not 1000 <= limit_us < (1 << 29):
            raise ValueError("limit_us out of range")
        self.limit_us = limit_us
        self._base = limit_us + OVERHEAD_US
        self._sm = rp2.StateMachine(sm_id, stroke_period, freq=SM_FREQ_HZ, in_base=pin,
                                    jmp_pin=pin)  # fmt: skip
        self._sm.put(limit_us)
        self._sm.active(1)
        # pending() -> words (rising edges) waiting in the FIFO: the state machine's own
        # method, so the every-tick poll costs no Python call frame on the pen.
        self.pending = self._sm.rx_fifo
        # For the control tick: the PIO block's FSTAT register and this machine's RXEMPTY bit
        # (one load per tick tells whether an edge came), `get` pops one raw word (only when
        # the FIFO is not empty), `base` turns it into the period: period_us = base - word.
        self.fstat_addr, self.rx_empty = regs.pio_fstat(sm_id)
        self.get = self._sm.get
        self.base = self._base

    def read(self):
        """One edge from the FIFO: its period in µs, or 0 if the period is unknown. Call only
        when pending() > 0 (it would block otherwise). Allocation-free: tick-safe."""
        w = self._sm.get()
        if w == 0:
            return 0
        return self._base - w

    def deinit(self):
        self._sm.active(0)
