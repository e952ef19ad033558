"""Bring a pen into service mode (its REPL: mpremote, `pen deploy`, repair), guiding the user.

While the pen's application runs, its USB port is protocol input only: Ctrl-C does nothing, and
the REPL is reachable only in service mode, which needs someone holding the pen
(firmware/service.py, docs/protocol.md "Who can do what"):

  - with the clinician secret: `unlock`, then `service reboot`; the user holds START on the pen
    for 2 s within 15 s and the pen restarts in service mode;
  - without it: power the pen up with START held.

    enter_service_mode(port, secret, say=print, press=None) -> "repl" | "rebooted"

returns "repl" when no application answers on the port (the pen is in service mode already, or
has no application), "rebooted" after a confirmed request (the port then shows the REPL).
`press` stands in for the user's finger (the virtual pen's side channel: `virtual_press(port)`);
a real pen waits for the user. Raises ServiceModeError with what to do when it cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Callable

HOLD_S = 2
WINDOW_S = 15
BANNER = b"service mode"
# How long (on the pen's own clock, its uptime) a request waits for the pen to finish booting
# and homing: the pen refuses service mode meanwhile. Homing takes about 0.5 s (DS-1: <= 1.5 s).
SETTLE_MS = 5000


class ServiceModeError(Exception):
    pass


def wait_out_homing(link, settle_ms: int = SETTLE_MS, pause_s: float = 0.05) -> dict:
    """Wait while the pen boots or homes (it refuses service mode then), by the pen's uptime;
    its status once it has settled. ServiceModeError if it has not within `settle_ms`."""
    st = link.call("status")
    t0 = last = st["uptime_ms"]
    while st["state"] in ("BOOT", "HOMING"):
        if st["uptime_ms"] < last:  # a pen that keeps restarting would reset the wait forever
            raise ServiceModeError("the pen restarted while service mode waited for homing")
        last = st["uptime_ms"]
        if st["uptime_ms"] - t0 > settle_ms:
            raise ServiceModeError(
                f"the pen is still {st['state']} after {settle_ms // 1000} s of its own time: "
                "service mode waits for homing to end")
        time.sleep(pause_s)
        st = link.call("status")
    return st


def virtual_press(port: str) -> Callable[[], None] | None:
    """For a virtual pen (`pen sim`): a function that holds its START for the user; else None."""
    from . import sim

    try:
        sim.find_registry(port)
    except FileNotFoundError:
        return None

    def press() -> None:
        sim.ctl_command(port, f"press start --hold-ms {HOLD_S * 1000 + 600}")

    return press


def enter_service_mode(port: str, secret: bytes | None, say: Callable[[str], None] = print,
                       press: Callable[[], None] | None = None,
                       timeout: float = WINDOW_S + 15.0) -> str:  # fmt: skip
    import serial

    from .link import LinkError, PenLink, PenRefused

    link = PenLink(port, timeout=3.0, check=False)
    try:
        try:
            link.open(handshake=True)
        except LinkError:
            return "repl"  # no application answering
        # This firmware echoes tags: match replies by them, so a late reply left on the port
        # by an earlier connection is never taken for an answer.
        link.tags = True
        if secret is None:
            raise ServiceModeError(
                "the pen is running its application, which ignores Ctrl-C: service mode is "
                "needed. Either give the clinician secret (--secret-file FILE or $PEN_SECRET) "
                f"and confirm on the pen by holding START {HOLD_S} s, or switch the pen off and "
                "power it up with START held."
            )
        ch = link.call("unlock")
        challenge = ch.get("challenge") if isinstance(ch, dict) else None
        if not challenge:
            raise ServiceModeError(f"the pen did not send a challenge: {ch!r}")
        link.call("unlock " + hmac.new(secret, challenge.encode(), hashlib.sha256).hexdigest())
        wait_out_homing(link)  # a pen just restarted (e.g. by a deploy) is homing
        link.call("service reboot")
    except PenRefused as exc:
        hint = ""
        if "fault" in str(exc):
            hint = ("; clear the fault first (`clear`, or hold START 1 s), or power the pen up "
                    "with START held")  # fmt: skip
        raise ServiceModeError(f"the pen refused service mode: {exc}{hint}") from exc
    except LinkError as exc:
        raise ServiceModeError(f"cannot ask the pen for service mode: {exc}") from exc
    finally:
        link.close()
    say(f"confirm on the pen: hold START for {HOLD_S} s within {WINDOW_S} s "
        "(the display says HOLD START 2s)")  # fmt: skip
    with serial.Serial(port, 115200, timeout=0.3) as s:
        s.reset_input_buffer()
        if press is not None:
            press()
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = (seen + s.read(4096))[-4096:]
            if BANNER in seen and b">>>" in seen[seen.index(BANNER):]:
                say("the pen restarted in service mode")
                return "rebooted"
    raise ServiceModeError(
        f"the pen did not restart in service mode within {timeout:.0f} s (START not held "
        f"{HOLD_S} s?); it returns to normal use by itself"
    )
