"""The pen application: composes the firmware pieces and runs the asyncio tasks (serial link,
UI, display, buzzer, depth axis, state machine, supervisor). Timing-critical work is not here:
it is in hardware (PWM, PIO) and the 1 kHz control tick on a hard timer.

Liveness: every task checks in with the supervisor, which feeds the hardware watchdog only
while all of them do. The keyboard interrupt is off while the application runs (every byte on
the port is protocol input, SF-07); on leaving (any exception) the hardware goes to the safe
state in a `finally`, and main.py restarts the pen (the REPL only in service mode, SF-08).
"""

import asyncio
import gc
import time

from firmware import faults as F
from firmware.auth import Auth
from firmware.depth import DepthAxis
from firmware.display import Display
from firmware.errors import Refused
from firmware.link import SerialService
from firmware.needle import NeedleDrive
from firmware.pen import ARMED, Pen
from firmware.protocol import Protocol
from firmware.service import ServiceRequest
from firmware.sessions import Sessions
from firmware.sessionstore import SessionStore
from firmware.settings import Settings
from firmware.stallguard import StallWatch
from firmware.store import Store
from firmware.supervisor import Supervisor
from firmware.telemetry import Telemetry
from firmware.ui import UI

TICK_HZ = 1000


class App:
    pen_poll_ms = 10
    # `reset` answers `ok` first: the reply leaves through the USB stack within a few ms
    RESET_DELAY_MS = 100

    def __init__(self, board):
        # The largest buffer first, on a freshly collected heap: it needs one contiguous block.
        gc.collect()
        self.telemetry = Telemetry()
        self.board = board
        self.serial_number = board.serial_number
        self.needle = NeedleDrive(board.motor, board.stroke, board.analog, tick_hz=TICK_HZ,
                                  interlock=self._needle_interlock)  # fmt: skip
        self.settings = Settings(Store(motor_running=lambda: self.needle.running))
        self.boot_fault = self.settings.load()
        s = self.settings
        self.depth = DepthAxis(board.stepper, board.endstop, calib=s.get("calib"),
                               limit_um=s.get("depth_limit"),
                               stall=StallWatch(board.tmc))  # fmt: skip
        self.sessions = Sessions(SessionStore(board.sessions_path))
        self.pen = Pen(self.needle, self.depth, s, self.sessions)
        self.auth = Auth(store=Store("auth.dat", motor_running=lambda: self.needle.running))
        self.ui = UI(self.pen, board.buttons.read, board.buzzer)
        self.display = None
        if board.display is not None:
            self.display = Display(board.display, self.pen, self.ui)
        self.service = ServiceRequest(self.pen, board.buttons.read, self._service_reset,
                                      self.ui.message)  # fmt: skip
        self.supervisor = Supervisor(board.watchdog, on_hang=self._on_hang)
        self.protocol = Protocol(self)
        self.link = SerialService(self, board.serial)
        self.pen.listeners.append(self.link.event)
        self.pen.listeners.append(self._on_event)
        self._timer = None
        self._reset_at = None  # ticks_ms when a requested `reset` is due

    # -- wiring ---------------------------------------------------------------------------
    def _needle_interlock(self):
        """The drive's own check at start(): only the state machine's run() may start it."""
        return self.pen.state == ARMED and self.depth.homed and not self.depth.busy

    def _on_event(self, ev):
        # Changes made while the needle ran are persisted once it has stopped.
        if ev.get("event") == "state" and ev.get("from") == "STOPPING":
            try:
                self.settings.flush()
            except Refused:
                pass

    def _on_hang(self, name):
        # A task stopped reporting in: the watchdog will reset the pen; make it safe now, then
        # let the state machine latch the fault, which closes the running pass and stores the
        # session record (the motor is off, so the flash write is allowed) before the reset.
        self.needle.kill()
        self.board.safe()
        self.link.event({"event": "hang", "task": name})
        try:
            self.pen.latch_fault(F.LOOP_HUNG, "task %s hung" % name)
        except Exception:  # noqa: BLE001 -- the reset comes anyway; the motor is already off
            pass

    def reset_soon(self):
        """`reset`: restart the pen once the reply is on its way (RESET_DELAY_MS)."""
        self._reset_at = time.ticks_add(time.ticks_ms(), self.RESET_DELAY_MS)

    def _service_reset(self):
        """Safe state, then the reset (a confirmed `service reboot`, or `reset`)."""
        self.needle.kill()
        self.board.reset()

    # -- tasks ----------------------------------------------------------------------------
    async def _pen_task(self, checkin):
        pen = self.pen
        needle = self.needle
        needle.watch_loop()
        while True:
            needle.loop_alive()
            pen.poll()
            self.service.poll()
            if self._reset_at is not None and time.ticks_diff(time.ticks_ms(), self._reset_at) >= 0:
                self._service_reset()
            checkin()
            await asyncio.sleep_ms(self.pen_poll_ms)

    async def _depth_task(self, checkin):
        depth = self.depth
        while True:
            depth.poll()
            checkin()
            await asyncio.sleep_ms(depth.POLL_MS)

    async def main(self):
        sup = self.supervisor
        # SF-07: every byte on the port is protocol input (no KeyboardInterrupt from Ctrl-C).
        self.board.serial.kbd_intr(-1)
        self._timer = self.board.control_timer(TICK_HZ, self.needle.tick_cb)
        fault = F.WATCHDOG if self.board.watchdog_reset else self.boot_fault
        self.pen.start(fault)
        tasks = [
            asyncio.create_task(self._depth_task(sup.checker("depth", 500))),
            asyncio.create_task(self._pen_task(sup.checker("pen", 500))),
            asyncio.create_task(self.ui.run(sup.checker("ui", 500))),
            asyncio.create_task(self.board.buzzer.run(sup.checker("buzzer", 2000))),
            asyncio.create_task(self.link.run()),
        ]
        if self.display is not None:
            tasks.append(asyncio.create_task(self.display.run(sup.checker("display", 1500))))
        await sup.run()

    def shutdown(self):
        """Safe state: needle off, control tick stopped, stepper disabled, buzzer off."""
        self.needle.kill()
        if self._timer is not None:
            self._timer.deinit()
        self.board.safe()


def main(board):
    """Run the application on `board` (main.py builds it: drivers/board.py)."""
    app = App(board)
    try:
        asyncio.run(app.main())
    except KeyboardInterrupt:
        # Leaving for the REPL on purpose: keep the (unstoppable) watchdog fed from a timer.
        board.watchdog.hand_over(board.soft_timer)
        raise
    finally:
        app.shutdown()
        asyncio.new_event_loop()
