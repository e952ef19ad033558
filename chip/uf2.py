"""firmware.bin -> firmware.uf2 (the UF2 format: 256-byte payloads in 512-byte blocks, flash
address 0x10000000, the RP2040's family id 0xe48bff56), for a build without picotool.

    python -m chip.uf2 firmware.bin firmware.uf2 [--max-bytes N]
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

FLASH_BASE = 0x10000000
FAMILY_RP2040 = 0xE48BFF56
_FLAG_FAMILY = 0x00002000


def bin_to_uf2(data: bytes, base: int = FLASH_BASE) -> bytes:
    blocks = [data[i:i + 256] for i in range(0, len(data), 256)]
    out = bytearray()
    for n, payload in enumerate(blocks):
        head = struct.pack("<8I", 0x0A324655, 0x9E5D5157, _FLAG_FAMILY, base + 256 * n, 256, n,
                           len(blocks), FAMILY_RP2040)  # fmt: skip
        out += head + payload.ljust(476, b"\0") + struct.pack("<I", 0x0AB16F30)
    return bytes(out)


def main(argv: list[str]) -> int:
    src, dst = Path(argv[0]), Path(argv[1])
    data = src.read_bytes()
    if "--max-bytes" in argv:
        limit = int(argv[argv.index("--max-bytes") + 1], 0)
        if len(data) > limit:
            print(f"{src}: {len(data)} bytes overlaps the ROMFS partition at {limit:#x}",
                  file=sys.stderr)  # fmt: skip
            return 1
    dst.write_bytes(bin_to_uf2(data))
    print(f"{dst}: {len(data)} bytes of firmware")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
