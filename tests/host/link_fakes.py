"""A fake pen behind a fake serial port, for the host link's tests (docs/protocol.md)."""

from __future__ import annotations

import collections
import json
import time

from pen import link as L

HELLO = {"firmware_version": "0.1.0", "protocol_version": 1, "schema_hash": "abc123",
         "serial": "e66138", "board_rev": "A"}  # fmt: skip
EXPECT = L.Expectation(protocol_version=1, schema_hash="abc123")


class PortGone(OSError):
    pass


class FakePen:
    """The pen's firmware as seen through its port; survives the port being reopened."""

    def __init__(self, tags=True, hello=None):
        self.tags = tags
        self.hello = dict(hello or HELLO)
        self.settings = {"depth": 0.5}
        self.received: list[str] = []
        self.realtime: list[bytes] = []  # real-time bytes received (`!`, `?`)
        self.before_reply: list[str] = []  # lines sent before the next reply (once)
        self.fail_after_lines: int | None = None  # the cable is pulled after N more lines
        self.swallow_reply = False  # a pulled cable eats the next reply
        self.pending = b""  # pen -> host bytes not yet read
        self.opens = 0
        self.ports: list[FakeSerial] = []
        # Telemetry: samples made at `rate` Hz of real time while streaming, kept in a ring.
        self.streaming = False
        self.rate = 200.0
        self.seq = 0
        self.t_start = 0.0
        self.made = 0
        self.ring: collections.deque = collections.deque(maxlen=12000)
        self.live_open_since = 0.0
        self.drop_every = 0  # drop every Nth live sample (a full output buffer)
        self.fetch_limit = 50
        self.state = "RUNNING"
        self.fault = 0
        self.uptime_ms = 5000  # grows by 10 per `status`; `reset` starts it again
        self.resets = 0
        self.reset_reply = "ok"  # what `reset` answers (an error: refused, nothing happens)
        self.reset_works = True  # False: `reset` answers ok but the pen never restarts

    def sample(self, k: int) -> dict:
        hz = 100.0 + (0.5 if k % 2 else -0.5)
        return {"seq": self.seq, "t_ms": int(k * 1000 / self.rate), "state": self.state,
                "stroke_hz": hz, "target_hz": 100, "duty": 2700, "depth_mm": 1.0,
                "target_depth_mm": 1.0, "current_ma": 210, "battery_mv": 3900,
                "fault": self.fault}  # fmt: skip

    def generate(self, port_open: bool) -> None:
        if not self.streaming:
            return
        now = time.monotonic()
        due = int((now - self.t_start) * self.rate)
        while self.made < due:
            t = self.t_start + self.made / self.rate
            s = self.sample(self.made)
            self.ring.append(s)
            self.made += 1
            self.seq += 1
            live = port_open and t >= self.live_open_since
            if live and self.drop_every and s["seq"] % self.drop_every == 0:
                live = False
            if live:
                self.pending += ("~T " + json.dumps(s) + "\n").encode()

    def reboot(self) -> None:
        self.seq = 0
        self.made = 0
        self.ring.clear()
        self.t_start = time.monotonic()

    def handle(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error:2 empty line"
        cmd, args = words[0], words[1:]
        if cmd == "hello":
            return "ok " + json.dumps(self.hello)
        if cmd == "status":
            self.uptime_ms += 10
            return "ok " + json.dumps({"state": "READY", "depth_mm": self.settings["depth"],
                                       "uptime_ms": self.uptime_ms})  # fmt: skip
        if cmd == "reset":
            if self.reset_reply == "ok" and self.reset_works:
                self.resets += 1
                self.uptime_ms = 0
            return self.reset_reply
        if cmd == "get" and args and args[0] in self.settings:
            return "ok " + json.dumps({args[0]: self.settings[args[0]]})
        if cmd == "set" and len(args) == 2:
            self.settings[args[0]] = float(args[1])
            return "ok " + json.dumps({args[0]: float(args[1])})
        if cmd == "get":
            return "error:6 unknown setting"
        if cmd == "telemetry" and args[:1] == ["on"]:
            if not self.streaming:
                self.streaming = True
                self.rate = float(args[1]) if len(args) > 1 else self.rate
                self.t_start = time.monotonic() - self.made / self.rate
            return "ok"
        if cmd == "telemetry" and args[:1] == ["off"]:
            self.streaming = False
            return "ok"
        if cmd == "telemetry" and args[:1] == ["fetch"]:
            first, n = int(args[1]), min(int(args[2]) if len(args) > 2 else 10, self.fetch_limit)
            rows = [r for r in self.ring if r["seq"] >= first][:n]
            if not rows:
                return "error:16 not found"
            return "ok " + json.dumps(rows)
        return "error:1 unknown command"

    def feed(self, raw: bytes) -> None:
        for chunk in raw.split(b"\n")[:-1]:
            text = chunk.decode("utf-8", "replace").strip()
            self.received.append(text)
            tag = None
            if self.tags and text.startswith("#"):
                num, _, rest = text[1:].partition(" ")
                if num.isdigit():
                    tag, text = num, rest
            reply = self.handle(text)
            out = "".join(line + "\n" for line in self.before_reply)
            self.before_reply = []
            if self.swallow_reply:
                self.swallow_reply = False
                continue
            out += (f"#{tag} " if tag else "") + reply + "\n"
            self.pending += out.encode()


class FakeSerial:
    def __init__(self, pen: FakePen):
        self.pen = pen
        self.is_open = True
        self._out = b""
        pen.opens += 1
        pen.ports.append(self)
        pen.generate(False)  # what was made while no port was open is not delivered
        pen.live_open_since = time.monotonic()

    def _check(self):
        if not self.is_open:
            raise PortGone("port closed")
        if self.pen.fail_after_lines is not None and self.pen.fail_after_lines <= 0:
            self.pen.fail_after_lines = None
            self.is_open = False
            raise PortGone("device reports readiness to read but returned no data")

    def write(self, data: bytes) -> int:
        self._check()
        size = len(data)
        for rt in (b"!", b"?"):  # real-time bytes: acted on at once, never part of a line
            self.pen.realtime += [rt] * data.count(rt)
            data = data.replace(rt, b"")
        self._out += data
        i = self._out.rfind(b"\n")
        if i >= 0:
            done, self._out = self._out[: i + 1], self._out[i + 1 :]
            n = done.count(b"\n")
            if self.pen.fail_after_lines is not None:
                self.pen.fail_after_lines -= n
            self.pen.feed(done)
        return size

    @property
    def in_waiting(self) -> int:
        self._check()
        self.pen.generate(True)
        return len(self.pen.pending)

    def read(self, n: int = 1) -> bytes:
        self._check()
        self.pen.generate(True)
        if not self.pen.pending:
            time.sleep(0.002)  # a serial read timeout, short
            self.pen.generate(True)
        data, self.pen.pending = self.pen.pending[:n], self.pen.pending[n:]
        return data

    def reset_input_buffer(self) -> None:
        self.pen.pending = b""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.pen.generate(True)
        self.is_open = False




class ScriptedLink:
    """The PenLink interface (request / command / call / close) over a function that answers
    each command line with the pen's reply line, for the layers above the link."""

    def __init__(self, answer):
        self.answer = answer
        self.sent: list[str] = []
        self.closed = False

    def request(self, line: str, timeout: float | None = None, retry: bool | None = None):
        self.sent.append(line)
        reply = L.parse_reply(self.answer(line) or "")
        if reply is None:
            raise L.ReplyTimeout(f"no reply to `{line}`")
        return reply

    def command(self, line: str, timeout: float | None = None) -> str:
        return self.request(line, timeout).raw

    def call(self, line: str, timeout: float | None = None):
        reply = self.request(line, timeout)
        if not reply.ok:
            raise L.PenRefused(line, reply.code, reply.payload)
        return reply.value()

    def close(self) -> None:
        self.closed = True
