"""The pen's serial link on the host: find the port, handshake, one command -> one reply.

    from pen.link import open_link
    with open_link(None) as link:              # --port / $PEN_PORT / USB id 2E8A:0005
        link.command("status")                 # -> 'ok {...}'  (the reply line, tag removed)
        link.call("get depth")                 # -> {'depth': 0.5}; PenRefused on error:N

Protocol (docs/protocol.md): one reply per command line, `ok [PAYLOAD]` or `error:N MESSAGE`;
lines beginning with `~` (`~T` telemetry, `~E` events, `~S` status) are never replies and are set
aside in `link.unsolicited`. Every command is sent with a `#N ` tag that the pen echoes, so a
reply left over from before a reconnect, or the error a half line earns, is never taken for the
answer to the current command. A pen that does not echo tags is detected at the handshake and
spoken to without them.

A pulled cable (the port raises, or vanishes and comes back) is handled by `reconnect()`: reopen
(re-detecting the port by USB id when it was found that way), handshake again, and check that the
pen that came back is the same pen (its serial number). A command whose outcome is unknown after
a reconnect is retried only when it is read-only; otherwise `LinkLost` says so.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import random
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

USB_VID = 0x2E8A  # Raspberry Pi
USB_PID = 0x0005  # MicroPython on the RP2040 (USB CDC REPL)
BAUDRATE = 115200
MAX_LINE = 200  # bytes per command line, docs/protocol.md
DEFAULT_TIMEOUT = 5.0
PORT_ENV = "PEN_PORT"

# Commands that change nothing on the pen: safe to send again when a reconnect leaves the first
# attempt's outcome unknown.
READ_ONLY = (
    "hello", "status", "help", "get", "settings", "dump", "faults", "telemetry fetch",
    "session list", "session get", "session summary", "calib get",
)  # fmt: skip


# -- errors ----------------------------------------------------------------------------------
class LinkError(Exception):
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


class PenRefused(LinkError):
    """The pen answered `error:N MESSAGE`."""

    def __init__(self, line: str, code: int, message: str):
        super().__init__(f"the pen refused `{line}`: error {code}: {message}")
        self.line = line
        self.code = code
        self.message = message


class _Disconnected(Exception):
    """Internal: the port failed under us (cable pulled, device reset)."""


# -- what the host expects: from the firmware's own modules ------------------------------------
def _install_micropython_shim() -> None:
    """Let CPython import the firmware's pure-logic modules (`from micropython import const`)."""
    if "micropython" in sys.modules:
        return
    mod = types.ModuleType("micropython")
    mod.const = lambda x: x  # type: ignore[attr-defined]
    for name in ("native", "viper", "bytecode"):
        setattr(mod, name, lambda f: f)
    mod.heap_lock = mod.heap_unlock = lambda: 0  # type: ignore[attr-defined]
    mod.alloc_emergency_exception_buf = lambda n: None  # type: ignore[attr-defined]
    mod.schedule = lambda f, a: f(a)  # type: ignore[attr-defined]
    sys.modules["micropython"] = mod


def firmware_module(name: str):
    """Import `firmware.<name>` (or another pen module, e.g. 'firmware.settings') from the
    checkout in CPython. Returns None when the module does not exist (yet)."""
    from . import paths

    try:
        root = paths.checkout_root()
    except FileNotFoundError:
        return None
    full = name if "." in name else f"firmware.{name}"
    if not (root / (full.replace(".", "/") + ".py")).exists():
        return None
    _install_micropython_shim()
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return importlib.import_module(full)


def _schema_hash_of(mod) -> str | None:
    if mod is None:
        return None
    for attr in ("SCHEMA_HASH", "schema_hash"):
        v = getattr(mod, attr, None)
        if callable(v):
            v = v()
        if isinstance(v, (bytes, bytearray)):
            v = v.hex()
        if isinstance(v, str) and v:
            return v
    return None


@dataclass
class Expectation:
    """What the host tools expect of the pen at the handshake (None = not checked)."""

    protocol_version: int | None
    schema_hash: str | None
    firmware_version: str | None = None

    @classmethod
    def from_checkout(cls) -> Expectation:
        version = firmware_module("firmware.version")
        schema = firmware_module("firmware.schema") or firmware_module("firmware.settings")
        return cls(
            protocol_version=getattr(version, "PROTOCOL_VERSION", None),
            schema_hash=_schema_hash_of(schema),
            firmware_version=getattr(version, "FIRMWARE_VERSION", None),
        )


