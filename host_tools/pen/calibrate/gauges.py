"""Dial gauges: the virtual pen's (its side channel), a serial indicator, or readings typed by
the operator."""

from __future__ import annotations

import re
import time
from typing import Callable

from .errors import CalibrationError

_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


class VirtualGauge:
    """The virtual pen's dial gauge (its side channel: `pen sim-ctl gauge`)."""

    name = "virtual"

    def __init__(self, pen_port: str):
        self.port = pen_port

    def read(self, prompt: str = "") -> float:
        from ..sim import ctl_command

        try:
            reply = ctl_command(self.port, "gauge")
        except (OSError, ConnectionError) as exc:
            raise CalibrationError(f"the virtual gauge did not answer: {exc}") from exc
        if not reply.startswith("ok"):
            raise CalibrationError(f"the virtual gauge: {reply}")
        return float(reply[2:].strip())

    def close(self) -> None:
        pass


class SerialGauge:
    """A digital indicator on a serial port that sends lines with a number in mm (read on
    request when `request` is given, else the next line it sends)."""

    def __init__(self, port: str, baud: int = 9600, request: str | None = None,
                 timeout: float = 3.0, serial_factory=None):  # fmt: skip
        import serial

        self.name = port
        self.request = request
        self.timeout = timeout
        factory = serial_factory or (lambda p: serial.Serial(p, baud, timeout=0.1))
        try:
            self.ser = factory(port)
        except Exception as exc:  # noqa: BLE001 -- serial.SerialException, OSError
            raise CalibrationError(f"cannot open the gauge on {port}: {exc}") from exc

    def read(self, prompt: str = "") -> float:
        try:
            self.ser.reset_input_buffer()  # a reading from before the move is stale
        except Exception:  # noqa: BLE001
            pass
        if self.request:
            self.ser.write(self.request.encode().decode("unicode_escape").encode())
        deadline = time.monotonic() + self.timeout
        buf = b""
        while time.monotonic() < deadline:
            buf += self.ser.read(64)
            while b"\n" in buf or b"\r" in buf:
                cut = min(i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0)
                line, buf = buf[:cut], buf[cut + 1 :]
                m = _NUM.search(line.decode("ascii", "replace"))
                if m:
                    return float(m.group(0).replace(",", "."))
        raise CalibrationError(f"no reading from the gauge on {self.name} within "
                               f"{self.timeout:g} s")  # fmt: skip

    def close(self) -> None:
        self.ser.close()


class TypedGauge:
    """The operator reads the dial and types the value in mm."""

    name = "typed"

    def __init__(self, ask: Callable[[str], str | None]):
        self.ask = ask

    def read(self, prompt: str = "") -> float:
        while True:
            text = self.ask(f"{prompt} -- type the gauge reading in mm (or 'abort'): ")
            if text is None or text.strip().lower() in ("abort", "q", "quit"):
                raise CalibrationError("calibration aborted by the operator")
            m = _NUM.fullmatch(text.strip())
            if m:
                return float(text.strip().replace(",", "."))

    def close(self) -> None:
        pass


