"""The chip tier: the pen's own files on the real MicroPython rp2 firmware inside the RP2040
emulator rp2040py, with a host-side plant that sees only the emulated pins.

- `chip.image`: where the base image is (``../shared/rp2/`` beside the checkout, or
  ``PEN_RP2_IMAGE``), its checksum, and why it is missing when it is.
- `chip.emu`: `ChipPen`, one emulated pen: flash = the base image + the ROMFS image that
  `pen deploy` builds + a littlefs holding boot.py/main.py; the USB CDC serial; the emulator's
  three workarounds; the IRQ-time sampler; run-until on emulated time.
- `chip.plant`: the virtual pen's plant models (sim/plant_motor.py, sim/plant_depth.py) wired to
  the emulated pins.
"""
