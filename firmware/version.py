"""Versions the host checks at the handshake."""

FIRMWARE_VERSION = "0.1.0"
PROTOCOL_VERSION = 1
