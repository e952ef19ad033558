"""Protocol error codes (`error:N message`), one table, published as docs/errors.csv.

`Refused` is raised by the firmware's operations (state machine, axis, settings) when a
request is not allowed; the protocol turns it into one `error:N message` reply."""

from micropython import const

UNKNOWN_COMMAND = const(1)
BAD_LINE = const(2)  # empty, not UTF-8, binary garbage
LINE_TOO_LONG = const(3)
BAD_ARGUMENT = const(4)  # wrong count or type of arguments
OUT_OF_RANGE = const(5)  # a value outside its schema bounds
UNKNOWN_SETTING = const(6)
NOT_HOMED = const(7)
NOT_ARMED = const(8)
FAULT_ACTIVE = const(9)  # a latched fault must be cleared first
BUSY = const(10)  # not allowed in the current state (running, homing, ...)
LOCKED = const(11)  # protected setting: unlock first
AUTH_FAILED = const(12)
RATE_LIMITED = const(13)
NO_CARTRIDGE = const(14)  # a new cartridge must be confirmed first
STORAGE = const(15)  # the flash write failed; nothing changed
NOT_FOUND = const(16)  # no such session / record
MOTOR_RUNNING = const(17)  # only while the needle motor is stopped (e.g. persisting)
PRESET_RANGE = const(18)  # outside the active preset's depth range without an override
INTERNAL = const(19)  # an unexpected exception while handling the command (a firmware bug)

TABLE = {
    UNKNOWN_COMMAND: "unknown command",
    BAD_LINE: "bad line",
    LINE_TOO_LONG: "line too long",
    BAD_ARGUMENT: "bad argument",
    OUT_OF_RANGE: "value out of range",
    UNKNOWN_SETTING: "unknown setting",
    NOT_HOMED: "depth axis not homed",
    NOT_ARMED: "pen not armed",
    FAULT_ACTIVE: "fault latched: clear it first",
    BUSY: "not allowed in this state",
    LOCKED: "protected setting: unlock first",
    AUTH_FAILED: "authentication failed",
    RATE_LIMITED: "too many attempts: wait",
    NO_CARTRIDGE: "confirm a new cartridge first",
    STORAGE: "storage write failed",
    NOT_FOUND: "not found",
    MOTOR_RUNNING: "stop the needle first",
    PRESET_RANGE: "outside the preset's depth range",
    INTERNAL: "internal error",
}


class Refused(Exception):
    """A request the pen does not carry out; nothing was changed."""

    def __init__(self, code, message=None):
        super().__init__(code, message or TABLE.get(code, "refused"))
        self.code = code
        self.message = message or TABLE.get(code, "refused")