def check_hello(hello: dict, expect: Expectation) -> str | None:
    """None when the pen's handshake matches; else one message saying what to do."""
    pv = hello.get("protocol_version")
    if expect.protocol_version is not None and pv != expect.protocol_version:
        newer = isinstance(pv, int) and pv > expect.protocol_version
        todo = (
            "update these host tools to the pen's version"
            if newer
            else "update the pen's firmware with `pen deploy`"
        )
        return (
            f"protocol version mismatch: the pen (firmware {hello.get('firmware_version', '?')}) "
            f"speaks protocol {pv}, these host tools speak {expect.protocol_version}: {todo}"
        )
    sh = hello.get("schema_hash")
    if expect.schema_hash is not None and sh != expect.schema_hash:
        if sh is None:
            what = "the pen's firmware reports no settings schema"
        else:
            what = (
                f"the pen's settings schema ({str(sh)[:12]}) differs from the one these host "
                f"tools know ({expect.schema_hash[:12]})"
            )
        return (
            f"settings schema mismatch: {what}: deploy this firmware with `pen deploy`, or use "
            f"the host tools that match firmware {hello.get('firmware_version', '?')}"
        )
    return None


# -- finding the port --------------------------------------------------------------------------
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


def _default_serial_factory(port: str):
    import serial

    return serial.Serial(port, BAUDRATE, timeout=0.05, write_timeout=2, exclusive=True)


# -- replies and unsolicited lines -------------------------------------------------------------
@dataclass
class Reply:
    ok: bool
    payload: str  # after `ok ` (may be ''), or the error message
    code: int = 0  # N of `error:N`
    raw: str = ""

    def value(self) -> Any:
        """The payload decoded: JSON when it is JSON, else the text, None when empty."""
        if not self.payload:
            return None
        try:
            return json.loads(self.payload)
        except json.JSONDecodeError:
            return self.payload


def parse_reply(text: str) -> Reply | None:
    """`ok ...` / `error:N ...` -> Reply; anything else -> None."""
    if text == "ok" or text.startswith("ok "):
        return Reply(True, text[3:].strip(), 0, text)
    if text.startswith("error"):
        head, _, msg = text.partition(" ")
        code = 0
        if head.startswith("error:"):
            try:
                code = int(head[6:])
            except ValueError:
                code = 0
        return Reply(False, msg.strip(), code, text)
    return None


@dataclass
class Unsolicited:
    kind: str  # 'T' telemetry, 'E' event, 'S' status
    data: Any
    raw: str
    t_host: float = field(default_factory=time.time)


def _split_tag(text: str) -> tuple[int | None, str]:
    if text.startswith("#"):
        num, _, rest = text[1:].partition(" ")
        if num.isdigit():
            return int(num), rest.strip()
    return None, text


