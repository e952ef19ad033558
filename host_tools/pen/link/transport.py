"""The pen's port: finding it (--port, $PEN_PORT, USB id 2E8A:0005), opening it, and bytes in
and lines out. A failing port raises PortFailed; reconnecting is the link's business."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .errors import LinkError, PortFailed, PortNotFound

USB_VID = 0x2E8A  # Raspberry Pi
USB_PID = 0x0005  # MicroPython on the RP2040 (USB CDC REPL)
BAUDRATE = 115200
PORT_ENV = "PEN_PORT"


def find_port(port: str | None = None) -> str:
    """The pen's port: `port`, else $PEN_PORT, else the one USB device with id 2E8A:0005."""
    if port:
        return port
    if os.environ.get(PORT_ENV):
        return os.environ[PORT_ENV]
    from serial.tools import list_ports

    found = [p for p in list_ports.comports() if p.vid == USB_VID and p.pid == USB_PID]
    if not found:
        raise PortNotFound(
            "no pen found: no USB serial device with id 2E8A:0005 is connected; plug the pen "
            f"in, or give its port with --port PORT or ${PORT_ENV}"
        )
    if len(found) > 1:
        names = ", ".join(f"{p.device} (serial {p.serial_number or '?'})" for p in found)
        raise PortNotFound(f"several pens are connected: {names}; choose one with --port PORT")
    return found[0].device


def default_serial_factory(port: str):
    import serial

    return serial.Serial(port, BAUDRATE, timeout=0.05, write_timeout=2, exclusive=True)


class Transport:
    """One serial port: open/close, write bytes, read whole lines until a deadline."""

    def __init__(self, port_spec: str | None, factory: Callable[[str], Any] | None = None):
        self.port_spec = port_spec  # as given (None: auto-detect again on every open)
        self.port: str | None = None
        self.factory = factory or default_serial_factory
        self.ser = None
        self._buf = bytearray()

    @property
    def is_open(self) -> bool:
        return self.ser is not None

    def open(self) -> None:
        self.port = find_port(self.port_spec)
        try:
            self.ser = self.factory(self.port)
        except Exception as exc:  # serial.SerialException, OSError
            self.ser = None
            raise LinkError(f"cannot open the pen's port {self.port}: {exc}") from exc
        self.discard_input()

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001 -- closing a port that is gone
                pass
        self.ser = None

    def discard_input(self) -> None:
        """Forget what was received and not yet read."""
        self._buf.clear()
        if self.ser is None:
            return
        try:
            self.ser.reset_input_buffer()
        except Exception:  # noqa: BLE001 -- not every port supports it; drained by reading
            pass

    def write(self, data: bytes) -> None:
        if self.ser is None:
            raise PortFailed("port closed")
        try:
            self.ser.write(data)
            self.ser.flush()
        except Exception as exc:  # serial.SerialException, OSError (EIO on a pulled cable)
            self.close()
            raise PortFailed(str(exc)) from exc

    def read_line(self, deadline: float) -> str | None:
        """The next complete line (without CR/LF), or None at the deadline (time.monotonic)."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return raw.decode("utf-8", "replace").strip("\r")
            if self.ser is None:
                raise PortFailed("port closed")
            try:
                n = self.ser.in_waiting
                if n:
                    self._buf += self.ser.read(n)
                    continue
                if time.monotonic() >= deadline:
                    return None
                chunk = self.ser.read(1)  # waits up to the port's short read timeout
            except Exception as exc:  # noqa: BLE001 -- pyserial raises several kinds
                self.close()
                raise PortFailed(str(exc)) from exc
            if chunk:
                self._buf += chunk

    def read_until(self, marker: bytes, deadline: float) -> bool:
        """Read until `marker` has arrived (e.g. the `>>> ` prompt, which ends no line); True
        when it did, False at the deadline. What was read before it is discarded."""
        while marker not in self._buf:
            if self.ser is None:
                raise PortFailed("port closed")
            if time.monotonic() >= deadline:
                return False
            try:
                chunk = self.ser.read(max(1, self.ser.in_waiting))
            except Exception as exc:  # noqa: BLE001 -- pyserial raises several kinds
                self.close()
                raise PortFailed(str(exc)) from exc
            self._buf += chunk
        del self._buf[: self._buf.index(marker) + len(marker)]
        return True

    def pending_text(self, n: int = 200) -> str:
        """The last `n` bytes received that do not end a line (e.g. a `>>> ` prompt)."""
        return bytes(self._buf[-n:]).decode("utf-8", "replace")
