"""Treatment presets and records end to end on the virtual pen: the firmware in the micropython
binary behind its pseudo-terminal, the host's real serial link (`pen.link`) and `pen client` /
`pen treat` (`pen.cli.main`), the buttons pressed through the side channel.

Button presses land at definite virtual times (the side channel acts between plant steps), so
the gestures' outcomes do not depend on the host's speed; waits only poll for a state with a
timeout.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from pen.cli import main
from pen.link import PenLink, PenRefused
from pen.presets import load_presets
from pen.records import pen_adapter
from pen.records.timeutil import now

SPEED = 4  # virtual seconds per wall second
SECRET = b"virtual-pen-test-secret-not-real"  # docs/protocol.md: the virtual pen's test secret
PRESET_RANGE = 18  # firmware/errors.py
_POLL_MS = 50  # the pen's time between two `status` questions while waiting
NO = "active_acne=no,eczema=no,rosacea=no"


class VPen:
    """The virtual pen through the host's link (one connection at a time: `close()` before
    a `pen` command opens its own) and its side channel."""

    def __init__(self, vp):
        self.vp = vp
        self.link: PenLink | None = None

    def open(self) -> PenLink:
        if self.link is None:
            self.link = PenLink(self.vp.port, timeout=10.0).open()
        return self.link

    def close(self):
        if self.link is not None:
            self.link.close()
            self.link = None

    def call(self, line: str):
        return self.open().call(line)

    def command(self, line: str) -> str:
        return self.open().command(line)

    def status(self) -> dict:
        return self.call("status")

    def wait(self, pred, timeout: float = 20.0, what: str = "condition") -> dict:
        """Ask the pen until `pred(status)`; fail after `timeout` s of the pen's own time."""
        waited_ms = 0
        st: dict = {}
        while waited_ms <= timeout * 1000:
            st = self.status()
            if pred(st):
                return st
            self.sleep(_POLL_MS)
            waited_ms += _POLL_MS
        raise AssertionError(f"no {what} within {timeout:g} s of the pen's time; last status {st}")

    def sleep(self, ms: int):
        """`ms` of the pen's own (virtual) time (the side channel answers when they are over)."""
        self.vp.ctl("wait", str(ms))

    def events(self, name: str) -> list[dict]:
        """The events the pen sent so far: they come before the reply to a later command."""
        link = self.open()
        link.call("status")
        return [u.data for u in link.take_unsolicited("E") if u.data.get("event") == name]

    def press(self, buttons: str, ms: int = 100):
        """Press and release; returns once the pen has seen the whole gesture."""
        self.vp.ctl("press", buttons, "--hold-ms", str(ms))

    def screen(self) -> list[str]:
        return json.loads(self.vp.ctl("screen"))["lines"]

    def run_pass(self, ms: int):
        """Run the needle for `ms` of virtual time (armed, cartridge confirmed), then stop."""
        for waited_ms in range(0, 5000, _POLL_MS):
            try:  # refused (BUSY) while the depth stop still settles at its target
                self.call("run")
                break
            except PenRefused as exc:
                if exc.code != 10 or waited_ms + _POLL_MS >= 5000:
                    raise
                self.sleep(_POLL_MS)
        self.wait(lambda s: s["state"] == "RUNNING" and s["measured_hz"] > 0.9 * s["target_hz"],
                  timeout=10, what="running at the rate")  # fmt: skip
        self.sleep(ms)
        self.call("stop")
        self.wait(lambda s: s["state"] == "ARMED", timeout=10, what="stopped")


@pytest.fixture
def pen(vpen_factory):
    p = VPen(vpen_factory(speed=SPEED))
    p.wait(lambda s: s["state"] == "READY", timeout=30, what="READY")
    yield p
    p.close()


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """`pen ...` in this process against a records database in tmp_path."""
    for name in ("PEN_DB", "PEN_PRESETS", "PEN_PORT", "PEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PEN_CLINICIAN", "dr-test")
    secret = tmp_path / "pen.secret"
    secret.write_bytes(SECRET)

    def no_input(prompt=""):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_input)
    db = tmp_path / "records.sqlite3"

    def run(*argv, pen=None):
        """`pen` (a VPen): its link is closed first, the command opens its own."""
        capsys.readouterr()
        head = []
        if pen is not None:
            pen.close()
            head = ["--port", pen.vp.port]
        rc = main(head + [str(a) for a in argv] + ["--db", str(db)])
        out, err = capsys.readouterr()
        return rc, out, err

    run.secret = secret
    return run


