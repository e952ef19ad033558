"""One pen, several `pen` commands: the process that holds the port (`pen log`) lends its link
to the others through a local Unix socket.

A serial port is opened exclusively, so while `pen log` records, another `pen` command could not
open it. `LinkServer` listens on a socket named after the port (in the user's runtime folder,
mode 0700); `SharedLink.connect(port)` finds it and sends its commands through the logger's link,
one line at a time between the logger's reads. Each line is a JSON object:

    -> {"op": "hello"}
    <- {"hello": {...}, "mismatch": null, "port": "/dev/ttyACM0"}
    -> {"op": "request", "line": "status", "timeout": 5}
    <- {"ok": true, "payload": "{...}", "code": 0, "raw": "ok {...}"}
    -> {"op": "realtime", "char": "!"}
    <- {}
    any failure: <- {"error": "LinkLost", "message": "..."} (the link's error kinds)

The telemetry stream belongs to the logger: `telemetry on|off` through a shared link is refused.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from .. import paths
from . import errors as E
from .pen_link import Calls, PenLink, check_realtime
from .replies import Reply

_ERRORS = {c.__name__: c for c in (E.LinkError, E.PortNotFound, E.ReplyTimeout, E.LinkLost,
                                    E.DifferentPen)}  # fmt: skip


_MAX_TIMEOUT_S = 120.0  # the longest reply wait a borrower may ask for


def socket_path(port: str) -> Path:
    return paths.runtime_dir() / f"link-{Path(port).name}.sock"


def _owned_by_logger(line: str) -> bool:
    words = line.split()
    return words[:1] == ["telemetry"] and words[1:2] in (["on"], ["off"])


class LinkServer:
    """Serves `link` to other `pen` processes until closed."""

    def __init__(self, link: PenLink):
        self.link = link
        self.path = socket_path(link.port)
        self.sock: socket.socket | None = None

    def start(self) -> LinkServer:
        self.path.unlink(missing_ok=True)  # left by a logger that was killed
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.sock.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while self.sock is not None:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for raw in f:
                try:
                    answer = self._answer(json.loads(raw))
                except E.LinkError as exc:
                    name = type(exc).__name__
                    answer = {"error": name if name in _ERRORS else "LinkError",
                              "message": str(exc)}  # fmt: skip
                except (ValueError, KeyError, TypeError) as exc:
                    answer = {"error": "LinkError", "message": f"bad request: {exc}"}
                f.write(json.dumps(answer).encode() + b"\n")
                f.flush()

    def _answer(self, req: dict) -> dict:
        op = req["op"]
        if op == "hello":
            return {"hello": self.link.hello, "mismatch": self.link.mismatch,
                    "port": self.link.port}  # fmt: skip
        if op == "request":
            line = str(req["line"])
            if _owned_by_logger(line):
                raise E.LinkError(f"`{line}` is refused while `pen log` records from this pen "
                                  "(it owns the telemetry stream); stop the log first")  # fmt: skip
            t = req.get("timeout")
            if not isinstance(t, (int, float)) or not 0 < t <= _MAX_TIMEOUT_S:
                t = None  # the link's own
            r = self.link.request(line, t)
            return {"ok": r.ok, "payload": r.payload, "code": r.code, "raw": r.raw}
        if op == "realtime":
            self.link.realtime(str(req["char"]))
            return {}
        raise ValueError(f"unknown op {op!r}")


class SharedLink(Calls):
    """The PenLink interface, through the link of the process that holds the port."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock = sock
        self.file = sock.makefile("rwb")
        self.timeout = timeout
        self.tags = True
        self.unsolicited: list = []
        self.noise: list = []
        self.reconnects = 0
        self.stale_replies = 0
        got = self._ask({"op": "hello"})
        self.hello: dict = got["hello"]
        self.mismatch: str | None = got["mismatch"]
        self.port: str = got["port"]

    @classmethod
    def connect(cls, port: str, timeout: float = 5.0) -> SharedLink | None:
        """The shared link of the process that holds `port`, or None when none does."""
        path = socket_path(port)
        if not path.exists():
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:  # a socket file left behind: nobody listens
            sock.close()
            return None
        return cls(sock, timeout)

    @property
    def is_open(self) -> bool:
        return not self.file.closed

    def _ask(self, req: dict, timeout: float | None = None) -> dict:
        # The holder answers after the pen does (and after its own reconnects): wait that long.
        self.sock.settimeout((timeout or self.timeout) + 20.0)
        try:
            self.file.write(json.dumps(req).encode() + b"\n")
            self.file.flush()
            raw = self.file.readline()
        except OSError as exc:
            raise E.LinkLost(
                f"the `pen log` that holds the pen's port stopped answering: {exc}"
            ) from exc
        if not raw:
            raise E.LinkLost("the `pen log` that held the pen's port has ended; run the command "
                             "again")  # fmt: skip
        got = json.loads(raw)
        if "error" in got:
            raise _ERRORS.get(got["error"], E.LinkError)(got["message"])
        return got

    def request(self, line: str, timeout: float | None = None, retry: bool | None = None) -> Reply:
        line = PenLink._check_line(line)
        t = self.timeout if timeout is None else timeout
        got = self._ask({"op": "request", "line": line, "timeout": t}, t)
        return Reply(got["ok"], got["payload"], got["code"], got["raw"])

    def realtime(self, char: str) -> None:
        check_realtime(char)
        self._ask({"op": "realtime", "char": char})

    def poll(self, timeout: float = 0.0) -> int:
        """Unsolicited lines stay with the process that holds the port: none arrive here."""
        time.sleep(timeout)
        return 0

    def take_unsolicited(self, kind: str | None = None) -> list:
        return []

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> SharedLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
