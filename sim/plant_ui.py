"""Buttons (to ground, pull-ups) and other user-facing parts of the virtual pen."""

import hardware.pins as P

BUTTONS = {"start": P.BTN_START_N, "plus": P.BTN_PLUS_N, "minus": P.BTN_MINUS_N}


class Buttons:
    def __init__(self, sim):
        self.sim = sim
        self.board = sim.board
        self.release_at = {}  # gpio -> time µs
        for g in BUTTONS.values():
            self.board.set_input(g, 1)

    def press(self, names, hold_ms):
        """Press the buttons joined by '+' together, release after hold_ms of virtual time."""
        gpios = []
        for n in names.split("+"):
            if n not in BUTTONS:
                raise ValueError("unknown button %r (start, plus, minus)" % n)
            gpios.append(BUTTONS[n])
        until = self.sim.now + hold_ms * 1000
        for g in gpios:
            self.board.set_input(g, 0)
            self.release_at[g] = until

    def held(self):
        return [n for n, g in BUTTONS.items() if self.board.level(g) == 0]

    def step(self, now, dt):
        if not self.release_at:
            return
        t = now + dt
        for g in list(self.release_at):
            if self.release_at[g] <= t:
                del self.release_at[g]
                self.board.set_input(g, 1)


class SSD1306:
    """The OLED controller on the I2C bus: decodes the command/data stream the firmware sends
    into its display RAM (128 columns x 8 pages), and renders the visible 128x32 panel.

    `text()` reads the panel back as text: each 8x8 cell on the character grid is matched
    against the glyphs of framebuf's own 8x8 font, so a test sees what a person would read,
    from the pixels the controller received (nothing is taken from the firmware's objects)."""

    WIDTH = 128
    PAGES = 8  # the controller's RAM: 128 x 64
    # Commands followed by N argument bytes.
    _ARGS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1,
             0xDA: 1, 0xDB: 1, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0xA3: 2}  # fmt: skip

    def __init__(self, height=32):
        self.height = height
        self.ram = bytearray(self.WIDTH * self.PAGES)
        self.on = False
        self.inverted = False
        self.contrast = 0x7F
        self.mux = 63
        self.mode = 2  # page addressing after reset
        self.col0, self.col1 = 0, 127
        self.page0, self.page1 = 0, 7
        self.col = 0
        self.page = 0
        self.start_line = 0
        self.seg_remap = False
        self.com_reverse = False
        self.writes = 0  # data bytes received
        self.frames = 0  # complete screens received
        self._pending = []  # a command waiting for its argument bytes
        self._glyphs = None

    # -- the I2C device -----------------------------------------------------------------
    def write(self, buf):
        i = 0
        n = len(buf)
        while i < n:
            ctrl = buf[i]
            i += 1
            co = ctrl & 0x80
            dc = ctrl & 0x40
            if co:
                # Continuation bit: one byte follows, then another control byte.
                if i < n:
                    (self._data if dc else self._command)(buf[i : i + 1])
                    i += 1
                continue
            (self._data if dc else self._command)(buf[i:])
            return

    def read(self, n):
        return bytes(n)  # status reads are not used

    def _command(self, data):
        for b in data:
            if self._pending:
                self._pending.append(b)
                op = self._pending[0]
                if len(self._pending) - 1 == self._ARGS[op]:
                    self._apply(op, self._pending[1:])
                    self._pending = []
                continue
            if b in self._ARGS:
                self._pending = [b]
            else:
                self._apply(b, ())

    def _apply(self, op, args):
        if op == 0xAE:
            self.on = False
        elif op == 0xAF:
            self.on = True
        elif op == 0x20:
            self.mode = args[0] & 3
        elif op == 0x21:
            self.col0, self.col1 = args[0] & 0x7F, args[1] & 0x7F
            self.col = self.col0
        elif op == 0x22:
            self.page0, self.page1 = args[0] & 7, args[1] & 7
            self.page = self.page0
        elif op == 0x81:
            self.contrast = args[0]
        elif op == 0xA8:
            self.mux = args[0] & 0x3F
        elif op in (0xA6, 0xA7):
            self.inverted = op == 0xA7
        elif op in (0xA0, 0xA1):
            self.seg_remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_reverse = op == 0xC8
        elif 0x40 <= op <= 0x7F:
            self.start_line = op & 0x3F
        elif 0xB0 <= op <= 0xB7:
            self.page = op & 7
        elif op <= 0x0F:
            self.col = (self.col & 0xF0) | op
        elif 0x10 <= op <= 0x1F:
            self.col = (self.col & 0x0F) | ((op & 0x0F) << 4)

    def _data(self, data):
        for b in data:
            self.ram[self.page * self.WIDTH + self.col] = b
            self.writes += 1
            if self.mode == 2:  # page addressing: the column wraps within the page
                self.col = (self.col + 1) & 0x7F
                continue
            if self.mode == 0:  # horizontal: column, then page, within the window
                if self.col >= self.col1:
                    self.col = self.col0
                    if self.page >= self.page1:
                        self.page = self.page0
                        self.frames += 1
                    else:
                        self.page += 1
                else:
                    self.col += 1
            else:  # vertical: page, then column
                if self.page >= self.page1:
                    self.page = self.page0
                    if self.col >= self.col1:
                        self.col = self.col0
                        self.frames += 1
                    else:
                        self.col += 1
                else:
                    self.page += 1

    # -- what the panel shows -----------------------------------------------------------
    def pixel(self, x, y):
        """The visible pixel at panel (x, y), 0/1, in the firmware's drawing coordinates (the
        driver's segment remap and COM direction undo the panel's mounting)."""
        if not self.on:
            return 0
        # The panel is mounted so that segment remap and reversed COM scan show RAM upright;
        # a driver that sets neither would show the picture rotated by 180 degrees.
        col = x if self.seg_remap else self.WIDTH - 1 - x
        row = y if self.com_reverse else self.mux - y
        line = (row + self.start_line) & 63
        v = (self.ram[(line >> 3) * self.WIDTH + col] >> (line & 7)) & 1
        return v ^ (1 if self.inverted else 0)

    def art(self):
        """The panel as ASCII art ('#' lit, '.' dark), one string per pixel row."""
        rows = []
        for y in range(self.height):
            rows.append("".join("#" if self.pixel(x, y) else "." for x in range(self.WIDTH)))
        return rows

    def _font(self):
        if self._glyphs is None:
            import framebuf

            buf = bytearray(8)
            fb = framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_VLSB)
            self._glyphs = {}
            for c in range(32, 127):
                fb.fill(0)
                fb.text(chr(c), 0, 0, 1)
                key = bytes(buf)
                if key not in self._glyphs:
                    self._glyphs[key] = chr(c)
        return self._glyphs

    def text(self):
        """The panel read back on the 16x4 character grid ('?' for a cell that is no glyph)."""
        glyphs = self._font()
        lines = []
        for row in range(self.height // 8):
            chars = []
            for colc in range(self.WIDTH // 8):
                cell = bytearray(8)
                for dx in range(8):
                    b = 0
                    for dy in range(8):
                        b |= self.pixel(colc * 8 + dx, row * 8 + dy) << dy
                    cell[dx] = b
                chars.append(glyphs.get(bytes(cell), "?"))
            lines.append("".join(chars).rstrip())
        return lines


class BuzzerProbe:
    """Listens to the buzzer's PWM pin: a log of tones (start ms, frequency Hz, duration ms)."""

    def __init__(self, sim, gpio=P.BUZZER):
        self.sim = sim
        self.gpio = gpio
        self.tones = []  # [t_ms, hz, ms]
        self._cur = None

    def step(self, now, dt):
        pwm = self.sim.board.pwm.get(self.gpio)
        hz = 0
        if pwm is not None and pwm.enabled and pwm.cc:
            hz = pwm.freq()
        cur = self._cur
        if cur is not None and (hz != cur[1]):
            self._cur = None
            cur = None
        if hz and cur is None:
            self._cur = [now // 1000, hz, 0]
            self.tones.append(self._cur)
            if len(self.tones) > 64:
                del self.tones[0]
        if self._cur is not None:
            self._cur[2] = (now + dt) // 1000 - self._cur[0]
