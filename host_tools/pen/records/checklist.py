"""The contraindication checklist: answers given on the command line or typed at a prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_YES = {"yes", "y", "true", "1", "positive"}
_NO = {"no", "n", "false", "0", "negative"}


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    question: str
    builtin: bool


def parse_answer(text: str) -> bool:
    """'yes'/'no' (and y/n, true/false, 1/0) -> True/False; ValueError otherwise."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"answer {text!r} is not yes or no")


def parse_answers(text: str | None) -> dict[str, bool]:
    """Parse `key=yes,key2=no` (as given to --answers)."""
    answers: dict[str, bool] = {}
    if not text:
        return answers
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{part!r}: expected key=yes or key=no")
        if key in answers:
            raise ValueError(f"{key} is answered twice")
        try:
            answers[key] = parse_answer(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return answers
