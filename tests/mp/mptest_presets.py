"""Treatment presets on the pen: the settings as the host sends them, the range kept by the
buttons and by serial commands, overrides (serial and button) recorded in the event log, a `~E`
event and the session, and the buttons' preset selection (TR requirements).

The real state machine, settings, sessions, UI and protocol, wired as firmware/app.py wires
them, around the fake needle drive and depth axis on a fake clock: every verdict is
deterministic."""

import json
import os
import time

from mphelp import check, info, req
from mptest_pen_fakes import FakeClock, FakeDepth, FakeNeedle

from firmware import errors as E
from firmware.sessions import Sessions
from firmware.sessionstore import SessionStore

# firmware/pen.py's states and event codes, firmware/ui.py's buttons (the modules themselves
# are imported by Rig only: compiled from source they take much of the 190 KB heap).
READY, ARMED, RUNNING, EV_OVERRIDE, EV_PRESET = 3, 4, 5, 7, 8
START, PLUS, MINUS = 1, 2, 4

# What `pen.presets.preset_to_settings_lines` sends for acne_scars_cheeks (tests/host checks
# that function's output; tests/test_treat_vpen.py sends it through the real link).
HOST_LINES = (
    "set preset.acne_scars_cheeks.depth_min 1.00",
    "set preset.acne_scars_cheeks.depth_max 2.50",
    "set preset.acne_scars_cheeks.depth_default 1.50",
    "set preset.acne_scars_cheeks.stroke_hz 120",
    "set preset.active acne_scars_cheeks",
)


class FakeAuth:
    def __init__(self):
        self.on = False

    def unlocked(self):
        return self.on


class FakeBuzzer:
    def __init__(self):
        self.played = []

    def play(self, name):
        self.played.append(name)


class Rig:
    """The pen's parts as firmware/app.py composes them."""

    def __init__(self, limit="3.00"):
        from firmware import pen as P
        from firmware import ui as U
        from firmware.pen import Pen
        from firmware.protocol import Protocol
        from firmware.settings import Settings
        from firmware.ui import UI

        check((P.READY, P.ARMED, P.RUNNING, P.EV_OVERRIDE, P.EV_PRESET) == (
            READY, ARMED, RUNNING, EV_OVERRIDE, EV_PRESET))  # fmt: skip
        check((U.START, U.PLUS, U.MINUS) == (START, PLUS, MINUS))
        self.clock = FakeClock()
        self.needle = FakeNeedle()
        self.path = "/tmp/pen-presets-%s" % "".join("%02x" % b for b in os.urandom(4))
        self.sessions = Sessions(SessionStore(self.path), clock=self.clock)
        s = self.settings = Settings()
        s.set("depth_limit", limit, unlocked=True)  # the clinic's limit (protected)
        self.depth = FakeDepth(s.get("depth_limit"))
        pen = self.pen = Pen(self.needle, self.depth, s, self.sessions, clock=self.clock)
        self.events = []
        pen.listeners.append(self.events.append)
        self.buzzer = FakeBuzzer()
        self.ui = UI(pen, buzzer=self.buzzer, clock=self.clock)
        self.auth = FakeAuth()
        self.protocol = Protocol(self)
        pen.start()
        self.depth.finish_home()
        pen.poll()
        check(pen.state == READY)

    def close(self):
        try:
            for ent in os.ilistdir(self.path):
                os.remove(self.path + "/" + ent[0])
            os.rmdir(self.path)
        except OSError:
            pass

    # -- the host side -------------------------------------------------------------------------
    def cmd(self, line):
        r = self.protocol.handle(line.encode())
        return r if isinstance(r, str) else "".join(r)

    def ok(self, line):
        r = self.cmd(line)
        check(r.startswith("ok"), "%s -> %s" % (line, r))
        rest = r[2:].strip()
        return json.loads(rest) if rest else None

    def err(self, line):
        r = self.cmd(line)
        check(r.startswith("error:"), "%s -> %s (expected an error)" % (line, r))
        return int(r[6:].split(" ")[0])

    def load(self, lines=HOST_LINES):
        self.auth.on = True
        for line in lines:
            self.ok(line)
        self.auth.on = False

    # -- the buttons ---------------------------------------------------------------------------
    def hold(self, mask, ms):
        c = self.clock
        end = c.t + ms
        while c.t < end:
            self.ui.update(mask, c.t)
            c.advance(5)

    def tap(self, mask, ms=100):
        self.hold(mask, ms)
        self.hold(0, 60)

    def overrides(self):
        return [e for e in self.events if e.get("event") == "override"]

    def logged(self, code):
        return [a for (t, c, a) in self.pen.events() if c == code]


