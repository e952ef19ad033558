"""Behavioural models of the pen's PIO programs, keyed by the program's function name.

Each model does what the program's instructions do, at the level the firmware can observe
(FIFO words and pin edges); tests/host/test_pio_programs.py checks the programs themselves in an
instruction-level emulator against the same arithmetic."""


def register(models, pen):
    pass
