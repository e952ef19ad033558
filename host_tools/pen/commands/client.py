"""`pen client`: clients under pseudonymous IDs, their history, and export of the records."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import CliError
from ..records.cli_support import add_db_option, open_records
from ..records.export import export_csv, export_json
from ..records.store import Records, SessionRecord
from ..records.timeutil import now


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "client",
        help="treatment clients (pseudonymous IDs) and their history",
        description="Clients are kept under pseudonymous IDs only: no names or other personal "
        "data are stored. Keep the key from ID to person in the clinic's own files.",
    )
    sub = parser.add_subparsers(dest="client_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("add", help="add a client (an ID is generated when none is given)")
    p.add_argument("id", nargs="?", help="pseudonymous ID, e.g. C-7F3K2Q (never a name)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_option(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list clients")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="a client's plans and session history with passes")
    p.add_argument("id", help="client ID")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_option(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="export the records as JSON or CSV")
    p.add_argument("--client", metavar="ID", help="only this client (default: everyone)")
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="json: one document (to --out FILE or standard output); "
        "csv: one file per table into the --out folder",
    )
    p.add_argument("--out", metavar="PATH", help="output file (json) or folder (csv)")
    add_db_option(p)
    p.set_defaults(func=cmd_export)


def cmd_add(args: argparse.Namespace) -> int:
    with open_records(args, create=True) as records:
        client_id = records.add_client(args.id)
    if args.json:
        print(json.dumps({"id": client_id}))
    else:
        print(f"client {client_id} added")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_records(args) as records:
        clients = records.list_clients()
    if args.json:
        print(json.dumps(clients, indent=2))
        return 0
    if not clients:
        print("no clients yet (add one with: pen client add)")
        return 0
    print(f"{'client':<34} {'since':<10}  {'sessions':>8}  last session")
    for c in clients:
        last = c["last_session"][:10] if c["last_session"] else "-"
        print(f"{c['id']:<34} {c['created_at'][:10]:<10}  {c['sessions']:>8}  {last}")
    return 0


def _fmt(value, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{format(value, fmt)}{unit}"


def format_session(session: SessionRecord) -> list[str]:
    s = session.row
    lines = [
        f"session {session.id}  {s['started_at']}  {s['indication']} / {s['area']}  [{s['status']}]"
    ]
    if s["preset"]:
        lines.append(f"  preset: {session.preset_text()}")
    duration = _fmt(s["duration_s"], ".0f", " s")
    lines.append(
        f"  cartridge: {s['cartridge'] or '-'}  pen session: {s['pen_session'] or '-'}  "
        f"duration: {duration}  clinician: {s['clinician'] or '-'}"
    )
    if session.answers:
        answers = ", ".join(
            f"{a['item_key']} {'YES' if a['answer'] else 'no'}" for a in session.answers
        )
        lines.append(f"  checklist: {answers}")
    for o in session.overrides:
        who = o["by_whom"] or "?"
        detail = ", ".join(f"{k}={v}" for k, v in o["detail"].items())
        lines.append(
            f"  override ({o['kind']}, {o['source']}) by {who}: {o['reason'] or '-'}"
            + (f"  [{detail}]" if detail else "")
        )
    if session.passes:
        lines.append("  passes:   #   start s  duration s  depth mm  stroke Hz   strokes")
        for p in session.passes:
            lines.append(
                f"          {p['seq']:>2}  {_fmt(p['start_s'], '8.1f'):>8}  "
                f"{_fmt(p['duration_s'], '10.1f'):>10}  {p['depth_mm']:8.2f}  "
                f"{p['stroke_hz']:9.0f}  {p['strokes']:>8}"
            )
        total = sum(p["strokes"] for p in session.passes)
        lines.append(f"  total strokes: {total}")
    else:
        lines.append(
            "  passes: none recorded yet (pen treat record --session "
            f"{session.id} --from-json FILE)"
        )
    if session.faults:
        faults = "; ".join(
            f["code"]
            + (f" at {f['at_s']:.1f} s" if f["at_s"] is not None else "")
            + (f" ({f['detail']})" if f["detail"] else "")
            for f in session.faults
        )
        lines.append(f"  faults: {faults}")
    else:
        lines.append("  faults: none")
    return lines


def format_client(records: Records, client_id: str) -> list[str]:
    client = records.require_client(client_id)
    today = now().date()
    lines = [f"client {client['id']} (since {client['created_at'][:10]})"]
    plans = records.plans(client_id)
    if plans:
        lines.append("plans:")
        for plan in plans:
            status = records.plan_status(plan)
            lines.append(f"  {plan.indication}: {plan.describe()}")
            lines.append(f"    {status.describe(today)}")
    else:
        lines.append("plans: none (create one with: pen treat plan)")
    history = records.history(client_id)
    lines.append(f"history: {len(history)} session(s)")
    for session in history:
        lines.extend(format_session(session))
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    with open_records(args) as records:
        if args.json:
            client = records.require_client(args.id)
            data = {
                **client,
                "plans": [
                    {**asdict(p), "status": records.plan_status(p).describe(now().date())}
                    for p in records.plans(args.id)
                ],
                "sessions": [s.as_dict() for s in records.history(args.id)],
            }
            print(json.dumps(data, indent=2, ensure_ascii=False))
            return 0
        print("\n".join(format_client(records, args.id)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with open_records(args) as records:
        if args.format == "json":
            out = Path(args.out) if args.out else None
            text = export_json(records, out, args.client)
            if out is None:
                sys.stdout.write(text)
            else:
                print(f"records written to {out}", file=sys.stderr)
        else:
            if not args.out:
                raise CliError("--format csv writes one file per table: give --out FOLDER")
            files = export_csv(records, Path(args.out), args.client)
            print(f"{len(files)} CSV files written to {args.out}", file=sys.stderr)
    return 0
