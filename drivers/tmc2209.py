"""TMC2209 stepper driver: its single-wire UART (PDN_UART), for set-up and StallGuard4.

The datagrams (TMC2209 datasheet, "UART Single Wire Interface"), LSB-first CRC-8 (x^8+x^2+x+1):
    write:        0x05, addr, reg | 0x80, 4 data bytes (MSB first), CRC     (8 bytes)
    read request: 0x05, addr, reg, CRC                                       (4 bytes)
    read reply:   0x05, 0xFF, reg, 4 data bytes, CRC                         (8 bytes)
On the single wire the driver's own request comes back as an echo before the reply; it is
skipped. Reading never blocks the pen: `request(reg)` sends a read request, `collect()` returns
the value once its reply is complete (None until then, or when the CRC or the framing is
wrong), so a poll every few ms keeps a reading in flight (`firmware/stallguard.py`).

Registers used: GCONF (pdn_disable, mstep_reg_select), TCOOLTHRS (StallGuard active above this
step rate), SGTHRS (the DIAG threshold), SG_RESULT (the load measurement: 0..510, lower is more
load; a stalled or slipping rotor reads near 0).
"""

from micropython import const

GCONF = const(0x00)
IFCNT = const(0x02)
TCOOLTHRS = const(0x14)
SGTHRS = const(0x40)
SG_RESULT = const(0x41)
_SYNC = const(0x05)
_REPLY = const(8)


def crc8(data, n):
    crc = 0
    for i in range(n):
        b = data[i]
        for _ in range(8):
            if (crc >> 7) ^ (b & 1):
                crc = ((crc << 1) ^ 0x07) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
            b >>= 1
    return crc


class TMC2209:
    def __init__(self, uart, addr=0, echo=True):
        self._u = uart
        self.addr = addr
        self.echo = echo  # single wire: what is sent comes back first
        self._w = bytearray(8)
        self._r = bytearray(4)
        self._buf = bytearray(16)
        self._n = 0
        self._want = 0  # bytes expected for the reading in flight (0: none)
        self._reg = 0
        self.crc_errors = 0

    def write_reg(self, reg, value):
        w = self._w
        w[0] = _SYNC
        w[1] = self.addr
        w[2] = reg | 0x80
        w[3] = (value >> 24) & 0xFF
        w[4] = (value >> 16) & 0xFF
        w[5] = (value >> 8) & 0xFF
        w[6] = value & 0xFF
        w[7] = crc8(w, 7)
        self._drain()
        self._u.write(w)
        if self.echo:
            self._skip(8)

    def request(self, reg):
        """Send a read request for `reg`; its reply is picked up by collect()."""
        r = self._r
        r[0] = _SYNC
        r[1] = self.addr
        r[2] = reg
        r[3] = crc8(r, 3)
        self._drain()
        self._u.write(r)
        self._n = 0
        self._reg = reg
        self._want = _REPLY + (4 if self.echo else 0)

    @property
    def pending(self):
        return self._want != 0

    def collect(self):
        """The value of the reading in flight once complete, else None."""
        if not self._want:
            return None
        u = self._u
        while self._n < self._want and u.any():
            b = u.read(1)
            if not b:
                break
            self._buf[self._n] = b[0]
            self._n += 1
        if self._n < self._want:
            return None
        self._want = 0
        o = 4 if self.echo else 0
        b = self._buf
        if b[o] != _SYNC or b[o + 1] != 0xFF or b[o + 2] != self._reg:
            self.crc_errors += 1
            return None
        if crc8(memoryview(b)[o:], 7) != b[o + 7]:
            self.crc_errors += 1
            return None
        return (b[o + 3] << 24) | (b[o + 4] << 16) | (b[o + 5] << 8) | b[o + 6]

    def _skip(self, n):
        u = self._u
        while n > 0 and u.any():
            got = u.read(n)
            if not got:
                break
            n -= len(got)

    def _drain(self):
        u = self._u
        while u.any():
            if not u.read(16):
                break
        self._want = 0
