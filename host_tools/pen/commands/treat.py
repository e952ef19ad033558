"""`pen treat`: start a session (checklist, plan spacing, preset to the pen), record what the pen
did, plan a series, keep the checklist and aftercare text, and print a session report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from ..errors import CliError
from ..presets import Preset, PresetTable, preset_to_settings_lines
from ..records import pen_adapter
from ..records.checklist import parse_answer, parse_answers
from ..records.cli_support import (
    add_db_option,
    add_presets_option,
    ask,
    clinician_of,
    confirm,
    open_records,
    presets_of,
    warn,
)
from ..records.html import render_session_html
from ..records.store import ContraindicationBlocked, Records
from ..records.summary import SummaryError, parse_summary
from ..records.timeutil import aware, now, parse_iso, to_iso
from .unlock import SECRET_ENV, add_secret_option, load_secret


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "treat",
        help="treatment sessions: checklist, presets, plans, records, reports",
        description="Treatment sessions and series. Presets are the clinic's starting points, "
        "not medical advice (see docs/presets.md).",
    )
    sub = parser.add_subparsers(dest="treat_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser(
        "start",
        help="answer the checklist and start a session (sends the preset to the pen)",
        description="Runs the contraindication checklist (prompts, or --answers), checks the "
        "plan's spacing, sends the preset to the pen (unless --no-pen) and stores the session. "
        "A positive answer blocks (exit status 3) unless --override-reason is given; the "
        "override, who gave it and why are stored with the session. Presets are protected "
        f"settings: with --secret-file FILE (or ${SECRET_ENV}) the pen is unlocked for them "
        "and locked again afterwards; without, the pen must already be unlocked (pen unlock).",
    )
    p.add_argument("--client", required=True, metavar="ID", help="client ID")
    p.add_argument("--indication", required=True, help="e.g. rejuvenation, acne_scars")
    p.add_argument("--area", required=True, help="e.g. forehead, cheeks")
    p.add_argument("--preset", metavar="NAME", help="preset name (default: indication_area's)")
    p.add_argument(
        "--answers",
        metavar="KEY=yes|no,...",
        help="checklist answers for scripts, e.g. active_acne=no,eczema=no,rosacea=no "
        "(items not given are asked)",
    )
    p.add_argument(
        "--override-reason",
        metavar="TEXT",
        help="go ahead despite a positive checklist answer: the override, who gave it and this "
        "reason are stored with the session",
    )
    p.add_argument(
        "--clinician",
        metavar="WHO",
        help="who treats (default: $PEN_CLINICIAN, else the login name)",
    )
    p.add_argument("--cartridge", metavar="ID", help="needle cartridge lot/serial")
    p.add_argument("--at", metavar="WHEN", help="session date/time, ISO 8601 (default: now)")
    p.add_argument("--no-pen", action="store_true", help="keep the record only; no pen attached")
    add_secret_option(p)
    p.add_argument(
        "--yes",
        action="store_true",
        help="confirm overrides and early visits without asking (never answers the checklist)",
    )
    add_presets_option(p)
    add_db_option(p)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("record", help="store a session's passes, faults and overrides")
    p.add_argument("--session", required=True, type=int, metavar="N", help="session number")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-json", metavar="FILE", help="the pen's session summary as JSON")
    src.add_argument("--from-pen", action="store_true", help="fetch the summary from the pen")
    p.add_argument("--replace", action="store_true", help="overwrite passes already recorded")
    p.add_argument("--pen-session", metavar="P", type=int,
                   help="with --from-pen: the pen's own session number (see pen sessions; "
                   "default: the pen's newest session)")  # fmt: skip
    p.add_argument("--accept-mismatch", metavar="REASON",
                   help="with --from-pen: record even though the pen's session does not match "
                   "this treatment (its id, time or client); the reason is kept")  # fmt: skip
    add_db_option(p)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "plan",
        help="plan a series for a client and indication (replaces the active plan)",
    )
    p.add_argument("--client", required=True, metavar="ID", help="client ID")
    p.add_argument("--indication", required=True, help="e.g. acne_scars")
    p.add_argument("--sessions", type=int, metavar="N", help="sessions in the series")
    p.add_argument("--interval-weeks", type=int, metavar="W", help="weeks between sessions")
    p.add_argument(
        "--maintenance-weeks",
        type=int,
        metavar="W",
        help="weeks between maintenance sessions after the series (default: none)",
    )
    add_presets_option(p)
    add_db_option(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("due", help="what is due: each active plan's next session")
    p.add_argument("--client", metavar="ID", help="only this client")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_option(p)
    p.set_defaults(func=cmd_due)

    p = sub.add_parser("checklist", help="show or edit the contraindication checklist")
    p.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    p.add_argument("key", nargs="?", help="item key, e.g. isotretinoin (add/remove)")
    p.add_argument("question", nargs="?", help="the question asked (add)")
    add_db_option(p)
    p.set_defaults(func=cmd_checklist)

    p = sub.add_parser("aftercare", help="show or set the clinic's aftercare text")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--set-file", metavar="FILE", help="replace the text with this file's")
    group.add_argument("--reset", action="store_true", help="restore the default text")
    add_db_option(p)
    p.set_defaults(func=cmd_aftercare)

    p = sub.add_parser("report", help="write a session's record as HTML")
    p.add_argument("--session", required=True, type=int, metavar="N", help="session number")
    p.add_argument("--out", required=True, metavar="FILE.html", help="output file")
    add_db_option(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("presets", help="list (and check) the preset table")
    p.add_argument("--lines", action="store_true", help="print the pen's settings commands")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    add_presets_option(p)
    p.set_defaults(func=cmd_presets)


# -- start -------------------------------------------------------------------------------


def _resolve_preset(table: PresetTable, args: argparse.Namespace) -> Preset:
    if args.indication not in table.indications():
        raise CliError(
            f"unknown indication {args.indication!r}; the preset table has: "
            f"{', '.join(table.indications())}"
        )
    if args.preset:
        preset = table.get(args.preset)
        if preset is None:
            raise CliError(f"no preset {args.preset!r} (see: pen treat presets)")
        if (preset.indication, preset.area) != (args.indication, args.area):
            warn(
                f"preset {preset.name} is for {preset.indication}/{preset.area}, "
                f"the session is {args.indication}/{args.area}"
            )
        return preset
    preset = table.find(args.indication, args.area)
    if preset is None:
        raise CliError(
            f"no preset for {args.indication} on {args.area}; areas with a preset: "
            f"{', '.join(table.areas(args.indication))} (or choose one with --preset NAME)"
        )
    return preset


def _collect_answers(records: Records, args: argparse.Namespace) -> dict[str, bool]:
    try:
        answers = parse_answers(args.answers)
    except ValueError as exc:
        raise CliError(f"--answers: {exc}") from exc
    items = records.checklist()
    known = {item.key for item in items}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise CliError(
            f"--answers: unknown checklist item(s) {', '.join(unknown)}; "
            f"the checklist is: {', '.join(item.key for item in items)}"
        )
    missing = [item for item in items if item.key not in answers]
    if missing and args.yes:
        raise CliError(
            "checklist not answered: "
            + ", ".join(item.key for item in missing)
            + " (give --answers; --yes never answers the checklist)"
        )
    if missing:
        print("Contraindication checklist (answer yes or no):")
    for item in missing:
        for _attempt in range(3):
            reply = ask(f"  {item.question} [yes/no] ")
            if reply is None:
                raise CliError(f"checklist not answered: {item.key}; no session was started")
            try:
                answers[item.key] = parse_answer(reply)
                break
            except ValueError:
                print("  please answer yes or no")
        else:
            raise CliError(f"checklist not answered: {item.key}; no session was started")
    return answers


def cmd_start(args: argparse.Namespace) -> int:
    table = presets_of(args)
    preset = _resolve_preset(table, args)
    try:
        when = parse_iso(args.at) if args.at else now()
    except ValueError as exc:
        raise CliError(f"--at: {exc}") from exc
    clinician = clinician_of(args)
    with open_records(args) as records:
        records.require_client(args.client)

        spacing = records.check_spacing(args.client, args.indication, when)
        if spacing is None:
            print(
                f"no plan for {args.client} / {args.indication} (create one with: pen treat plan)"
            )
        else:
            plan = spacing.status.plan
            print(f"plan {plan.indication}: {plan.describe()}")
            print(f"  {spacing.status.describe(when.date())}")
            if spacing.early:
                weeks = (
                    plan.maintenance_weeks
                    if spacing.status.phase == "maintenance"
                    else plan.interval_weeks
                )
                warn(
                    f"this session comes {spacing.days_early} days earlier than the plan's "
                    f"{weeks}-week interval allows (last visit "
                    f"{spacing.previous_visit.isoformat()}, next due from "
                    f"{spacing.due_from.isoformat()})"
                )

        # The checklist comes first: a contraindication blocks whatever the schedule says.
        answers = _collect_answers(records, args)
        positives = [item for item in records.checklist() if answers.get(item.key)]
        reason = (args.override_reason or "").strip()
        if positives and not reason:
            raise ContraindicationBlocked(positives)
        if positives:
            names = ", ".join(item.key for item in positives)
            warn(f"contraindication override ({names}) by {clinician or '?'}: {reason}")
            if not confirm("Override the contraindication and treat?", args.yes):
                raise CliError("session not started")
        early = spacing if spacing is not None and spacing.early else None
        if early is not None and not confirm("Treat earlier than planned anyway?", args.yes):
            raise CliError("session not started")

        if args.no_pen:
            print(f"preset {preset.describe()} (not sent: --no-pen)")
        else:
            _send_preset(args, preset)
            print(f"preset {preset.describe()} sent to the pen")

        session_id = records.start_session(
            args.client,
            args.indication,
            args.area,
            answers,
            preset=preset,
            started_at=when,
            clinician=clinician,
            cartridge=args.cartridge,
            override_reason=reason or None,
            early=early,
            early_reason="confirmed with --yes" if args.yes else "confirmed at the prompt",
        )
    print(
        f"session {session_id} started: {args.client}, {args.indication} / {args.area}, "
        f"{to_iso(when)}"
    )
    print(
        f"after treating: pen treat record --session {session_id} --from-pen (or --from-json FILE)"
    )
    return 0


def _send_preset(args: argparse.Namespace, preset: Preset) -> None:
    """Store and select the preset on the pen (unlocking it with the secret, if given, and
    locking it again); any refusal ends the command before a session is stored."""
    secret = None if args.no_pen else load_secret(args)
    link = None
    unlocked = False
    try:
        link = pen_adapter.open_link(args.port)
        if secret is not None:
            pen_adapter.unlock(link, secret)
            unlocked = True
        pen_adapter.apply_preset(link, preset)
    except pen_adapter.PenAdapterError as exc:
        raise CliError(f"{exc}; no session was started") from exc
    finally:
        if link is not None:
            try:
                if unlocked:
                    pen_adapter.lock(link)
            except pen_adapter.PenAdapterError:
                warn("the pen could not be locked again: it locks itself within 10 minutes")
            finally:
                pen_adapter.close_link(link)


# -- record ------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    if args.from_pen:
        link = None
        try:
            link = pen_adapter.open_link(args.port)
            summary = pen_adapter.fetch_session(link, args.pen_session)
            fetched_at, clock = now(), pen_adapter.pen_clock(link)
        except pen_adapter.PenAdapterError as exc:
            raise CliError(str(exc)) from exc
        finally:
            if link is not None:
                pen_adapter.close_link(link)
    else:
        if args.pen_session is not None or args.accept_mismatch:
            raise CliError("--pen-session and --accept-mismatch go with --from-pen")
        path = Path(args.from_json)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} is not JSON: {exc}") from exc
        try:
            summary = parse_summary(data)
        except SummaryError as exc:
            raise CliError(f"{path}: {exc}") from exc
    with open_records(args) as records:
        if args.from_pen:
            problems = binding_problems(records, args.session, summary, fetched_at, clock)
            reason = (args.accept_mismatch or "").strip()
            if problems and not reason:
                raise CliError(
                    f"the pen's session {summary.pen_session or '?'} does not match treatment "
                    f"session {args.session}; nothing recorded:\n  - " + "\n  - ".join(problems)
                    + "\n(choose the pen's session with --pen-session P, see pen sessions; or "
                    "record it anyway with --accept-mismatch REASON)"
                )
        warnings = records.record_summary(args.session, summary, replace=args.replace)
        if args.from_pen and problems:
            by = clinician_of(args)
            records.record_binding_override(args.session, reason, by, {
                "pen_session": summary.pen_session, "problems": problems})  # fmt: skip
            warn(f"pen session {summary.pen_session} bound despite: {'; '.join(problems)} "
                 f"(by {by or '?'}: {reason})")  # fmt: skip
    for message in warnings:
        warn(message)
    strokes = sum(p.strokes for p in summary.passes)
    print(
        f"session {args.session}: {len(summary.passes)} passes ({strokes} strokes), "
        f"{len(summary.faults)} faults, {len(summary.overrides)} overrides recorded"
        + (f" (the pen's session {summary.pen_session})" if summary.pen_session else "")
    )
    return 0


CLOCK_SLACK = timedelta(seconds=60)  # the pen's clock against the computer's


def binding_problems(records, session_id: int, summary, fetched_at=None, clock=None) -> list[str]:
    """Why the pen's session `summary` may not be this treatment's: its id (bound elsewhere,
    or this treatment bound to another), its time (its first pass before `treat start`, or
    after now), no pass at all. Empty: it matches. `clock`, the pen's clock read at
    `fetched_at`, puts the pen's times on the computer's clock (a pen clock that is off or
    was never set does not matter)."""
    row = records.session(session_id).row
    ps = summary.pen_session
    out = []
    if ps is None:
        out.append("the pen's summary carries no session id")
    else:
        if row["pen_session"] and str(row["pen_session"]) != str(ps):
            out.append(f"treatment session {session_id} is bound to the pen's session "
                       f"{row['pen_session']}, not {ps}")  # fmt: skip
        for other in records.sessions_bound_to_pen_session(ps, session_id):
            out.append(f"the pen's session {ps} is already recorded as treatment session "
                       f"{other['id']} of client {other['client_id']}")  # fmt: skip
    if not summary.passes:
        out.append(f"the pen's session {ps} has no pass")
        return out
    first_s = timedelta(seconds=summary.passes[0].start_s)
    if clock is not None and fetched_at is not None:
        start = summary.start.replace(tzinfo=None)  # the pen's own frame, as its clock
        first = aware(fetched_at) + (start + first_s - clock)
    else:
        first = aware(summary.start) + first_s
    begun = parse_iso(row["created_at"])
    if first < begun - CLOCK_SLACK:
        out.append(f"its first pass ran at {to_iso(first)}, before this treatment was started "
                   f"({to_iso(begun)}): it belongs to another treatment")  # fmt: skip
    elif first > now() + CLOCK_SLACK:
        out.append(f"its first pass is dated {to_iso(first)}, in the future")
    return out


# -- plan / due --------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    table = presets_of(args)
    if args.indication not in table.indications():
        raise CliError(
            f"unknown indication {args.indication!r}; the preset table has: "
            f"{', '.join(table.indications())}"
        )
    defaults = table.plan_defaults.get(args.indication)
    sessions = args.sessions or (defaults.sessions if defaults else None)
    interval = args.interval_weeks or (defaults.interval_weeks if defaults else None)
    maintenance = args.maintenance_weeks
    if maintenance is None and defaults is not None:
        maintenance = defaults.maintenance_weeks
    if sessions is None or interval is None:
        raise CliError(
            f"no default plan for {args.indication}: give --sessions and --interval-weeks"
        )
    with open_records(args) as records:
        replaced = records.active_plan(args.client, args.indication)
        plan = records.create_plan(args.client, args.indication, sessions, interval, maintenance)
        status = records.plan_status(plan)
    if replaced is not None:
        print(f"replaces the earlier plan ({replaced.describe()})")
    print(f"plan {plan.id} for {args.client} / {args.indication}: {plan.describe()}")
    print(f"  {status.describe(now().date())}")
    return 0


def cmd_due(args: argparse.Namespace) -> int:
    today = now().date()
    rows = []
    with open_records(args) as records:
        if args.client:
            records.require_client(args.client)
        for plan in records.plans(args.client):
            status = records.plan_status(plan)
            rows.append(
                {
                    "client": plan.client_id,
                    "indication": plan.indication,
                    "plan": plan.describe(),
                    "phase": status.phase,
                    "visits_done": status.visits_done,
                    "last_visit": status.last_visit.isoformat() if status.last_visit else None,
                    "due_from": status.due_from.isoformat() if status.due_from else None,
                    "overdue": bool(status.due_from and status.due_from < today),
                    "text": status.describe(today),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no active plans")
    for row in rows:
        print(f"{row['client']} / {row['indication']}: {row['text']}")
    return 0


# -- checklist / aftercare / report / presets --------------------------------------------


def cmd_checklist(args: argparse.Namespace) -> int:
    with open_records(args, create=args.action in ("add", "remove")) as records:
        if args.action == "add":
            if not args.key or not args.question:
                raise CliError('usage: pen treat checklist add KEY "QUESTION?"')
            records.add_checklist_item(args.key, args.question)
            print(f"checklist item {args.key} added")
        elif args.action == "remove":
            if not args.key:
                raise CliError("usage: pen treat checklist remove KEY")
            records.remove_checklist_item(args.key)
            print(f"checklist item {args.key} removed (past answers are kept)")
        for item in records.checklist():
            origin = "built-in" if item.builtin else "clinic"
            print(f"{item.key:<20} {origin:<8}  {item.question}")
    return 0


def cmd_aftercare(args: argparse.Namespace) -> int:
    with open_records(args, create=bool(args.set_file or args.reset)) as records:
        if args.set_file:
            try:
                text = Path(args.set_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise CliError(f"cannot read {args.set_file}: {exc.strerror or exc}") from exc
            records.set_aftercare(text)
            print("aftercare text updated (used for sessions started from now on)", file=sys.stderr)
        elif args.reset:
            records.set_aftercare(None)
            print("aftercare text reset to the default", file=sys.stderr)
        sys.stdout.write(records.aftercare())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    with open_records(args) as records:
        session = records.session(args.session)
        html = render_session_html(session, records.aftercare())
    out = Path(args.out)
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"session {args.session} report written to {out}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    table = presets_of(args)
    if args.json:
        data = {
            "presets": [asdict(p) for p in table],
            "plan_defaults": {k: asdict(v) for k, v in table.plan_defaults.items()},
        }
        print(json.dumps(data, indent=2))
        return 0
    if args.lines:
        for preset in table:
            print("\n".join(preset_to_settings_lines(preset)))
        return 0
    print(
        f"{'preset':<26} {'indication':<14} {'area':<12} {'min':>5} {'default':>7} "
        f"{'max':>5}  {'Hz':>3}"
    )
    for p in table:
        print(
            f"{p.name:<26} {p.indication:<14} {p.area:<12} {p.depth_min_mm:5.2f} "
            f"{p.depth_default_mm:7.2f} {p.depth_max_mm:5.2f}  {p.stroke_hz:>3}"
        )
    print("starting points for the clinician, not medical advice (sources: docs/presets.md)")
    return 0
