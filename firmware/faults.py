"""Fault (alarm) codes: a fault stops the needle, retracts the depth stop and latches until the
cause is gone and the user clears it. Numbered like grbl's alarms; the table is published in
docs/faults.md and over the protocol (`faults`)."""

from micropython import const

NONE = const(0)
STALL = const(1)  # no stroke edges while the motor is driven
RUNAWAY = const(2)  # stroke rate far above target
SENSOR_LOSS = const(3)  # motor current says it turns, no hall edges
OVERCURRENT = const(4)  # motor current above the limit after start-up blanking
OVERHEAT = const(5)  # I2t estimate of coil heating over its limit
BATTERY_LOW = const(6)  # battery too low to hold the stroke rate
HOME_NOT_FOUND = const(7)  # homing travelled its whole range without the endstop
ENDSTOP_STUCK = const(8)  # endstop closed when it must be open (back-off did not release it)
LOST_STEPS = const(9)  # re-home found the endstop off its expected step
DEPTH_LIMIT = const(10)  # a depth beyond the limit reached the axis (refused; never moved)
SETTINGS_CORRUPT = const(11)  # stored settings unreadable: defaults in use
WATCHDOG = const(12)  # the pen was reset by the watchdog (a task hung)
CARTRIDGE_LIMIT = const(13)  # the cartridge reached its stroke limit
CALIBRATION_INVALID = const(14)  # the calibration table failed validation
INTERNAL = const(15)  # an unexpected exception in the firmware
LOOP_HUNG = const(16)  # the event loop stopped turning while the needle ran (tick dead-man)
DEPTH_POSITION = const(17)  # the stop is not at its depth's step while the needle runs
RATE_LOW = const(18)  # the needle motor at full drive cannot hold the stroke rate (overload)

# code -> (name, words for the display and the protocol)
TABLE = {
    NONE: ("none", "no fault"),
    STALL: ("stall", "needle motor stalled"),
    RUNAWAY: ("runaway", "needle motor overspeed"),
    SENSOR_LOSS: ("sensor_loss", "stroke sensor lost"),
    OVERCURRENT: ("overcurrent", "motor over-current"),
    OVERHEAT: ("overheat", "motor too hot"),
    BATTERY_LOW: ("battery_low", "battery too low"),
    HOME_NOT_FOUND: ("home_not_found", "depth home not found"),
    ENDSTOP_STUCK: ("endstop_stuck", "depth endstop stuck"),
    LOST_STEPS: ("lost_steps", "depth steps lost"),
    DEPTH_LIMIT: ("depth_limit", "depth beyond limit"),
    SETTINGS_CORRUPT: ("settings_corrupt", "settings reset to defaults"),
    WATCHDOG: ("watchdog", "reset by watchdog"),
    CARTRIDGE_LIMIT: ("cartridge_limit", "cartridge used up"),
    CALIBRATION_INVALID: ("calibration_invalid", "depth calibration invalid"),
    INTERNAL: ("internal", "internal error"),
    LOOP_HUNG: ("loop_hung", "control loop hung"),
    DEPTH_POSITION: ("depth_position", "depth stop not at its depth"),
    RATE_LOW: ("rate_low", "stroke rate not held: overload"),
}


def name(code):
    return TABLE.get(code, ("unknown", ""))[0]


def text(code):
    return TABLE.get(code, ("unknown", "unknown fault"))[1]
