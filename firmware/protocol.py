"""Serial command protocol: one reply per line, `ok ...` or `error:N message`."""

import json

from firmware.version import FIRMWARE_VERSION, PROTOCOL_VERSION

ERR_UNKNOWN_COMMAND = 1
ERR_BAD_LINE = 2


class Protocol:
    def __init__(self, app):
        self.app = app

    def handle(self, line):
        """Handle one received line (bytes, without the newline); return the reply (str)."""
        try:
            text = line.decode().strip()
        except UnicodeError:
            return "error:%d line is not UTF-8" % ERR_BAD_LINE
        parts = text.split()
        if not parts:
            return "error:%d empty line" % ERR_BAD_LINE
        fn = getattr(self, "cmd_" + parts[0], None)
        if fn is None:
            return "error:%d unknown command" % ERR_UNKNOWN_COMMAND
        return fn(parts[1:])

    def cmd_hello(self, args):
        """Handshake: firmware and protocol versions."""
        return "ok " + json.dumps(
            {"firmware_version": FIRMWARE_VERSION, "protocol_version": PROTOCOL_VERSION}
        )

    def cmd_status(self, args):
        """The pen's state as one JSON object."""
        return "ok " + json.dumps(self.app.status())