@req("TR-01")
def test_host_lines_store_and_select_the_preset_under_the_lock():
    """TR-01: the lines the host sends (`set preset.NAME.depth_min`, `.depth_max`,
    `.depth_default`, `.stroke_hz`, then `set preset.active NAME`) are refused while the
    pen is locked (nothing changes) and accepted unlocked; selecting the preset loads its
    default depth (the depth stop moves there) and its stroke rate."""
    r = Rig()
    fp = r.settings.as_json()
    for line in HOST_LINES:
        check(r.err(line) == E.LOCKED, line)
    check(r.settings.as_json() == fp, "nothing changed while locked")
    r.load()
    lst = r.ok("preset list")
    check(lst["active"] == "acne_scars_cheeks", repr(lst))
    check(lst["presets"]["acne_scars_cheeks"] == {"depth_min_mm": 1.0, "depth_max_mm": 2.5,
                                                  "depth_default_mm": 1.5, "stroke_hz": 120})
    check(r.pen.targets.depth_um == 1500 and r.depth.position_um == 1500, "default depth applied")
    check(r.pen.targets.rate_hz == 120 and r.settings.get("stroke_hz") == 120, "rate applied")
    check(r.pen.targets.depth_bounds() == (1000, 2500))
    check(not r.overrides(), "selecting a preset is no override")
    r.close()


@req("TR-02")
def test_buttons_stop_at_the_preset_range_with_feedback():
    """TR-02: with a preset active, plus pressed again and again (and held) stops at the
    preset's max, minus at its min, each with the limit tone and `PRESET MAX` / `PRESET MIN`
    on the display; a held repeat never leaves the range."""
    r = Rig()
    r.load()
    n0 = len(r.depth.moves)
    for _ in range(25):
        r.tap(PLUS)
    check(r.pen.targets.depth_um == 2500, "stopped at the preset max: %d" % r.pen.targets.depth_um)
    check(r.ui.msg[0] == "PRESET MAX 2.50", repr(r.ui.msg))
    check(r.ui.msg[1] == "hold 3s:override", repr(r.ui.msg))
    check("limit" in r.buzzer.played)
    r.hold(MINUS, 6000)
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 1000, "stopped at the preset min: %d" % r.pen.targets.depth_um)
    check(r.ui.msg[0] == "PRESET MIN 1.00", repr(r.ui.msg))
    moves = r.depth.moves[n0:]
    check(r.depth.position_um == 1000 and min(moves) == 1000 and max(moves) == 2500,
          "never outside the range: %r" % moves)  # fmt: skip
    check(not r.overrides() and not r.logged(EV_OVERRIDE))
    r.close()


