"""`pen unlock`: the clinician lock's challenge-response (HMAC-SHA256 of the pen's challenge).

The secret: `--secret-file FILE` or $PEN_SECRET, as provisioned on the pen: 64 hex digits
(32 bytes). The pen sends a challenge (hex text); the answer is HMAC-SHA256(secret, the
challenge's text) in hex. The unlock lasts until its timeout, `pen lock`-style `lock`, or a
reboot of the pen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..auth import parse_secret, response, unlock
from ..errors import CliError

__all__ = ["SECRET_ENV", "add_secret_option", "load_secret", "parse_secret", "register",
           "response", "unlock"]  # fmt: skip
SECRET_ENV = "PEN_SECRET"


def add_secret_option(parser) -> None:
    parser.add_argument(
        "--secret-file",
        metavar="FILE",
        help=f"the pen's secret: 64 hex digits, as provisioned (default: ${SECRET_ENV})",
    )


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
