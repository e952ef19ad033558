"""`pen sim` (run the virtual pen) and `pen sim-ctl` (its side channel)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..cli import CliError


def cmd_sim(args) -> int:
    from ..deploy import DeployError
    from ..sim import Supervisor

    try:
        sup = Supervisor(
            flash=Path(args.flash) if args.flash else None,
            speed=args.speed,
            hold=args.hold or "",
            unit=args.unit,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except DeployError as exc:
        raise CliError(str(exc)) from exc

    def on_ready(port):
        print(port, flush=True)
        print(f"virtual pen: flash {sup.flash}; side channel: pen --port {port} sim-ctl ...",
              file=sys.stderr, flush=True)  # fmt: skip

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return sup.run(port_file=args.port_file, on_ready=on_ready)
    except KeyboardInterrupt:
        sup.stop()
        return 0


def cmd_sim_ctl(args) -> int:
    from ..sim import ctl_command

    if not args.port:
        raise CliError("which virtual pen? give --port PORT or set PEN_PORT")
    words = list(args.words)
    if words and words[0] == "press" and args.hold_ms is not None:
        words += ["--hold-ms", str(args.hold_ms)]
    try:
        reply = ctl_command(args.port, " ".join(words))
    except (FileNotFoundError, ConnectionError, OSError) as exc:
        raise CliError(str(exc)) from exc
    if reply.startswith("ok"):
        rest = reply[2:].strip()
        if rest:
            print(rest)
        return 0
    raise CliError(reply.removeprefix("error").strip() or "virtual pen refused the command")


def _unit(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < 1_000_000:
        raise argparse.ArgumentTypeError(f"unit must be an integer 0..999999, not {text!r}")
    return n


def register(sub) -> None:
    p = sub.add_parser(
        "sim",
        help="run the virtual pen (prints its serial port, runs until interrupted)",
        description="Boot the pen's own files in the micropython binary on a simulated board "
        "behind a pseudo-terminal. The first line of output is the serial port path.",
    )
    p.add_argument("--flash", help="an existing folder used as the pen's flash, never a source "
                   "checkout (default: a fresh copy of the checkout's pen files)")  # fmt: skip
    p.add_argument("--speed", type=int, default=1, help="virtual seconds per real second")
    p.add_argument("--port-file", help="also write the port path to this file")
    p.add_argument("--hold", help="buttons held at power-up, e.g. start (safe mode)")
    p.add_argument("--unit", type=_unit, default=0,
                   help="which pen of the population: its parts drawn from their tolerances, "
                   "seeded by N (default 0: every part at its datasheet nominal)")
    p.set_defaults(func=cmd_sim)

    c = sub.add_parser(
        "sim-ctl",
        help="side channel of the virtual pen: buttons, skin load, gauge, faults",
        description="press start|plus|minus[+...] [--hold-ms N]; load 0..2 (1 = the published "
        "top of the skin's load); gauge (true needle protrusion in mm); battery VOLTS; fault "
        "NAME (stall, runaway, sensor_loss, short, endstop_open, endstop_closed, missed_steps, "
        "battery_low, hang, none); truth; "
        "screen [art] (the display read back as text, or its pixels); buzzer [clear] (tones "
        "played: [start ms, Hz, ms]); power cut (a power loss now: the pen reboots); unit (this "
        "pen's parts against nominal); glitch NAME RATE (hall_double, hall_miss, current_spike, "
        "adc_outlier: the share of strokes or conversions hit) | glitch none | glitch",
    )
    c.add_argument("words", nargs="+", help="the command and its arguments")
    c.add_argument("--hold-ms", type=int, help="with press: how long to hold (default 100)")
    c.set_defaults(func=cmd_sim_ctl)
