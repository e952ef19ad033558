"""Entry point of the virtual pen process (run by `pen sim` inside the `micropython` binary).

    micropython -X heapsize=190K -i sim/vpen.py

Environment (set by the supervisor, host_tools/pen/sim.py):
  PEN_SIM_FLASH   folder that is the pen's flash filesystem (boot.py, main.py, firmware/, ...)
  PEN_SIM_SPEED   virtual seconds per wall-clock second (default 1)
  PEN_SIM_CTL     "IN,OUT": file descriptors of the side channel's pipes
  PEN_SIM_CAUSE   reset cause of this boot (machine.PWRON_RESET, WDT_RESET, ...)
  PEN_SIM_STATE   file where the plant's mechanical state survives a reset
  PEN_SIM_HOLD    buttons held at power-up, e.g. "start" (safe mode)
  PEN_SIM_UNIT    which pen of the population (sim/plant_units.py; default 0, the reference)

stdin/stdout are the pseudo-terminal the host opens as the pen's USB serial port. After main.py
ends (Ctrl-C), the `-i` flag leaves the unix port's REPL on the same port, which speaks the raw
REPL protocol that mpremote uses, as the pen's USB REPL does.
"""

import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
if _here not in sys.path:
    sys.path.append(_here)

import simrt  # noqa: E402

SIM = simrt.install(realtime=True, speed=int(os.getenv("PEN_SIM_SPEED") or "1"))
_flash = os.getenv("PEN_SIM_FLASH") or "."
os.chdir(_flash)
# The clinician lock's secret (firmware/auth.py): a virtual pen gets the documented test secret,
# the 32 ASCII bytes "virtual-pen-test-secret-not-real", unless its flash already has a key.
try:
    os.stat("pen_secret.key")
except OSError:
    with open("pen_secret.key", "w") as _f:
        _f.write("".join("%02x" % b for b in b"virtual-pen-test-secret-not-real") + "\n")
# The pen's module path: the flash filesystem first, as on the RP2040.
sys.path[:] = ["", ".frozen", _here + "/shims", _here]

import board_sim  # noqa: E402
import ctl  # noqa: E402
import machine  # noqa: E402

machine._set_cause(int(os.getenv("PEN_SIM_CAUSE") or machine.PWRON_RESET))
PEN = board_sim.VirtualPen(SIM, int(os.getenv("PEN_SIM_UNIT") or "0"))
_state = os.getenv("PEN_SIM_STATE")
if _state:
    PEN.load_state(_state)
_hold = os.getenv("PEN_SIM_HOLD")
if _hold:
    PEN.buttons.press(_hold, 2000)
_ctl = os.getenv("PEN_SIM_CTL")
if _ctl:
    fin, fout = _ctl.split(",")
    ctl.attach(SIM, PEN, int(fin), int(fout))


def _run(name):
    try:
        f = open(name)
    except OSError:
        return
    src = f.read()
    f.close()
    exec(compile(src, name, "exec"), {"__name__": "__main__", "__file__": name})


def _exit(code):
    """End the process with exit status `code`. Under `-i` the unix port enters the REPL even
    after sys.exit(), so the status is left in a file beside the state file (the supervisor
    reads it) and the process is killed."""
    if _state:
        f = open(_state + ".exit", "w")
        f.write("%d\n" % code)
        f.close()
        os.system("kill -9 $PPID")
    sys.exit(code)


def _boot():
    try:
        _run("boot.py")
        _run("main.py")
    except machine.SimReset as e:
        if _state:
            PEN.save_state(_state)
        _exit(machine.exit_code(e.cause))
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    except Exception as e:  # noqa: BLE001  -- the pen prints it and drops to the REPL
        sys.print_exception(e)


_boot()
print("MicroPython (virtual pen); Ctrl-D or machine.reset() reboots")