# -- the link ----------------------------------------------------------------------------------
class PenLink:
    """One pen on one serial port. Not thread-safe: one user at a time."""

    def __init__(
        self,
        port: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        expect: Expectation | None = None,
        check: bool = True,
        reconnect_timeout: float = 15.0,
        serial_factory: Callable[[str], Any] | None = None,
        tags: bool = True,
    ):
        self.port_spec = port  # as given (None: auto-detect again on every reconnect)
        self.port: str | None = None
        self.timeout = timeout
        self.expect = expect
        self.check = check
        self.reconnect_timeout = reconnect_timeout
        self.serial_factory = serial_factory or _default_serial_factory
        self.tags = tags
        self.ser = None
        self.hello: dict = {}
        self.mismatch: str | None = None
        self.unsolicited: collections.deque[Unsolicited] = collections.deque(maxlen=200_000)
        self.noise: collections.deque[str] = collections.deque(maxlen=40)  # non-protocol lines
        self.reconnects = 0
        self.stale_replies = 0
        self._buf = bytearray()
        self._tag = random.randint(1, 5000)
        self._expected_serial: str | None = None

    # -- opening and closing --------------------------------------------------------------
    def open(self, handshake: bool = True) -> PenLink:
        self._open_port()
        if handshake:
            self.handshake()
        return self

    def _open_port(self) -> None:
        self.port = find_port(self.port_spec)
        try:
            self.ser = self.serial_factory(self.port)
        except Exception as exc:  # serial.SerialException, OSError
            self.ser = None
            raise LinkError(f"cannot open the pen's port {self.port}: {exc}") from exc
        self._buf.clear()
        self._flush_input()

    def close(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:  # noqa: BLE001 -- closing a port that is gone
                pass
        self.ser = None

    @property
    def is_open(self) -> bool:
        return self.ser is not None

    def __enter__(self) -> PenLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flush_input(self) -> None:
        try:
            self.ser.reset_input_buffer()
        except Exception:  # noqa: BLE001 -- not every port supports it; drained by reading
            pass

    # -- raw I/O ----------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.ser is None:
            raise _Disconnected("port closed")
        try:
            self.ser.write(data)
            flush = getattr(self.ser, "flush", None)
            if flush:
                flush()
        except Exception as exc:  # serial.SerialException, OSError (EIO on a pulled cable)
            self.close()
            raise _Disconnected(str(exc)) from exc

    def _read_line(self, deadline: float) -> str | None:
        """The next complete line (without CR/LF) or None at the deadline."""
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                return raw.decode("utf-8", "replace").strip("\r")
            if self.ser is None:
                raise _Disconnected("port closed")
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
                raise _Disconnected(str(exc)) from exc
            if chunk:
                self._buf += chunk

    def _dispatch(self, text: str) -> tuple[int | None, Reply] | None:
        """Classify one received line; return (tag, reply) for a reply, else None."""
        if text.startswith("~"):
            kind, _, payload = text[1:].partition(" ")
            try:
                data = json.loads(payload) if payload else None
            except json.JSONDecodeError:
                self.noise.append(text)
                return None
            self.unsolicited.append(Unsolicited(kind, data, text))
            return None
        tag, rest = _split_tag(text)
        reply = parse_reply(rest)
        if reply is None:
            if text.strip():
                self.noise.append(text)
            return None
        return tag, reply

    def poll(self, timeout: float = 0.0) -> int:
        """Read whatever the pen sends for up to `timeout` s (unsolicited lines are queued).
        Returns the number of lines read. Raises LinkLost if the port fails."""
        deadline = time.monotonic() + timeout
        n = 0
        try:
            while True:
                line = self._read_line(deadline)
                if line is None:
                    return n
                n += 1
                if self._dispatch(line) is not None:
                    self.stale_replies += 1
        except _Disconnected as exc:
            raise LinkLost(f"the connection to the pen was lost: {exc}") from exc

    def take_unsolicited(self, kind: str | None = None) -> list[Unsolicited]:
        """Remove and return the queued unsolicited lines (of one kind, or all)."""
        if kind is None:
            out = list(self.unsolicited)
            self.unsolicited.clear()
            return out
        out, keep = [], []
        for u in self.unsolicited:
            (out if u.kind == kind else keep).append(u)
        self.unsolicited.clear()
        self.unsolicited.extend(keep)
        return out

    # -- commands -----------------------------------------------------------------------------
    def _next_tag(self) -> int:
        self._tag = self._tag % 9999 + 1
        return self._tag

    def _transact(self, line: str, timeout: float) -> Reply:
        tag = self._next_tag() if self.tags else None
        out = f"#{tag} {line}" if tag is not None else line
        self._write(out.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            text = self._read_line(deadline)
            if text is None:
                raise ReplyTimeout(self._timeout_message(line, timeout))
            got = self._dispatch(text)
            if got is None:
                continue
            rtag, reply = got
            if tag is None or rtag == tag:
                return reply
            self.stale_replies += 1  # a reply to an earlier line, or to a resync's half line

    def _timeout_message(self, line: str, timeout: float) -> str:
        tail = bytes(self._buf[-200:]).decode("utf-8", "replace")
        if tail.rstrip().endswith(">>>") or any(">>>" in n for n in list(self.noise)[-3:]):
            return (
                f"no reply to `{line}` within {timeout:g} s: the pen is at the MicroPython "
                "prompt, not running its application (install it with `pen deploy`, or reset "
                "the pen)"
            )
        last = "; ".join(list(self.noise)[-3:])
        hint = f" (the pen printed: {last})" if last else ""
        return f"no reply to `{line}` within {timeout:g} s{hint}"

    @staticmethod
    def _check_line(line: str) -> str:
        line = line.strip()
        if "\n" in line or "\r" in line:
            raise LinkError("one command per line: the command contains a line break")
        if len(line.encode()) + 7 > MAX_LINE:
            raise LinkError(f"command longer than {MAX_LINE} bytes: `{line[:40]}...`")
        return line

    def request(self, line: str, timeout: float | None = None, retry: bool | None = None) -> Reply:
        """Send one command, return its Reply (ok or error). Reconnects after a pulled cable;
        a command that is not read-only is not sent again (LinkLost says its outcome is
        unknown)."""
        line = self._check_line(line)
        timeout = self.timeout if timeout is None else timeout
        if retry is None:
            retry = is_read_only(line)
        if self.ser is None:
            self.reconnect()
        try:
            return self._transact(line, timeout)
        except _Disconnected as exc:
            self.reconnect(cause=str(exc))
            if retry:
                try:
                    return self._transact(line, timeout)
                except _Disconnected as exc2:
                    raise LinkLost(f"the connection to the pen was lost again: {exc2}") from exc2
            raise LinkLost(
                f"the connection to the pen was lost while sending `{line}`; it is back, but "
                "whether the pen carried the command out is unknown: check with `pen status`"
            ) from exc

    def command(self, line: str, timeout: float | None = None) -> str:
        """Send one command line; return the reply line (`ok ...` / `error:N ...`)."""
        return self.request(line, timeout).raw

    def call(self, line: str, timeout: float | None = None) -> Any:
        """Send one command; return its decoded payload, or raise PenRefused on `error:N`."""
        reply = self.request(line, timeout)
        if not reply.ok:
            raise PenRefused(line, reply.code, reply.payload or "refused")
        return reply.value()

    def realtime(self, char: str) -> None:
        """Send a real-time byte (`!` stop, `?` status): acted on at once, no reply line."""
        if char not in ("!", "?"):
            raise ValueError("real-time bytes are ! and ?")
        try:
            self._write(char.encode())
        except _Disconnected:
            self.reconnect()
            self._write(char.encode())

    # -- handshake and reconnect ---------------------------------------------------------------
    def handshake(self) -> dict:
        """`hello`: read the versions; check them against the host's expectation.

        Sends a newline (ends any half line the pen holds: it earns an untagged error), then
        `#N hello` and a plain `hello`. A pen that echoes tags answers the first with `#N ok`
        (the plain reply is dropped later as untagged); one that does not answers the first
        with an error and the second with `ok {...}`: it is then spoken to without tags."""
        self._buf.clear()
        self._flush_input()
        tag = self._next_tag()
        try:
            self._write(f"\n#{tag} hello\nhello\n".encode())
            reply = self._await_hello(tag, min(self.timeout, 5.0))
        except _Disconnected as exc:
            raise LinkLost(f"the pen's port failed during the handshake: {exc}") from exc
        if not reply.ok or not isinstance(reply.value(), dict):
            raise LinkError(f"the pen did not answer the handshake: {reply.raw!r}")
        hello = reply.value()
        self.hello = hello
        serial_no = hello.get("serial")
        if self._expected_serial and serial_no and serial_no != self._expected_serial:
            self.close()
            raise LinkLost(
                f"a different pen answered on {self.port} (serial {serial_no}, expected "
                f"{self._expected_serial}); reconnect the first pen"
            )
        self._expected_serial = serial_no or self._expected_serial
        if self.expect is None:
            self.expect = Expectation.from_checkout()
        self.mismatch = check_hello(hello, self.expect)
        if self.mismatch and self.check:
            raise HandshakeMismatch(self.mismatch, hello)
        return hello

    def _await_hello(self, tag: int, timeout: float) -> Reply:
        deadline = time.monotonic() + timeout
        while True:
            text = self._read_line(deadline)
            if text is None:
                raise ReplyTimeout(self._timeout_message("hello", timeout))
            got = self._dispatch(text)
            if got is None:
                continue
            rtag, reply = got
            if rtag == tag:
                self.tags = True
                return reply
            if rtag is None and reply.ok and isinstance(reply.value(), dict):
                if "protocol_version" in reply.value():
                    self.tags = False  # the pen does not echo tags
                    return reply

    def reconnect(self, timeout: float | None = None, cause: str = "") -> None:
        """Reopen the port and handshake again, until `timeout` s (default reconnect_timeout)."""
        self.close()
        deadline = time.monotonic() + (self.reconnect_timeout if timeout is None else timeout)
        last = cause
        while True:
            try:
                self._open_port()
                self.handshake()
                self.reconnects += 1
                return
            except HandshakeMismatch:
                raise
            except LinkLost as exc:
                if "different pen" in str(exc):
                    raise
                last = str(exc)
            except LinkError as exc:
                last = str(exc)
            self.close()
            if time.monotonic() >= deadline:
                raise LinkLost(f"the pen did not come back on its port: {last}")
            time.sleep(0.2)

    def disconnect_for(self, seconds: float) -> None:
        """Test aid: close the port for `seconds` (a pulled cable), then reconnect."""
        self.close()
        time.sleep(seconds)
        self.reconnect()


def is_read_only(line: str) -> bool:
    words = line.split()
    return any(words[: len(c.split())] == c.split() for c in READ_ONLY)


def open_link(port: str | None = None, *, check: bool = True, **kw) -> PenLink:
    """Open the pen's link and handshake (the entry point `pen.records.pen_adapter` uses)."""
    link = PenLink(port, check=check, **kw)
    try:
        return link.open()
    except BaseException:
        link.close()
        raise


@contextlib.contextmanager
def session(args, *, check: bool = True, handshake: bool = True, **kw) -> Iterator[PenLink]:
    """For the `pen` sub-commands: the link of `--port` (or $PEN_PORT, or the USB id), open and
    handshaken; any LinkError inside becomes a CliError (one clear line, non-zero exit)."""
    from .cli import CliError

    link = PenLink(getattr(args, "port", None), check=check, **kw)
    try:
        link.open(handshake=handshake)
        yield link
    except LinkError as exc:
        raise CliError(str(exc)) from exc
    finally:
        link.close()
