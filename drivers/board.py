"""Board construction: the only place that maps `hardware/pins.py` onto driver objects.

`build()` returns a `Board` whose attributes are the pen's hardware as driver objects; the
firmware logic (firmware/) receives them and never imports `machine` or `rp2`.

PIO state machines: 0 = stroke period capture (PIO0), 4 = depth stepper (PIO1).
"""

import os
import sys

import machine

import hardware.pins as P
from drivers.serial_link import SerialLink

STROKE_SM = 0
STEPPER_SM = 4
SESSIONS_FILE = "sessions"  # a folder: firmware.sessionstore.SessionStore
SAFE_MODE = False  # service mode (boot.py: START held at power-up, or a confirmed request)
# On the RP2040 machine.reset() is a watchdog reboot (ports/rp2/modmachine.c: watchdog_reboot),
# so the next boot reads WDT_RESET exactly as after a hung task. An intended reset (`reset`,
# a confirmed `service reboot`, the end of a deploy) first leaves RESET_MARK on the filesystem;
# boot.py takes it into INTENDED_RESET, and Board reports a watchdog reset only without it.
RESET_MARK = "reset.mark"
INTENDED_RESET = False


def safe_outputs():
    """Drive every actuator's enable to its safe level: needle bridge asleep (coast), stepper
    driver disabled, buzzer silent. Called first thing at power-up (boot.py) and on exit."""
    machine.Pin(P.MOTOR_SLEEP_N, machine.Pin.OUT, value=0)
    machine.Pin(P.STEP_EN_N, machine.Pin.OUT, value=1)
    machine.Pin(P.BUZZER, machine.Pin.OUT, value=0)


def reset(intended=True):
    """Restart the pen (boot.py runs again). intended=False (the application crashed): no mark,
    so the next boot latches WATCHDOG and the restart is reported, not silent."""
    if intended:
        try:
            f = open(RESET_MARK, "w")
            f.write("1")
            f.close()
        except OSError:
            pass  # no mark: the next boot reports WATCHDOG (it errs towards a fault)
    machine.reset()


def take_reset_mark():
    """boot.py: True (and the mark removed) when the reset before this boot was intended."""
    try:
        os.remove(RESET_MARK)
    except OSError:
        return False
    return True


def buttons_held():
    """The buttons pressed right now, as a bit mask (START=1, PLUS=2, MINUS=4): boot.py's
    safe-mode check, before anything else is built."""
    from drivers.buttons import Buttons

    return _buttons(Buttons).read()


def _buttons(cls):
    pu = machine.Pin.PULL_UP
    return cls(machine.Pin(P.BTN_START_N, machine.Pin.IN, pu),
               machine.Pin(P.BTN_PLUS_N, machine.Pin.IN, pu),
               machine.Pin(P.BTN_MINUS_N, machine.Pin.IN, pu))  # fmt: skip


class Board:
    """The pen's hardware as driver objects, handed to the firmware logic."""

    def __init__(self):
        from drivers.analog import Analog
        from drivers.buttons import Buttons
        from drivers.buzzer import Buzzer
        from drivers.endstop import Endstop
        from drivers.motor import Motor
        from drivers.ssd1306 import SSD1306
        from drivers.stepper_pio import StepperPIO
        from drivers.stroke_pio import StrokeCapture
        from drivers.tmc2209 import TMC2209
        from drivers.watchdog import Watchdog

        Pin = machine.Pin
        self.pins = P
        from binascii import hexlify

        self.serial_number = hexlify(machine.unique_id()).decode()
        self.reset_cause = machine.reset_cause()
        # a watchdog reset that no intended reset explains: a task hung (boot.py took the mark)
        self.watchdog_reset = self.reset_cause == machine.WDT_RESET and not INTENDED_RESET
        self.serial = SerialLink(sys.stdin.buffer, sys.stdout.buffer)
        # Needle drive.
        self.motor = Motor(machine.PWM(Pin(P.MOTOR_IN1)), Pin(P.MOTOR_IN2, Pin.OUT, value=0),
                           Pin(P.MOTOR_SLEEP_N, Pin.OUT, value=0), P.MOTOR_IN1)  # fmt: skip
        self.stroke = StrokeCapture(STROKE_SM, Pin(P.HALL, Pin.IN, Pin.PULL_UP))
        self.analog = Analog(machine.ADC(Pin(P.MOTOR_CURRENT)), machine.ADC(Pin(P.BATTERY)),
                             P.ADC_VREF_MV, P.CURRENT_MV_PER_A, P.BATTERY_DIVIDER,
                             P.MOTOR_CURRENT - 26, P.BATTERY - 26)  # fmt: skip
        # Depth stop.
        self.stepper = StepperPIO(STEPPER_SM, Pin(P.STEP, Pin.OUT, value=0),
                                  Pin(P.DIR, Pin.OUT, value=0),
                                  Pin(P.STEP_EN_N, Pin.OUT, value=1))  # fmt: skip
        self.endstop = Endstop(Pin(P.ENDSTOP_N, Pin.IN, Pin.PULL_UP))
        # The stepper driver's UART (single wire): StallGuard during moves (SF-13). A missing
        # module or UART is a build defect: Board() fails rather than run without the check.
        self.tmc = TMC2209(machine.UART(P.TMC_UART_ID, 115200, tx=Pin(P.TMC_TX),
                                        rx=Pin(P.TMC_RX)))  # fmt: skip
        # User interface.
        self.buttons = _buttons(Buttons)
        self.buzzer = Buzzer(machine.PWM(Pin(P.BUZZER), freq=2000, duty_u16=0))
        self.i2c = machine.I2C(P.I2C_ID, scl=Pin(P.I2C_SCL), sda=Pin(P.I2C_SDA), freq=400_000)
        try:
            self.display = SSD1306(self.i2c, P.OLED_ADDR, 128, 32)
        except OSError:
            self.display = None  # no display answering: the pen works on without it
        self.led = Pin(P.LED, Pin.OUT, value=0)
        # Liveness.
        self.watchdog = Watchdog(lambda ms: machine.WDT(timeout=ms))
        self.sessions_path = SESSIONS_FILE

    def control_timer(self, hz, callback):
        """The hard timer of the control tick (allocation-free callbacks only)."""
        return machine.Timer(-1, mode=machine.Timer.PERIODIC, freq=hz, callback=callback,
                             hard=True)  # fmt: skip

    def soft_timer(self, period_ms, callback):
        return machine.Timer(-1, mode=machine.Timer.PERIODIC, period=period_ms,
                             callback=callback, hard=False)  # fmt: skip

    def reset(self):
        """Restart the pen (intended), after putting the hardware in its safe state."""
        self.safe()
        reset()

    def safe(self):
        """Hardware safe state from any context: needle bridge off, stepper off, buzzer off."""
        self.motor.coast()
        try:
            self.stepper.enable(False)
        except Exception:  # noqa: BLE001 -- the buzzer still goes off
            pass
        self.buzzer.off()


def build():
    return Board()
