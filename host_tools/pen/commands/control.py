"""`pen home`, `pen arm`, `pen disarm`, `pen run [HZ]`, `pen stop`, `pen cartridge new`,
`pen clear`, `pen service enter|exit`, `pen reset`: the pen by hand.

Each sends the protocol command of the same name (docs/protocol.md), which the firmware carries
out through the same methods as its buttons (holding START arms, START runs and stops, holding
PLUS+MINUS confirms a cartridge), so a command is refused where the button would be. A command
that starts a movement waits for the pen to report it done (its state, asked with `status`);
`--no-wait` returns at once.
"""

from __future__ import annotations

import json
import time

from ..errors import CliError
from ..link import LinkError, PenRefused, SharedLink, firmware_module, session

# What to do after a refusal, by the firmware's error code (firmware/errors.py).
_NEXT = {
    "NOT_HOMED": "home it with `pen home`",
    "NOT_ARMED": "arm it with `pen arm`",
    "NO_CARTRIDGE": "confirm a new cartridge with `pen cartridge new`",
    "FAULT_ACTIVE": "see `pen status`, then clear the fault with `pen clear`",
    "MOTOR_RUNNING": "stop the needle with `pen stop`",
    "LOCKED": "unlock the pen with `pen unlock` (or give --secret-file)",
}
WAIT_S = 30.0  # give up waiting for the pen's report after this long (not a verdict)


def _refusal(exc: PenRefused) -> CliError:
    codes = firmware_module("firmware.errors")
    hint = next((todo for name, todo in _NEXT.items() if getattr(codes, name) == exc.code), "")
    return CliError(str(exc) + (f": {hint}" if hint else ""))


def _send(args, line: str, wait=None, what: str = "") -> int:
    """Send `line`; with `wait` (status -> bool) ask the pen until it reports it done."""
    with session(args) as link:
        try:
            got = link.call(line)
        except PenRefused as exc:
            raise _refusal(exc) from exc
        status = None
        if wait is not None and not args.no_wait:
            deadline = time.monotonic() + WAIT_S
            while True:
                status = link.call("status")
                if wait(status):
                    break
                if status.get("fault"):
                    raise CliError(f"the pen faulted while {what}: {status['fault']} (see "
                                   "`pen status`; `pen clear` once its cause is gone)")  # fmt: skip
                if time.monotonic() > deadline:
                    raise CliError(f"the pen did not finish {what} within {WAIT_S:g} s "
                                   f"(state {status.get('state')})")  # fmt: skip
                link.poll(0.05)
        if status is None:
            status = link.call("status")
    if args.json:
        print(json.dumps({"reply": got, "status": status}))
    else:
        print(f"{line}: ok" + (f" {json.dumps(got)}" if got is not None else "")
              + f"; state {status.get('state')}")  # fmt: skip
    return 0


def _homed(st: dict) -> bool:
    """Homed, and the depth stop at its target with its position checked (ready to run)."""
    return bool(st["homed"]) and st["state"] != "HOMING" and bool(st["depth_settled"])


def _stopped(st: dict) -> bool:
    return st.get("state") not in ("RUNNING", "STOPPING")


def cmd_home(args) -> int:
    return _send(args, "home", _homed, "homing")


def cmd_arm(args) -> int:
    return _send(args, "arm")


def cmd_disarm(args) -> int:
    return _send(args, "disarm", _stopped, "stopping the needle")


def cmd_run(args) -> int:
    return _send(args, "run" if args.hz is None else f"run {args.hz}")


def cmd_stop(args) -> int:
    return _send(args, "stop", _stopped, "stopping the needle")


def cmd_cartridge(args) -> int:
    return _send(args, f"cartridge {args.action}")


def cmd_clear(args) -> int:
    return _send(args, "clear")


def cmd_service(args) -> int:
    if args.action == "enter":
        from .unlock import load_secret

        secret = load_secret(args)
        if secret is not None:
            from ..auth import unlock

            with session(args) as link:
                try:
                    unlock(link, secret)
                except PenRefused as exc:
                    raise _refusal(exc) from exc
    return _send(args, f"service {args.action}", _homed if args.action == "exit" else None,
                 "homing after service")  # fmt: skip


