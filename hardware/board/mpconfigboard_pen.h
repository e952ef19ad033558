// The pen's controller board for MicroPython's rp2 port: MicroPython's own RPI_PICO board
// configuration plus this one setting. `make firmware MICROPY_DIR=...` copies the RPI_PICO board
// folder of that MicroPython tree and appends this file to its mpconfigboard.h.
//
// A 256 KiB ROMFS partition for the pen's modules (`pen deploy` writes one ROMFS image there):
// bytecode runs in place from flash, as frozen code does, and takes no heap. It is taken from
// the code area (flash 0x060000-0x0A0000); the littlefs filesystem neither moves nor shrinks.
// Nothing in the build checks that the firmware stays below 0x060000: a frozen image that grows
// past it would overlap the ROMFS (`make firmware` checks the size).
#define MICROPY_HW_ROMFS_BYTES (256 * 1024)
