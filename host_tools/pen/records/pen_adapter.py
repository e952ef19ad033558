"""The one place where treatment records talk to the pen, through the host's serial link
(`pen.link.PenLink`; tests pass a fake that implements the same `request`/`call`/`close`).

Wire commands used here (docs/protocol.md; adapt them here, and only here):
  - the clinician lock (presets are protected settings): `pen.auth.unlock`, and `lock`;
  - storing and selecting a preset: the lines of `pen.presets.preset_to_settings_lines`
    (`set preset.<name>.<field> <value>` ..., then `set preset.active <name>`), each answered
    by `ok ...`; the selection loads the preset's default depth and stroke rate, and from then
    on the pen keeps the depth inside the preset's range unless overridden (and records it);
  - the last session's summary: `SESSION_SUMMARY_COMMAND`, answered by `ok <JSON>` with the
    JSON described in `pen.records.summary` (firmware/sessions.py writes it).
"""

from __future__ import annotations

import json
from typing import Any

from .. import auth
from ..errors import PenError
from ..presets import Preset, preset_to_settings_lines
from .summary import SessionSummary, parse_summary

SESSION_SUMMARY_COMMAND = "session summary last"


def _code(name: str) -> int:
    """An error code of the firmware's table (firmware/errors.py), e.g. LOCKED."""
    from ..link import firmware_module

    return getattr(firmware_module("firmware.errors"), name)


class PenAdapterError(PenError):
    """The pen refused a command or answered something unusable."""


def _request(link, line: str) -> str:
    """Send one line; return the `ok` payload, or raise PenAdapterError with what to do."""
    from ..link import LinkError

    try:
        reply = link.request(line)
    except LinkError as exc:
        raise PenAdapterError(f"cannot reach the pen: {exc} (or use --no-pen)") from exc
    if reply.ok:
        return reply.payload
    hint = ""
    if reply.code == _code("LOCKED"):
        hint = (
            " (presets are protected: give the pen's secret with --secret-file FILE or "
            "$PEN_SECRET, or unlock the pen first with `pen unlock`)"
        )
    raise PenAdapterError(f"the pen refused `{line}`: {reply.raw}{hint}")


def unlock(link, secret: bytes) -> None:
    """Answer the pen's challenge with the secret (the clinician lock)."""
    from ..link import LinkError, PenRefused

    try:
        auth.unlock(link, secret)
    except PenRefused as exc:
        hint = ""
        if exc.code == _code("AUTH_FAILED"):
            hint = ": wrong secret for this pen? (--secret-file or $PEN_SECRET)"
        raise PenAdapterError(f"the pen refused the unlock{hint}: {exc.message}") from exc
    except LinkError as exc:
        raise PenAdapterError(str(exc)) from exc


def lock(link) -> None:
    _request(link, "lock")


def apply_preset(link, preset: Preset) -> list[str]:
    """Store `preset` on the pen and make it the active one; return the pen's payloads.

    Stops at the first refusal (raising PenAdapterError), so the active preset is only changed
    once its range and default have all been accepted.
    """
    return [_request(link, line) for line in preset_to_settings_lines(preset, select=True)]


def fetch_session(link, pen_session: int | None = None) -> SessionSummary:
    """Read the pen's summary of its session `pen_session` (its own number), else its last."""
    line = SESSION_SUMMARY_COMMAND if pen_session is None else f"session get {pen_session}"
    payload = _request(link, line)
    try:
        data: Any = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise PenAdapterError(f"the pen's session summary is not JSON: {exc}") from exc
    try:
        return parse_summary(data)
    except ValueError as exc:
        raise PenAdapterError(f"the pen's session summary is not usable: {exc}") from exc


def pen_clock(link):
    """The pen's clock now (naive datetime, the frame its summaries' `start` use), or None
    when the pen does not report it."""
    from datetime import datetime

    try:
        st = json.loads(_request(link, "status"))
        return datetime.fromisoformat(st["clock"])
    except (PenAdapterError, KeyError, TypeError, ValueError):
        return None


def open_link(port: str | None):
    """Open the pen's serial link (`pen.link.open_link`). Raises PenAdapterError when no link
    can be opened, with the way out (`--no-pen`)."""
    try:
        from ..link import LinkError
        from ..link import open_link as _open
    except ImportError:
        raise PenAdapterError(
            "no serial link to the pen is available in this installation; "
            "use --no-pen to keep the records only"
        ) from None
    try:
        return _open(port)
    except LinkError as exc:  # the link reports its own failures (port, handshake, ...)
        raise PenAdapterError(f"cannot reach the pen: {exc} (or use --no-pen)") from exc


def close_link(link) -> None:
    link.close()
