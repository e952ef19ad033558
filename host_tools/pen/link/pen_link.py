"""PenLink: one pen on one port: tagged commands and their replies, unsolicited lines set aside,
the handshake, and reconnecting after a pulled cable."""

from __future__ import annotations

import collections
import random
import threading
import time
from typing import Any, Callable

from . import errors as E
from . import handshake as hs
from .replies import Reply, Unsolicited, classify, is_read_only
from .transport import Transport

MAX_LINE = 420  # bytes per command line, docs/protocol.md (firmware/link.py: a 32-point calib)
DEFAULT_TIMEOUT = 5.0


def check_realtime(char: str) -> None:
    if char not in ("!", "?"):
        raise ValueError("real-time bytes are ! and ?")


class Calls:
    """`command` and `call` on top of a link's `request(line, timeout) -> Reply`."""

    def request(self, line: str, timeout: float | None = None, retry: bool | None = None) -> Reply:
        raise NotImplementedError

    def command(self, line: str, timeout: float | None = None) -> str:
        """Send one command line; return the reply line (`ok ...` / `error:N ...`)."""
        return self.request(line, timeout).raw

    def call(self, line: str, timeout: float | None = None) -> Any:
        """Send one command; return its decoded payload, or raise PenRefused on `error:N`."""
        reply = self.request(line, timeout)
        if not reply.ok:
            raise E.PenRefused(line, reply.code, reply.payload or "refused")
        return reply.value()


