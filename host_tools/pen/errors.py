"""The host tools' errors, defined low so that every layer can raise them and `pen.cli` maps
them to one clear line and a non-zero exit status (no layer imports the command line)."""

from __future__ import annotations


class PenError(Exception):
    """A failure to report to the user as one clear line, with a non-zero exit status."""

    status = 1


class CliError(PenError):
    """A failure found by a `pen` sub-command (bad arguments, a missing file, ...)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status
