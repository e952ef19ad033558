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
from firmware.targets import Targets
from firmware.telemetry import Telemetry

TEST_SECRET = b"virtual-pen-test-secret-not-real"


class FakeAxis:
    """The depth axis as the targets' owner commands it; refuses beyond its limit."""

    def __init__(self):
        self.limit_um = 2500
        self.target_um = 500
        self.calib = None

    def move_to_um(self, um):
        if um > self.limit_um:
            raise Refused(E.OUT_OF_RANGE, "depth outside 0..limit")
        self.target_um = um

    def set_limit_um(self, um):
        self.limit_um = um

    def set_calibration(self, table):
        self.calib = table


class FakeCart:
    def __init__(self):
        self.overrides = []

    def add_override(self, from_um, to_um, by, preset):
        self.overrides.append((from_um, to_um, by, preset))


class FakePen:
    """The state machine's facade and the gates of the targets' owner (firmware/pen.py's names
    and refusals), with the real owner (firmware/targets.py) over the app's settings."""

    def __init__(self, settings):
        self.state = "READY"
        self.calls = []
        self.cartridge = 0
        self.fault_code = 0
        self.duty = 0
        self.stroke_dhz = 0
        self.depth = FakeAxis()
        self.cart = FakeCart()
        self.events = []
        self.targets = Targets(self, settings)

    def _call(self, name, *args):
        if len(self.calls) >= 64:
            del self.calls[:32]  # bounded: long fuzz runs
        self.calls.append((name,) + args)

    # the gates and hooks firmware/targets.py uses
    def motor_running(self):
        return self.state in ("RUNNING", "STOPPING")

    def check_depth_change(self):
        if self.motor_running():
            raise Refused(E.MOTOR_RUNNING)

    def check_rate_change(self):
        pass

    def check_preset_change(self):
        self.check_depth_change()

    def rate_changed(self, hz):
        self._call("rate", hz)

    def record(self, code, arg):
        pass

    def emit(self, ev):
        self.events.append(ev)

    def refuse(self, code, message=None):
        raise Refused(code, message)

    def store_session(self):
        pass

    # the facade
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
        if hz is not None:
            self.targets.check("stroke_hz", hz)
        if self.state != "ARMED":
            raise Refused(E.NOT_ARMED)
        if hz is not None:
            self.targets.change("stroke_hz", hz)
        self.state = "RUNNING"

    def stop(self):
        self._call("stop")
        if self.state == "RUNNING":
            self.state = "STOPPING"
        elif self.state == "STOPPING":
            self._call("coast")
            self.state = "ARMED"

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

    fault_log_dropped = 0

    def telemetry_into(self, v):
        """firmware/pen.py's allocation-free sample (firmware/telemetry.py's field order)."""
        from firmware.telemetry import STATES

        um = self.targets.depth_um
        v[0] = STATES.index(self.state)
        v[1] = self.stroke_dhz
        v[2] = self.targets.rate_hz
        v[3] = self.duty
        v[4] = um
        v[5] = um
        v[6] = 120
        v[7] = 3900
        v[8] = self.fault_code

    def status(self):
        return {
            "state": self.state, "homed": True, "armed": self.state == "ARMED",
            "depth_mm": self.targets.depth_um / 1000,
            "target_depth_mm": self.targets.depth_um / 1000,
            "measured_hz": self.stroke_dhz / 10, "target_hz": self.targets.rate_hz,
            "duty": self.duty,
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

    def entries(self, first=None, n=32):
        return self.list(first, n)

    def list(self, first=None, n=32):
        self.listed = (first, n)
        return [{"id": r["id"], "start": r["start"], "duration_s": r["duration_s"]}
                for r in self.recs]  # fmt: skip

    def info(self):
        return {"kept": len(self.recs), "acked": getattr(self, "acked", 0)}

    def ack(self, n):
        self.acked = n

    def get(self, n):
        for r in self.recs:
            if r["id"] == n:
                return r
        return None

    def last(self):
        return self.recs[-1] if self.recs else None


class FakePins:
    BOARD_REV = "test"


class FakeBoard:
    pins = FakePins


class FakeService:
    """firmware/service.py's request(), as the protocol sees it."""

    def __init__(self, pen):
        self.pen = pen
        self.requests = 0

    def request(self):
        self.pen.enter_service()
        self.requests += 1
        return {"hold_start_s": 2, "within_s": 15}


class FakeApp:
    serial_number = "e66038b7132a1b2c"
    board = FakeBoard

    def __init__(self, root=None, capacity=400, ctx=64):
        """root: a folder on a mounted filesystem (e.g. '/flash') for the settings record and
        the secret; None: settings in RAM only and the secret in a RAM-only Auth."""
        self.store = Store(root + "/settings.dat", motor_running=self._running) if root else None
        self.settings = Settings(self.store)
        self.settings.load()
        self.pen = FakePen(self.settings)
        self.service = FakeService(self.pen)
        self.telemetry = Telemetry(capacity, ctx)
        self.auth = Auth((root or "/nonexistent") + "/pen_secret.key")
        self.protocol = Protocol(self)
        self.link = FakeLink()
        self.sessions = FakeSessions()

    def _running(self):
        return self.pen.motor_running()

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
        out = []
        for i in range(2, len(r) - 1):
            p = r[i]
            r[i] = None  # each part freed once parsed: the test's heap is the pen's
            if p != ", ":
                out.append(json.loads(p))
        return out

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