def _unlock_and_apply(pen: VPen, name: str):
    preset = load_presets().get(name)
    link = pen.open()
    pen_adapter.unlock(link, SECRET)
    pen_adapter.apply_preset(link, preset)
    link.call("lock")
    return preset


@pytest.mark.req("TR-01", "TR-02", "TR-03")
def test_preset_range_is_enforced_by_buttons_and_serial_alike(pen):
    """TR-01, TR-02, TR-03: the host's preset lines, sent through the real link to the unlocked
    pen, select the preset (its default depth and rate loaded); then plus pressed again and again
    stops the target at the preset's max (limit tone, PRESET MAX on the display) and minus at its
    min, while `depth` and `set depth` outside the range are refused with PRESET_RANGE and
    change nothing; the needle stop never went outside the range."""
    assert pen.command("set preset.x.stroke_hz 100").startswith("error:11"), "locked"
    preset = _unlock_and_apply(pen, "rejuvenation_forehead")  # 0.25-0.75, default 0.50, 100 Hz
    assert pen.call("preset list")["active"] == preset.name
    st = pen.wait(lambda s: abs(s["depth_mm"] - 0.5) < 0.02, timeout=5, what="default depth")
    assert st["target_depth_mm"] == 0.5 and st["target_hz"] == 100
    pen.vp.ctl("buzzer", "clear")
    for _ in range(8):
        pen.press("plus")
    screen = pen.screen()  # first: the message stays 3 s of the pen's time
    assert screen[2:] == ["PRESET MAX 0.75", "hold 3s:override"], screen
    st = pen.wait(lambda s: abs(s["depth_mm"] - 0.75) < 0.02, timeout=5, what="at the max")
    assert st["target_depth_mm"] == 0.75
    tones = json.loads(pen.vp.ctl("buzzer"))
    assert any(abs(hz - 3200) < 50 for _, hz, _ in tones), tones
    assert float(pen.vp.ctl("gauge")) < 0.75 + 0.03, "the needle stop is within the range"
    for line in ("depth 0.80", "set depth 0.80", "depth 0.20", "set depth 2.00"):
        reply = pen.command(line)
        assert reply.startswith(f"error:{PRESET_RANGE}"), (line, reply)
    assert pen.status()["target_depth_mm"] == 0.75
    pen.press("minus", 2500)  # held: repeats down to the min (in 1.85 s) and stops there
    screen = pen.screen()
    assert screen[2] == "PRESET MIN 0.25", screen
    st = pen.wait(lambda s: abs(s["depth_mm"] - 0.25) < 0.02, timeout=5, what="at the min")
    assert st["target_depth_mm"] == 0.25
    assert pen.events("override") == []


@pytest.mark.req("TR-04", "TR-05", "TR-11")
def test_overrides_are_recorded_by_the_pen_and_stored_by_the_host(pen, cli):
    """TR-04, TR-05, TR-11: with a preset active, a button override (a new press held 3 s at
    the preset's max) and a serial `depth MM override` each leave a `~E` override event and an
    entry in the pen's session summary; `pen treat record --from-pen` stores them with the
    passes run beyond the range."""
    assert cli("client", "add", "C-7")[0] == 0
    rc, out, err = cli("treat", "start", "--client", "C-7", "--indication", "rejuvenation",
                       "--area", "forehead", "--answers", NO, "--secret-file", cli.secret,
                       pen=pen)  # fmt: skip
    assert rc == 0, err
    pen.call("arm")
    pen.call("cartridge new")
    for _ in range(6):
        pen.press("plus")
    pen.wait(lambda s: s["target_depth_mm"] == 0.75, timeout=5, what="preset max")
    pen.press("plus", 3300)  # a new press held 3 s at the max: one step beyond
    st = pen.wait(lambda s: abs(s["depth_mm"] - 0.8) < 0.02, timeout=5, what="override step")
    assert st["target_depth_mm"] == 0.8
    pen.run_pass(1000)
    assert pen.call("depth 0.90 override") == {"target_depth_mm": 0.9}
    pen.wait(lambda s: abs(s["depth_mm"] - 0.9) < 0.02, timeout=5, what="0.90")
    pen.run_pass(1000)
    events = pen.events("override")
    assert [(e["from_mm"], e["to_mm"], e["by"], e["preset"]) for e in events] == [
        (0.75, 0.8, "button", "rejuvenation_forehead"),
        (0.8, 0.9, "serial", "rejuvenation_forehead")], events
    summary = pen.call("session summary last")
    assert summary["preset"] == "rejuvenation_forehead"
    assert [(o["kind"], o["from_mm"], o["to_mm"], o["by"]) for o in summary["overrides"]] == [
        ("depth", 0.75, 0.8, "button"), ("depth", 0.8, 0.9, "serial")]
    assert [p["depth_mm"] for p in summary["passes"]] == [0.8, 0.9]
    rc, out, err = cli("treat", "record", "--session", "1", "--from-pen", pen=pen)
    assert rc == 0, err
    assert "2 passes" in out and "2 overrides recorded" in out
    assert "outside the preset range" not in err, "the pen reported its overrides"
    rc, shown, err = cli("client", "show", "C-7")
    assert rc == 0, err
    assert "override (depth, pen) by button" in shown and "override (depth, pen) by serial" in shown
    assert "to_mm=0.8" in shown and "to_mm=0.9" in shown


