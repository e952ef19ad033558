"""The pen's base MicroPython image for the chip tier (MicroPython v1.28.0, RPI_PICO, with a
256 KiB ROMFS partition; how to build it: README "Flashing a real pen").

Found at ``$PEN_RP2_IMAGE`` if set, else ``../shared/rp2/<IMAGE_NAME>`` relative to the
checkout's root (CI keeps ``../shared`` beside its clone)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_NAME = "micropython-v1.28.0-rpi-pico-romfs256k.uf2"
IMAGE_SHA256 = "235acf5b08f1b2b56778cc2abbaab2d4e9c147e0e1c43032de011cac250b38bb"
ENV = "PEN_RP2_IMAGE"

# Flash layout of the image (2 MiB): firmware, then ROMFS, then littlefs ("/").
ROMFS_OFFSET = 0x060000
ROMFS_SIZE = 256 * 1024
FS_OFFSET = 0x0A0000
FS_BLOCK_SIZE = 4096
FS_BLOCK_COUNT = (0x200000 - FS_OFFSET) // FS_BLOCK_SIZE  # 352 blocks, 1408 KiB

HOW_TO_GET = (
    f"put {IMAGE_NAME} (SHA-256 {IMAGE_SHA256[:16]}...) in ../shared/rp2/ beside the checkout, "
    f"or set {ENV}=/path/to/it; build it with `make firmware MICROPY_DIR=...` (README, "
    "'Flashing a real pen')"
)


def image_path() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "rp2" / IMAGE_NAME


def missing_reason() -> str | None:
    """None when the image is there and its checksum matches; else why not, and how to get it."""
    p = image_path()
    if not p.is_file():
        return f"the RP2040 base image is absent ({p}): {HOW_TO_GET}"
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != IMAGE_SHA256:
        return f"{p} is not the pen's base image (SHA-256 {digest[:16]}...): {HOW_TO_GET}"
    try:
        import rp2040py  # noqa: F401
    except ImportError:
        return "the RP2040 emulator is not installed (pip install -r requirements-dev.txt)"
    return None