class PenLink(Calls):
    """One pen on one serial port. Calls from several threads are taken one at a time (a link
    shared by `pen log` serves other `pen` commands from a second thread)."""

    def __init__(
        self,
        port: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        expect: hs.Expectation | None = None,
        check: bool = True,
        reconnect_timeout: float = 15.0,
        serial_factory: Callable[[str], Any] | None = None,
        tags: bool = True,
    ):
        self.transport = Transport(port, serial_factory)
        self.timeout = timeout
        self.expect = expect
        self.check = check
        self.reconnect_timeout = reconnect_timeout
        self.tags = tags
        self.hello: dict = {}
        self.mismatch: str | None = None
        self.unsolicited: collections.deque[Unsolicited] = collections.deque(maxlen=200_000)
        self.noise: collections.deque[str] = collections.deque(maxlen=40)  # non-protocol lines
        self.reconnects = 0
        self.stale_replies = 0
        self._tag = random.randint(1, 5000)
        self._expected_serial: str | None = None
        self._lock = threading.RLock()

    # -- opening and closing --------------------------------------------------------------
    @property
    def port(self) -> str | None:
        return self.transport.port

    @property
    def is_open(self) -> bool:
        return self.transport.is_open

    def open(self, handshake: bool = True) -> PenLink:
        with self._lock:
            self.transport.open()
            if handshake:
                self.handshake()
        return self

    def close(self) -> None:
        with self._lock:
            self.transport.close()

    def __enter__(self) -> PenLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- received lines -------------------------------------------------------------------------
    def _next_reply(self, deadline: float) -> tuple[int | None, Reply] | None:
        """The next reply line (tag, reply), setting aside unsolicited lines and noise; None at
        the deadline."""
        while True:
            text = self.transport.read_line(deadline)
            if text is None:
                return None
            line = classify(text)
            if line.unsolicited is not None:
                self.unsolicited.append(line.unsolicited)
            elif line.noise is not None:
                self.noise.append(line.noise)
            elif line.reply is not None:
                return line.tag, line.reply

    def poll(self, timeout: float = 0.0) -> int:
        """Read whatever the pen sends for up to `timeout` s (unsolicited lines are queued).
        Returns the number of unsolicited lines queued. Raises LinkLost if the port fails."""
        deadline = time.monotonic() + timeout
        with self._lock:
            before = len(self.unsolicited)
            try:
                while self._next_reply(deadline) is not None:
                    self.stale_replies += 1  # a reply nobody waits for
            except E.PortFailed as exc:
                raise E.LinkLost(f"the connection to the pen was lost: {exc}") from exc
            return len(self.unsolicited) - before

    def take_unsolicited(self, kind: str | None = None) -> list[Unsolicited]:
        """Remove and return the queued unsolicited lines (of one kind, or all)."""
        with self._lock:
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
        self.transport.write(out.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            got = self._next_reply(deadline)
            if got is None:
                raise E.ReplyTimeout(self._timeout_message(line, timeout))
            rtag, reply = got
            if tag is None or rtag == tag:
                return reply
            self.stale_replies += 1  # a reply to an earlier line, or to a resync's half line

    def _timeout_message(self, line: str, timeout: float) -> str:
        tail = self.transport.pending_text()
        if tail.rstrip().endswith(">>>") or any(">>>" in n for n in list(self.noise)[-3:]):
            return (
                f"no reply to `{line}` within {timeout:g} s: the pen is at the MicroPython "
                "prompt, not running its application (install it with `pen deploy`, or restart "
                "it with `pen reset`)"
            )
        last = "; ".join(list(self.noise)[-3:])
        hint = f" (the pen printed: {last})" if last else ""
        return f"no reply to `{line}` within {timeout:g} s{hint}"

    @staticmethod
    def _check_line(line: str) -> str:
        line = line.strip()
        if "\n" in line or "\r" in line:
            raise E.LinkError("one command per line: the command contains a line break")
        if len(line.encode()) + 7 > MAX_LINE:
            raise E.LinkError(f"command longer than {MAX_LINE} bytes: `{line[:40]}...`")
        return line

    def request(self, line: str, timeout: float | None = None, retry: bool | None = None) -> Reply:
        """Send one command, return its Reply (ok or error). Reconnects after a pulled cable;
        a command that is not read-only is not sent again (LinkLost says its outcome is
        unknown)."""
        line = self._check_line(line)
        timeout = self.timeout if timeout is None else timeout
        if retry is None:
            retry = is_read_only(line)
        with self._lock:
            if not self.is_open:
                self.reconnect()
            try:
                return self._transact(line, timeout)
            except E.PortFailed as exc:
                self.reconnect(cause=str(exc))
                if retry:
                    try:
                        return self._transact(line, timeout)
                    except E.PortFailed as exc2:
                        raise E.LinkLost(
                            f"the connection to the pen was lost again: {exc2}"
                        ) from exc2
                raise E.LinkLost(
                    f"the connection to the pen was lost while sending `{line}`; it is back, "
                    "but whether the pen carried the command out is unknown: check with "
                    "`pen status`"
                ) from exc

    def realtime(self, char: str) -> None:
        """Send a real-time byte (`!` stop, `?` status): acted on at once, no reply line."""
        check_realtime(char)
        with self._lock:
            try:
                self.transport.write(char.encode())
            except E.PortFailed:
                self.reconnect()
                self.transport.write(char.encode())

    def soft_reset(self, timeout: float = 30.0) -> dict:
        """Restart the pen (`reset`: refused while the needle runs) and handshake again;
        returns the new `hello`. Every byte on the port is protocol input while the pen's
        application runs, so the reset is a command, never Ctrl-C/Ctrl-D."""
        with self._lock:
            before = self.call("status")["uptime_ms"]
            self.call("reset")
            deadline = time.monotonic() + timeout
            while True:  # the pen resets RESET_DELAY_MS after its `ok`: wait for the new boot
                self.reconnect(max(0.1, deadline - time.monotonic()))
                if self.call("status")["uptime_ms"] < before:
                    return self.hello
                if time.monotonic() > deadline:
                    raise E.LinkLost("the pen did not restart after `reset`")
                time.sleep(0.05)

    # -- handshake and reconnect ---------------------------------------------------------------
    def handshake(self) -> dict:
        """`hello`: read the versions; check them against the host's expectation (a pen that
        does not echo tags is then spoken to without them, see handshake.hello_probe)."""
        with self._lock:
            self.transport.discard_input()
            tag = self._next_tag()
            try:
                self.transport.write(hs.hello_probe(tag))
                reply = self._await_hello(tag, min(self.timeout, 5.0))
            except E.PortFailed as exc:
                raise E.LinkLost(f"the pen's port failed during the handshake: {exc}") from exc
            hello = reply.value()
            if not reply.ok or not isinstance(hello, dict):
                raise E.LinkError(f"the pen did not answer the handshake: {reply.raw!r}")
            self.hello = hello
            serial_no = hello.get("serial")
            if self._expected_serial and serial_no and serial_no != self._expected_serial:
                self.transport.close()
                raise E.DifferentPen(
                    f"a different pen answered on {self.port} (serial {serial_no}, expected "
                    f"{self._expected_serial}); reconnect the first pen"
                )
            self._expected_serial = serial_no or self._expected_serial
            if self.expect is None:
                self.expect = hs.Expectation.from_checkout()
            self.mismatch = hs.check_hello(hello, self.expect)
            if self.mismatch and self.check:
                raise E.HandshakeMismatch(self.mismatch, hello)
            return hello

    def _await_hello(self, tag: int, timeout: float) -> Reply:
        deadline = time.monotonic() + timeout
        while True:
            got = self._next_reply(deadline)
            if got is None:
                raise E.ReplyTimeout(self._timeout_message("hello", timeout))
            rtag, reply = got
            tagged = hs.answers_probe(tag, rtag, reply)
            if tagged is not None:
                self.tags = tagged
                return reply

    def reconnect(self, timeout: float | None = None, cause: str = "") -> None:
        """Reopen the port and handshake again, until `timeout` s (default reconnect_timeout).
        A mismatched or different pen ends the attempts at once."""
        with self._lock:
            self.transport.close()
            deadline = time.monotonic() + (self.reconnect_timeout if timeout is None else timeout)
            last = cause
            while True:
                try:
                    self.transport.open()
                    self.handshake()
                    self.reconnects += 1
                    return
                except (E.HandshakeMismatch, E.DifferentPen):
                    raise
                except E.LinkError as exc:
                    last = str(exc)
                self.transport.close()
                if time.monotonic() >= deadline:
                    raise E.LinkLost(f"the pen did not come back on its port: {last}")
                time.sleep(0.2)


def open_link(port: str | None = None, *, check: bool = True, **kw) -> PenLink:
    """Open the pen's link and handshake."""
    link = PenLink(port, check=check, **kw)
    try:
        return link.open()
    except BaseException:
        link.close()
        raise
