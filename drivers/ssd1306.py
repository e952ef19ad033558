"""SSD1306 OLED controller over I2C (128x32 on the pen), drawn through framebuf.

The object is a framebuf.FrameBuffer (MONO_VLSB: one byte = 8 vertical pixels of a page, the
controller's own memory layout), so `text()`, `fill()`, `rect()` draw into RAM and `show()`
sends the whole buffer in one I2C transfer in horizontal addressing mode.

I2C framing: every transfer starts with a control byte, 0x00 = command bytes follow,
0x40 = display data follow (datasheet section 8.1.5). The buffer goes out with `writevto`
(control byte + buffer without copying them into one allocation).
"""

import framebuf
from micropython import const

_MEM_MODE = const(0x20)
_COL_ADDR = const(0x21)
_PAGE_ADDR = const(0x22)
_START_LINE = const(0x40)
_CONTRAST = const(0x81)
_CHARGE_PUMP = const(0x8D)
_SEG_REMAP = const(0xA0)
_ENTIRE_ON = const(0xA4)
_NORM_INV = const(0xA6)
_MUX_RATIO = const(0xA8)
_DISP_OFF = const(0xAE)
_DISP_ON = const(0xAF)
_COM_DIR = const(0xC0)
_DISP_OFFSET = const(0xD3)
_CLK_DIV = const(0xD5)
_PRECHARGE = const(0xD9)
_COM_PINS = const(0xDA)
_VCOM_DESEL = const(0xDB)


class SSD1306(framebuf.FrameBuffer):
    def __init__(self, i2c, addr=0x3C, width=128, height=32):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        self._cmd1 = bytearray(2)  # control byte 0x00 + one command: no allocation per cmd
        self._data = b"\x40"
        self.init_display()

    def _cmd(self, c):
        self._cmd1[1] = c
        self.i2c.writeto(self.addr, self._cmd1)

    def init_display(self):
        for c in (
            _DISP_OFF,
            _MEM_MODE, 0x00,  # horizontal addressing: show() streams the buffer in order
            _START_LINE | 0,
            _SEG_REMAP | 0x01,  # column 127 -> SEG0 (panel mounted this way)
            _MUX_RATIO, self.height - 1,
            _COM_DIR | 0x08,  # scan COM[N-1] -> COM0
            _DISP_OFFSET, 0x00,
            _COM_PINS, 0x02 if self.height == 32 else 0x12,
            _CLK_DIV, 0x80,
            _PRECHARGE, 0xF1,  # internal charge pump
            _VCOM_DESEL, 0x30,
            _CONTRAST, 0xFF,
            _ENTIRE_ON,  # output follows RAM
            _NORM_INV,  # not inverted
            _CHARGE_PUMP, 0x14,
            _DISP_ON,
        ):  # fmt: skip
            self._cmd(c)
        self.fill(0)
        self.show()

    def poweroff(self):
        self._cmd(_DISP_OFF)

    def poweron(self):
        self._cmd(_DISP_ON)

    def contrast(self, c):
        self._cmd(_CONTRAST)
        self._cmd(c)

    def invert(self, on):
        self._cmd(_NORM_INV | (1 if on else 0))

    def show(self):
        for c in (_COL_ADDR, 0, self.width - 1, _PAGE_ADDR, 0, self.pages - 1):
            self._cmd(c)
        self.i2c.writevto(self.addr, (self._data, self.buffer))
