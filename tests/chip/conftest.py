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
    """A chip whose ROMFS holds a stale image (one module missing: the application fails at
    boot and the pen sits at its REPL), brought up to date by `pen deploy` itself over the
    chip's USB serial; the tests then run what `pen deploy` wrote."""
    import json

    from chip import emu, plant
    from pen import deploy as D

    romfs, fs = emu.pen_flash()  # what `pen deploy` builds for a chip
    stale = D.build_romfs([f for f in D.build(ROOT, target_arch="armv6m")
                           if f.dest != "firmware/version.mpy"])  # fmt: skip
    pen = emu.ChipPen(stale, fs)
    plant.ChipPlant(pen)
    pen.romfs = romfs
    pen.boot()
    pen.run_until(lambda: b"ImportError" in pen.rx, 2.0, "the stale image failing at boot")
    pen.run_for(0.05)
    pen.rx.clear()
    exe = str(Path(sys.executable).with_name("pen"))
    rc, out, err = emu.run_host_tool(
        pen, [exe, "--port", "{port}", "deploy", "--json", "--timeout", "1200"], 20.0)
    assert rc == 0, err[-2000:]
    pen.deploy_result = json.loads(out)
    # The deploy restarts the pen with machine.reset() (a watchdog reboot on the RP2040); the
    # tests start from a power-up of what it wrote.
    ok, pen.after_deploy = pen.call("status")
    assert ok, pen.after_deploy
    from rp2040py.device.base_device import ResetCause

    pen.connected = False
    pen.dev.hard_reset(cause=ResetCause.POWER_ON)
    pen.run_until(lambda: pen.connected, 2.0, "USB after the power-up")
    yield pen
    pen.sim.stopped = True
