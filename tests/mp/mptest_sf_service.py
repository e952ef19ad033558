"""Service mode and leaving the application (SF-08, SF-09, PS-18), on the virtual board: the
confirming START hold of `service reboot` (firmware/service.py), main.py in normal mode, and
the unlock's back-off across a reboot (firmware/auth.py with the settings' atomic store)."""

# mp-timeout: 120
# mp-heap: 576K

import os

import machine
from app_rig import AppRig
from mphelp import check, raises, req

from firmware import service
from firmware.errors import Refused


class FakePen:
    def __init__(self):
        self.state = 3  # READY
        self.entered = 0
        self.exited = 0

    def enter_service(self):
        self.state = 8  # SERVICE
        self.entered += 1

    def exit_service(self):
        self.state = 1  # LOCKED
        self.exited += 1


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _req(tmp, held_at_request=0):
    pen = FakePen()
    clock = Clock()
    btn = [held_at_request]
    resets = []
    r = service.ServiceRequest(pen, lambda: btn[0], lambda: resets.append(clock.t),
                               clock=clock, path=tmp)  # fmt: skip
    r.request()
    return r, pen, clock, btn, resets


def _run(r, clock, btn, mask, ms):
    end = clock.t + ms
    while clock.t < end:
        btn[0] = mask
        r.poll()
        clock.t += 5


@req("SF-08")
def test_service_request_needs_a_fresh_2_s_start_hold_within_15_s():
    """SF-08: after `service reboot` the pen resets into service mode only when START is
    pressed anew and held 2 s within 15 s: a 1.9 s hold, a START already held when the request
    came, PLUS or MINUS, or no hold within the window do not; the flag boot.py takes is written
    only then and taken once."""
    tmp = "svc.req"
    try:
        os.remove(tmp)
    except OSError:
        pass
    r, pen, clock, btn, resets = _req(tmp, held_at_request=1)
    check(pen.state == 8 and r.pending)
    _run(r, clock, btn, 1, 3000)  # held since before the request: does not count
    _run(r, clock, btn, 6, 3000)  # plus + minus
    _run(r, clock, btn, 1, 1900)  # too short
    _run(r, clock, btn, 0, 100)
    check(not resets and not service.take_flag(tmp), "reset too early")
    _run(r, clock, btn, 1, 2100)
    check(len(resets) == 1 and not r.pending, "no reset after 2 s")
    check(service.take_flag(tmp) and not service.take_flag(tmp), "the flag is taken once")
    r, pen, clock, btn, resets = _req(tmp)
    _run(r, clock, btn, 0, service.WINDOW_MS + 100)
    check(not resets and not r.pending and pen.exited == 1, "the request lapsed")
    _run(r, clock, btn, 1, 3000)
    check(not resets and not service.take_flag(tmp), "a lapsed request reset the pen")


@req("PS-18", "SF-08", "SF-14")
def test_leaving_the_application_restarts_safe_never_the_repl():
    """PS-18, SF-08, SF-14: whatever ends the application in normal mode (an exception from
    inside it, a KeyboardInterrupt), the real firmware.app.main() leaves the hardware safe
    (bridge asleep, stepper disabled: its `finally`) and main.py restarts the pen (a reset)
    instead of returning to the REPL; the restart leaves no mark of an intended reset, so the
    next boot latches WATCHDOG."""
    import drivers.board as board_mod
    import firmware.app as app_mod
    import hardware.pins as P

    root = os.getcwd()
    with open(root + "/main.py") as f:
        main_src = f.read()
    real = app_mod.App.main
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        rig = AppRig(app=False)
        try:
            async def failing(self, exc=exc):
                # as in a run: the bridge awake, the stepper driver enabled; then it fails
                machine.Pin(P.MOTOR_SLEEP_N, machine.Pin.OUT, value=1)
                machine.Pin(P.STEP_EN_N, machine.Pin.OUT, value=0)
                raise exc

            app_mod.App.main = failing
            orig_build = board_mod.build
            board_mod.build = lambda: rig.board
            board_mod.SAFE_MODE = False
            try:
                e = raises(machine.SimReset, exec, main_src, {"__name__": "__main__"})
            finally:
                board_mod.build = orig_build
            # machine.reset(): a watchdog reboot on the RP2040, with no mark of an intended
            # reset, so the next boot latches WATCHDOG (the crash is reported, not silent)
            check(e.cause == machine.WDT_RESET, "not a reset: %r" % e)
            check(not board_mod.take_reset_mark(), "a crash's restart marked as intended")
            out = machine._BOARD.out
            check(out.get(P.MOTOR_SLEEP_N) == 0 and out.get(P.STEP_EN_N) == 1,
                  "not safe after %r: %r" % (exc, out))  # fmt: skip
        finally:
            app_mod.App.main = real
            rig.close()


@req("SF-09")
def test_unlock_backoff_survives_a_reboot():
    """SF-09: three wrong answers are stored before they are answered; a new Auth on the same
    flash (a reboot) refuses the next attempt for the whole wait again; a right answer clears
    the count; an answer while the needle runs is refused without using the challenge."""
    from binascii import hexlify

    from firmware.auth import Auth, hmac_sha256
    from firmware.store import Store

    secret = b"virtual-pen-test-secret-not-real"
    rig = AppRig(app=False)
    try:
        with open("pen_secret.key", "w") as f:
            f.write(hexlify(secret).decode() + "\n")
        clock = Clock()
        running = [False]
        a = Auth(clock=clock, store=Store("auth.dat", motor_running=lambda: running[0]))
        for n in range(3):
            a.challenge()
            raises(Refused, a.respond, "0" * 64)
            clock.t += 1000 << n
        check(a.failures == 3)
        b = Auth(clock=clock, store=Store("auth.dat"))  # the reboot
        check(b.failures == 3)
        e = raises(Refused, b.challenge)
        check(e.code == 13, "not rate-limited after the reboot: %r" % e)
        clock.t += 4000
        ch = b.challenge()
        b.respond(hexlify(hmac_sha256(secret, ch.encode())).decode())
        check(b.unlocked() and b.failures == 0)
        check(Auth(clock=clock, store=Store("auth.dat")).failures == 0, "the count cleared")
        c = Auth(clock=clock, store=Store("auth.dat", motor_running=lambda: True))
        c.challenge()
        e = raises(Refused, c.respond, "0" * 64)
        check(e.code != 13 and c.failures == 0, "an answer while running: %r" % e)
    finally:
        rig.close()