@pytest.mark.req("TR-08", "TR-09", "TR-10", "TR-11")
def test_full_flow_client_plan_checklist_preset_session_record_history(pen, cli):
    """TR-08, TR-09, TR-10, TR-11: client add, a 4-week plan, `pen treat start` blocked by a
    positive checklist answer, then started with the answers: the preset is sent to the virtual
    pen through the real link (unlocked with its secret, locked again) and loads its default
    depth and rate; arm, cartridge, run and stop (link and buttons); `pen treat record
    --from-pen` stores the passes, cartridge, duration and faults; a second session two weeks
    later warns against the plan, and `pen client show` lists both sessions with their passes."""
    assert cli("client", "add", "C-1")[0] == 0
    rc, out, err = cli("treat", "plan", "--client", "C-1", "--indication", "acne_scars",
                       "--sessions", "3", "--interval-weeks", "4")  # fmt: skip
    assert rc == 0 and "3 sessions every 4 weeks" in out, err
    rc, out, err = cli("treat", "start", "--client", "C-1", "--indication", "acne_scars",
                       "--area", "cheeks", "--answers", "active_acne=yes,eczema=no,rosacea=no",
                       "--secret-file", cli.secret, pen=pen)  # fmt: skip
    assert rc == 3 and "active_acne" in err, (rc, err)
    assert pen.call("preset list")["active"] == "none", "nothing sent when blocked"
    rc, out, err = cli("treat", "start", "--client", "C-1", "--indication", "acne_scars",
                       "--area", "cheeks", "--answers", NO, "--cartridge", "LOT-9",
                       "--secret-file", cli.secret, pen=pen)  # fmt: skip
    assert rc == 0, err
    assert "acne_scars_cheeks" in out and "sent to the pen" in out and "session 1 started" in out
    assert pen.call("preset list")["active"] == "acne_scars_cheeks"
    st = pen.wait(lambda s: abs(s["depth_mm"] - 1.5) < 0.02, timeout=5, what="default depth")
    assert st["target_hz"] == 120 and st["unlocked"] is False, "locked again"
    pen.press("start", 1200)  # hold START: arm
    assert pen.status()["state"] == "ARMED"
    pen.press("plus+minus", 1200)  # hold plus+minus: the cartridge, a new pen session
    assert pen.status()["cartridge_ok"]
    pen.run_pass(1500)
    pen.press("plus")
    pen.wait(lambda s: abs(s["depth_mm"] - 1.55) < 0.02, timeout=5, what="1.55")
    pen.press("start")  # a short START on the armed pen: run
    pen.wait(lambda s: s["state"] == "RUNNING" and s["measured_hz"] > 100, timeout=10, what="run")
    pen.sleep(1000)
    pen.press("start")  # stop, on the press
    pen.wait(lambda s: s["state"] == "ARMED", timeout=10, what="stopped")
    summary = pen.call("session summary last")
    rc, out, err = cli("treat", "record", "--session", "1", "--from-pen", pen=pen)
    assert rc == 0, err
    assert "session 1: 2 passes" in out and "0 faults" in out
    # The second session of the series, two weeks on: the plan's interval is 4 weeks.
    later = (now() + timedelta(weeks=2)).isoformat(timespec="seconds")
    rc, out, err = cli("treat", "start", "--client", "C-1", "--indication", "acne_scars",
                       "--area", "cheeks", "--answers", NO, "--at", later, "--yes",
                       "--secret-file", cli.secret, pen=pen)  # fmt: skip
    assert rc == 0, err
    assert "14 days earlier than the plan's 4-week interval" in err
    pen.call("cartridge new")
    pen.call("depth 1.25")
    pen.wait(lambda s: abs(s["depth_mm"] - 1.25) < 0.02, timeout=5, what="1.25")
    pen.run_pass(1000)
    rc, out, err = cli("treat", "record", "--session", "2", "--from-pen", pen=pen)
    assert rc == 0, err
    assert "the record's time is kept" in err  # the pen's clock says today
    rc, shown, err = cli("client", "show", "C-1")
    assert rc == 0, err
    assert "history: 2 session(s)" in shown
    first, second = shown.split("session 1  ")[1].split("session 2  ")
    assert "preset: acne_scars_cheeks (1.00-2.50 mm" in first and "LOT-9" in first
    strokes = [p["strokes"] for p in summary["passes"]]
    assert [p["depth_mm"] for p in summary["passes"]] == [1.5, 1.55]
    assert all(p["stroke_hz"] == 120 for p in summary["passes"]) and min(strokes) > 50
    rows = [ln.split() for ln in first.splitlines() if ln.strip()[:2] in ("1 ", "2 ")]
    assert [(r[3], r[4], int(r[5])) for r in rows] == [
        ("1.50", "120", strokes[0]), ("1.55", "120", strokes[1])], first
    assert f"total strokes: {sum(strokes)}" in first and "faults: none" in first
    assert "1.25" in second and "total strokes:" in second
    assert f"duration: {summary['duration_s']:.0f} s" in first


