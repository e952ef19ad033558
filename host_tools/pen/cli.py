"""The `pen` command: one entry point, sub-commands discovered from `pen.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__, commands
from .errors import CliError, PenError

__all__ = ["CliError", "PenError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pen",
        description="Deploy, configure, calibrate and record the microneedling pen over USB.",
    )
    parser.add_argument("--version", action="version", version=f"pen {__version__}")
    parser.add_argument(
        "--port",
        default=os.environ.get("PEN_PORT"),
        help="serial port of the pen (default: $PEN_PORT, else found by USB id 2E8A:0005)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PenError as exc:  # CliError, LinkError, CalibrationError, ...: one line each
        print(f"pen: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("pen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