@req("TR-03", "TR-05")
def test_serial_depth_outside_the_preset_is_refused_unless_overridden():
    """TR-03, TR-05: with a preset active, `depth MM` and `set depth MM` outside its range
    are refused with PRESET_RANGE and change nothing; with `override` they are accepted and
    the override is recorded: the event log, a `~E` override event (from, to, preset, by
    serial) and the open session's `overrides`; a depth inside the range, or set by `defaults`
    (which deselects the preset), is none."""
    r = Rig()
    r.load()
    r.ok("arm")
    r.ok("cartridge new")
    for line in ("depth 2.60", "set depth 2.55", "depth 0.95", "set depth 0.50"):
        check(r.err(line) == E.PRESET_RANGE, line)
    check(r.pen.targets.depth_um == 1500 and r.settings.get("depth") == 1500, "unchanged")
    check(r.ok("depth 2.00") == {"target_depth_mm": 2.0}, "inside the range: accepted")
    check(r.ok("depth 2.60 override") == {"target_depth_mm": 2.6})
    check(r.ok("set depth 0.80 override") == {"depth": 0.8})
    check(r.pen.targets.depth_um == 800 and r.depth.position_um == 800)
    ev = r.overrides()
    check(len(ev) == 2, repr(ev))
    check(ev[0] == {"event": "override", "what": "depth", "from_mm": 2.0, "to_mm": 2.6,
                    "preset": "acne_scars_cheeks", "by": "serial"}, repr(ev[0]))
    check(ev[1]["from_mm"] == 2.6 and ev[1]["to_mm"] == 0.8)
    check(r.logged(EV_OVERRIDE) == [260, 80], repr(r.pen.events()))
    ov = r.sessions.current["overrides"]
    check([(o["kind"], o["from_mm"], o["to_mm"], o["by"], o["preset"]) for o in ov] == [
        ("depth", 2.0, 2.6, "serial", "acne_scars_cheeks"),
        ("depth", 2.6, 0.8, "serial", "acne_scars_cheeks")], repr(ov))
    # When: seconds since the session opened, by the session's own clock, in order.
    now_s = time.ticks_diff(r.sessions._ms(), r.sessions._t0) / 1000
    check(0 <= ov[0]["at_s"] <= ov[1]["at_s"] <= now_s, "when: %r, now %.3f s" % (ov, now_s))
    # Stored at once (the needle is stopped): the pen's summary has them.
    check(json.loads(r.cmd("session get 1")[3:])["overrides"] == ov)
    check(r.ok("depth 1.20") == {"target_depth_mm": 1.2}, "back inside: no override")
    r.auth.on = True
    r.ok("defaults")  # no preset afterwards: its 0.50 mm default depth is no override
    check(r.pen.targets.depth_um == 500 and r.pen.targets.preset() is None)
    check(len(r.overrides()) == 2 and len(r.sessions.current["overrides"]) == 2)
    r.close()


@req("TR-04", "TR-05")
def test_button_override_needs_a_new_press_held_three_seconds():
    """TR-04, TR-05: at the preset's max the hold that got there does nothing more; a new
    press held less than 3 s does nothing; held 3 s it steps once beyond the range (never
    beyond the depth limit), recorded as an override by button; minus then steps straight
    back to the range's bound (no override)."""
    r = Rig(limit="2.60")
    r.load()
    r.ok("arm")
    r.ok("cartridge new")
    r.hold(PLUS, 8000)  # repeats up to the max, then the same hold goes on for 5 s
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 2500 and not r.overrides(), "the repeat stops at the max")
    r.hold(PLUS, 2900)
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 2500 and not r.overrides(), "2.9 s is not enough")
    r.hold(PLUS, 3100)
    check(r.pen.targets.depth_um == 2550, "one step beyond: %d" % r.pen.targets.depth_um)
    check(r.ui.msg[0] == "OVERRIDE 2.55", repr(r.ui.msg))
    check("warn" in r.buzzer.played)
    r.hold(PLUS, 4000)  # the same press held on: one step per press, no more
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 2550)
    ov = r.sessions.current["overrides"]
    check(len(ov) == 1 and ov[0]["by"] == "button" and ov[0]["from_mm"] == 2.5
          and ov[0]["to_mm"] == 2.55, repr(ov))  # fmt: skip
    r.tap(PLUS)
    check(r.pen.targets.depth_um == 2550, "a short press outside the range: no step further out")
    r.hold(PLUS, 3100)
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 2600, "a second override: %d" % r.pen.targets.depth_um)
    r.hold(PLUS, 3100)
    r.hold(0, 60)
    check(r.pen.targets.depth_um == 2600, "never beyond the depth limit")
    check(r.ui.msg[0] == "DEPTH MAX 2.60", repr(r.ui.msg))
    r.tap(MINUS)
    check(r.pen.targets.depth_um == 2500, "minus: back to the preset's max at once")
    check(len(r.sessions.current["overrides"]) == 2, "no override for going back")
    check(len(r.overrides()) == 2 and r.logged(EV_OVERRIDE) == [255, 260])
    r.close()


