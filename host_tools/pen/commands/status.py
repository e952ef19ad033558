"""`pen status`: the pen's handshake (versions) and state."""

from __future__ import annotations

import json
import sys

from ..link import session

_ORDER = ("state", "homed", "armed", "depth_mm", "target_depth_mm", "measured_hz", "target_hz",
          "duty", "current_ma", "battery_mv", "fault", "fault_code", "cartridge",
          "cartridge_strokes", "uptime_ms")  # fmt: skip


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "status",
        help="the pen's versions and state",
        description="Connects (handshake: firmware, protocol and settings-schema versions) and "
        "prints the pen's state. A version mismatch is reported as a warning here (other "
        "commands refuse to work with a mismatched pen).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_status)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    if v is None:
        return "-"
    return str(v)


def cmd_status(args) -> int:
    with session(args, check=False) as link:
        status = link.call("status")
        hello, mismatch, port = link.hello, link.mismatch, link.port
    if args.json:
        print(json.dumps({"port": port, "hello": hello, "handshake_ok": mismatch is None,
                          "handshake_problem": mismatch, "status": status}))  # fmt: skip
    else:
        print(
            f"pen on {port}: firmware {hello.get('firmware_version', '?')}, protocol "
            f"{hello.get('protocol_version', '?')}, serial {hello.get('serial', '?')}, "
            f"board {hello.get('board_rev', '?')}"
        )
        if isinstance(status, dict):
            keys = [k for k in _ORDER if k in status]
            keys += [k for k in status if k not in keys and k not in hello]
            for k in keys:
                print(f"  {k:<18} {_fmt(status[k])}")
        else:
            print(f"  {status}")
    if mismatch:
        print(f"pen: warning: {mismatch}", file=sys.stderr)
    return 0
