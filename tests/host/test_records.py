"""Treatment records: preset table, schema migrations, series spacing, the pen adapter, export."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from link_fakes import ScriptedLink

from pen import presets as presets_mod
from pen.presets import PresetError, load_presets, preset_to_settings_lines, validate_presets
from pen.records import default_db_path, resolve_db_path, schema
from pen.records import pen_adapter as adapter
from pen.records.export import export_csv, export_data
from pen.records.html import render_session_html
from pen.records.series import Plan, check_spacing, plan_status
from pen.records.store import ContraindicationBlocked, Records, RecordsError
from pen.records.summary import SummaryError, parse_summary

REPO = Path(__file__).resolve().parents[2]
NO_ANSWERS = {"active_acne": False, "eczema": False, "rosacea": False}
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("PEN_DB", "PEN_PRESETS", "PEN_CLINICIAN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def records(tmp_path):
    with Records.open(tmp_path / "records.sqlite3") as db:
        yield db


def _table() -> dict:
    return json.loads((REPO / "host_tools/pen/presets_default.json").read_text())


def _summary(start: datetime, depths=(1.5, 1.5), **extra) -> dict:
    data = {
        "start": start.isoformat(),
        "duration_s": 600.0,
        "cartridge": "LOT-7",
        "passes": [
            {"depth_mm": d, "stroke_hz": 120, "strokes": 120 * 150, "duration_s": 150.0,
             "start_s": 200.0 * i}
            for i, d in enumerate(depths)
        ],
        "faults": [],
        "overrides": [],
    }
    data.update(extra)
    return data


# -- presets -----------------------------------------------------------------------------


def test_default_table_is_valid_and_has_the_issue_examples():
    table = load_presets()
    assert len(table) >= 8
    forehead = table.find("rejuvenation", "forehead")
    scars = table.find("acne_scars", "cheeks")
    assert forehead is not None and scars is not None
    assert forehead.depth_max_mm <= 0.75
    assert scars.depth_min_mm >= 1.0 and scars.depth_max_mm <= 2.5
    for preset in table:
        assert preset.sources, f"{preset.name} has no source"
        assert 0 <= preset.depth_min_mm <= preset.depth_default_mm <= preset.depth_max_mm <= 3.0
    assert table.plan_defaults["acne_scars"].interval_weeks == 4


def test_docs_table_lists_every_default_preset_with_the_same_numbers():
    doc = (REPO / "docs/presets.md").read_text(encoding="utf-8")
    assert "not medical advice" in doc
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.fullmatch(r"[a-z_]+", cells[0]) and cells[3][:1].isdigit():
            rows[cells[0]] = cells
    table = load_presets()
    assert set(rows) == set(table.presets)
    references = set(re.findall(r"\*\*\[([a-z0-9_]+)\]\*\*", doc))
    for preset in table:
        name, indication, area, lo, default, hi, hz, sources = rows[preset.name]
        assert (indication, area) == (preset.indication, preset.area)
        assert (float(lo), float(default), float(hi)) == (
            preset.depth_min_mm, preset.depth_default_mm, preset.depth_max_mm
        )
        assert int(hz) == preset.stroke_hz
        for key in preset.sources:
            assert f"[{key}]" in sources, f"{name}: source {key} missing in the docs row"
            assert key in references, f"no reference entry for [{key}]"


def _mutated(path: str, value) -> dict:
    table = _table()
    target = table
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return table


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("presets.0.depth_min_mm", 0.6, "depth_default_mm 0.5 is outside its range"),
        ("presets.0.depth_max_mm", 0.2, "depth_min_mm 0.25 is above depth_max_mm 0.2"),
        ("presets.0.depth_max_mm", 3.01, "outside 0-3.0 mm"),
        ("presets.0.depth_min_mm", -0.01, "outside 0-3.0 mm"),
        ("presets.0.depth_default_mm", 0.505, "not a multiple of 0.01 mm"),
        ("presets.0.depth_default_mm", "0.5", "must be a number"),
        ("presets.0.stroke_hz", 49, "outside 50-150 Hz"),
        ("presets.0.stroke_hz", 151, "outside 50-150 Hz"),
        ("presets.0.stroke_hz", 100.5, "stroke_hz must be an integer"),
        ("presets.0.stroke_hz", True, "stroke_hz must be an integer"),
        ("presets.0.name", "Forehead 1", "must be lower-case"),
        ("presets.0.name", "rejuvenation_cheeks", "name used twice"),
        ("presets.0.area", "cheeks", "already covered by"),
        ("presets.0.stroke_hz", KeyError, "missing stroke_hz"),
        ("presets.0.depth_mm", 1.0, "unknown key(s) depth_mm"),
        ("presets", [], "non-empty list"),
        ("format", 2, "format 2 is not supported"),
        ("plan_defaults.acne_scars.interval_weeks", 0, "interval_weeks must be a whole number"),
        ("plan_defaults.tattoo", {"sessions": 1, "interval_weeks": 4}, "no preset has this"),
    ],
)
def test_validation_rejects_bad_tables(path, value, message):
    with pytest.raises(PresetError) as info:
        validate_presets(_mutated(path, value))
    assert any(message in problem for problem in info.value.problems), info.value.problems


def test_validation_reports_every_problem_at_once(tmp_path):
    table = _table()
    table["presets"][1]["stroke_hz"] = 200
    table["presets"][3]["depth_max_mm"] = 4
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(table))
    with pytest.raises(PresetError) as info:
        load_presets(path)
    assert len(info.value.problems) == 2
    assert "rejuvenation_periorbital" in info.value.problems[0]
    assert "rejuvenation_perioral" in info.value.problems[1]


def test_load_presets_reports_unreadable_and_non_json_files(tmp_path):
    with pytest.raises(PresetError, match="cannot read"):
        load_presets(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PresetError, match="not valid JSON"):
        load_presets(bad)


_hundredths = st.integers(min_value=0, max_value=300)


@given(st.lists(_hundredths, min_size=3, max_size=3), st.integers(50, 150))
def test_every_ordered_range_on_the_grid_is_accepted(values, hz):
    lo, default, hi = sorted(values)
    table = {"presets": [{"name": "p", "indication": "i", "area": "a",
                          "depth_min_mm": lo / 100, "depth_default_mm": default / 100,
                          "depth_max_mm": hi / 100, "stroke_hz": hz}]}
    preset = validate_presets(table).get("p")
    assert (preset.depth_min_mm, preset.depth_default_mm, preset.depth_max_mm) == (
        lo / 100, default / 100, hi / 100
    )


@given(
    st.lists(_hundredths, min_size=3, max_size=3, unique=True),
    st.one_of(st.integers(-1000, 49), st.integers(151, 10_000)),
)
def test_unordered_ranges_and_out_of_band_rates_are_rejected(values, hz):
    lo, default, hi = sorted(values)
    good = {"name": "p", "indication": "i", "area": "a", "depth_min_mm": lo / 100,
            "depth_default_mm": default / 100, "depth_max_mm": hi / 100, "stroke_hz": 100}
    for bad in (
        {**good, "depth_min_mm": hi / 100, "depth_max_mm": lo / 100},
        {**good, "depth_default_mm": hi / 100, "depth_max_mm": default / 100},
        {**good, "stroke_hz": hz},
    ):
        with pytest.raises(PresetError):
            validate_presets({"presets": [bad]})


def test_preset_to_settings_lines_is_the_wire_format():
    preset = load_presets().get("acne_scars_cheeks")
    assert preset_to_settings_lines(preset) == [
        "set preset.acne_scars_cheeks.depth_min 1.00",
        "set preset.acne_scars_cheeks.depth_max 2.50",
        "set preset.acne_scars_cheeks.depth_default 1.50",
        "set preset.acne_scars_cheeks.stroke_hz 120",
    ]
    selected = preset_to_settings_lines(preset, select=True)
    assert selected[-1] == "set preset.active acne_scars_cheeks"
    raw = {"name": "x", "indication": "i", "area": "a", "depth_min_mm": 0.25,
           "depth_default_mm": 0.3, "depth_max_mm": 0.5, "stroke_hz": 90}
    assert preset_to_settings_lines(raw)[2] == "set preset.x.depth_default 0.30"
    with pytest.raises(PresetError):
        preset_to_settings_lines({**raw, "depth_max_mm": 0.1})
    lines = presets_mod.table_to_settings_lines(load_presets())
    assert len(lines) == 4 * len(load_presets())


# -- pen adapter -------------------------------------------------------------------------


class FakeLink(ScriptedLink):
    def __init__(self, refuse=None, summary=None):
        super().__init__(self._answer)
        self.refuse = refuse
        self.summary = summary

    def _answer(self, line: str) -> str:
        if self.refuse and self.refuse in line:
            return "error:11 protected setting: clinician lock engaged"
        if line == adapter.SESSION_SUMMARY_COMMAND:
            return self.summary
        return "ok"


def test_apply_preset_sends_the_settings_then_selects_it():
    preset = load_presets().get("rejuvenation_forehead")
    link = FakeLink()
    adapter.apply_preset(link, preset)
    assert link.sent == preset_to_settings_lines(preset, select=True)
    assert link.sent[-1] == "set preset.active rejuvenation_forehead"


def test_apply_preset_stops_at_the_first_refusal_without_selecting():
    preset = load_presets().get("rejuvenation_forehead")
    link = FakeLink(refuse="depth_max")
    with pytest.raises(adapter.PenAdapterError, match="unlock the pen"):
        adapter.apply_preset(link, preset)
    assert link.sent[-1].endswith("depth_max 0.75")
    assert not any("preset.active" in line for line in link.sent)


def test_fetch_session_reads_the_summary_and_rejects_bad_replies():
    data = _summary(T0, depths=(1.0, 1.25))
    summary = adapter.fetch_session(FakeLink(summary="ok " + json.dumps(data)))
    assert [p.depth_mm for p in summary.passes] == [1.0, 1.25]
    assert summary.cartridge == "LOT-7"
    for reply, message in [
        ("error:12 no session", "refused"),
        ("ok {truncated", "not JSON"),
        ("ok " + json.dumps({"start": "yesterday"}), "not usable"),
        ("hello", "cannot reach the pen"),  # not a reply: the link waits and times out
    ]:
        with pytest.raises(adapter.PenAdapterError, match=message):
            adapter.fetch_session(FakeLink(summary=reply))


def test_open_link_without_a_serial_link_suggests_no_pen(monkeypatch):
    import pen

    monkeypatch.delattr(pen, "link", raising=False)
    monkeypatch.setitem(sys.modules, "pen.link", None)
    with pytest.raises(adapter.PenAdapterError, match="--no-pen"):
        adapter.open_link(None)


# -- session summary ---------------------------------------------------------------------


def test_summary_parse_accepts_iso_pass_starts_and_fault_objects():
    data = _summary(T0, faults=["stall", {"code": "overcurrent", "at_s": 12.5, "detail": "x"}],
                    overrides=[{"kind": "depth", "from_mm": 2.5, "to_mm": 2.7, "by": "button"}])
    data["passes"][1].pop("start_s")
    data["passes"][1]["start"] = (T0 + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    summary = parse_summary(data)
    assert summary.passes[1].start_s == 90
    assert [f.code for f in summary.faults] == ["stall", "overcurrent"]
    assert summary.overrides[0].detail == {"from_mm": 2.5, "to_mm": 2.7}


def test_summary_parse_lists_every_problem():
    data = _summary(T0)
    data["duration_s"] = -1
    data["passes"][0]["depth_mm"] = 3.5
    data["passes"][1]["strokes"] = 1.5
    del data["passes"][1]["stroke_hz"]
    data["faults"] = [42]
    with pytest.raises(SummaryError) as info:
        parse_summary(data)
    text = str(info.value)
    for fragment in ("duration_s", "passes[0].depth_mm", "passes[1].strokes",
                     "passes[1].stroke_hz is missing", "faults[0]"):
        assert fragment in text


# -- database path -----------------------------------------------------------------------


def test_db_path_option_then_env_then_user_data_folder(monkeypatch, tmp_path):
    import platformdirs

    assert default_db_path().parent == platformdirs.user_data_path("pen", appauthor=False)
    assert resolve_db_path() == default_db_path()
    monkeypatch.setenv("PEN_DB", str(tmp_path / "env.db"))
    assert resolve_db_path() == tmp_path / "env.db"
    assert resolve_db_path(tmp_path / "opt.db") == tmp_path / "opt.db"


# -- schema and migrations ---------------------------------------------------------------


def _tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_new_database_is_at_the_latest_version(records):
    conn = records.conn
    assert schema.current_version(conn) == schema.LATEST == 2
    assert {"clients", "checklist_items", "treatment_sessions", "passes", "session_faults",
            "plans", "overrides", "session_answers", "aftercare"} <= _tables(conn)
    assert [i.key for i in records.checklist()] == ["active_acne", "eczema", "rosacea"]
    assert "sunscreen" in records.aftercare()
    versions = [r[0] for r in conn.execute("SELECT version FROM records_schema ORDER BY 1")]
    assert versions == [1, 2]


def _make_v1_database(path: Path) -> dict:
    """A database made by the version-1 schema, filled with records of every kind."""
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, target=1)
    assert schema.current_version(conn) == 1
    assert "plans" not in _tables(conn)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO clients (id, created_at) VALUES (?, ?)",
        [("C-AAA111", "2024-01-02T09:00:00+01:00"), ("C-BBB222", "2024-02-03T09:00:00+01:00")],
    )
    conn.execute(
        "INSERT INTO checklist_items (key, question, builtin, active, created_at) "
        "VALUES ('isotretinoin', 'Isotretinoin in the last 6 months?', 0, 1, '2024-01-01')"
    )
    sessions = [
        (1, "C-AAA111", "acne_scars", "cheeks", "acne_scars_cheeks", "2024-01-10T10:00:00+01:00",
         640.0, "LOT-1", {"active_acne": False, "eczema": False, "rosacea": False,
                          "isotretinoin": False}),
        (2, "C-AAA111", "acne_scars", "cheeks", "acne_scars_cheeks", "2024-02-07T10:00:00+01:00",
         700.5, "LOT-2", {"active_acne": False, "eczema": True, "rosacea": False,
                          "isotretinoin": False}),
        (3, "C-BBB222", "rejuvenation", "forehead", None, "2024-02-10T11:30:00+01:00",
         None, None, {"active_acne": False, "eczema": False, "rosacea": False}),
    ]
    for sid, cid, ind, area, preset, start, dur, cart, answers in sessions:
        conn.execute(
            "INSERT INTO treatment_sessions (id, client_id, indication, area, preset, started_at,"
            " duration_s, cartridge, checklist_json, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, cid, ind, area, preset, start, dur, cart, json.dumps(answers), start),
        )
    passes = [
        (1, 1, 0.0, 180.0, 1.5, 120.0, 21600),
        (1, 2, 200.0, 175.5, 1.75, 118.5, 20700),
        (2, 1, None, 300.0, 2.0, 120.0, 36000),
    ]
    conn.executemany(
        "INSERT INTO passes (session_id, seq, start_s, duration_s, depth_mm, stroke_hz, strokes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        passes,
    )
    faults = [(1, "stall", 95.0, "load spike"), (2, "overcurrent", None, None)]
    conn.executemany(
        "INSERT INTO session_faults (session_id, code, at_s, detail) VALUES (?, ?, ?, ?)", faults
    )
    conn.execute("COMMIT")
    conn.close()
    return {"sessions": sessions, "passes": passes, "faults": faults}


def test_migration_from_v1_keeps_every_record(tmp_path):
    path = tmp_path / "old.sqlite3"
    made = _make_v1_database(path)

    with Records.open(path) as records:
        assert schema.current_version(records.conn) == 2
        assert (tmp_path / "old.sqlite3.v1.bak").exists()
        assert records.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert records.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [c["id"] for c in records.list_clients()] == ["C-AAA111", "C-BBB222"]
        assert {i.key for i in records.checklist()} == {
            "active_acne", "eczema", "rosacea", "isotretinoin"
        }
        for sid, cid, ind, area, preset, start, dur, cart, answers in made["sessions"]:
            s = records.session(sid)
            assert (s["client_id"], s["indication"], s["area"], s["preset"]) == (
                cid, ind, area, preset
            )
            assert (s["started_at"], s["duration_s"], s["cartridge"]) == (start, dur, cart)
            assert {a["item_key"]: bool(a["answer"]) for a in s.answers} == answers
            assert s["status"] == ("recorded" if sid in (1, 2) else "open")
            assert s["plan_id"] is None
        got_passes = [
            (sid, p["seq"], p["start_s"], p["duration_s"], p["depth_mm"], p["stroke_hz"],
             p["strokes"])
            for sid in (1, 2, 3)
            for p in records.session(sid).passes
        ]
        assert got_passes == made["passes"]
        got_faults = [
            (sid, f["code"], f["at_s"], f["detail"])
            for sid in (1, 2, 3)
            for f in records.session(sid).faults
        ]
        assert got_faults == made["faults"]
        question = records.session(2).answers[1]["question"]
        assert question.startswith("Eczema")

        # The migrated database is fully usable: plans see the old sessions.
        plan = records.create_plan("C-AAA111", "acne_scars", 3, 4)
        status = records.plan_status(plan)
        assert status.last_visit == date(2024, 2, 7)
        assert records.history("C-AAA111")[1].passes[0]["depth_mm"] == 2.0

    with Records.open(path) as again:  # opening again migrates nothing more
        assert schema.current_version(again.conn) == 2
        assert len(again.session_ids()) == 3


def test_failed_migration_changes_nothing(tmp_path):
    path = tmp_path / "broken.sqlite3"
    _make_v1_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE treatment_sessions SET checklist_json = '{oops' WHERE id = 3")
    conn.close()
    with pytest.raises(schema.SchemaError, match="session 3"):
        Records.open(path)
    conn = sqlite3.connect(path)
    assert schema.current_version(conn) == 1
    assert conn.execute("SELECT COUNT(*) FROM treatment_sessions").fetchone()[0] == 3
    assert conn.execute("SELECT COUNT(*) FROM passes").fetchone()[0] == 3
    assert "plans" not in _tables(conn)
    conn.close()


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    Records.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO records_schema VALUES (99, '2030-01-01')")
    conn.commit()
    conn.close()
    with pytest.raises(schema.SchemaError, match="newer than this pen tool"):
        Records.open(path)


# -- series spacing ----------------------------------------------------------------------


def _plan(**kw) -> Plan:
    values = dict(id=1, client_id="C", indication="acne_scars", sessions=3, interval_weeks=4,
                  maintenance_weeks=None, created_at="2025-01-01")
    values.update(kw)
    return Plan(**values)


def test_four_week_plan_flags_a_visit_two_weeks_after_the_last():
    plan = _plan()
    first = date(2025, 3, 3)
    check = check_spacing(plan, [first], [first], first + timedelta(weeks=2))
    assert check.early and check.days_early == 14
    assert check.due_from == date(2025, 3, 31)
    assert check.status.next_number == 2
    assert not check_spacing(plan, [first], [first], date(2025, 3, 31)).early


def test_areas_treated_on_the_same_day_are_one_visit():
    plan = _plan()
    day = date(2025, 3, 3)
    check = check_spacing(plan, [day], [day], day)
    assert not check.early
    status = plan_status(plan, [day, day], [day, day])
    assert status.visits_done == 1 and status.next_number == 2


def test_after_the_series_comes_maintenance_or_nothing():
    days = [date(2025, 1, 6), date(2025, 2, 3), date(2025, 3, 3)]
    done = plan_status(_plan(), days, days)
    assert done.phase == "complete" and done.due_from is None
    kept = plan_status(_plan(maintenance_weeks=26), days, days)
    assert kept.phase == "maintenance"
    assert kept.due_from == date(2025, 3, 3) + timedelta(weeks=26)
    assert "maintenance" in kept.describe(date(2025, 3, 4))
    early = check_spacing(_plan(maintenance_weeks=26), days, days, date(2025, 5, 5))
    assert early.early and early.due_from == kept.due_from


# -- store rules -------------------------------------------------------------------------


def test_a_session_needs_every_checklist_answer(records):
    records.add_client("C-1")
    records.add_checklist_item("isotretinoin", "Isotretinoin in the last 6 months?")
    with pytest.raises(RecordsError, match="not answered: isotretinoin"):
        records.start_session("C-1", "rejuvenation", "forehead", dict(NO_ANSWERS))
    with pytest.raises(RecordsError, match="unknown checklist item"):
        records.start_session("C-1", "rejuvenation", "forehead",
                              {**NO_ANSWERS, "isotretinoin": False, "pregnant": False})
    assert records.session_ids() == []


def test_positive_answer_blocks_unless_overridden_with_a_reason(records):
    records.add_client("C-1")
    answers = {**NO_ANSWERS, "rosacea": True}
    for reason in (None, "   "):
        with pytest.raises(ContraindicationBlocked) as info:
            records.start_session("C-1", "rejuvenation", "cheeks", answers, override_reason=reason)
        assert [i.key for i in info.value.positives] == ["rosacea"]
    assert records.session_ids() == []
    sid = records.start_session("C-1", "rejuvenation", "cheeks", answers, clinician="dr-b",
                                override_reason="quiescent, cheeks clear")
    s = records.session(sid)
    assert [(o["kind"], o["by_whom"], o["reason"], o["detail"]) for o in s.overrides] == [
        ("contraindication", "dr-b", "quiescent, cheeks clear", {"items": ["rosacea"]})
    ]
    assert {a["item_key"]: a["answer"] for a in s.answers}["rosacea"] == 1


def test_builtin_items_cannot_be_removed_but_clinic_items_can(records):
    with pytest.raises(RecordsError, match="built-in"):
        records.remove_checklist_item("rosacea")
    records.add_checklist_item("pregnancy", "Pregnant or breastfeeding?")
    with pytest.raises(RecordsError, match="already exists"):
        records.add_checklist_item("pregnancy", "again?")
    records.remove_checklist_item("pregnancy")
    assert "pregnancy" not in [i.key for i in records.checklist()]
    assert "pregnancy" in [i.key for i in records.checklist(include_inactive=True)]


def test_record_summary_stores_passes_and_flags_depths_outside_the_preset(records):
    preset = load_presets().get("acne_scars_cheeks")
    records.add_client("C-1")
    sid = records.start_session("C-1", "acne_scars", "cheeks", NO_ANSWERS, preset=preset,
                                started_at=T0)
    warnings = records.record_summary(sid, parse_summary(_summary(T0, depths=(1.5, 2.7))))
    assert any("pass 2 at 2.70 mm is outside the preset range 1.00-2.50" in w for w in warnings)
    s = records.session(sid)
    assert [p["depth_mm"] for p in s.passes] == [1.5, 2.7]
    assert s["status"] == "recorded" and s["cartridge"] == "LOT-7"
    with pytest.raises(RecordsError, match="--replace"):
        records.record_summary(sid, parse_summary(_summary(T0)))
    overridden = _summary(T0, depths=(2.7,), overrides=[{"kind": "depth", "to_mm": 2.7,
                                                         "by": "button"}])
    assert records.record_summary(sid, parse_summary(overridden), replace=True) == []
    s = records.session(sid)
    assert [p["depth_mm"] for p in s.passes] == [2.7]
    assert [(o["source"], o["kind"], o["by_whom"]) for o in s.overrides] == [
        ("pen", "depth", "button")
    ]


def test_client_ids_are_pseudonyms(records):
    generated = records.add_client()
    assert re.fullmatch(r"C-[0-9A-Z]{6}", generated)
    with pytest.raises(RecordsError, match="never a name"):
        records.add_client("Jane Doe")
    with pytest.raises(RecordsError, match="already exists"):
        records.add_client(generated)
    columns = {r[1] for r in records.conn.execute("PRAGMA table_info(clients)")}
    assert columns == {"id", "created_at"}


# -- export and report -------------------------------------------------------------------


def _filled(records: Records) -> int:
    records.add_client("C-1")
    records.create_plan("C-1", "acne_scars", 3, 4, 26)
    preset = load_presets().get("acne_scars_cheeks")
    sid = records.start_session("C-1", "acne_scars", "cheeks", {**NO_ANSWERS, "eczema": True},
                                preset=preset, started_at=T0, clinician="dr-a",
                                override_reason="eczema on the neck only, <b>not</b> the cheeks")
    records.record_summary(sid, parse_summary(_summary(T0, faults=["stall"])))
    return sid


def test_export_json_and_csv_hold_every_record(records, tmp_path):
    sid = _filled(records)
    records.create_plan("C-1", "acne_scars", 4, 6)  # replaces the first plan, which stays
    data = export_data(records)
    assert data["schema_version"] == 2
    (client,) = data["clients"]
    assert [(p["sessions"], p["maintenance_weeks"], p["active"]) for p in client["plans"]] == [
        (3, 26, 0),
        (4, None, 1),
    ]
    (session,) = client["sessions"]
    assert session["id"] == sid and len(session["passes"]) == 2
    assert session["overrides"][0]["reason"].startswith("eczema on the neck")
    json.dumps(data)  # serialisable as is

    files = {p.name: p for p in export_csv(records, tmp_path / "csv")}
    assert set(files) == {"clients.csv", "plans.csv", "sessions.csv", "answers.csv",
                          "passes.csv", "faults.csv", "overrides.csv"}
    with files["passes.csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["session_id"], r["seq"], r["depth_mm"]) for r in rows] == [
        (str(sid), "1", "1.5"), (str(sid), "2", "1.5")
    ]
    with files["answers.csv"].open() as fh:
        answers = {r["item_key"]: r["answer"] for r in csv.DictReader(fh)}
    assert answers == {"active_acne": "no", "eczema": "yes", "rosacea": "no"}


def test_report_keeps_the_aftercare_text_of_the_session_and_escapes_html(records):
    sid = _filled(records)
    records.set_aftercare("Clinic text: call 555-0100 if worried.")
    html = render_session_html(records.session(sid), records.aftercare())
    assert "sunscreen" in html  # the text the session started with, not the later edit
    assert "555-0100" not in html
    assert "&lt;b&gt;not&lt;/b&gt;" in html and "<b>not</b>" not in html
    assert "acne_scars_cheeks" in html and "C-1" in html and "stall" in html
    sid2 = records.start_session("C-1", "acne_scars", "chin", NO_ANSWERS,
                                 started_at=T0 + timedelta(days=1))
    assert "555-0100" in render_session_html(records.session(sid2))