def cmd_reset(args) -> int:
    """Restart the pen (`reset`: as at power-up), then handshake again."""
    with session(args, check=False) as link:
        if isinstance(link, SharedLink):
            raise CliError("`pen log` is recording from this pen and holds its port: stop the "
                           "log (Ctrl-C), then `pen reset`")  # fmt: skip
        try:
            hello = link.soft_reset()
        except PenRefused as exc:
            raise _refusal(exc) from exc
        except LinkError as exc:
            raise CliError(f"the pen did not come back after the reset: {exc}") from exc
        status = link.call("status")
    if args.json:
        print(json.dumps({"hello": hello, "status": status}))
    else:
        print(f"reset: firmware {hello.get('firmware_version', '?')} answered; state "
              f"{status.get('state')}")  # fmt: skip
    return 0


def register(sub) -> None:
    def add(name, func, help, description, wait=False):
        p = sub.add_parser(name, help=help, description=description)
        p.add_argument("--json", action="store_true", help="print the reply and state as JSON")
        if wait:
            p.add_argument("--no-wait", action="store_true",
                           help="return once the pen accepted the command")  # fmt: skip
        p.set_defaults(func=func, no_wait=False)
        return p

    add("home", cmd_home, "home the depth stop (the pen also homes by itself after boot)",
        "Homes the depth stop on its endstop (an armed pen is disarmed first); waits until the "
        "pen reports it homed.", wait=True)  # fmt: skip
    add("arm", cmd_arm, "arm a homed, ready pen (as holding START 1 s)",
        "Arms the pen; refused unless it is homed and READY. An armed pen left alone disarms "
        "itself after disarm_after_s.")  # fmt: skip
    add("disarm", cmd_disarm, "disarm (stops the needle first if it runs)",
        "Disarms the pen; a running needle is stopped first (waits until it has).", wait=True)
    p = add("run", cmd_run, "start the needle at HZ strokes/s (or change the rate while running)",
            "Starts the needle with its soft start at HZ (default: the stroke_hz setting); "
            "refused unless the pen is homed, armed and has a confirmed cartridge. While it "
            "runs, sets a new rate.")  # fmt: skip
    p.add_argument("hz", nargs="?", type=int, help="strokes per second")
    add("stop", cmd_stop, "stop the needle (controlled ramp down)",
        "Stops the needle as the START button does while running; waits until it has stopped. "
        "For an immediate stop from a script, the pen also takes the real-time byte `!`.",
        wait=True)  # fmt: skip
    p = add("cartridge", cmd_cartridge, "confirm a new needle cartridge (as holding PLUS+MINUS)",
            "`pen cartridge new`: confirm that a new cartridge is fitted; the stroke count for "
            "the cartridge starts again.")  # fmt: skip
    p.add_argument("action", choices=("new",), help="new: a new cartridge is fitted")
    add("clear", cmd_clear, "clear a latched fault whose cause is gone",
        "Clears the latched fault (see `pen status`); refused while its cause remains.")
    p = add("service", cmd_service, "enter or leave the service state (calibration)",
            "`pen service enter` (needs the clinician unlock: `pen unlock` first, or "
            "--secret-file here) puts a stopped, disarmed pen into SERVICE, where raw stepper "
            "moves are allowed; `pen service exit` leaves it and re-homes (waits for that).",
            wait=True)  # fmt: skip
    p.add_argument("action", choices=("enter", "exit"))
    from .unlock import add_secret_option

    add_secret_option(p)
    add("reset", cmd_reset, "restart the pen (as at power-up)",
        "Restarts the pen with the protocol's `reset` (refused while the needle runs: `pen "
        "stop` first), then waits for its new boot's handshake. It homes again; armed state, "
        "cartridge confirmation and unlock are lost; settings and records are kept.")
