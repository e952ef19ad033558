"""The pen's serial link on the host: find the port, handshake, one command -> one reply.

    from pen.link import open_link
    with open_link(None) as link:              # --port / $PEN_PORT / USB id 2E8A:0005
        link.command("status")                 # -> 'ok {...}'  (the reply line, tag removed)
        link.call("get depth")                 # -> {"depth": 0.5}; PenRefused on error:N

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

The parts: `transport` (the port, bytes and lines), `replies` (what a line is), `handshake`
(what the host expects, the tag probe), `firmware_import` (the firmware's modules in CPython),
`pen_link` (PenLink), `share` (a link lent by `pen log` to other `pen` commands).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from . import pen_link as _pen_link
from .errors import (
    DifferentPen,
    HandshakeMismatch,
    LinkError,
    LinkLost,
    NoPrompt,
    PenRefused,
    PortNotFound,
    ReplyTimeout,
)
from .firmware_import import firmware_module
from .handshake import Expectation, check_hello
from .pen_link import DEFAULT_TIMEOUT, MAX_LINE, PenLink
from .replies import READ_ONLY, Reply, Unsolicited, is_read_only, parse_reply
from .share import LinkServer, SharedLink
from .transport import BAUDRATE, PORT_ENV, USB_PID, USB_VID, find_port

__all__ = [
    "BAUDRATE", "DEFAULT_TIMEOUT", "MAX_LINE", "PORT_ENV", "READ_ONLY", "USB_PID", "USB_VID",
    "DifferentPen", "Expectation", "HandshakeMismatch", "LinkError", "LinkLost", "LinkServer",
    "NoPrompt", "PenLink", "PenRefused", "PortNotFound", "Reply", "ReplyTimeout", "SharedLink",
    "Unsolicited", "check_hello", "find_port", "firmware_module", "is_read_only", "open_link",
    "parse_reply", "session",
]  # fmt: skip


def open_link(port: str | None = None, *, check: bool = True, **kw) -> PenLink | SharedLink:
    """The pen's link, open and handshaken: the one a running `pen log` lends for this port,
    else the port itself (`pen.records.pen_adapter` and scripts use this)."""
    shared = SharedLink.connect(find_port(port), kw.get("timeout", DEFAULT_TIMEOUT))
    if shared is not None:
        if shared.mismatch and check:
            shared.close()
            raise HandshakeMismatch(shared.mismatch, shared.hello)
        return shared
    return _pen_link.open_link(port, check=check, **kw)


@contextlib.contextmanager
def session(args, *, check: bool = True, handshake: bool = True, share: bool = False,
            **kw) -> Iterator[PenLink | SharedLink]:  # fmt: skip
    """For the `pen` sub-commands: the link of `--port` (or $PEN_PORT, or the USB id), open and
    handshaken. When another `pen` process holds the port and lends it (`pen log`), its link is
    used. `share=True`: lend this link to other `pen` commands while the block runs.
    Errors are LinkErrors (`pen.cli` reports them as one line)."""
    port = args.port
    if not share and handshake:
        shared = SharedLink.connect(find_port(port), kw.get("timeout", DEFAULT_TIMEOUT))
        if shared is not None:
            with shared:
                if shared.mismatch and check:
                    raise HandshakeMismatch(shared.mismatch, shared.hello)
                yield shared
            return
    link = PenLink(port, check=check, **kw)
    server = None
    try:
        link.open(handshake=handshake)
        if share:
            server = LinkServer(link).start()
        yield link
    finally:
        if server is not None:
            server.close()
        link.close()
