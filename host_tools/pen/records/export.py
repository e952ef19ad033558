"""Export of the records: one JSON document, or one CSV file per table."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from . import schema
from .store import Records
from .timeutil import now_iso

EXPORT_FORMAT = "pen-records"

CSV_TABLES: dict[str, list[str]] = {
    "clients": ["client_id", "created_at"],
    "plans": [
        "plan_id",
        "client_id",
        "indication",
        "sessions",
        "interval_weeks",
        "maintenance_weeks",
        "created_at",
        "active",
    ],
    "sessions": [
        "session_id",
        "client_id",
        "plan_id",
        "indication",
        "area",
        "preset",
        "preset_depth_min_mm",
        "preset_depth_max_mm",
        "preset_depth_default_mm",
        "preset_stroke_hz",
        "started_at",
        "duration_s",
        "cartridge",
        "clinician",
        "status",
        "pen_session",
        "recorded_at",
    ],
    "answers": ["session_id", "item_key", "question", "answer"],
    "passes": ["session_id", "seq", "start_s", "duration_s", "depth_mm", "stroke_hz", "strokes"],
    "faults": ["session_id", "code", "at_s", "detail"],
    "overrides": ["session_id", "kind", "source", "by_whom", "reason", "at", "detail"],
}


def export_data(records: Records, client_id: str | None = None) -> dict[str, Any]:
    """Everything (or one client's records) as a JSON-ready document."""
    if client_id is not None:
        clients = [records.require_client(client_id)]
    else:
        clients = records.list_clients()
    out_clients = []
    for client in clients:
        cid = client["id"]
        out_clients.append(
            {
                "id": cid,
                "created_at": client["created_at"],
                "plans": records.plan_rows(cid),
                "sessions": [s.as_dict() for s in records.history(cid)],
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "schema_version": schema.current_version(records.conn),
        "exported_at": now_iso(),
        "checklist": [asdict(item) for item in records.checklist()],
        "aftercare": records.aftercare(),
        "clients": out_clients,
    }


def export_json(records: Records, path: Path | None, client_id: str | None = None) -> str:
    text = json.dumps(export_data(records, client_id), indent=2, ensure_ascii=False) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _rows(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in CSV_TABLES}
    for client in data["clients"]:
        rows["clients"].append({"client_id": client["id"], "created_at": client["created_at"]})
        for plan in client["plans"]:
            rows["plans"].append({"plan_id": plan["id"], **plan})
        for session in client["sessions"]:
            sid = session["id"]
            rows["sessions"].append({"session_id": sid, **session})
            for answer in session["answers"]:
                rows["answers"].append(
                    {"session_id": sid, **answer, "answer": "yes" if answer["answer"] else "no"}
                )
            for p in session["passes"]:
                rows["passes"].append({"session_id": sid, **p})
            for f in session["faults"]:
                rows["faults"].append({"session_id": sid, **f})
            for o in session["overrides"]:
                rows["overrides"].append(
                    {"session_id": sid, **o, "detail": json.dumps(o["detail"], sort_keys=True)}
                )
    return rows


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> int:
    """One CSV file: a header of `columns`, then each row's values of them; returns the rows."""
    n = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def export_csv(records: Records, directory: Path, client_id: str | None = None) -> list[Path]:
    """Write one CSV per table into `directory` (created); return the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in _rows(export_data(records, client_id)).items():
        path = directory / f"{name}.csv"
        write_csv(path, CSV_TABLES[name], rows)
        written.append(path)
    return written