@pytest.mark.req("HT-86")
def test_record_refuses_a_pen_session_from_before_the_treatment(pen, cli):
    """HT-86: on the virtual pen, a pass run before `treat start` (a session where no treatment
    was done) is not attached to the new treatment: `treat record --from-pen` exits non-zero
    naming the mismatch and stores nothing; once the pen's session of this treatment has run,
    it is recorded with the pen's own session number (HT-88: shown by client show);
    --accept-mismatch REASON records the other one, keeping the reason."""
    assert cli("client", "add", "C-3")[0] == 0
    pen.call("arm")
    before = pen.call("cartridge new")["cartridge"]
    pen.run_pass(800)
    ran = datetime.fromisoformat(pen.call("session summary last")["start"])
    # Over the allowed slack (60 s) by the pen's own clock, before the treatment starts.
    pen.wait(lambda s: (datetime.fromisoformat(s["clock"]) - ran).total_seconds() > 75,
             timeout=90, what="75 s on the pen's clock")  # fmt: skip
    rc, out, err = cli("treat", "start", "--client", "C-3", "--indication", "rejuvenation",
                       "--area", "forehead", "--answers", NO, "--no-pen")  # fmt: skip
    assert rc == 0, err
    rc, out, err = cli("treat", "record", "--session", "1", "--from-pen", pen=pen)
    assert rc != 0 and "before this treatment was started" in err, (rc, err)
    rc, shown, _ = cli("client", "show", "C-3")
    assert "1 pass" not in shown and "total strokes" not in shown
    n = pen.call("cartridge new")["cartridge"]
    assert n == before + 1
    pen.run_pass(800)
    rc, out, err = cli("treat", "record", "--session", "1", "--from-pen", pen=pen)
    assert rc == 0, err
    assert f"the pen's session {n}" in out
    rc, shown, _ = cli("client", "show", "C-3")
    assert rc == 0 and f"pen session: {n}" in shown  # HT-88
    rc, out, err = cli("treat", "start", "--client", "C-3", "--indication", "rejuvenation",
                       "--area", "cheeks", "--answers", NO, "--no-pen")  # fmt: skip
    assert rc == 0, err
    rc, out, err = cli("treat", "record", "--session", "2", "--from-pen", "--pen-session",
                       str(before), "--accept-mismatch", "forgot treat start", pen=pen)  # fmt: skip
    assert rc == 0 and "bound despite" in err, err
