"""The calibration's errors (pen.cli reports them as one line)."""

from __future__ import annotations

from ..errors import PenError


class CalibrationError(PenError):
    """The procedure could not go on (pen refused, gauge failed, operator aborted)."""


class CalibrationRejected(CalibrationError):
    """The measurements or the verification failed a limit: nothing (more) is written."""

    def __init__(self, reasons: list[str], report: dict | None = None):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.report = report

