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
        "stay source). On a pen with a ROMFS partition (the RP2040 image) the modules go into "
        "one ROMFS image (mpremote's romfs build and deploy) and only boot.py/main.py onto its "
        "filesystem; on a pen without one (the virtual pen's unix port) the modules are copied "
        "as .mpy files. Compares SHA-256 with the pen through its raw REPL (mpremote, in "
        "service mode: a running application is asked for it with the clinician secret, and "
        "the user confirms by holding START on the pen 2 s), writes only what changed, removes "
        "only files an earlier deploy placed (a manifest, .pen-deploy.json, is kept on the "
        "pen), verifies the SHA-256 of every file and of the ROMFS image, resets the pen and "
        "waits for the handshake. Refused while the needle runs. A dry run never touches a "
        "running application: it then lists what would be built without inspecting the pen.",
    )
    p.add_argument("--dry-run", action="store_true",
                   help="show what would change; change nothing (not even the pen's state)")
    p.add_argument("--adopt", action="store_true",
                   help="also replace app files on the pen that deploy did not place (a pen "
                   "set up by hand or by an older deploy)")  # fmt: skip
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
        try:
            target = d.DirTarget(Path(args.flash_dir), arch=d.local_micropython_arch())
        except d.DeployError as exc:
            raise CliError(str(exc)) from exc
        port = None
    else:
        try:
            port = find_port(args.port)
        except LinkError as exc:
            raise CliError(str(exc)) from exc
        state = d.pen_state(port)
        if state is not None and args.dry_run:
            # Reaching the pen's files means leaving its application (armed state, cartridge
            # and unlock would be lost): a dry run does not.
            res = d.Result(port, d.uninspected_plan(), True, info={"state": state})
            _report(res, args)
            return 0
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
        res = d.deploy(target, dry_run=args.dry_run, adopt=args.adopt, progress=update)
        if prog:
            prog.stop()
        # Restart the application after a deploy (a dry run only reaches a pen with no
        # application running, and leaves it as it was).
        if port is not None and not args.no_reset and not args.dry_run:
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
    if not plan.inspected:
        print(f"target {res.target}: the pen's application is running ({pen.get('state')}); a "
              "dry run does not stop it, so the pen's files were not inspected. Would build:")
        for f in plan.files:
            print(f"  {f.dest}")
        print(f"dry run: {len(plan.files)} files built, pen not inspected; nothing changed")
        return
    if pen.get("arch"):
        print(f"target {res.target}: MicroPython {'.'.join(map(str, pen.get('version', ())[:3]))}"
              f" on {pen['arch']}" if pen.get("version") else f"target {res.target}: {pen['arch']}")
    else:
        print(f"target {res.target}")
    for f in plan.copy:
        note = f"  ({f.note})" if f.note else ""
        print(f"  {verb + ' ' if verb else ''}copy   {f.dest}{note}")
    if plan.romfs is not None:
        state = "write" if plan.romfs_write else "unchanged"
        print(f"  {verb + ' ' if verb else ''}romfs  {len(plan.romfs)} bytes ({state})")
    for p in plan.remove:
        print(f"  {verb + ' ' if verb else ''}remove {p}")
    for p in plan.foreign:
        print(f"  not placed by deploy: {p} (replaced only with --adopt)")
    if res.dry_run:
        print(f"dry run: {len(plan.copy)} to copy, {len(plan.remove)} to remove, "
              f"{len(plan.unchanged)} unchanged")  # fmt: skip
        return
    print(f"{len(plan.copy)} copied, {len(plan.remove)} removed, {len(plan.unchanged)} unchanged;"
          f" SHA-256 verified for {res.verified} files")  # fmt: skip
    if res.hello:
        print(f"pen restarted: firmware {res.hello.get('firmware_version')}, protocol "
              f"{res.hello.get('protocol_version')}; handshake ok")  # fmt: skip
