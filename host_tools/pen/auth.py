"""The clinician lock's challenge-response (docs/protocol.md): `unlock` -> a challenge (hex
text); `unlock HMAC-SHA256(secret, challenge)` -> unlocked until its timeout, `lock`, or a
reboot. The secret is provisioned on the pen: 64 hex digits (32 bytes)."""

from __future__ import annotations

import hashlib
import hmac
import re

from .link import LinkError

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def parse_secret(text: str | bytes) -> bytes:
    """64 hex digits -> 32 bytes; a 32-byte raw value is taken as it is. ValueError else."""
    if isinstance(text, str):
        text = text.encode()
    stripped = text.strip()
    try:
        s = stripped.decode("ascii")
    except UnicodeDecodeError:
        s = None
    if s is not None and _HEX64.fullmatch(s):
        return bytes.fromhex(s)
    if len(stripped) == 32:
        return stripped
    raise ValueError("the secret must be 64 hex digits")


def response(secret: bytes, challenge: str) -> str:
    return hmac.new(secret, challenge.encode("ascii"), hashlib.sha256).hexdigest()


def unlock(link, secret: bytes) -> dict:
    """Run the challenge-response on an open link (PenLink); return the pen's answer
    (`unlocked`, `timeout_s`). A refusal raises pen.link.PenRefused (code AUTH_FAILED: the
    wrong secret)."""
    got = link.call("unlock")
    challenge = got.get("challenge") if isinstance(got, dict) else None
    if not isinstance(challenge, str) or not challenge:
        raise LinkError(f"the pen did not send a challenge: {got!r}")
    result = link.call(f"unlock {response(secret, challenge)}")
    return result if isinstance(result, dict) else {"unlocked": True}
