"""`pen get`, `pen set`, `pen settings [save FILE | load FILE]`.

The schema is the firmware's own (`firmware/settings.py`, imported here through a shim for
`micropython.const`): the host validates a value, or a whole settings file, with the same code
the pen runs, before anything is sent. A file is applied in an order that keeps every
cross-setting rule true at each step (found by applying it to a copy of the pen's settings on
the host first), so the pen never refuses half-way for a reason the host could have seen.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import CliError
from ..link import PenRefused, firmware_module, session
from .unlock import add_secret_option, load_secret, unlock

FILE_FORMAT = "pen-settings/1"
CALIB_KEY = "calib"


def schema_module():
    """The firmware's schema module (firmware/schema.py; earlier firmware: firmware/settings.py)."""
    mod = firmware_module("firmware.schema") or firmware_module("firmware.settings")
    if mod is None or not hasattr(mod, "SCHEMA"):
        raise CliError("the settings schema (firmware/schema.py) is not in this installation")
    return mod


def settings_class():
    mod = firmware_module("firmware.settings")
    if mod is None or not hasattr(mod, "Settings"):
        raise CliError("firmware/settings.py is not in this installation")
    return mod.Settings


def _refusal(exc) -> str:
    return getattr(exc, "message", None) or (exc.args[1] if len(exc.args) > 1 else str(exc))


def value_text(mod, key: str, value: Any) -> str:
    """A value (from JSON or the command line) -> the text `set KEY VALUE` takes."""
    e = mod.entry(key)
    if e is None:
        raise CliError(f"unknown setting {key!r} (see pen settings)")
    if isinstance(value, str):
        return value.strip()
    if e.type == "calib":
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool) or value is None:
        raise CliError(f"{key}: {value!r} is not a valid value")
    return str(value)


def check_value(mod, key: str, text: str):
    """Parse and bound-check one value with the firmware's own code; CliError on failure."""
    e = mod.entry(key)
    if e is None:
        raise CliError(f"unknown setting {key!r} (see pen settings)")
    try:
        return mod._parse_value(e, text)
    except Exception as exc:  # firmware.errors.Refused
        raise CliError(f"{key} {text}: {_refusal(exc)}") from None


def mirror(mod, current: dict) -> Any:
    """A host-side copy of the pen's settings (RAM only), built from its `settings` reply."""
    s = settings_class()(None)
    plan(mod, s, current, strict=False)
    return s


def stored(mod, s, key: str):
    """The internal value `s` holds for `key` (None when it holds none)."""
    try:
        text = s.text(key)
    except Exception:  # noqa: BLE001 -- Refused: no such preset yet
        return None
    e = mod.entry(key)
    if e.type == "preset":
        return json.loads(text)
    try:
        return mod._parse_value(e, text)
    except Exception:  # noqa: BLE001
        return None


def _differences(mod, s, target: dict) -> dict[str, str]:
    out = {}
    for k, v in target.items():
        text = value_text(mod, k, v)
        if check_value(mod, k, text) != stored(mod, s, k):
            out[k] = text
    return out


def plan(mod, s, target: dict, strict: bool = True) -> list[tuple[str, str]]:
    """Apply `target` to Settings `s` (a copy) key by key, in an order that every rule allows;
    return the (key, text) steps. `preset.active` goes last (selecting a preset loads its
    default depth and rate: what then still differs is set after it). CliError if the target
    cannot be reached."""
    steps: list[tuple[str, str]] = []
    errors: dict[str, str] = {}
    for _round in range(3):
        pending = _differences(mod, s, target)
        if not pending:
            return steps
        progress = True
        while pending and progress:
            progress = False
            for k in sorted(pending, key=lambda k: (k == "preset.active", k)):
                if k == "preset.active" and len(pending) > 1:
                    continue
                try:
                    s.set(k, pending[k], unlocked=True, running=False)
                except Exception as exc:  # firmware.errors.Refused
                    errors[k] = _refusal(exc)
                    continue
                steps.append((k, pending.pop(k)))
                progress = True
        if pending:
            break
    pending = _differences(mod, s, target)
    if pending and strict:
        why = "; ".join(f"{k} {pending[k]}: {errors.get(k, 'changed again by another setting')}"
                        for k in sorted(pending))  # fmt: skip
        raise CliError(f"the settings cannot be applied (nothing was sent): {why}")
    return steps


def protected(mod, key: str) -> bool:
    e = mod.entry(key)
    return bool(e and e.flags & mod.PROTECTED)


def stopped_only(mod, key: str) -> bool:
    e = mod.entry(key)
    return bool(e and e.flags & mod.STOPPED)


