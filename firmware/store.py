"""Power-safe persistence of one record (the settings) on the pen's flash filesystem.

Record layout (little-endian):
    0   4  magic b"PENS"
    4   2  format version (FORMAT)
    6   2  flags (0)
    8   4  generation: +1 on every save
    12  4  payload length N
    16  N  payload (the settings as JSON)
    16+N 4 CRC-32 of bytes 0 .. 16+N

Atomic by write-and-rename: the new record goes to `PATH.tmp`, is closed, read back and checked,
and only then renamed over `PATH` (littlefs, the RP2040 port's filesystem, renames atomically;
so does POSIX for the virtual pen). A power cut at any moment leaves either the old or the new
record under `PATH`; a left-over `.tmp` is ignored. `load()` never raises for bad data: it
reports "empty" (no record yet), "ok", "corrupt" (magic, length or CRC wrong, unreadable) or
"version" (a format this firmware does not know), and the settings fall back to defaults.

Flash writes stall both RP2040 cores: `save()` refuses (errors.MOTOR_RUNNING) while the needle
motor runs, asking the `motor_running` callable given at construction.
"""

import os
import struct
from binascii import crc32

from micropython import const

from firmware import errors as E
from firmware.errors import Refused

MAGIC = b"PENS"
FORMAT = const(1)
_HDR = "<4sHHII"
_HDR_LEN = const(16)
MAX_PAYLOAD = const(8192)


def _crc(data):
    return crc32(data) & 0xFFFFFFFF


def encode(payload, generation):
    """The record bytes for `payload` (bytes)."""
    head = struct.pack(_HDR, MAGIC, FORMAT, 0, generation & 0xFFFFFFFF, len(payload))
    body = head + payload
    return body + struct.pack("<I", _crc(body))


def decode(data):
    """(payload, generation, status) of record bytes; status 'ok', 'corrupt' or 'version'."""
    if len(data) < _HDR_LEN + 4:
        return None, 0, "corrupt"
    magic, fmt, _flags, gen, n = struct.unpack(_HDR, data[:_HDR_LEN])
    if magic != MAGIC:
        return None, 0, "corrupt"
    if len(data) != _HDR_LEN + n + 4 or n > MAX_PAYLOAD:
        return None, 0, "corrupt"
    (crc,) = struct.unpack("<I", data[_HDR_LEN + n :])
    if crc != _crc(data[: _HDR_LEN + n]):
        return None, 0, "corrupt"
    if fmt != FORMAT:
        return None, gen, "version"
    return bytes(data[_HDR_LEN : _HDR_LEN + n]), gen, "ok"


class Store:
    def __init__(self, path="settings.dat", motor_running=None):
        self.path = path
        self.tmp = path + ".tmp"
        self.motor_running = motor_running
        self.generation = 0
        self.saves = 0

    def _read(self, path):
        size = os.stat(path)[6]
        if size > _HDR_LEN + MAX_PAYLOAD + 4:
            raise OSError(27)  # EFBIG: no record is that large
        with open(path, "rb") as f:
            return f.read(size)

    def load(self):
        """(payload bytes or None, status). Never raises."""
        try:
            data = self._read(self.path)
        except OSError as e:
            if e.args and e.args[0] == 2:  # ENOENT: nothing saved yet
                return None, "empty"
            return None, "corrupt"
        try:
            payload, gen, status = decode(data)
        except Exception:  # noqa: BLE001 -- any malformed record is just corrupt
            return None, "corrupt"
        if status == "ok":
            self.generation = gen
        return payload, status

    def save(self, payload):
        """Write `payload` (bytes) atomically. Raises Refused(MOTOR_RUNNING) while the needle
        runs, Refused(STORAGE) when the write fails; then the stored record is unchanged."""
        if self.motor_running is not None and self.motor_running():
            raise Refused(E.MOTOR_RUNNING, "settings are saved only while the needle is stopped")
        if len(payload) > MAX_PAYLOAD:
            raise Refused(E.STORAGE, "settings too large to store")
        rec = encode(payload, self.generation + 1)
        try:
            with open(self.tmp, "wb") as f:
                f.write(rec)
            if self._read(self.tmp) != rec:
                raise OSError(5)  # EIO: what was written does not read back
            os.rename(self.tmp, self.path)
        except OSError as e:
            try:
                os.remove(self.tmp)
            except OSError:
                pass
            raise Refused(E.STORAGE, "storage write failed (%s)" % (e.args[0] if e.args else "?"))
        self.generation += 1
        self.saves += 1