@req("TR-05")
def test_override_before_the_session_is_recorded_at_its_start():
    """TR-05: a target overridden before a cartridge is confirmed is recorded in the new
    session at its start, with who set it; the session names the preset of its first pass."""
    r = Rig()
    r.load()
    r.ok("depth 0.90 override")
    r.ok("arm")
    r.ok("cartridge new")
    ov = r.sessions.current["overrides"]
    check(len(ov) == 1 and ov[0]["from_mm"] == 1.0 and ov[0]["to_mm"] == 0.9
          and ov[0]["by"] == "serial" and ov[0]["at_s"] == 0.0, repr(ov))  # fmt: skip
    r.ok("run")
    r.needle.spin(300)
    r.clock.advance(3000)
    r.ok("stop")
    r.needle.finish_stop()
    r.pen.poll()
    r.auth.on = True
    for line in ("set preset.other.depth_min 0.25", "set preset.other.depth_max 0.75",
                 "set preset.other.depth_default 0.50", "set preset.other.stroke_hz 100",
                 "set preset.active other"):  # fmt: skip
        r.ok(line)
    r.auth.on = False
    r.ok("run")
    r.needle.spin(200)
    r.clock.advance(2000)
    r.ok("stop")
    r.needle.finish_stop()
    r.pen.poll()
    summary = r.ok("session summary last")
    check(summary["preset"] == "acne_scars_cheeks", repr(summary))
    p = summary["passes"]
    check(len(p) == 2 and p[0]["depth_mm"] == 0.9 and p[0]["stroke_hz"] == 120, repr(p))
    check(p[1]["depth_mm"] == 0.5 and p[1]["stroke_hz"] == 100, repr(p))
    check(len(summary["overrides"]) == 1, "a preset's selection is no override")
    r.close()


@req("TR-06")
def test_buttons_select_the_next_preset():
    """TR-06: on a ready pen, plus+minus held then start selects the next stored preset (by
    name, wrapping, skipping one that cannot be selected), loading its default depth and rate
    and showing its name and range; further start presses step on; no cartridge is confirmed,
    the pen is not armed, the clinician lock is not needed and `none` is never chosen. A
    single button never selects; on an armed pen with a cartridge the gesture is refused
    (DISARM FIRST) and its START never runs the needle."""
    r = Rig(limit="2.50")
    r.load()
    r.auth.on = True
    for name, lo, hi, d, hz in (("b_forehead", "0.25", "0.75", "0.50", "100"),
                                ("c_too_deep", "1.50", "3.00", "2.00", "120")):  # fmt: skip
        for f, v in (("depth_min", lo), ("depth_max", hi), ("depth_default", d),
                     ("stroke_hz", hz)):  # fmt: skip
            r.ok("set preset.%s.%s %s" % (name, f, v))
    r.auth.on = False
    check(r.settings.get("preset.active") == "acne_scars_cheeks")
    for mask in (START, PLUS, MINUS, PLUS | MINUS):
        r.tap(mask, 300)
    check(r.settings.get("preset.active") == "acne_scars_cheeks", "single gestures: no change")
    r.hold(PLUS | MINUS, 300)
    r.hold(PLUS | MINUS | START, 100)
    check(r.settings.get("preset.active") == "b_forehead")
    check(r.pen.targets.depth_um == 500 and r.pen.targets.rate_hz == 100
          and r.depth.position_um == 500)
    check(r.ui.msg == ("b_forehead", "0.25-0.75 100Hz"), repr(r.ui.msg))
    r.hold(PLUS | MINUS, 100)
    r.hold(PLUS | MINUS | START, 100)  # c_too_deep (above the 2.50 limit) is skipped
    r.hold(PLUS | MINUS, 1500)
    r.hold(0, 60)
    check(r.settings.get("preset.active") == "acne_scars_cheeks", "wrapped, skipped")
    check(r.pen.targets.depth_um == 1500 and r.pen.targets.rate_hz == 120)
    r.hold(PLUS | MINUS | START, 1500)  # all three in one sample: the same gesture
    r.hold(0, 60)
    check(r.settings.get("preset.active") == "b_forehead")
    check(r.pen.cart.number == 0 and r.pen.state == READY, "no cartridge, not armed")
    check(r.logged(EV_PRESET) == [1, 0, 1], repr(r.pen.events()))
    sel = [e for e in r.events if e.get("event") == "preset"]
    check([e["preset"] for e in sel] == ["b_forehead", "acne_scars_cheeks", "b_forehead"])
    r.ok("arm")
    r.ok("cartridge new")
    r.hold(PLUS | MINUS, 200)
    r.hold(PLUS | MINUS | START, 100)
    check(r.ui.msg[0] == "DISARM FIRST", repr(r.ui.msg))
    r.hold(PLUS | MINUS, 100)
    r.hold(0, 60)
    check(r.settings.get("preset.active") == "b_forehead", "not while armed")
    check(r.pen.state == ARMED and r.needle.starts == 0, "the start press did not run")
    check(r.pen.cart.number == 1)
    r.close()


