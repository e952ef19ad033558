"""Property-based fuzzing of the pen's command handling under the real `micropython` binary
(SP-50): more than 10,000 generated command lines and byte strings go through the link's line
assembler and the protocol of ONE long-lived MicroPython process (tests/mp/fuzz_server.py, real
settings on littlefs, real clinician lock, a fake state machine). For every input: no crash,
exactly one reply line per line the input ends (plus one `~S` line per `?`), every reply `ok`
or `error:N`, and the settings unchanged unless some line of it was answered `ok`."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"virtual-pen-test-secret-not-real"
REPLY = re.compile(r"^(#\d{1,9} )?(ok|ok .+|error:\d+ .+)$")
LINES_EXAMPLES = 6000
BYTES_EXAMPLES = 4500


class FuzzServer:
    def __init__(self):
        exe = Path(sys.executable).with_name("micropython")
        self.proc = subprocess.Popen(
            [str(exe) if exe.exists() else "micropython", "-X", "heapsize=190K",
             "tests/mp/fuzz_server.py"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"MICROPYPATH": ""},
        )  # fmt: skip
        self.cr = False  # the assembler's state carries over from one input to the next
        self.fp = None
        self.count = 0
        self.replies = {"ok": 0, "error": 0}
        self.first_error: str | None = None
        self.unlocks = 0

    def expected(self, data: bytes) -> tuple[int, int]:
        """Lines the input ends (LF, CR, CRLF once) and `?` bytes, as firmware/link.py counts."""
        lines = queries = 0
        for b in data:
            if b == 10 and self.cr:
                self.cr = False
                continue
            self.cr = b == 13
            if b in (10, 13):
                lines += 1
            elif b == 63:
                queries += 1
        return lines, queries

    def send(self, data: bytes) -> tuple[list[str], int, bool]:
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        out = []
        while True:
            raw = self.proc.stdout.readline()
            if not raw:
                err = self.proc.stderr.read().decode(errors="replace")
                said = "".join(out[-20:])
                raise AssertionError(f"the MicroPython process ended on {data!r}:\n{said}{err}")
            if raw.startswith(b"@@END "):
                _, fp, unlocked = raw.split()
                return out, int(fp), unlocked == b"1"
            assert raw.endswith(b"\n")
            out.append(raw[:-1].decode("utf-8"))

    def check(self, data: bytes) -> list[str]:
        """Send one input; check the properties; return the replies. The first failure is kept
        (hypothesis replays inputs, and a dead process would hide what killed it)."""
        if self.first_error is not None:
            raise AssertionError("earlier failure: " + self.first_error)
        try:
            return self._check(data)
        except Exception as exc:
            self.first_error = f"{exc}"[:4000]
            raise

    def _check(self, data: bytes) -> list[str]:
        lines, queries = self.expected(data)
        out, fp, _ = self.send(data)
        self.count += 1
        status = [r for r in out if r.startswith("~S ")]
        replies = [r for r in out if not r.startswith("~S ")]
        assert len(status) == queries, (data, out)
        assert len(replies) == lines, (data, out)
        any_ok = False
        for r in replies:
            m = REPLY.match(r)
            assert m, (data, r)
            body = m.group(2)
            if body.startswith("ok"):
                any_ok = True
                self.replies["ok"] += 1
                if len(body) > 2:
                    try:
                        json.loads(body[3:])  # a payload is JSON
                    except ValueError:
                        raise AssertionError(f"payload not JSON: {data!r} -> {r!r}") from None
            else:
                self.replies["error"] += 1
        for s in status:
            json.loads(s[3:])
        if self.fp is not None and not any_ok:
            assert fp == self.fp, f"settings changed by rejected input {data!r}: {replies}"
        self.fp = fp
        return replies

    def unlock(self) -> bool:
        """Unlock the pen with the test secret, unless the fuzz's wrong answers have it
        rate-limited now (the newline first ends any half line the fuzz left)."""
        ch = self.check(b"\nunlock\n")[-1]
        if not ch.startswith("ok "):
            assert ch.startswith(("error:12 ", "error:13 ")), ch
            return False
        challenge = json.loads(ch[3:])["challenge"]
        mac = hmac.new(SECRET, challenge.encode(), hashlib.sha256).hexdigest()
        (r,) = self.check(f"unlock {mac}\n".encode())
        assert r.startswith("ok "), r
        self.unlocks += 1
        return True

    def close(self):
        try:
            self.proc.stdin.write(b"\xff\xff\xff\xff")
            self.proc.stdin.flush()
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def server():
    s = FuzzServer()
    yield s
    s.close()
    assert s.proc.returncode == 0, s.proc.stderr.read()


# -- what to generate ---------------------------------------------------------------------------
COMMANDS = ["hello", "status", "help", "get", "set", "settings", "dump", "save", "defaults",
            "home", "arm", "disarm", "cartridge", "run", "stop", "depth", "clear", "faults",
            "unlock", "lock", "provision", "telemetry", "session", "calib", "move_steps",
            "service", "preset", "frobnicate"]  # fmt: skip
KEYS = ["depth", "depth_limit", "depth_step", "stroke_hz", "stroke_hz_min",
        "stroke_hz_max", "stroke_hz_step", "telemetry_hz", "cartridge_stroke_limit",
        "cartridge_warn_pct", "sleep_s", "disarm_after_s", "calib", "preset.active",
        "preset.a.depth_min", "preset.a.depth_max", "preset.a.depth_default",
        "preset.a.stroke_hz", "preset.acne_scars_cheeks.stroke_hz", "preset.A.stroke_hz",
        "preset..stroke_hz", "preset.a.b.c", "nope"]  # fmt: skip
WORDS = ["on", "off", "fetch", "new", "list", "get", "set", "summary", "last", "enter", "exit",
         "delete", "override", "none", "a", "acne_scars_cheeks", "0", "-1", "1.5", "2.50",
         "3.001", "1e3", "nan", "inf", "+1", "0x10", "1_0", "99999999999", "[0,-100,1440,3680]",
         "[0,0,1000,2500]", "[[0,0]]", "[]", "{}", "[1,2,", "null", "true"]  # fmt: skip

number = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.integers(0, 4).flatmap(
        lambda p: st.decimals(-10, 1000, allow_nan=False, allow_infinity=False, places=p)
    ).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
arg = st.one_of(st.sampled_from(KEYS), st.sampled_from(WORDS), number,
                st.text(min_size=1, max_size=12).filter(lambda s: not s.isspace()))  # fmt: skip
tag = st.one_of(st.just(""), st.integers(0, 10**10).map(lambda n: f"#{n} "), st.just("#x "))
command_line = st.builds(
    lambda t, c, a: (t + " ".join([c, *a])),
    tag, st.one_of(st.sampled_from(COMMANDS), st.text(max_size=8)), st.lists(arg, max_size=4),
)
mm = st.integers(0, 320).map(lambda n: f"{n // 100}.{n % 100:02d}")
plausible = st.one_of(
    st.builds(lambda k, v: f"set {k} {v}", st.sampled_from(KEYS[:12] + KEYS[14:18]),
              st.one_of(mm, st.integers(0, 400).map(str))),
    st.builds(lambda n: f"set preset.active {n}", st.sampled_from(["a", "none", "b"])),
    st.sampled_from(["arm", "run", "run 120", "stop", "disarm", "depth 1.00", "lock", "dump",
                     "telemetry fetch 0 3", "defaults", "cartridge new", "home", "clear"]),
)  # fmt: skip
line_input = st.lists(st.one_of(command_line, plausible, st.text(max_size=30)), min_size=1,
                      max_size=3).map(
    lambda ls: ("\n".join(ls) + "\n").encode()
)
byte_input = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(
        [b"\n", b"\r", b"\r\n", b"!", b"?", b"#1 ", b"status", b"set depth 1.00",
         b"\xff", b"\x00", b"x" * 450])), max_size=8).map(b"".join),  # fmt: skip
)


def fuzz(n):
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))  # fmt: skip



@pytest.mark.req("SP-50")
@fuzz(LINES_EXAMPLES)
@given(data=line_input)
def test_generated_command_lines(server, data):
    """SP-50: generated command lines (grammar of the real commands, keys and values, plus
    random text): one reply each, valid form, settings unchanged by every rejected line."""
    if server.count % 500 == 0:
        server.unlock()  # exercise the protected settings too, much of the time
    server.check(data)


@pytest.mark.req("SP-50")
@fuzz(BYTES_EXAMPLES)
@given(data=byte_input)
def test_generated_byte_strings(server, data):
    """SP-50: arbitrary byte strings (binary garbage, half lines, over-long lines, real-time
    bytes, CR/LF mixtures): no crash, one reply per line ended, settings unchanged unless a
    line was accepted."""
    server.check(data)


@pytest.mark.req("SP-50")
def test_fuzz_count(server):
    """SP-50: the fuzz above sent at least 10,000 inputs to the one MicroPython process, which
    is still running; print the figures."""
    out = server.check(b"\nhello\n")  # the newline ends any half line left by the fuzz
    assert out[-1].startswith("ok {") and json.loads(out[-1][3:])["protocol_version"] == 1
    print(f"fuzz inputs: {server.count}, replies ok {server.replies['ok']} "
          f"error {server.replies['error']}, unlocked {server.unlocks} times")  # fmt: skip
    assert server.count >= 10_000
    assert server.proc.poll() is None
