"""The one place where treatment records talk to the pen.

Everything goes through a *link*: any object with `command(line: str) -> str` that sends one
protocol line and returns the pen's one-line reply (`ok ...` or `error:N message`). The serial
link of the `pen` tools provides it; tests pass a fake.

Wire commands used here (docs/protocol.md; adapt them here, and only here):
  - the clinician lock (presets are protected settings): `unlock` -> `ok {"challenge": HEX}`,
    `unlock HMAC-SHA256(secret, challenge)` -> `ok {"unlocked": true, ...}`, and `lock`;
  - storing and selecting a preset: the lines of `pen.presets.preset_to_settings_lines`
    (`set preset.<name>.<field> <value>` ..., then `set preset.active <name>`), each answered
    by `ok ...`; the selection loads the preset's default depth and stroke rate, and from then
    on the pen keeps the depth inside the preset's range unless overridden (and records it);
  - the last session's summary: `SESSION_SUMMARY_COMMAND`, answered by `ok <JSON>` with the
    JSON described in `pen.records.summary` (firmware/sessions.py writes it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Protocol

from ..presets import Preset, preset_to_settings_lines
from .summary import SessionSummary, parse_summary

SESSION_SUMMARY_COMMAND = "session summary last"


class Link(Protocol):
    def command(self, line: str) -> str: ...


class PenAdapterError(RuntimeError):
    """The pen refused a command or answered something unreadable."""


def _ok_payload(line: str, reply: Any) -> str:
    if not isinstance(reply, str):
        raise PenAdapterError(f"no reply from the pen to `{line}`")
    reply = reply.strip()
    if reply == "ok" or reply.startswith("ok "):
        return reply[3:].strip()
    if reply.startswith("error"):
        hint = ""
        if "lock" in reply.lower():
            hint = (
                " (presets are protected: give the pen's secret with --secret-file FILE or "
                "$PEN_SECRET, or unlock the pen first with `pen unlock`)"
            )
        raise PenAdapterError(f"the pen refused `{line}`: {reply}{hint}")
    raise PenAdapterError(f"unexpected reply to `{line}`: {reply!r}")


def _json_payload(line: str, reply: Any) -> Any:
    payload = _ok_payload(line, reply)
    try:
        return json.loads(payload) if payload else None
    except json.JSONDecodeError as exc:
        raise PenAdapterError(f"unexpected reply to `{line}`: {reply!r}") from exc


def unlock(link: Link, secret: bytes) -> None:
    """Answer the pen's challenge with HMAC-SHA256(secret, challenge) (the clinician lock)."""
    got = _json_payload("unlock", link.command("unlock"))
    challenge = got.get("challenge") if isinstance(got, dict) else None
    if not isinstance(challenge, str) or not challenge:
        raise PenAdapterError(f"the pen sent no challenge: {got!r}")
    answer = hmac.new(secret, challenge.encode("ascii"), hashlib.sha256).hexdigest()
    reply = link.command(f"unlock {answer}")
    if isinstance(reply, str) and reply.startswith("error:12"):
        raise PenAdapterError(
            "the pen refused the unlock: wrong secret for this pen? (--secret-file or $PEN_SECRET)"
        )
    _ok_payload("unlock RESPONSE", reply)


def lock(link: Link) -> None:
    _ok_payload("lock", link.command("lock"))


def apply_preset(link: Link, preset: Preset) -> list[str]:
    """Store `preset` on the pen and make it the active one; return the pen's replies.

    Stops at the first refusal (raising PenAdapterError), so the active preset is only changed
    once its range and default have all been accepted.
    """
    replies = []
    for line in preset_to_settings_lines(preset, select=True):
        reply = link.command(line)
        _ok_payload(line, reply)
        replies.append(reply)
    return replies


def fetch_session(link: Link) -> SessionSummary:
    """Read the pen's summary of its last session."""
    payload = _ok_payload(SESSION_SUMMARY_COMMAND, link.command(SESSION_SUMMARY_COMMAND))
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise PenAdapterError(f"the pen's session summary is not JSON: {exc}") from exc
    try:
        return parse_summary(data)
    except ValueError as exc:
        raise PenAdapterError(f"the pen's session summary is not usable: {exc}") from exc


def open_link(port: str | None) -> Link:
    """Open the pen's serial link (the `pen.link` module of the host tools).

    Raises PenAdapterError when no link can be opened, with the way out (`--no-pen`).
    """
    try:
        from .. import link as link_module  # type: ignore[attr-defined]
    except ImportError:
        raise PenAdapterError(
            "no serial link to the pen is available in this installation; "
            "use --no-pen to keep the records only"
        ) from None
    opener = getattr(link_module, "open_link", None) or getattr(link_module, "connect", None)
    if opener is None:
        raise PenAdapterError("pen.link has no open_link(port); use --no-pen")
    try:
        return opener(port)
    except Exception as exc:  # the link reports its own failures (port, handshake, ...)
        raise PenAdapterError(f"cannot reach the pen: {exc} (or use --no-pen)") from exc


def close_link(link: Any) -> None:
    close = getattr(link, "close", None)
    if callable(close):
        close()
