"""`pen calibrate depth`: guided calibration of the depth stop against a dial gauge."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from ..errors import CliError
from .unlock import add_secret_option, load_secret


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="guided calibration (depth stop against a dial gauge)",
        description="Calibrations of the pen. `pen calibrate depth --help` for the depth stop.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    d = sub.add_parser(
        "depth",
        help="calibrate the depth stop (steps <-> needle protrusion)",
        description="Homes the depth stop, moves it to points across 0 .. the depth limit (each "
        "approached from the retracted side, repeated), reads the gauge at each, fits the "
        "table, reports residuals and repeatability, rejects a bad fit with the reason, writes "
        "the table after confirmation (unlocking with the secret), verifies every depth from 0 "
        "to the limit, and saves a JSON report and a PNG plot. Zero the gauge with the needle "
        "tips flush with the stop's face first. Exit status 3 when the calibration is rejected.",
    )
    d.add_argument(
        "--gauge",
        metavar="PORT|virtual",
        help="a serial digital indicator on PORT, or 'virtual' (the virtual pen's gauge); "
        "without it the operator types each reading",
    )
    d.add_argument("--gauge-baud", type=int, default=9600, help="the indicator's baud rate")
    d.add_argument(
        "--gauge-request",
        metavar="TEXT",
        help=r"sent to the indicator before each reading (e.g. '\r'), if it needs one",
    )
    d.add_argument("--points", type=int, default=8, help="positions measured (default 8)")
    d.add_argument("--repeats", type=int, default=3, help="readings per position (default 3)")
    d.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        metavar="MM",
        help="verification: every depth within this of the gauge (default 0.02)",
    )
    d.add_argument("--verify-step", type=float, default=0.10, metavar="MM",
                   help="spacing of the verification depths (default 0.10)")  # fmt: skip
    d.add_argument("--report", metavar="DIR",
                   help="folder for calibration.json and calibration.png "
                   "(default: ./calibration-YYYYmmdd-HHMMSS)")  # fmt: skip
    d.add_argument("--yes", action="store_true", help="write the table without asking")
    d.add_argument("--resume", metavar="REPORT",
                   help="a calibration.json from an earlier run: its last round's readings are "
                   "used instead of measuring again (the readings are saved before anything is "
                   "sent to the pen)")  # fmt: skip
    add_secret_option(d)
    d.add_argument("--json", action="store_true", help="print the report as JSON at the end")
    d.set_defaults(func=cmd_calibrate_depth)


def _ask(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def cmd_calibrate_depth(args) -> int:
    from .. import calibrate as C
    from ..link import LinkError, PenRefused, session
    from .unlock import unlock

    cfg = C.Config(points=args.points, repeats=args.repeats, tol_mm=args.tolerance,
                   verify_step_mm=args.verify_step)  # fmt: skip
    typed = not args.gauge
    secret = load_secret(args)
    resume = None
    if args.resume:
        try:
            rounds = json.loads(Path(args.resume).read_text())["rounds"]
            resume = [(int(s), float(mm)) for s, mm in rounds[-1]["readings"]]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise CliError(f"--resume {args.resume}: no saved readings ({exc})") from exc
    folder = Path(args.report or datetime.now().strftime("calibration-%Y%m%d-%H%M%S"))
    out = sys.stderr if args.json else sys.stdout

    def info(msg: str) -> None:
        print(msg, file=out, flush=True)

    def confirm(question: str) -> bool:
        if args.yes:
            return True
        answer = _ask(f"{question} [y/N] ")
        if answer is None:
            raise CliError("confirmation needed: run with --yes for scripted use")
        return answer.strip().lower() in ("y", "yes")

    prog = None
    with session(args) as link:
        if args.gauge == "virtual":
            gauge = C.VirtualGauge(link.port)
        elif args.gauge:
            try:
                gauge = C.SerialGauge(args.gauge, args.gauge_baud, args.gauge_request)
            except C.CalibrationError as exc:
                raise CliError(str(exc)) from exc
        else:
            gauge = C.TypedGauge(_ask)
            info("Zero the dial gauge with the needle tips flush with the stop's face; type each "
                 "reading in mm when asked.")  # fmt: skip

        def do_unlock() -> None:
            if secret is None:
                return  # the pen may be unlocked already (pen unlock); calib set tells
            try:
                unlock(link, secret)
            except PenRefused as exc:
                raise CliError(f"unlock refused: {exc.message}") from exc

        progress = lambda what, done, total: None  # noqa: E731
        if not typed:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            prog = Progress(
                TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            task = prog.add_task("calibration", total=1)

            def progress(what, done, total):
                prog.update(task, description=what, completed=done, total=max(total, 1))

            prog.start()
        ui = C.Ui(info=info, confirm=confirm, progress=progress)
        folder.mkdir(parents=True, exist_ok=True)

        def keep(rep: dict) -> None:
            (folder / "calibration.json").write_text(json.dumps(rep, indent=2))

        cal = C.Calibrator(C.PenOps(link, cfg), gauge, cfg, ui, unlock=do_unlock, save=keep,
                           resume=resume)  # fmt: skip
        status = 0
        message = None
        try:
            rep = cal.run()
        except C.CalibrationRejected as exc:
            rep = exc.report or cal.report
            rep["verdict"] = "rejected"
            rep["reasons"] = exc.reasons
            status = 3
            message = "calibration rejected: " + "; ".join(exc.reasons)
        except (C.CalibrationError, PenRefused) as exc:
            rep = cal.report
            rep["verdict"] = "aborted"
            rep["reasons"] = [str(exc)]
            status = 1
            hint = ""
            if isinstance(exc, PenRefused) and exc.code == 11:
                hint = " (unlock: give --secret-file FILE or set $PEN_SECRET)"
            message = f"calibration aborted: {exc}{hint}"
        except LinkError as exc:
            rep = cal.report
            rep["verdict"] = "aborted"
            rep["reasons"] = [str(exc)]
            keep(rep)
            raise CliError(f"calibration aborted: {exc}; the readings are saved in "
                           f"{folder / 'calibration.json'}: resume with --resume "
                           f"{folder / 'calibration.json'}") from exc  # fmt: skip
        finally:
            if prog:
                prog.stop()
            gauge.close()
        rep["pen_serial"] = link.hello.get("serial")
        rep["gauge"] = getattr(gauge, "name", "?")
    js, png = C.save_report(rep, folder)
    rep["report_json"] = str(js)
    rep["report_png"] = str(png) if png else None
    if args.json:
        print(json.dumps(rep))
    if message:
        print(f"report saved: {js}" + (f", {png}" if png else ""), file=sys.stderr)
        raise CliError(message, status=status)
    if not args.json:
        worst = max((abs(v["error_mm"]) for v in rep.get("verify", [])), default=0.0)
        print(f"calibration accepted: {len(rep['table_after']) // 2} points written; every depth "
              f"0..{rep['limit_mm']:.2f} mm within {worst * 1000:.1f} µm of the gauge")  # fmt: skip
        print(f"report: {js}" + (f", {png}" if png else ""))
    return 0
