"""Telemetry logging (`pen.logger`) and session reports (`pen.report`) against the fake pen:
gaps backfilled from the ring buffer, gaps that cannot be filled flagged, reboots, CSV, report."""

from __future__ import annotations

import csv

import pytest
from link_fakes import EXPECT, FakePen, FakeSerial

from pen import link as L
from pen import logger as LG
from pen import report as RP


def make(pen: FakePen, tmp_path, **kw):
    link = L.PenLink("/dev/fake", serial_factory=lambda p: FakeSerial(pen), expect=EXPECT,
                     timeout=1.0, reconnect_timeout=2.0).open()  # fmt: skip
    db = LG.open_db(tmp_path / "t.sqlite3")
    return link, db, LG.TelemetryLogger(link, db, **kw)


def run_for(lg, seconds: float) -> None:
    while lg.elapsed() < seconds:
        lg.pump(0.02)


@pytest.mark.req("HT-31")
def test_disconnect_is_backfilled_without_loss(tmp_path):
    """HT-31: the port is closed for a while in the middle (a pulled cable); the samples the
    pen made meanwhile are fetched from its ring buffer: none is missing."""
    pen = FakePen()
    link, db, lg = make(pen, tmp_path, rate_hz=200, simulate_disconnect=[(0.3, 0.4)])
    sid = lg.start()
    run_for(lg, 1.2)
    st = lg.finish()
    assert st.reconnects == 1 and st.backfilled > 40  # 0.4 s at 200 Hz were not seen live
    assert st.missing == 0 and st.gaps_unfilled == 0
    assert LG.missing_in_store(db, sid) == 0
    seqs = [s["seq"] for s in LG.session_samples(db, sid)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) > 200
    row = db.execute("SELECT * FROM sessions WHERE id=?", (sid,)).fetchone()
    assert row["samples"] == len(seqs) and row["reconnects"] == 1 and row["ended_at"]


@pytest.mark.req("HT-31")
def test_dropped_live_lines_are_backfilled(tmp_path):
    """HT-31: samples the pen could not send (its output buffer full) are fetched back."""
    pen = FakePen()
    pen.drop_every = 7
    link, db, lg = make(pen, tmp_path, rate_hz=200)
    sid = lg.start()
    run_for(lg, 0.5)
    st = lg.finish()
    assert st.backfilled > 5 and st.missing == 0
    assert LG.missing_in_store(db, sid) == 0


@pytest.mark.req("HT-32")
def test_gap_beyond_the_ring_is_flagged(tmp_path):
    """HT-32: samples the ring buffer no longer holds are recorded as a gap, with the reason,
    and counted as missing."""
    pen = FakePen()
    pen.ring = type(pen.ring)(maxlen=20)  # a ring far too small for the outage
    link, db, lg = make(pen, tmp_path, rate_hz=200, simulate_disconnect=[(0.1, 0.4)])
    sid = lg.start()
    run_for(lg, 0.8)
    st = lg.finish()
    gaps = LG.session_gaps(db, sid)
    assert st.missing > 0 and gaps
    assert "ring buffer" in gaps[0]["reason"]
    assert LG.missing_in_store(db, sid) == st.missing


@pytest.mark.req("HT-32")
def test_reboot_starts_a_new_boot_and_flags_the_gap(tmp_path):
    """HT-32: a pen that rebooted (seq back to 0) starts a new boot in the session; what it
    lost is flagged, nothing is overwritten."""
    pen = FakePen()
    link, db, lg = make(pen, tmp_path, rate_hz=200)
    sid = lg.start()
    run_for(lg, 0.3)
    pen.reboot()
    run_for(lg, 0.6)
    st = lg.finish()
    assert st.boots == 2
    assert any("rebooted" in g["reason"] for g in LG.session_gaps(db, sid))
    boots = {s["boot"] for s in LG.session_samples(db, sid)}
    assert boots == {1, 2}


@pytest.mark.req("HT-30")
def test_csv_export_and_sessions_list(tmp_path):
    """HT-30: --csv exports every stored sample; the sessions table lists the session."""
    pen = FakePen()
    link, db, lg = make(pen, tmp_path, rate_hz=100)
    sid = lg.start()
    run_for(lg, 0.3)
    lg.finish()
    n = RP.export_samples_csv(db, sid, tmp_path / "s.csv")
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == n > 10
    assert {"seq", "t_ms", "stroke_hz", "target_hz", "depth_mm", "fault"} <= set(rows[0])
    listed = LG.list_sessions(db)
    assert listed[0]["id"] == sid and listed[0]["samples"] == n


@pytest.mark.req("HT-31")
def test_parse_disconnects():
    """HT-31: --simulate-disconnect AT:SECONDS."""
    assert LG.parse_disconnects(["5:3", "1.5:0.5"]) == [(5.0, 3.0), (1.5, 0.5)]
    with pytest.raises(ValueError):
        LG.parse_disconnects(["5"])


def _samples():
    out = []
    seq = 0
    t = 0
    for state, n, hz, depth in (("READY", 50, 0, 0.5), ("RUNNING", 300, 100, 0.5),
                                ("READY", 40, 0, 1.0), ("RUNNING", 200, 120, 1.0)):  # fmt: skip
        for k in range(n):
            rate = hz * min(1.0, k / 50) if state == "RUNNING" else 0.0
            if state == "RUNNING" and k >= 100:
                rate = hz + (1.0 if k % 2 else -1.0)
            out.append({"boot": 1, "seq": seq, "t_ms": t, "state": state, "stroke_hz": rate,
                        "target_hz": hz or 100, "duty": 100, "depth_mm": depth,
                        "target_depth_mm": depth, "current_ma": 200, "battery_mv": 3900,
                        "fault": "0"})  # fmt: skip
            seq += 1
            t += 10
    out[-5]["fault"] = "3"
    return out


@pytest.mark.req("HT-34")
def test_report_analysis_and_png(tmp_path):
    """HT-34: passes, rate error after the soft start, depth used, strokes and faults are
    computed from the samples; the PNG is written."""
    samples = _samples()
    a = RP.analyse(samples, settle_s=1.0)
    assert a["pass_count"] == 2
    assert [p["depth_mm"] for p in a["passes"]] == [[0.5], [1.0]]
    assert a["rate_error_mean_hz"] == pytest.approx(1.0, abs=1e-6)
    assert abs(a["rate_error_worst_hz"]) == pytest.approx(1.0, abs=1e-6)
    assert a["depth_used_mm"] == [0.5, 1.0]
    # 3 s at ~100 Hz (0.5 s ramp) + 2 s at ~120 Hz (ramp) => about 275 + 210 strokes
    assert 440 < a["strokes"] < 520
    assert len(a["faults"]) == 1 and a["faults"][0]["fault"] == "3"
    lines = RP.summary_lines(1, a)
    assert any("passes: 2" in x for x in lines) and any("strokes:" in x for x in lines)
    out = RP.plot(samples, a, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        RP.analyse([])
