"""Test rig for the needle drive: the real drivers on the virtual board, the control tick on a
hard machine.Timer (heap locked in every call), and measurements taken from the plant's truth
(the rotor's turns), independent of what the firmware measures."""

import gc

gc.collect()  # the test module's compile leaves the heap fragmented; the plant compiles next
import board_sim  # noqa: E402
import machine  # noqa: E402
import rp2  # noqa: E402
from mphelp import SIM  # noqa: E402

import hardware.pins as P  # noqa: E402
from drivers.analog import Analog  # noqa: E402
from drivers.motor import Motor  # noqa: E402
from drivers.stroke_pio import StrokeCapture  # noqa: E402
from firmware.needle import NeedleDrive  # noqa: E402

STROKE_SM = 0


def build_drivers():
    motor = Motor(machine.PWM(machine.Pin(P.MOTOR_IN1)),
                  machine.Pin(P.MOTOR_IN2, machine.Pin.OUT, value=0),
                  machine.Pin(P.MOTOR_SLEEP_N, machine.Pin.OUT, value=0), P.MOTOR_IN1)  # fmt: skip
    stroke = StrokeCapture(STROKE_SM, machine.Pin(P.HALL, machine.Pin.IN, machine.Pin.PULL_UP))
    analog = Analog(machine.ADC(machine.Pin(P.MOTOR_CURRENT)), machine.ADC(machine.Pin(P.BATTERY)),
                    P.ADC_VREF_MV, P.CURRENT_MV_PER_A, P.BATTERY_DIVIDER,
                    P.MOTOR_CURRENT - 26, P.BATTERY - 26)  # fmt: skip
    return motor, stroke, analog


class Rig:
    def __init__(self, drive_cls=NeedleDrive, timer=True, unit=0, **kw):
        self.pen = board_sim.VirtualPen(SIM, unit)
        self.motor, self.stroke, self.analog = build_drivers()
        self.drive = drive_cls(self.motor, self.stroke, self.analog, **kw)
        self.timer = None
        if timer:
            self.timer = machine.Timer(-1, freq=self.drive.tick_hz, callback=self.drive.tick_cb,
                                       hard=True)  # fmt: skip

    @property
    def plant(self):
        return self.pen.motor

    def run_ms(self, ms):
        SIM.advance(ms * 1000)

    def mean_hz(self, ms):
        """True mean stroke rate over the next `ms` of virtual time, from whole turns of the
        cam: time from the first edge to the last edge in the window / turns between them."""
        edges = []

        def on_edge(t):
            edges.append(t)

        self.plant.turn_listeners.append(on_edge)
        SIM.advance(ms * 1000)
        self.plant.turn_listeners.remove(on_edge)
        if len(edges) < 2:
            return 0.0
        return (len(edges) - 1) * 1e6 / (edges[-1] - edges[0])

    def trace_hz(self, ms):
        """Per-stroke true rates over the next `ms`: list of (t_us, hz) at each edge."""
        out = []
        last = [None]

        def on_edge(t):
            if last[0] is not None:
                out.append((t, 1e6 / (t - last[0])))
            last[0] = t

        self.plant.turn_listeners.append(on_edge)
        SIM.advance(ms * 1000)
        self.plant.turn_listeners.remove(on_edge)
        return out


    def stop_timer(self):
        if self.timer is not None:
            self.timer.deinit()
            self.timer = None


def fresh_board():
    """Forget the plant, timers, PIO machines and pin states of the previous rig, so a test can
    build another rig in the same process (the virtual clock keeps running)."""
    SIM.devices.clear()
    SIM.timers.clear()
    SIM.tick_hooks.clear()
    b = SIM.board
    for d in (b.out, b.inp, b.pull, b.mode, b.pwm, b.adc, b.irqs):
        d.clear()
    rp2.reset_all()
    machine.reset_pwm()


def sleep_pin():
    return SIM.board.out.get(P.MOTOR_SLEEP_N, 0)


def time_to_off_us(limit_us, step_us=100):
    """Advance the virtual clock until the bridge is disabled (nSLEEP low); the time it took in
    µs, or None if it was still on after limit_us."""
    t0 = SIM.now
    while SIM.now - t0 <= limit_us:
        if not sleep_pin():
            return SIM.now - t0
        SIM.advance(step_us)
    return None


def step_response(rig, hz, after_ms):
    """Per-stroke true rates for `after_ms` from now: (worst deviation %, recovery ms = time of
    the last stroke outside +-3 %, 0 if none)."""
    t0 = SIM.now
    worst = 0.0
    rec = 0
    for t, h in rig.trace_hz(after_ms):
        dev = (h - hz) * 100.0 / hz
        if abs(dev) > abs(worst):
            worst = dev
        if abs(dev) > 3.0:
            rec = (t - t0) // 1000
    return worst, rec
