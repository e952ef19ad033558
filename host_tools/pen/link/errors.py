"""The link's errors: each says what to do; the kind, not the text, tells them apart."""

from __future__ import annotations

from ..errors import PenError


class LinkError(PenError):
    """Any failure of the link, with a message that tells the user what to do."""


class PortNotFound(LinkError):
    pass


class HandshakeMismatch(LinkError):
    """The pen's protocol version or settings schema is not the one these host tools expect."""

    def __init__(self, message: str, hello: dict):
        super().__init__(message)
        self.hello = hello


class ReplyTimeout(LinkError):
    pass


class LinkLost(LinkError):
    """The connection broke and could not be restored, or a command's outcome is unknown."""


class DifferentPen(LinkLost):
    """After a reconnect, another pen (another serial number) answered on the port."""


class NoPrompt(LinkError):
    """The pen did not leave its application for the MicroPython prompt on Ctrl-C (firmware
    that takes Ctrl-C as protocol input)."""


class PenRefused(LinkError):
    """The pen answered `error:N MESSAGE`."""

    def __init__(self, line: str, code: int, message: str):
        super().__init__(f"the pen refused `{line}`: error {code}: {message}")
        self.line = line
        self.code = code
        self.message = message


class PortFailed(Exception):
    """The port failed under the link (cable pulled, device reset); the link reconnects."""
