"""Small fakes of the needle drive and the depth axis for the state machine's tests (no test
functions here: the other mptest_pen*/mptest_ui* modules import it)."""

from firmware import faults as F
from firmware.errors import BAD_ARGUMENT, BUSY, FAULT_ACTIVE, OUT_OF_RANGE, Refused


class FakeClock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += ms


class FakeNeedle:
    def __init__(self):
        self.running = False
        self.stopping = False
        self.target_hz = 0
        self.rate_mhz = 0
        self.duty = 0
        self.current_ma = 0
        self.battery_mv = 3900
        self.strokes = 0
        self.fault = 0
        self.cause_present = False
        self.starts = 0
        self.kills = 0

    def start(self, hz):
        if self.fault:
            raise Refused(FAULT_ACTIVE)
        if not isinstance(hz, int):
            raise Refused(BAD_ARGUMENT)
        self.running = True
        self.stopping = False
        self.target_hz = hz
        self.starts += 1

    def set_target(self, hz):
        if not isinstance(hz, int):
            raise Refused(BAD_ARGUMENT)
        self.target_hz = hz

    def stop(self):
        if self.running:
            self.stopping = True

    def kill(self):
        self.running = False
        self.stopping = False
        self.duty = 0
        self.rate_mhz = 0
        self.kills += 1

    def clear_fault(self):
        if self.running or self.cause_present:
            raise Refused(FAULT_ACTIVE)
        self.fault = 0

    # test helpers
    def spin(self, strokes):
        """The motor turned: strokes counted, rate measured."""
        if self.running:
            self.strokes += strokes
            self.rate_mhz = self.target_hz * 1000
            self.duty = 20000

    def finish_stop(self):
        if self.stopping:
            self.running = False
            self.stopping = False
            self.rate_mhz = 0
            self.duty = 0

    def trip(self, code, cause=True):
        self.kill()
        self.fault = code
        self.cause_present = cause


class FakeDepth:
    def __init__(self, limit_um=3000):
        self.homed = False
        self.busy = False
        self.homing = False
        self._pos = 0
        self.target_um = 0
        self.limit_um = limit_um
        self.fault = 0
        self.cause_present = False
        self.moves = []
        self.moved_since_check = False  # SF-13's endstop check is not due on this fake

    def at_target(self):
        """Still, homed, no fault (this fake's moves land at once)."""
        return self.homed and not self.busy and not self.fault

    @property
    def position_um(self):
        return self._pos if self.homed else None

    @position_um.setter
    def position_um(self, v):
        self._pos = v

    def set_limit_um(self, um):
        self.limit_um = um

    def set_calibration(self, table):
        self.calib = table

    def home(self):
        self.homing = True
        self.busy = True
        self.homed = False

    def finish_home(self, ok=True):
        self.homing = False
        self.busy = False
        if ok:
            self.homed = True
            self.position_um = 0
        else:
            self.fault = F.HOME_NOT_FOUND
            self.cause_present = True

    def move_to_um(self, um):
        if not self.homed:
            raise Refused(7)
        if um < 0 or um > self.limit_um:
            raise Refused(OUT_OF_RANGE)
        self.target_um = um
        self.position_um = um  # instant
        self.moves.append(um)

    def retract(self):
        self.target_um = 0
        self.position_um = 0
        self.moves.append(0)

    def move_steps(self, n):
        self.moves.append(("steps", n))

    def clear_fault(self):
        if self.cause_present:
            raise Refused(BUSY)
        self.fault = 0

    def trip(self, code, cause=True):
        self.fault = code
        self.cause_present = cause
        self.homed = False


def make_pen(sessions=None, config=None, home=True, settings=None):
    """config: {setting: internal value} set before the pen starts (in `settings`, default
    RAM-only ones)."""
    from firmware.pen import Pen
    from firmware.settings import Settings

    clock = FakeClock()
    needle = FakeNeedle()
    depth = FakeDepth()
    if settings is None:
        settings = Settings()
        cfg = {"depth_limit": depth.limit_um}  # the clinic's limit is the axis's, as in the app
        cfg.update(config or {})
    else:
        depth.limit_um = settings.get("depth_limit")
        cfg = config or {}
    for k in sorted(cfg, key=lambda k: k != "depth_limit"):
        if settings.get(k) != cfg[k]:
            settings.commit(settings.check(k, cfg[k], unlocked=True))
    pen = Pen(needle, depth, settings, sessions=sessions, clock=clock)
    events = []
    pen.listeners.append(events.append)
    pen.start()
    if home:
        depth.finish_home()
        pen.poll()
    return pen, needle, depth, clock, events