@req("PS-19")
def test_rate_takes_one_road_from_buttons_and_serial():
    """PS-19: `run HZ`, `set stroke_hz` and a button step change the same rate target the same
    way: checked against the range, stored in the settings, followed by the running drive in
    a new pass; a refused rate changes nothing."""
    r = Rig()
    r.ok("arm")
    r.ok("cartridge new")
    s = r.settings
    r.ok("run 120")
    check(r.pen.state == RUNNING and s.get("stroke_hz") == 120 and r.needle.target_hz == 120)
    r.clock.advance(1000)
    check(r.ok("set stroke_hz 110") == {"stroke_hz": 110})
    check(s.get("stroke_hz") == 110 and r.needle.target_hz == 110, "the drive follows")
    r.tap(PLUS)  # running: plus is a rate step (5 Hz)
    check(s.get("stroke_hz") == 115 and r.needle.target_hz == 115, "button: %d" % s.get(
        "stroke_hz"))  # fmt: skip
    r.ok("run 130")
    check(s.get("stroke_hz") == 130 and r.needle.target_hz == 130, "run HZ while running")
    for line in ("run 151", "set stroke_hz 49", "run fast"):
        r.err(line)
        check(s.get("stroke_hz") == 130 and r.needle.target_hz == 130, line + " changed it")
    check(len(r.sessions.current["passes"]) == 3, "a pass per rate: %r" % (
        r.sessions.current["passes"],))  # fmt: skip
    r.close()


@req("TR-07")
def test_summary_with_every_bound_reached_fits_one_record():
    """TR-07: a session with the most passes, faults and overrides the summary itemises (each
    field at its widest, a pass open as before a run) stays within the store's record size
    (4 KB: the store refuses a larger one)."""
    clock = FakeClock()
    path = "/tmp/pen-presets-worst"
    s = Sessions(SessionStore(path), clock=clock)
    s.new_cartridge()
    name = "p" * 24
    for i in range(s.max_passes + 2):
        s.pass_begin(2995, 149999, 0, clock.t, name)
        clock.advance(999_999)
        s.pass_end(999_999, clock.t)
    for i in range(s.max_faults + 2):
        s.add_fault("calibration_invalid", clock.t)
    for i in range(s.max_overrides + 2):
        s.add_override(2995, 1005, "button", name, clock.t)
    s.before_run(2995, 149999, name)
    s.current["pass_open"]["start_s"] = 999999.999
    info("worst-case session summary: %d bytes" % len(json.dumps(s.current)))
    check(s.current["overrides_not_itemised"] == 2)
    check(len(s.current["overrides"]) == s.max_overrides)
    s.store.put(s.current)  # SessionStore.put raises ValueError for a record over 4 KB
    n = s.current["id"]
    ov = s.current["overrides"]
    s.current = None
    got = s.get(n)
    check(got["overrides"] == ov and got["interrupted_pass"]["stroke_hz"] == 149.999, repr(got))
    for ent in os.ilistdir(path):
        os.remove(path + "/" + ent[0])
    os.rmdir(path)
