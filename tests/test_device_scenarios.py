"""The pen as a device: scripted scenarios on the virtual pen (its own files in the micropython
binary, behind a pseudo-terminal), driven through the side channel (buttons, faults, power)
and read through the serial protocol, the display's pixels and the plant's truth.

Button presses land at definite virtual times (the side channel acts between plant steps), and
the side channel answers a press once the pen has seen the whole gesture, so gesture outcomes do
not depend on the host's speed. Every wait is on the pen: its state (asked with `status`) or its
own clock (the side channel's `wait MS` answers after MS of virtual time); bounds are virtual
time too, so a loaded host gives the same verdicts, only later.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import serial

from pen.records.summary import parse_summary

SPEED = 4  # virtual seconds per wall second
_POLL_MS = 50  # virtual time between two `status` questions while waiting for a state
PINS: dict = {}  # hardware/pins.py, the pin map (it goes onto the pen; read, not imported)
exec((Path(__file__).resolve().parents[1] / "hardware" / "pins.py").read_text(), PINS)


class Console:
    """The pen's serial port plus its side channel."""

    def __init__(self, vp, speed=SPEED):
        self.vp = vp
        self.speed = speed
        self.port = serial.Serial(vp.port, 115200, timeout=0.5)
        self.events: list[dict] = []

    def close(self):
        self.port.close()

    def cmd(self, line: str, timeout: float = 10.0) -> str:
        self.port.write(line.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self.port.readline().decode(errors="replace").strip()
            if not raw:
                continue
            if raw.startswith("~E "):
                self.events.append(json.loads(raw[3:]))
            if raw.startswith("ok") or raw.startswith("error"):
                return raw
        raise TimeoutError(f"no reply to {line!r}")

    def ok(self, line: str):
        reply = self.cmd(line)
        assert reply.startswith("ok"), f"{line}: {reply}"
        rest = reply[2:].strip()
        return json.loads(rest) if rest else None

    def status(self) -> dict:
        return self.ok("status")

    def wait(self, pred, timeout: float = 20.0, what: str = "condition") -> dict:
        """Ask the pen until `pred(status)`; fail after `timeout` s of the pen's own time."""
        waited_ms = 0
        st = {}
        while waited_ms <= timeout * 1000:
            try:
                st = self.status()
                if pred(st):
                    return st
                self.virtual_sleep(_POLL_MS)
                waited_ms += _POLL_MS
            except (TimeoutError, json.JSONDecodeError, AssertionError, RuntimeError):
                # The pen is rebooting (no reply, no side channel): its clock starts again.
                self.wait_reboot()
                waited_ms += _POLL_MS
        raise AssertionError(f"no {what} within {timeout:g} s of the pen's time; last status {st}")

    def wait_reboot(self):
        """Until the rebooting pen's side channel answers again (bounded: a pen that never
        comes back fails the test)."""
        for _ in range(600):
            try:
                self.vp.ctl("wait", "0")
                return
            except RuntimeError:
                time.sleep(0.05)  # the process is being started again: nothing to ask yet
        raise AssertionError("the virtual pen did not come back")

    def wait_state(self, state: str, timeout: float = 20.0) -> dict:
        return self.wait(lambda s: s["state"] == state, timeout, state)

    def virtual_sleep(self, ms: int):
        """`ms` of the pen's own (virtual) time."""
        self.vp.ctl("wait", str(ms))

    def press(self, buttons: str, ms: int = 100):
        """Press and release; returns once the pen has seen the whole gesture."""
        self.vp.ctl("press", buttons, "--hold-ms", str(ms))

    def screen(self) -> list[str]:
        return json.loads(self.vp.ctl("screen"))["lines"]

    def truth(self) -> dict:
        return dict(kv.split("=") for kv in self.vp.ctl("truth").split())

    def turns(self) -> int:
        return int(self.truth()["turns"])


def read_until(port, *markers: bytes, limit_s: float = 60.0) -> bytes:
    """What the port sends until every marker has arrived, in order (the REPL's answer and
    its next prompt); a port that stays silent for `limit_s` fails the test."""
    out = b""
    deadline = time.monotonic() + limit_s
    pos = 0
    for m in markers:
        while m not in out[pos:]:
            assert time.monotonic() < deadline, out
            out += port.read(4096)
        pos = out.index(m, pos) + len(m)
    return out


@pytest.fixture
def pen(vpen_factory):
    c = Console(vpen_factory(speed=SPEED))
    c.wait_state("READY", timeout=30)
    yield c
    c.close()


def _arm_with_cartridge(pen: Console):
    pen.press("start", 1200)
    assert pen.status()["state"] == "ARMED"
    pen.press("plus+minus", 1200)
    st = pen.status()
    assert st["cartridge_ok"] and st["cartridge"] >= 1
    # SF-13: the stop's position is checked at the endstop before the session's first run
    pen.wait(lambda s: s["depth_settled"], 10, "position checked")
    return st["cartridge"]


def _run_for(pen: Console, ms: int):
    pen.press("start", 100)
    pen.wait_state("RUNNING", timeout=5)
    pen.wait(lambda s: s["measured_hz"] > 90, timeout=5, what="stroke rate")
    pen.virtual_sleep(ms)
    pen.press("start", 100)
    return pen.wait_state("ARMED", timeout=10)


@pytest.mark.req("UI-1", "PS-2")
def test_start_refused_unhomed_or_unarmed_motor_never_moves(pen):
    """UI-1, PS-2: start pressed while the pen is not homed (homing), not armed, or without a
    cartridge is refused; the display says why each time; the motor never turns."""
    turns0 = pen.turns()
    # Not homed: a re-home that cannot find the switch keeps the pen HOMING for seconds.
    pen.vp.ctl("fault", "endstop_open")
    pen.ok("home")
    pen.wait_state("HOMING", timeout=5)
    pen.press("start", 100)
    assert pen.screen()[2] == "NOT HOMED", pen.screen()
    st = pen.wait_state("FAULT", timeout=20)
    assert st["fault"] == "home_not_found"
    pen.vp.ctl("fault", "none")
    pen.press("start", 1200)  # hold START: clear, then it homes by itself
    pen.wait_state("READY", timeout=20)
    # Not armed.
    pen.press("start", 100)
    assert pen.screen()[2:] == ["NOT ARMED", "hold START 1s"], pen.screen()
    assert pen.cmd("run").startswith("error:8")
    # Armed, no cartridge.
    pen.press("start", 1200)
    assert pen.status()["state"] == "ARMED"
    pen.press("start", 100)
    assert pen.screen()[2] == "NO CARTRIDGE", pen.screen()
    st = pen.status()
    assert st["state"] == "ARMED" and st["duty"] == 0
    assert pen.turns() == turns0, "the motor never moved"
    assert not [e for e in pen.events if e.get("to") == "RUNNING"]


@pytest.mark.req("UI-3", "UI-14")
def test_depth_buttons_step_repeat_and_stop_at_limit(pen):
    """UI-3, UI-14: plus/minus move the target by depth_step (0.05 mm); holding repeats; the
    target stops at the depth limit with feedback (display and the limit buzz)."""
    st = pen.status()
    d0 = st["target_depth_mm"]
    pen.press("plus", 100)
    assert pen.status()["target_depth_mm"] == pytest.approx(d0 + 0.05)
    pen.press("minus", 100)
    pen.press("minus", 100)
    assert pen.status()["target_depth_mm"] == pytest.approx(d0 - 0.05)
    # Held 900 ms: one step at the press, repeats from 500 ms every 150 ms -> 4 steps.
    pen.press("plus", 900)
    assert pen.status()["target_depth_mm"] == pytest.approx(d0 - 0.05 + 4 * 0.05)
    limit = pen.ok("get depth_limit")["depth_limit"]
    pen.ok(f"depth {limit - 0.2:.2f}")
    pen.vp.ctl("buzzer", "clear")
    pen.press("plus", 3000)
    st = pen.wait(lambda s: abs(s["depth_mm"] - limit) < 0.02, timeout=10, what="stop at limit")
    assert st["target_depth_mm"] == pytest.approx(limit)
    assert pen.screen()[2] == f"DEPTH MAX {limit:.2f}", pen.screen()
    tones = json.loads(pen.vp.ctl("buzzer"))
    assert any(abs(hz - 3200) < 50 for _, hz, _ in tones), tones
    assert float(pen.vp.ctl("gauge")) < limit + 0.15, "the needle stop is within the limit"


@pytest.mark.req("PS-14", "UI-2", "UI-6")
def test_full_session_summary_matches(pen):
    """PS-14, UI-2, UI-6: arm, confirm a cartridge, run, change depth between passes, stop;
    the stored session summary lists both passes with their depth, rate and strokes."""
    cart = _arm_with_cartridge(pen)
    pen.ok("depth 0.80")
    t0 = pen.turns()
    _run_for(pen, 1500)
    t1 = pen.turns()
    pen.press("plus", 100)
    pen.press("plus", 100)
    pen.wait(lambda s: s["target_depth_mm"] == pytest.approx(0.9), timeout=5, what="0.90")
    pen.wait(lambda s: abs(s["depth_mm"] - 0.9) < 0.02, timeout=5, what="depth reached")
    _run_for(pen, 2000)
    t2 = pen.turns()
    summary = pen.ok("session summary last")
    parse_summary(summary)  # the host's records accept it
    assert summary["cartridge"] == cart
    passes = summary["passes"]
    assert [p["depth_mm"] for p in passes] == [0.8, 0.9], passes
    assert all(p["stroke_hz"] == 100 for p in passes)
    assert passes[0]["strokes"] == pytest.approx(t1 - t0, abs=3)
    assert passes[1]["strokes"] == pytest.approx(t2 - t1, abs=3)
    assert summary["strokes"] == passes[0]["strokes"] + passes[1]["strokes"]
    assert passes[1]["start_s"] > passes[0]["start_s"] + passes[0]["duration_s"]
    assert summary["faults"] == []
    listed = pen.ok("session list")
    assert listed[-1]["id"] == summary["id"]


@pytest.mark.req("PS-4")
@pytest.mark.parametrize("fault,name", [("stall", "stall"), ("sensor_loss", "sensor_loss"),
                                        ("runaway", "runaway")])  # fmt: skip
def test_needle_fault_safe_state_latched_until_cleared(pen, fault, name):
    """PS-4: a needle-drive fault while running: motor off, needle stop retracted, FAULT
    latched (run refused, shown in words) until the cause is gone and the user clears it;
    after the clear the pen is disarmed."""
    _arm_with_cartridge(pen)
    pen.ok("depth 1.00")
    pen.wait(lambda s: abs(s["depth_mm"] - 1.0) < 0.02, timeout=5, what="depth")
    pen.press("start", 100)
    # Past the soft start, at the rate (a fault during the ramp is another case).
    pen.wait(lambda s: abs(s["measured_hz"] - s["target_hz"]) < 2, timeout=5, what="at rate")
    pen.virtual_sleep(300)
    pen.vp.ctl("fault", fault)
    st = pen.wait_state("FAULT", timeout=5)
    assert st["fault"] == name and not st["armed"]
    pen.wait(lambda s: s["duty"] == 0 and s["measured_hz"] == 0, timeout=5, what="motor off")
    pen.virtual_sleep(1000)
    assert float(pen.truth()["stroke_hz"]) < 1.0
    assert float(pen.vp.ctl("gauge")) < 0.1, "needle stop retracted"
    assert pen.screen()[0].startswith("FAULT")
    pen.virtual_sleep(2000)
    assert pen.status()["state"] == "FAULT", "still latched"
    assert pen.cmd("run").startswith("error:9")
    assert pen.cmd("arm").startswith("error:9")
    pen.vp.ctl("fault", "none")
    pen.press("start", 1200)  # hold START: clear
    st = pen.wait_state("READY", timeout=10)
    assert st["fault"] is None and not st["armed"]
    assert pen.cmd("run").startswith("error:8")


@pytest.mark.req("PS-4", "PS-5")
def test_depth_fault_safe_state_latched_until_cleared(pen):
    """PS-4, PS-5: the depth stop's endstop stuck closed while homed: motor off, FAULT
    latched until the cause is gone and cleared; clearing re-homes."""
    _arm_with_cartridge(pen)
    pen.ok("depth 1.00")
    pen.wait(lambda s: abs(s["depth_mm"] - 1.0) < 0.02, timeout=5, what="depth")
    pen.press("start", 100)
    pen.wait(lambda s: s["measured_hz"] > 90, timeout=5, what="running")
    pen.vp.ctl("fault", "endstop_closed")
    st = pen.wait_state("FAULT", timeout=5)
    assert st["fault"] in ("endstop_stuck", "lost_steps"), st
    pen.wait(lambda s: s["duty"] == 0, timeout=5, what="motor off")
    pen.virtual_sleep(1500)
    assert pen.status()["state"] == "FAULT"
    pen.vp.ctl("fault", "none")
    assert pen.cmd("clear").startswith("ok")
    st = pen.wait_state("READY", timeout=20)
    assert st["homed"] and not st["armed"]


@pytest.mark.req("PS-16")
def test_power_loss_mid_session_keeps_completed_records(pen):
    """PS-16: the power is cut while the needle runs in a session's second pass: after the
    reboot the previous session and the completed pass are stored unchanged; the pen boots
    homing, disarmed, with no cartridge (a new one must be confirmed)."""
    _arm_with_cartridge(pen)
    _run_for(pen, 800)
    first = pen.ok("session summary last")
    pen.press("plus+minus", 1200)  # the next cartridge: session 1 closed
    _run_for(pen, 800)
    second = pen.ok("session summary last")
    assert second["id"] == first["id"] + 1
    pen.press("start", 100)
    pen.wait_state("RUNNING", timeout=5)
    pen.vp.ctl("power", "cut")
    st = pen.wait_state("READY", timeout=30)
    assert st["cartridge"] == 0 and not st["cartridge_ok"] and st["uptime_ms"] < 20000
    assert pen.ok(f"session get {first['id']}") == first
    after = pen.ok(f"session get {second['id']}")
    assert after["passes"][: len(second["passes"])] == second["passes"]
    assert pen.cmd("run").startswith("error:8")


@pytest.mark.req("PS-11")
def test_hung_task_watchdog_resets_pen_into_safe_fault(pen):
    """PS-11: the firmware's loop hangs while the needle runs: the watchdog resets the pen,
    which comes up with the motor off and the watchdog fault latched (shown in words)."""
    _arm_with_cartridge(pen)
    pen.press("start", 100)
    pen.wait(lambda s: s["measured_hz"] > 90, timeout=5, what="running")
    pen.vp.ctl("fault", "hang")
    st = pen.wait(lambda s: s["state"] == "FAULT", timeout=30, what="watchdog reset")
    assert st["fault"] == "watchdog" and st["duty"] == 0 and st["uptime_ms"] < 20000
    assert pen.screen()[1:3] == ["reset by", "watchdog"], pen.screen()
    assert float(pen.truth()["current_a"]) == 0.0
    pen.press("start", 1200)
    pen.wait_state("READY", timeout=20)


@pytest.mark.req("PS-17", "SF-08")
def test_safe_mode_boot_skips_main(vpen_factory):
    """PS-17, SF-08: START held at power-up: boot.py records service mode and main.py
    returns; the application never starts (no display, no homing) and the REPL answers."""
    vp = vpen_factory(speed=1, hold="start")
    with serial.Serial(vp.port, 115200, timeout=1) as s:
        out = b""
        out = read_until(s, b">>>")
        assert b"service mode" in out, out
        # At the REPL (virtual time stands still, so ask the simulated board directly: the
        # REPL runs in sim/vpen.py's namespace, where PEN is the virtual board).
        s.write(b"import drivers.board; print('SAFE', drivers.board.SAFE_MODE, "
                b"PEN.display.frames, PEN.display.on, PEN.motor.turns)\r\n")
        out = read_until(s, b"SAFE ", b">>>")
    assert b"SAFE True 0 False 0" in out, out


@pytest.mark.req("HT-63")
def test_side_channel_answers_on_the_pens_clock(pen):
    """HT-63: `wait MS` answers after MS of the pen's own time, and `press` once the pen has
    seen the whole gesture: a START held 1.2 s has armed the pen when the press returns."""
    t0 = int(pen.truth()["t_us"])
    pen.virtual_sleep(500)
    t1 = int(pen.truth()["t_us"])
    assert t1 - t0 >= 500_000
    pen.press("start", 1200)
    assert int(pen.truth()["t_us"]) >= t1 + 1_200_000
    assert pen.status()["state"] == "ARMED"


@pytest.mark.req("SP-61", "SP-62", "TM-21")
def test_many_sessions_and_brown_outs_in_first_passes_lose_nothing(pen):
    """SP-61, SP-62, TM-21: through the pen as a user drives it: 30 sessions (cartridge new,
    three passes) without a reboot, then the power cut during the first pass of three more
    sessions at varied moments: every command answers (no out-of-memory), each cut session is
    on record with its interrupted pass, cartridge numbers never repeat, and `session info`
    counts what the store keeps."""
    def run():
        deadline = time.monotonic() + 10
        while (reply := pen.cmd("run")).startswith("error:10"):  # the stop still settles
            assert time.monotonic() < deadline, reply
            time.sleep(0.05)
        assert reply.startswith("ok"), reply

    def run_for(ms):
        run()
        pen.wait(lambda s: s["measured_hz"] > 90, timeout=5, what="stroke rate")
        pen.virtual_sleep(ms)
        pen.ok("stop")
        pen.wait_state("ARMED", timeout=10)

    pen.ok("arm")
    numbers = []
    for _ in range(30):
        numbers.append(pen.ok("cartridge new")["cartridge"])
        for _ in range(3):
            run_for(150)
        assert pen.ok("session summary last")["id"] == numbers[-1]
    listed = pen.ok("session list")
    assert [e["id"] for e in listed] == numbers[-30:] and listed[-1]["passes"] == 3
    assert all(e["pen_session"] == str(e["id"]) for e in listed)
    for ms in (30, 180, 420):
        n = pen.ok("cartridge new")["cartridge"]
        assert n > numbers[-1], "cartridge %d after %d" % (n, numbers[-1])
        numbers.append(n)
        run()
        pen.wait_state("RUNNING", timeout=5)
        pen.virtual_sleep(ms)
        pen.vp.ctl("power", "cut")
        st = pen.wait_state("READY", timeout=30)
        assert st["cartridge"] == 0 and not st["cartridge_ok"]
        rec = pen.ok(f"session get {n}")
        assert rec["passes"] == [] and rec["interrupted_pass"]["depth_mm"] > 0, rec
        pen.ok("arm")
    info = pen.ok("session info")
    assert info["kept"] == 33 and info["last"] == numbers[-1] and info["next"] == numbers[-1] + 1
    assert info["dropped"] == 0 and info["unfetched"] == 0
    assert len(set(numbers)) == len(numbers) == 33
