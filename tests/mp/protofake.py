"""A small fake application for the protocol, link, settings and auth tests: the state machine
facade as firmware/protocol.py uses it (firmware/pen.py's method names and refusals), with the
real Settings, Store, Telemetry and Auth around it."""

import json

from firmware import errors as E
from firmware.auth import Auth, hmac_sha256
from firmware.errors import Refused
from firmware.protocol import Protocol
from firmware.settings import Settings
from firmware.store import Store
from firmware.telemetry import Telemetry

TEST_SECRET = b"virtual-pen-test-secret-not-real"


class FakePen:
    def __init__(self):
        self.state = "READY"
        self.calls = []
        self.target_um = 500
        self.rate_hz = 100
        self.cartridge = 0
        self.fault_code = 0
        self.limit_um = 2500
        self.duty = 0
        self.stroke_dhz = 0

    def _call(self, name, *args):
        if len(self.calls) >= 64:
            del self.calls[:32]  # bounded: long fuzz runs
        self.calls.append((name,) + args)

    def home(self):
        self._call("home")
        if self.state in ("RUNNING", "STOPPING"):
            raise Refused(E.MOTOR_RUNNING)

    def arm(self):
        self._call("arm")
        if self.state != "READY":
            raise Refused(E.BUSY, "cannot arm in " + self.state)
        self.state = "ARMED"

    def disarm(self):
        self._call("disarm")
        if self.state == "ARMED":
            self.state = "READY"

    def run(self, hz=None):
        self._call("run", hz)
        if hz is not None and not 50 <= hz <= 150:
            raise Refused(E.OUT_OF_RANGE, "stroke rate 50..150 Hz")
        if self.state != "ARMED":
            raise Refused(E.NOT_ARMED)
        self.state = "RUNNING"

    def stop(self):
        self._call("stop")
        if self.state == "RUNNING":
            self.state = "STOPPING"
        elif self.state == "STOPPING":
            self._call("coast")
            self.state = "ARMED"

    def set_depth_um(self, um):
        self._call("set_depth_um", um)
        if self.state in ("RUNNING", "STOPPING"):
            raise Refused(E.MOTOR_RUNNING)
        if um > self.limit_um:
            raise Refused(E.OUT_OF_RANGE)
        self.target_um = um

    def clear_fault(self):
        self._call("clear_fault")
        self.fault_code = 0

    def confirm_cartridge(self):
        self._call("confirm_cartridge")
        self.cartridge += 1
        return self.cartridge

    def enter_service(self):
        self._call("enter_service")
        self.state = "SERVICE"

    def exit_service(self):
        self._call("exit_service")
        self.state = "LOCKED"

    def move_steps(self, n):
        self._call("move_steps", n)
        if self.state != "SERVICE":
            raise Refused(E.BUSY, "service state only")

    def fault_log(self):
        return [(1234, "stall")] if self.fault_code else []

    def status(self):
        return {
            "state": self.state, "homed": True, "armed": self.state == "ARMED",
            "depth_mm": self.target_um / 1000, "target_depth_mm": self.target_um / 1000,
            "stroke_hz": self.stroke_dhz / 10, "target_hz": self.rate_hz, "duty": self.duty,
            "current_ma": 120, "battery_mv": 3900,
            "fault": "stall" if self.fault_code else None, "fault_code": self.fault_code,
            "cartridge": self.cartridge, "cartridge_strokes": 0, "uptime_ms": 0,
        }  # fmt: skip


class FakeLink:
    def __init__(self):
        self.stream_hz = 0

    def set_stream(self, hz):
        self.stream_hz = hz


class FakeSessions:
    def __init__(self):
        self.recs = [{"id": 1, "start": "2026-03-01T10:00:00", "duration_s": 60.0,
                      "passes": [], "faults": []}]  # fmt: skip

    def list(self):
        return [{"id": r["id"], "start": r["start"], "duration_s": r["duration_s"]}
                for r in self.recs]  # fmt: skip

    def get(self, n):
        for r in self.recs:
            if r["id"] == n:
                return r
        return None

    def last(self):
        return self.recs[-1] if self.recs else None


class FakeApp:
    def __init__(self, root=None, capacity=400, ctx=64, with_pen=True):
        """root: a folder on a mounted filesystem (e.g. '/flash') for the settings record and
        the secret; None: settings in RAM only and the secret in a RAM-only Auth."""
        self.pen = FakePen() if with_pen else None
        self.store = Store(root + "/settings.dat", motor_running=self._running) if root else None
        self.settings = Settings(self.store)
        self.settings.load()
        self.telemetry = Telemetry(capacity, ctx)
        self.auth = Auth((root or "/nonexistent") + "/pen_secret.key")
        self.protocol = Protocol(self)
        self.link = FakeLink()
        self.sessions = FakeSessions()
        self.applied = []
        self.settings.on_change(self._apply)

    def _running(self):
        return self.pen is not None and self.pen.state in ("RUNNING", "STOPPING")

    def _apply(self, key, value):
        self.applied.append((key, value))
        if self.pen is None:
            return
        if key == "depth_limit_mm":
            self.pen.limit_um = value
        elif key == "depth_mm":
            self.pen.set_depth_um(value)

    def cmd(self, line):
        """One command line -> its reply as one str."""
        r = self.protocol.handle(line.encode() if isinstance(line, str) else line)
        return r if isinstance(r, str) else "".join(r)

    def fetch(self, line):
        """A `telemetry fetch` reply as a list of sample dicts, parsed part by part (a large
        reply is never joined into one string, on the pen or here)."""
        r = self.protocol.handle(line.encode())
        check_list = isinstance(r, list) and r[0] == "ok " and r[1] == "[" and r[-1] == "]"
        if not check_list:
            raise AssertionError("%r -> %r" % (line, r))
        return [json.loads(p) for p in r[2:-1] if p != ", "]

    def ok(self, line):
        r = self.cmd(line)
        if not (r == "ok" or r.startswith("ok ")):
            raise AssertionError("%r -> %r" % (line, r))
        return json.loads(r[3:]) if len(r) > 3 else None

    def err(self, line):
        r = self.cmd(line)
        if not r.startswith("error:"):
            raise AssertionError("%r should fail, got %r" % (line, r))
        return int(r[6:].split(" ")[0])

    def unlock(self, secret=TEST_SECRET):
        ch = self.ok("unlock")["challenge"]
        resp = hmac_sha256(secret, ch.encode())
        from binascii import hexlify

        return self.cmd("unlock " + hexlify(resp).decode())
