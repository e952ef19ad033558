"""Timestamps of the records: ISO 8601 text with the local UTC offset, compared as aware times."""

from __future__ import annotations

from datetime import date, datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def now_iso() -> str:
    return to_iso(now())


def to_iso(moment: datetime) -> str:
    return aware(moment).isoformat(timespec="seconds")


def aware(moment: datetime) -> datetime:
    """A naive time is taken as local time."""
    return moment.astimezone() if moment.tzinfo is None else moment


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time ('Z' accepted); a bare date means 00:00 local time.

    Raises ValueError with a readable message.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a date/time: {text!r}")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError:
            raise ValueError(
                f"not an ISO 8601 date/time: {text!r} (e.g. 2025-03-01 or 2025-03-01T14:30)"
            ) from None
    return aware(moment)


def day(text: str) -> str:
    """The calendar date (YYYY-MM-DD) of a stored timestamp, in its own offset."""
    return parse_iso(text).date().isoformat()
