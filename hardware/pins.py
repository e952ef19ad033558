"""Pin map of the pen's controller board (RP2040, Pico-class), board revision A.

This file is the single source of truth for the wiring: the firmware's board construction
(`drivers/board.py`), the virtual pen and `hardware/README.md` all read it. It goes onto the pen.

Conventions: GPIO numbers; `_N` suffix = active low; PWM slices follow from the GPIO number
(slice = (gpio >> 1) & 7, channel A on even, B on odd pins). A slice has one counter, one
divider and one TOP, so one frequency for both its channels: every PWM user (the motor at
20 kHz, the buzzer at its tones) owns its slice (tests/test_pins.py derives the slices from
this file and the board construction).
"""

try:
    from micropython import const
except ImportError:  # CPython (docs generation, host tools)

    def const(expr):  # type: ignore[misc]
        return expr


BOARD_REV = "A"

# Needle motor: DRV8833-class H-bridge, both inputs on one PWM slice so they share a counter.
MOTOR_IN1 = const(2)  # PWM slice 1 A: forward drive
MOTOR_IN2 = const(3)  # PWM slice 1 B: held low (forward only); both high = brake
MOTOR_SLEEP_N = const(4)  # H-bridge nSLEEP: low = outputs off (coast), the safe state
HALL = const(6)  # A3144-class hall switch, one pulse per needle stroke (open drain, pull-up)

# Depth-stop stepper: TMC2209 in step/dir mode, UART for set-up.
STEP = const(10)
DIR = const(11)  # high = needle out (deeper)
STEP_EN_N = const(12)  # TMC2209 ENN: low = driver enabled
ENDSTOP_N = const(13)  # home switch at the fully retracted end, closed = low (pull-up)
TMC_UART_ID = const(1)
TMC_TX = const(8)
TMC_RX = const(9)

# Buttons to ground with internal pull-ups.
BTN_START_N = const(14)
BTN_PLUS_N = const(15)
BTN_MINUS_N = const(16)

# Feedback.
BUZZER = const(22)  # magnetic buzzer through a transistor, PWM tone: slice 3 A, its own
# (rev A's first draft had GP18, slice 1 A: the motor's slice and channel, so every tone
# retuned the motor's PWM and buzzer.off() zeroed the motor's duty)
LED = const(25)
I2C_ID = const(0)
I2C_SDA = const(20)  # SSD1306 128x32 OLED at 0x3C
I2C_SCL = const(21)
OLED_ADDR = const(0x3C)

# Analogue inputs (ADC channel = gpio - 26).
MOTOR_CURRENT = const(26)  # 0.05 ohm shunt, INA181A2 (gain 50) -> 2.5 V per A
BATTERY = const(27)  # 1S Li-ion through a 100k/100k divider: V_adc = V_bat / 2

# Electrical scale factors for the drivers (integers: no floats on the pen).
ADC_VREF_MV = const(3300)
CURRENT_MV_PER_A = const(2500)  # 0.05 ohm shunt * gain 50 = 2.5 V/A, full scale 1.32 A
BATTERY_DIVIDER = const(2)