# -- commands ------------------------------------------------------------------------------------
def register(subparsers) -> None:
    g = subparsers.add_parser(
        "get", help="read one setting", description="Prints the setting's value as stored."
    )
    g.add_argument("key", help="setting name, e.g. depth (see pen settings)")
    g.add_argument("--json", action="store_true", help='print {"KEY": value}')
    g.set_defaults(func=cmd_get)

    s = subparsers.add_parser(
        "set",
        help="change one setting (validated against the schema first)",
        description="Checks the value against the settings schema (type, unit, range) before "
        "sending it. Protected settings need `pen unlock` first (or --secret-file here).",
    )
    s.add_argument("key", help="setting name")
    s.add_argument("value", help="new value in the schema's unit (mm for depths, Hz, ...)")
    add_secret_option(s)
    s.add_argument("--json", action="store_true", help='print {"KEY": value} as stored')
    s.set_defaults(func=cmd_set)

    p = subparsers.add_parser(
        "settings",
        help="list all settings; save them to a file; load a file",
        description="Without an action: every setting with its unit, range and flags "
        "(P protected, S only while the needle is stopped).",
    )
    p.add_argument("--json", action="store_true", help="print the settings as one JSON object")
    p.set_defaults(func=cmd_settings)
    sub = p.add_subparsers(dest="settings_action", metavar="ACTION")
    sub.required = False
    sv = sub.add_parser("save", help="save the pen's settings to a JSON file")
    sv.add_argument("file", help="output file")
    sv.add_argument("--json", action="store_true", help="print a JSON result line")
    sv.set_defaults(func=cmd_save)
    ld = sub.add_parser(
        "load",
        help="apply a settings file (validated before anything is sent)",
        description="Validates every value and the cross-setting rules with the firmware's "
        "schema code, then sends only what differs, in an order the pen accepts. The depth "
        "calibration is left out unless --with-calibration is given and the file was saved "
        "from this same pen.",
    )
    ld.add_argument("file", help="a file written by pen settings save (or a JSON object)")
    ld.add_argument("--dry-run", action="store_true", help="validate and show; send nothing")
    ld.add_argument(
        "--with-calibration",
        action="store_true",
        help="also load the depth calibration (only from this pen's own file)",
    )
    add_secret_option(ld)
    ld.add_argument("--json", action="store_true", help="print the steps as JSON")
    ld.set_defaults(func=cmd_load)


def _print_value(key, value, as_json):
    print(json.dumps({key: value}) if as_json else (json.dumps(value)
          if not isinstance(value, str) else value))  # fmt: skip


def cmd_get(args) -> int:
    mod = schema_module()
    if mod.entry(args.key) is None:
        raise CliError(f"unknown setting {args.key!r} (see pen settings)")
    with session(args) as link:
        try:
            got = link.call(f"get {args.key}")
        except PenRefused as exc:
            raise CliError(f"get {args.key}: {exc.message}") from exc
    value = got.get(args.key) if isinstance(got, dict) else got
    _print_value(args.key, value, args.json)
    return 0


def _unlock_if(link, args) -> None:
    secret = load_secret(args)
    if secret is not None:
        try:
            unlock(link, secret)
        except PenRefused as exc:
            raise CliError(f"unlock refused: {exc.message}") from exc


def cmd_set(args) -> int:
    mod = schema_module()
    text = value_text(mod, args.key, args.value)
    check_value(mod, args.key, text)
    with session(args) as link:
        if protected(mod, args.key):
            _unlock_if(link, args)
        try:
            got = link.call(f"set {args.key} {text}")
        except PenRefused as exc:
            hint = " (unlock first: pen unlock)" if exc.code == 11 else ""
            raise CliError(f"set {args.key} {text}: {exc.message}{hint}") from exc
    value = got.get(args.key) if isinstance(got, dict) else got
    _print_value(args.key, value, args.json)
    return 0


