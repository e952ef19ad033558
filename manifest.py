# MicroPython image for the pen with the application frozen in (bytecode in flash, not in RAM).
#
# Build from a MicroPython source tree matching the pen's (see requirements-dev.txt):
#
#     make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=<this checkout>/manifest.py
#
# and flash build-RPI_PICO/firmware.uf2 (hold BOOTSEL, copy the file). The board's own frozen
# modules (asyncio, ...) are kept. boot.py and main.py stay on the pen's filesystem (`pen deploy`
# copies them): MicroPython runs them from there, and a module on the filesystem is imported
# before a frozen one, so `pen deploy` can still replace a frozen module for development.
# Relative paths below are relative to this file.

include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 -- manifest functions

package("firmware")  # noqa: F821
package("drivers")  # noqa: F821
package("hardware")  # noqa: F821
