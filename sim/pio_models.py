"""Behavioural models of the pen's PIO programs, keyed by the program's function name.

Each model does what the program's instructions do, at the level the firmware can observe
(FIFO words and pin edges); CPython tests check the programs themselves in an
instruction-level emulator against the same arithmetic. One module per program family:
`sim/pio_hall.py` (stroke period capture), `sim/pio_stepper.py` (step generation); each has
`register(models, pen)`."""


import pio_hall
import pio_stepper


def register(models, pen):
    pio_hall.register(models, pen)
    pio_stepper.register(models, pen)
