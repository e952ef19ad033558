"""The handshake: what the host tools expect of the pen (from the firmware's own modules), and
how its `hello` answer is checked.

Tags: every command carries `#N ` and the pen echoes it. Firmware from before tags answers
`#N hello` with an error and a plain `hello` with `ok {...}`; the handshake sends both and
learns from which one is answered whether to speak with tags (see `HELLO_PROBE`)."""

from __future__ import annotations

from dataclasses import dataclass

from .firmware_import import firmware_module
from .replies import Reply


def hello_probe(tag: int) -> bytes:
    """A newline (ends any half line the pen holds: it earns an untagged error), `#N hello`, and
    a plain `hello` for firmware that does not echo tags."""
    return f"\n#{tag} hello\nhello\n".encode()


def answers_probe(tag: int, rtag: int | None, reply: Reply) -> bool | None:
    """Whether a reply answers the probe of `hello_probe(tag)`: True (tagged: the pen echoes
    tags), False (an untagged hello: the pen does not), None (not the answer)."""
    if rtag == tag:
        return True
    if rtag is None and reply.ok:
        value = reply.value()
        if isinstance(value, dict) and "protocol_version" in value:
            return False
    return None


def _schema_hash_of(mod) -> str | None:
    return None if mod is None else mod.schema_hash()


@dataclass
class Expectation:
    """What the host tools expect of the pen at the handshake (None = not checked)."""

    protocol_version: int | None
    schema_hash: str | None
    firmware_version: str | None = None

    @classmethod
    def from_checkout(cls) -> Expectation:
        version = firmware_module("firmware.version")
        schema = firmware_module("firmware.schema")
        return cls(
            protocol_version=None if version is None else version.PROTOCOL_VERSION,
            schema_hash=_schema_hash_of(schema),
            firmware_version=None if version is None else version.FIRMWARE_VERSION,
        )


def check_hello(hello: dict, expect: Expectation) -> str | None:
    """None when the pen's handshake matches; else one message saying what to do."""
    pv = hello.get("protocol_version")
    if expect.protocol_version is not None and pv != expect.protocol_version:
        newer = isinstance(pv, int) and pv > expect.protocol_version
        todo = (
            "update these host tools to the pen's version"
            if newer
            else "update the pen's firmware with `pen deploy`"
        )
        return (
            f"protocol version mismatch: the pen (firmware {hello.get('firmware_version', '?')}) "
            f"speaks protocol {pv}, these host tools speak {expect.protocol_version}: {todo}"
        )
    sh = hello.get("schema_hash")
    if expect.schema_hash is not None and sh != expect.schema_hash:
        if sh is None:
            what = "the pen's firmware reports no settings schema"
        else:
            what = (
                f"the pen's settings schema ({str(sh)[:12]}) differs from the one these host "
                f"tools know ({expect.schema_hash[:12]})"
            )
        return (
            f"settings schema mismatch: {what}: deploy this firmware with `pen deploy`, or use "
            f"the host tools that match firmware {hello.get('firmware_version', '?')}"
        )
    return None
