"""The calibration's conversation with the pen: the only place its wire commands are used."""

from __future__ import annotations

import json
import time
from typing import Callable

from ..link import PenLink, PenRefused
from .errors import CalibrationError
from .fit import Config, axis_constants

# Wire commands (docs/protocol.md); adapt here, and only here.
CMD_CALIB_GET = "calib get"
CMD_CALIB_SET = "calib set {json}"
CMD_MOVE_STEPS = "move_steps {n}"
CMD_SERVICE_ENTER = "service enter"  # needs the unlock
CMD_SERVICE_EXIT = "service exit"  # the pen homes again
CMD_HOME = "home"
CMD_DEPTH = "depth {mm:.3f}"
CMD_LIMIT_KEY = "depth_limit"


class PenOps:
    """The calibration's conversation with the pen (only here are wire commands used)."""

    def __init__(self, link: PenLink, cfg: Config):
        self.link = link
        self.cfg = cfg

    def status(self) -> dict:
        return self.link.call("status")

    def limit_um(self) -> int:
        try:
            v = self.link.call(f"get {CMD_LIMIT_KEY}")
            return int(round(float(v[CMD_LIMIT_KEY]) * 1000))
        except (PenRefused, KeyError, TypeError, ValueError):
            return axis_constants()["limit_max_um"]

    def calib_get(self) -> list[int]:
        v = self.link.call(CMD_CALIB_GET)
        if isinstance(v, dict):
            v = v.get("calib") or v.get("table") or v.get("calibration") or next(iter(v.values()))
        return [int(x) for x in v]

    def calib_set(self, flat: list[int]) -> None:
        self.still()  # the axis takes a new table only while the stop is at rest
        self.link.call(CMD_CALIB_SET.format(json=json.dumps(flat, separators=(",", ":"))))

    def still(self) -> dict:
        """Wait until the stop rests at the pen's target depth."""

        def there(st: dict) -> bool:
            d, t = st.get("depth_mm"), st.get("target_depth_mm")
            return d is not None and t is not None and abs(d - t) <= 0.002

        return self._settled(there)

    def wait_state(self, ok: Callable[[dict], bool], what: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.get("fault"):
                raise CalibrationError(f"the pen faulted ({st['fault']}) while {what}: clear it "
                                       "(pen status) and start again")  # fmt: skip
            if ok(st):
                return st
            if time.monotonic() > deadline:
                raise CalibrationError(f"timed out while {what} (state {st.get('state')})")
            time.sleep(0.05)

    def home(self) -> dict:
        st = self.status()
        if st.get("state") in ("ARMED", "RUNNING", "STOPPING"):
            raise CalibrationError(
                f"the pen is {st['state']}: stop and disarm it first (`pen stop`, `pen disarm`)"
            )
        if st.get("homed") and st.get("state") == "READY":
            return st
        if st.get("state") != "HOMING":
            self.link.call(CMD_HOME)
        return self.wait_state(lambda s: s.get("homed") and s.get("state") == "READY",
                               "homing", 20.0)  # fmt: skip

    def enter_service(self) -> None:
        self.link.call(CMD_SERVICE_ENTER)
        self.wait_state(lambda s: s.get("state") == "SERVICE", "entering service", 5.0)

    def exit_service(self) -> None:
        self.link.call(CMD_SERVICE_EXIT)
        self.wait_state(lambda s: s.get("homed") and s.get("state") == "READY",
                        "homing after service", 20.0)  # fmt: skip

    def _settled(self, done: Callable[[dict], bool]) -> dict:
        """Poll until the stop stands still: the same position on several polls in a row
        (polls are tens of ms apart; a move's pauses last a few ms). A stop that stands still
        short of what `done` expects (a clamped move) is accepted after four times as many."""
        same = 0
        last = None
        deadline = time.monotonic() + self.cfg.move_timeout_s
        while True:
            st = self.status()
            if st.get("fault"):
                raise CalibrationError(f"the pen faulted ({st['fault']}) during a move")
            if st.get("moving") is False and done(st):
                return st
            here = (st.get("position_steps"), st.get("depth_mm"))
            same = same + 1 if here == last and st.get("moving") is not True else 0
            last = here
            need = self.cfg.settle_polls if done(st) else 4 * self.cfg.settle_polls
            if same >= need:
                return st
            if time.monotonic() > deadline:
                raise CalibrationError("the depth stop did not come to rest")
            time.sleep(0.03)

    def position_steps(self, table, st: dict | None = None) -> int:
        st = st or self.status()
        if st.get("position_steps") is not None:
            return int(st["position_steps"])
        if st.get("depth_mm") is None:
            raise CalibrationError("the pen does not report the stop's position")
        return table.steps_for_um(int(round(st["depth_mm"] * 1000)))

    def move_steps(self, n: int, table) -> int:
        start = self.position_steps(table)
        if n:
            self.link.call(CMD_MOVE_STEPS.format(n=int(n)))
        st = self._settled(lambda s: self.position_steps(table, s) == start + n)
        return self.position_steps(table, st)

    def set_depth(self, mm: float) -> dict:
        self.link.call(CMD_DEPTH.format(mm=mm))

        def there(st: dict) -> bool:
            d = st.get("depth_mm")
            return d is not None and abs(d - mm) <= 0.002

        return self._settled(there)


