"""`pen unlock`: the clinician lock's challenge-response (HMAC-SHA256 of the pen's challenge).

The secret: `--secret-file FILE` or $PEN_SECRET, as provisioned on the pen: 64 hex digits
(32 bytes). The pen sends a challenge (hex text); the answer is HMAC-SHA256(secret, the
challenge's text) in hex. The unlock lasts until its timeout, `pen lock`-style `lock`, or a
reboot of the pen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from pathlib import Path

from ..cli import CliError

SECRET_ENV = "PEN_SECRET"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def add_secret_option(parser) -> None:
    parser.add_argument(
        "--secret-file",
        metavar="FILE",
        help=f"the pen's secret: 64 hex digits, as provisioned (default: ${SECRET_ENV})",
    )


def parse_secret(text: str | bytes) -> bytes:
    """64 hex digits -> 32 bytes; a 32-byte raw value is taken as it is."""
    if isinstance(text, bytes):
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
    return parse_secret(text.encode())


def load_secret(args) -> bytes | None:
    """The secret from --secret-file or $PEN_SECRET; None when neither is given."""
    path = getattr(args, "secret_file", None)
    try:
        if path:
            return parse_secret(Path(path).read_bytes())
        if os.environ.get(SECRET_ENV):
            return parse_secret(os.environ[SECRET_ENV])
    except OSError as exc:
        raise CliError(f"cannot read the secret file {path}: {exc}") from exc
    except ValueError as exc:
        src = path or f"${SECRET_ENV}"
        raise CliError(f"{src}: {exc}") from exc
    return None


def response(secret: bytes, challenge: str) -> str:
    return hmac.new(secret, challenge.encode("ascii"), hashlib.sha256).hexdigest()


def unlock(link, secret: bytes) -> dict:
    """Run the challenge-response on an open link; return the pen's answer (`unlocked`,
    `timeout_s`). Raises pen.link.PenRefused when the pen refuses."""
    got = link.call("unlock")
    challenge = got.get("challenge") if isinstance(got, dict) else None
    if not challenge:
        raise CliError(f"the pen did not send a challenge: {got!r}")
    result = link.call(f"unlock {response(secret, challenge)}")
    return result if isinstance(result, dict) else {"unlocked": True}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "unlock",
        help="unlock the protected settings (clinician lock)",
        description="Answers the pen's challenge with HMAC-SHA256(secret, challenge). The secret "
        f"comes from --secret-file FILE or ${SECRET_ENV} (64 hex digits). Protected settings "
        "(depth limit, stroke-rate range, calibration, presets) can then be changed until the "
        "unlock times out, `pen lock`, or the pen reboots.",
    )
    add_secret_option(p)
    p.add_argument("--json", action="store_true", help="print the pen's answer as JSON")
    p.set_defaults(func=cmd_unlock)

    q = subparsers.add_parser("lock", help="re-engage the clinician lock now",
                              description="Ends an unlock at once.")  # fmt: skip
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=cmd_lock)


def cmd_unlock(args) -> int:
    from ..link import PenRefused, session

    secret = load_secret(args)
    if secret is None:
        raise CliError(f"no secret: give --secret-file FILE or set ${SECRET_ENV}")
    with session(args) as link:
        try:
            res = unlock(link, secret)
        except PenRefused as exc:
            hint = ""
            if exc.code == 12:
                hint = " (wrong secret for this pen?)"
            raise CliError(f"unlock refused: {exc.message}{hint}") from exc
    if args.json:
        print(json.dumps(res))
    else:
        t = res.get("timeout_s")
        print("unlocked" + (f" for {t} s" if t else ""))
    return 0


def cmd_lock(args) -> int:
    from ..link import session

    with session(args) as link:
        link.call("lock")
    print(json.dumps({"locked": True}) if args.json else "locked")
    return 0
