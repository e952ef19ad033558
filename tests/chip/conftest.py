"""The chip tier's fixture: one emulated RP2040 booted once per session (booting costs about
30 s of wall time), shared by the tier's tests in file order.

Where the base image (or the emulator) is absent every test here is SKIPPED with the reason and
how to get the image, and the run's summary says so in a line of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chip import image  # noqa: E402

_REASON = image.missing_reason()


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    mark = pytest.mark.skip(reason=f"chip tier: {_REASON}")
    for item in items:
        if "tests/chip/" in item.nodeid.replace("\\", "/"):
            item.add_marker(mark)


def pytest_terminal_summary(terminalreporter):
    if _REASON is not None:
        terminalreporter.write_line(f"chip tier SKIPPED: {_REASON}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def chip():
    """The chip with what `pen deploy` builds for it: the ROMFS image of the modules
    (`pen.deploy.build_romfs`) and boot.py/main.py on littlefs."""
    from chip import emu, plant

    romfs, fs = emu.pen_flash()
    pen = emu.ChipPen(romfs, fs)
    plant.ChipPlant(pen)
    pen.romfs = romfs
    pen.boot()
    yield pen
    pen.sim.stopped = True
