"""What the pen sends, line by line (docs/protocol.md): replies `[#N ]ok [PAYLOAD]` /
`[#N ]error:N MESSAGE`, unsolicited `~T`/`~E`/`~S` lines, and anything else (noise)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

# Commands that change nothing on the pen: safe to send again when a reconnect leaves the first
# attempt's outcome unknown.
READ_ONLY = (
    "hello", "status", "help", "get", "settings", "dump", "faults", "telemetry fetch",
    "session list", "session get", "session summary", "calib get",
)  # fmt: skip


def is_read_only(line: str) -> bool:
    words = line.split()
    return any(words[: len(c.split())] == c.split() for c in READ_ONLY)


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
        num = head[6:] if head.startswith("error:") else ""
        code = int(num) if num.isdigit() else 0
        return Reply(False, msg.strip(), code, text)
    return None


@dataclass
class Unsolicited:
    kind: str  # 'T' telemetry, 'E' event, 'S' status
    data: Any
    raw: str
    t_host: float = field(default_factory=time.time)


def split_tag(text: str) -> tuple[int | None, str]:
    """`#N rest` -> (N, rest); an untagged line -> (None, line)."""
    if text.startswith("#"):
        num, _, rest = text[1:].partition(" ")
        if num.isdigit():
            return int(num), rest.strip()
    return None, text


@dataclass
class Line:
    """One received line, classified: exactly one of reply / unsolicited / noise is set."""

    tag: int | None = None
    reply: Reply | None = None
    unsolicited: Unsolicited | None = None
    noise: str | None = None


def classify(text: str) -> Line:
    if text.startswith("~"):
        kind, _, payload = text[1:].partition(" ")
        try:
            data = json.loads(payload) if payload else None
        except json.JSONDecodeError:
            return Line(noise=text)
        return Line(unsolicited=Unsolicited(kind, data, text))
    tag, rest = split_tag(text)
    reply = parse_reply(rest)
    if reply is None:
        return Line(noise=text if text.strip() else None)
    return Line(tag=tag, reply=reply)
