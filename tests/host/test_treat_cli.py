"""`pen client` and `pen treat` end to end through `pen.cli.main`, with a fake pen link."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from link_fakes import ScriptedLink

from pen.cli import main
from pen.presets import load_presets, preset_to_settings_lines
from pen.records import pen_adapter

NO = "active_acne=no,eczema=no,rosacea=no"
DAY0 = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("PEN_DB", "PEN_PRESETS", "PEN_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PEN_CLINICIAN", "dr-test")

    def no_input(prompt=""):
        raise EOFError  # nobody at the keyboard unless a test says so

    monkeypatch.setattr("builtins.input", no_input)


class Pen:
    """Runs `pen ...` against a database in tmp_path and captures what it prints."""

    def __init__(self, tmp_path, capsys):
        self.db = tmp_path / "records.sqlite3"
        self.tmp = tmp_path
        self.capsys = capsys

    def __call__(self, *argv: str, db: bool = True):
        self.capsys.readouterr()
        args = [str(a) for a in argv] + (["--db", str(self.db)] if db else [])
        rc = main(args)
        out, err = self.capsys.readouterr()
        return rc, out, err

    def ok(self, *argv: str) -> str:
        rc, out, err = self(*argv)
        assert rc == 0, err
        return out

    def sql(self, query: str, params=()):
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def summary_file(self, name: str, start: datetime, depths, **extra):
        data = {
            "start": start.isoformat(),
            "duration_s": 60.0 * len(depths) + 30,
            "cartridge": f"LOT-{name}",
            "passes": [
                {"depth_mm": d, "stroke_hz": 120, "strokes": 7200, "duration_s": 60.0,
                 "start_s": 70.0 * i}
                for i, d in enumerate(depths)
            ],
            "faults": [],
            "overrides": [],
        }
        data.update(extra)
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(data))
        return path


@pytest.fixture
def pen(tmp_path, capsys):
    p = Pen(tmp_path, capsys)
    p.ok("client", "add", "C-100")
    return p


def start(pen, *extra, area="cheeks", indication="acne_scars", at=DAY0, answers=NO):
    return pen("treat", "start", "--client", "C-100", "--indication", indication, "--area",
               area, "--answers", answers, "--at", at.isoformat(), "--no-pen", *extra)


# -- clients -----------------------------------------------------------------------------


def test_client_add_list_show(pen):
    out = pen.ok("client", "add", "--json")
    generated = json.loads(out)["id"]
    assert generated.startswith("C-")
    listing = pen.ok("client", "list")
    assert "C-100" in listing and generated in listing
    rc, _, err = pen("client", "add", "Jane Doe")
    assert rc == 1 and "never a name" in err
    rc, _, err = pen("client", "show", "C-404")
    assert rc == 1 and "no client 'C-404'" in err
    assert "history: 0 session(s)" in pen.ok("client", "show", "C-100")


# -- contraindications -------------------------------------------------------------------


def test_positive_contraindication_blocks_without_override(pen):
    rc, out, err = start(pen, answers="active_acne=no,eczema=no,rosacea=yes")
    assert rc == 3
    assert "blocked" in err and "rosacea" in err and "--override-reason" in err
    assert "session" not in out.split("preset")[-1]  # no "session N started"
    assert pen.sql("SELECT COUNT(*) FROM treatment_sessions") == [(0,)]
    assert "history: 0 session(s)" in pen.ok("client", "show", "C-100")


def test_override_and_its_reason_are_stored(pen):
    rc, out, err = start(pen, "--override-reason", "rosacea quiescent for 6 months", "--yes",
                         answers="active_acne=no,eczema=no,rosacea=yes")
    assert rc == 0, err
    assert "session 1 started" in out
    assert "contraindication override (rosacea) by dr-test" in err
    assert pen.sql("SELECT kind, source, by_whom, reason, detail FROM overrides") == [
        ("contraindication", "host", "dr-test", "rosacea quiescent for 6 months",
         '{"items": ["rosacea"]}')
    ]
    assert pen.sql("SELECT item_key, answer FROM session_answers ORDER BY item_key") == [
        ("active_acne", 0), ("eczema", 0), ("rosacea", 1)
    ]
    shown = pen.ok("client", "show", "C-100")
    assert "rosacea YES" in shown
    assert "override (contraindication, host) by dr-test: rosacea quiescent for 6 months" in shown


def test_override_is_confirmed_at_the_prompt(pen, monkeypatch):
    replies = iter(["n"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(replies))
    rc, _, err = start(pen, "--override-reason", "reason", answers="active_acne=yes,eczema=no,"
                       "rosacea=no")
    assert rc == 1 and "not started" in err
    assert pen.sql("SELECT COUNT(*) FROM treatment_sessions") == [(0,)]


def test_checklist_is_asked_when_not_given(pen, monkeypatch):
    prompts = []
    replies = iter(["No", "maybe", "yes"])

    def fake_input(prompt=""):
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr("builtins.input", fake_input)
    rc, out, err = pen("treat", "start", "--client", "C-100", "--indication", "rejuvenation",
                       "--area", "forehead", "--answers", "active_acne=no", "--no-pen")
    assert rc == 3 and "rosacea" in err
    assert [p.strip().split(" ")[0] for p in prompts] == ["Eczema", "Rosacea", "Rosacea"]
    assert "please answer yes or no" in out


def test_yes_never_answers_the_checklist(pen):
    rc, _, err = pen("treat", "start", "--client", "C-100", "--indication", "rejuvenation",
                     "--area", "forehead", "--no-pen", "--yes")
    assert rc == 1
    assert "checklist not answered: active_acne, eczema, rosacea" in err
    rc, _, err = pen("treat", "start", "--client", "C-100", "--indication", "rejuvenation",
                     "--area", "forehead", "--no-pen")
    assert rc == 1 and "checklist not answered: active_acne" in err  # end of input
    assert pen.sql("SELECT COUNT(*) FROM treatment_sessions") == [(0,)]


def test_clinic_items_join_the_checklist(pen):
    out = pen.ok("treat", "checklist", "add", "isotretinoin",
                 "Isotretinoin within the last 6 months?")
    assert "isotretinoin" in out and "clinic" in out
    rc, _, err = start(pen)
    assert rc == 1 and "checklist not answered: isotretinoin" in err
    rc, _, err = start(pen, answers=NO + ",isotretinoin=yes")
    assert rc == 3 and "isotretinoin" in err
    rc, _, err = start(pen, answers=NO + ",isotretinoin=no,pregnant=no")
    assert rc == 1 and "unknown checklist item(s) pregnant" in err
    assert start(pen, answers=NO + ",isotretinoin=no")[0] == 0
    rc, _, err = pen("treat", "checklist", "remove", "eczema")
    assert rc == 1 and "built-in" in err


# -- series ------------------------------------------------------------------------------


def test_four_week_plan_warns_two_weeks_later_and_history_shows_both_sessions(pen):
    out = pen.ok("treat", "plan", "--client", "C-100", "--indication", "acne_scars",
                 "--sessions", "3", "--interval-weeks", "4")
    assert "3 sessions every 4 weeks" in out

    rc, out, err = start(pen, "--cartridge", "LOT-a")
    assert rc == 0, err
    assert "warning" not in err
    pen.ok("treat", "record", "--session", "1", "--from-json",
           pen.summary_file("a", DAY0, [1.5, 1.75]))

    two_weeks = DAY0 + timedelta(weeks=2)
    rc, out, err = start(pen, "--yes", at=two_weeks)
    assert rc == 0, err
    assert "14 days earlier than the plan's 4-week interval" in err
    assert "last visit 2025-03-03, next due from 2025-03-31" in err
    assert "next: session 2 of 3, due from 2025-03-31" in out  # what is due
    pen.ok("treat", "record", "--session", "2", "--from-json",
           pen.summary_file("b", two_weeks, [1.25]))
    assert pen.sql("SELECT kind, reason FROM overrides WHERE session_id = 2") == [
        ("interval", "confirmed with --yes")
    ]

    shown = pen.ok("client", "show", "C-100")
    assert "history: 2 session(s)" in shown
    first, second = shown.split("session 1  ")[1].split("session 2  ")
    assert "LOT-a" in first
    assert "1.50" in first and "1.75" in first and "total strokes: 14400" in first
    assert "1.25" in second and "total strokes: 7200" in second
    assert "2 of 3 done, last 2025-03-17; next: session 3 of 3, due from 2025-04-14" in shown

    due = json.loads(pen.ok("treat", "due", "--json"))
    assert due[0]["due_from"] == "2025-04-14" and due[0]["visits_done"] == 2


def test_early_session_is_not_started_without_confirmation(pen):
    pen.ok("treat", "plan", "--client", "C-100", "--indication", "acne_scars")  # 3 x 4 weeks
    assert start(pen)[0] == 0
    rc, _, err = start(pen, at=DAY0 + timedelta(days=10))
    assert rc == 1
    assert "18 days earlier" in err and "--yes" in err
    assert pen.sql("SELECT COUNT(*) FROM treatment_sessions") == [(1,)]
    rc, _, err = start(pen, at=DAY0 + timedelta(weeks=4))
    assert rc == 0 and "warning" not in err


def test_several_areas_on_one_day_do_not_warn(pen):
    pen.ok("treat", "plan", "--client", "C-100", "--indication", "acne_scars")
    assert start(pen, area="cheeks")[0] == 0
    rc, _, err = start(pen, area="chin", at=DAY0 + timedelta(hours=1))
    assert rc == 0 and "warning" not in err
    assert "1 of 3 done" in pen.ok("treat", "due", "--client", "C-100")


def test_plan_without_defaults_needs_numbers(pen):
    rc, _, err = pen("treat", "plan", "--client", "C-100", "--indication", "striae")
    assert rc == 1 and "--sessions and --interval-weeks" in err
    rc, _, err = pen("treat", "plan", "--client", "C-100", "--indication", "tattoo_removal")
    assert rc == 1 and "unknown indication" in err


# -- the pen -----------------------------------------------------------------------------


class FakeLink(ScriptedLink):
    def __init__(self, summary=None, refuse=None):
        super().__init__(self._answer)
        self.summary = summary
        self.refuse = refuse

    def _answer(self, line):
        if self.refuse and self.refuse in line:
            return "error:5 value out of range"
        if line == pen_adapter.SESSION_SUMMARY_COMMAND or line.startswith("session get "):
            return "ok " + json.dumps(self.summary)
        return "ok"


def test_start_sends_the_preset_and_record_reads_the_pen(pen, monkeypatch):
    summary = json.loads(pen.summary_file("p", DAY0, [2.0, 2.25]).read_text())
    summary["start"] = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat()
    summary["pen_session"] = "7"  # ran after treat start: binds
    summary["faults"] = [{"code": "stall", "at_s": 31.0}]
    summary["overrides"] = [{"kind": "depth", "from_mm": 2.5, "to_mm": 2.6, "by": "button"}]
    link = FakeLink(summary=summary)
    ports = []
    monkeypatch.setattr(pen_adapter, "open_link", lambda port: ports.append(port) or link)

    rc, out, err = pen("--port", "/dev/ttyFAKE", "treat", "start", "--client", "C-100",
                       "--indication", "acne_scars", "--area", "cheeks", "--answers", NO,
                       "--at", DAY0.isoformat())
    assert rc == 0, err
    preset = load_presets().get("acne_scars_cheeks")
    assert link.sent == preset_to_settings_lines(preset, select=True)
    assert ports == ["/dev/ttyFAKE"] and link.closed
    assert "sent to the pen" in out

    link.sent.clear()
    pen.ok("treat", "record", "--session", "1", "--from-pen")
    assert link.sent == [pen_adapter.SESSION_SUMMARY_COMMAND, "status"]  # status: its clock
    assert pen.sql("SELECT seq, depth_mm FROM passes ORDER BY seq") == [(1, 2.0), (2, 2.25)]
    assert pen.sql("SELECT code, at_s FROM session_faults") == [("stall", 31.0)]
    assert pen.sql("SELECT kind, source, by_whom FROM overrides") == [("depth", "pen", "button")]
    assert pen.sql("SELECT status, cartridge FROM treatment_sessions") == [("recorded", "LOT-p")]


def test_a_refused_preset_starts_no_session(pen, monkeypatch):
    link = FakeLink(refuse="depth_default")
    monkeypatch.setattr(pen_adapter, "open_link", lambda port: link)
    rc, _, err = pen("treat", "start", "--client", "C-100", "--indication", "acne_scars",
                     "--area", "cheeks", "--answers", NO)
    assert rc == 1 and "refused" in err and "no session was started" in err
    assert pen.sql("SELECT COUNT(*) FROM treatment_sessions") == [(0,)]


def test_without_a_serial_link_the_error_points_to_no_pen(pen, monkeypatch):
    import sys

    import pen as pen_pkg

    monkeypatch.delattr(pen_pkg, "link", raising=False)
    monkeypatch.setitem(sys.modules, "pen.link", None)
    rc, _, err = pen("treat", "start", "--client", "C-100", "--indication", "acne_scars",
                     "--area", "cheeks", "--answers", NO)
    assert rc == 1 and "--no-pen" in err


# -- record, report, export --------------------------------------------------------------


def test_record_rejects_bad_summaries_and_a_second_record(pen, tmp_path):
    assert start(pen)[0] == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"start": DAY0.isoformat(), "duration_s": 10,
                               "passes": [{"depth_mm": 9, "stroke_hz": 120, "strokes": 1,
                                           "duration_s": 1}]}))
    rc, _, err = pen("treat", "record", "--session", "1", "--from-json", bad)
    assert rc == 1 and "passes[0].depth_mm" in err
    good = pen.summary_file("g", DAY0, [1.5])
    pen.ok("treat", "record", "--session", "1", "--from-json", good)
    rc, _, err = pen("treat", "record", "--session", "1", "--from-json", good)
    assert rc == 1 and "--replace" in err
    pen.ok("treat", "record", "--session", "1", "--from-json",
           pen.summary_file("h", DAY0, [1.0, 1.0, 1.0]), "--replace")
    assert pen.sql("SELECT COUNT(*) FROM passes") == [(3,)]
    rc, _, err = pen("treat", "record", "--session", "7", "--from-json", good)
    assert rc == 1 and "no session 7" in err


def test_report_html_has_the_whole_session_and_the_clinic_aftercare(pen, tmp_path):
    text = tmp_path / "aftercare.txt"
    text.write_text("Our clinic: no make-up for 48 h.\nSPF 50 daily.\n")
    out = pen.ok("treat", "aftercare", "--set-file", text)
    assert "SPF 50 daily." in out
    rc, _, err = start(pen, "--override-reason", "eczema on the hands only", "--yes",
                       "--cartridge", "LOT-r", answers="active_acne=no,eczema=yes,rosacea=no")
    assert rc == 0, err
    pen.ok("treat", "record", "--session", "1", "--from-json",
           pen.summary_file("r", DAY0, [1.5, 2.0], faults=["stall"]))
    html_path = tmp_path / "session1.html"
    pen.ok("treat", "report", "--session", "1", "--out", html_path)
    html = html_path.read_text()
    for fragment in ("C-100", "acne_scars", "cheeks", "acne_scars_cheeks", "LOT-r",
                     "<td class=num>1.50</td>", "<td class=num>2.00</td>", "stall",
                     "eczema on the hands only", "dr-test", '<span class="yes">yes</span>',
                     "Our clinic: no make-up for 48 h.", "SPF 50 daily."):
        assert fragment in html, fragment
    assert "sunscreen (SPF 30" not in html  # the default was replaced
    assert "SPF 30" in pen.ok("treat", "aftercare", "--reset")


def test_export_json_and_csv(pen, tmp_path):
    assert start(pen)[0] == 0
    pen.ok("treat", "record", "--session", "1", "--from-json",
           pen.summary_file("e", DAY0, [1.5]))
    data = json.loads(pen.ok("client", "export"))
    assert data["format"] == "pen-records" and data["schema_version"] == 2
    assert data["clients"][0]["sessions"][0]["passes"][0]["depth_mm"] == 1.5
    out_file = tmp_path / "all.json"
    pen.ok("client", "export", "--client", "C-100", "--out", out_file)
    assert json.loads(out_file.read_text())["clients"][0]["id"] == "C-100"
    rc, _, err = pen("client", "export", "--format", "csv")
    assert rc == 1 and "--out" in err
    pen.ok("client", "export", "--format", "csv", "--out", tmp_path / "csv")
    assert (tmp_path / "csv" / "passes.csv").read_text().splitlines()[1].startswith("1,1,")


def test_database_from_pen_db_env(pen, monkeypatch, tmp_path):
    other = tmp_path / "env.sqlite3"
    monkeypatch.setenv("PEN_DB", str(other))
    rc, out, _ = pen("client", "add", "C-ENV", db=False)
    assert rc == 0 and other.exists()
    assert "C-ENV" in pen("client", "list", db=False)[1]
    assert "C-ENV" not in pen.ok("client", "list")


def test_clinic_preset_table_is_checked_before_use(pen, tmp_path):
    table = json.loads(json.dumps({"presets": [
        {"name": "acne_scars_cheeks", "indication": "acne_scars", "area": "cheeks",
         "depth_min_mm": 1.0, "depth_max_mm": 3.5, "depth_default_mm": 1.5, "stroke_hz": 120}]}))
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(table))
    rc, _, err = pen("treat", "presets", "--presets", path, db=False)
    assert rc == 1 and "depth_max_mm 3.5 is outside 0-3.0 mm" in err
    rc, _, err = start(pen, "--presets", path)
    assert rc == 1 and "invalid preset table" in err
    table["presets"][0]["depth_max_mm"] = 2.0
    path.write_text(json.dumps(table))
    assert start(pen, "--presets", path)[0] == 0
    assert pen.sql("SELECT preset_depth_max_mm FROM treatment_sessions") == [(2.0,)]
    lines = pen("treat", "presets", "--lines", db=False)[1].splitlines()
    assert lines[0] == "set preset.rejuvenation_forehead.depth_min 0.25"


# -- binding the pen's session to the treatment ----------------------------------------------


@pytest.mark.req("HT-86")
@pytest.mark.parametrize("case", range(12))
def test_record_from_pen_binds_by_id_time_and_client(pen, monkeypatch, case):
    """HT-86: `treat record --from-pen` stores the pen's session only when it matches the
    treatment: its own session id not recorded for another treatment (any client), its first
    pass after `treat start`, at least one pass. Any mismatch (random times around the start,
    ids reused, no pass, no id) is refused with a non-zero exit and nothing stored, unless
    --accept-mismatch REASON, which is stored as a pen_binding override with the reasons."""
    import random

    rnd = random.Random(case)
    pen.ok("client", "add", "C-200")
    links = []

    def open_with(summary):
        link = FakeLink(summary=summary)
        links.append(link)
        monkeypatch.setattr(pen_adapter, "open_link", lambda port: link)

    assert start(pen)[0] == 0  # treatment 1 (C-100), started now
    offset = rnd.choice((-3600, -600, -90, 90, 600))  # the pen's first pass vs treat start
    kind = rnd.choice(("ok", "no_id", "no_pass", "reused"))
    summary = json.loads(pen.summary_file("b", DAY0, [1.5]).read_text())
    summary["start"] = (datetime.now(timezone.utc) + timedelta(seconds=offset)).isoformat()
    summary["passes"][0]["start_s"] = 0.0
    summary["pen_session"] = "41"
    if kind == "no_id":
        del summary["pen_session"]
    if kind == "no_pass":
        summary["passes"] = []
    if kind == "reused":  # the same pen session already went into C-200's record
        rc, _, err = pen("treat", "start", "--client", "C-200", "--indication", "acne_scars",
                         "--area", "cheeks", "--answers", NO, "--no-pen")  # fmt: skip
        assert rc == 0, err
        ok = dict(summary, start=(datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat())
        open_with(ok)
        pen.ok("treat", "record", "--session", "2", "--from-pen")
    if offset > 60:
        offset = 0  # a pass dated later than now is "in the future": keep it valid
        summary["start"] = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat()
    open_with(summary)
    rc, out, err = pen("treat", "record", "--session", "1", "--from-pen")
    if kind == "ok" and offset == 0:
        assert rc == 0, err
        assert pen.sql("SELECT pen_session FROM treatment_sessions WHERE id=1") == [("41",)]
        return
    assert rc != 0 and "does not match" in err and "--accept-mismatch" in err, (kind, err)
    assert pen.sql("SELECT COUNT(*) FROM passes WHERE session_id=1") == [(0,)]
    assert pen.sql("SELECT status FROM treatment_sessions WHERE id=1") == [("open",)]
    rc, out, err = pen("treat", "record", "--session", "1", "--from-pen", "--accept-mismatch",
                       "pen session confirmed with the client's chart")  # fmt: skip
    assert rc == 0, err
    rows = pen.sql("SELECT reason, detail FROM overrides WHERE kind='pen_binding'")
    assert len(rows) == 1 and rows[0][0] == "pen session confirmed with the client's chart"
    assert json.loads(rows[0][1])["problems"], "the reasons are kept"


@pytest.mark.req("HT-86")
def test_record_from_pen_fetches_the_named_pen_session(pen, monkeypatch):
    """HT-86: --pen-session P asks the pen for its session P (`session get P`)."""
    summary = json.loads(pen.summary_file("n", DAY0, [1.5]).read_text())
    summary["start"] = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat()
    summary["pen_session"] = "12"
    link = FakeLink(summary=summary)
    monkeypatch.setattr(pen_adapter, "open_link", lambda port: link)
    assert start(pen)[0] == 0
    link.sent.clear()
    pen.ok("treat", "record", "--session", "1", "--from-pen", "--pen-session", "12")
    assert link.sent == ["session get 12", "status"]