def _fmt(mod, e, v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return json.dumps(v) if not isinstance(v, str) else v


def cmd_settings(args) -> int:
    mod = schema_module()
    with session(args) as link:
        values = link.call("settings")
    if args.json:
        print(json.dumps(values))
        return 0
    print(f"{'setting':<30} {'value':>14}  {'unit':<8} {'range':<16} flags")
    for k, v in values.items():
        e = mod.entry(k)
        if e is None:
            print(f"{k:<30} {_fmt(mod, e, v):>14}  (not in this host's schema)")
            continue
        rng = mod._range_text(e) if e.type in ("mm", "int") else ""
        flags = ("P" if e.flags & mod.PROTECTED else "") + ("S" if e.flags & mod.STOPPED else "")
        val = _fmt(mod, e, v)
        if len(val) > 14:
            val = val[:11] + "..."
        print(f"{k:<30} {val:>14}  {e.unit[:8]:<8} {rng:<16} {flags}")
    return 0


def cmd_save(args) -> int:
    mod = schema_module()
    with session(args) as link:
        values = link.call("settings")
        hello = dict(link.hello)
    doc = {
        "format": FILE_FORMAT,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pen_serial": hello.get("serial"),
        "firmware_version": hello.get("firmware_version"),
        "schema_hash": hello.get("schema_hash") or mod.schema_hash(),
        "settings": values,
    }
    try:
        Path(args.file).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc}") from exc
    if args.json:
        print(json.dumps({"file": args.file, "settings": len(values)}))
    else:
        print(f"{len(values)} settings saved to {args.file}")
    return 0


def _read_file(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path}: expected a JSON object of settings")
    return doc


def cmd_load(args) -> int:
    mod = schema_module()
    doc = _read_file(args.file)
    target = doc.get("settings") if doc.get("format", "").startswith("pen-settings") else doc
    if not isinstance(target, dict):
        raise CliError(f"{args.file}: no settings object in it")
    target = dict(target)
    notes = []
    if doc.get("schema_hash") and doc["schema_hash"] != mod.schema_hash():
        notes.append("the file was saved with another settings schema; validated against this one")
    unknown = [k for k in target if mod.entry(k) is None]
    if unknown:
        raise CliError(f"{args.file}: unknown setting(s) {', '.join(unknown)} (nothing was sent)")
    for k, v in target.items():
        check_value(mod, k, value_text(mod, k, v))  # types and ranges, before connecting
    with session(args) as link:
        if CALIB_KEY in target:
            same_pen = doc.get("pen_serial") and doc.get("pen_serial") == link.hello.get("serial")
            if not args.with_calibration:
                target.pop(CALIB_KEY)
                notes.append("the depth calibration was left out (--with-calibration to load it)")
            elif not same_pen:
                raise CliError(
                    "the file's depth calibration belongs to another pen (serial "
                    f"{doc.get('pen_serial')}, this pen {link.hello.get('serial')}): a calibration "
                    "is only valid for the pen it was measured on (nothing was sent)"
                )
        current = link.call("settings")
        copy = mirror(mod, current)
        steps = plan(mod, copy, target)
        result = {"file": args.file, "steps": [f"set {k} {t}" for k, t in steps],
                  "notes": notes, "sent": 0}  # fmt: skip
        if steps and not args.dry_run:
            st = link.call("status")
            if isinstance(st, dict) and st.get("state") in ("RUNNING", "STOPPING"):
                if any(stopped_only(mod, k) for k, _ in steps):
                    raise CliError("the needle is running: stop it first (nothing was sent)")
            if any(protected(mod, k) for k, _ in steps):
                _unlock_if(link, args)
                _check_unlocked(link, mod, steps, current)
            for k, t in steps:
                try:
                    link.call(f"set {k} {t}")
                except PenRefused as exc:
                    done = result["sent"]
                    raise CliError(
                        f"the pen refused `set {k} {t}`: {exc.message} after {done} of "
                        f"{len(steps)} changes were applied"
                    ) from exc
                result["sent"] += 1
    for n in notes:
        print(f"pen: note: {n}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    verb = "would send" if args.dry_run else "sent"
    for line in result["steps"]:
        print(f"  {verb}: {line}")
    print(f"{len(steps)} change(s) {'to apply' if args.dry_run else 'applied'}; "
          "the rest already matched")  # fmt: skip
    return 0


def _check_unlocked(link, mod, steps, current) -> None:
    """Before the first change: is the pen unlocked? From its status when it says; else
    re-setting a protected key to its current value changes nothing, and answers `locked`."""
    st = link.call("status")
    if isinstance(st, dict) and "unlocked" in st:
        if not st["unlocked"]:
            raise CliError(
                "protected settings would change and the pen is locked: run pen unlock, or "
                "give --secret-file (nothing was sent)"
            )
        return
    for k, _ in steps:
        if protected(mod, k) and k in current:
            text = value_text(mod, k, current[k])
            try:
                link.call(f"set {k} {text}")
            except PenRefused as exc:
                if exc.code == 11:
                    raise CliError(
                        f"{k} is protected and the pen is locked: run pen unlock, or give "
                        "--secret-file (nothing was sent)"
                    ) from exc
                raise CliError(f"the pen refused `set {k} {text}`: {exc.message}") from exc
            return
