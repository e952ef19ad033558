"""A minimal model of the TMC2209's single-wire UART for the virtual pen: register writes and
reads with the real datagrams (CRC checked both ways, the echo of what is sent), and
StallGuard's SG_RESULT from the depth plant.

SG_RESULT (0..510, lower = more load) is what the driver measures from the coil currents'
phase: a rotor turning with the field at the stop's light load reads `free_sg`; a rotor that
slipped (a step lost: too fast, a bind, a hard stop; `plant_depth.DepthStop.missed`) since the
previous reading reads `slip_sg`; a rotor at rest, or below TCOOLTHRS' rate, reads 0 (the
measurement is only valid while turning: the firmware uses it only during moves). Numbers of
this model, not of the firmware.
"""


def crc8(data):
    crc = 0
    for b in data:
        for _ in range(8):
            if (crc >> 7) ^ (b & 1):
                crc = ((crc << 1) ^ 0x07) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
            b >>= 1
    return crc


class TMC2209Uart:
    free_sg = 240
    slip_sg = 12
    rest_us = 2000  # no step for this long: at rest

    def __init__(self, sim, depth, addr=0):
        self.sim = sim
        self.depth = depth
        self.addr = addr
        self.regs = {0x00: 0, 0x02: 0, 0x14: 0, 0x40: 0}
        self.out = bytearray()
        self.inbuf = bytearray()
        self._missed_seen = depth.missed
        self.reads = 0
        self.bad_crc = 0

    # -- the UART device interface (sim/shims/machine.py UART) ---------------------------------
    def write(self, data):
        self.out += data  # single wire: the sender reads its own bytes back
        self.inbuf += data
        self._parse()

    def read(self, n=-1):
        if not self.out:
            return None
        if n < 0 or n > len(self.out):
            n = len(self.out)
        b = bytes(self.out[:n])
        self.out = self.out[n:]
        return b

    def any(self):
        return len(self.out)

    # -- datagrams ----------------------------------------------------------------------------
    def _parse(self):
        while self.inbuf:
            buf = self.inbuf
            if buf[0] != 0x05:
                self.inbuf = buf[1:]
                continue
            if len(buf) < 4:
                return
            if buf[2] & 0x80:
                if len(buf) < 8:
                    return
                dg = bytes(buf[:8])
                self.inbuf = buf[8:]
                if crc8(dg[:7]) != dg[7] or dg[1] != self.addr:
                    self.bad_crc += 1
                    continue
                self.regs[dg[2] & 0x7F] = int.from_bytes(dg[3:7], "big")
                self.regs[0x02] = (self.regs[0x02] + 1) & 0xFF  # IFCNT
            else:
                dg = bytes(buf[:4])
                self.inbuf = buf[4:]
                if crc8(dg[:3]) != dg[3] or dg[1] != self.addr:
                    self.bad_crc += 1
                    continue
                v = self._value(dg[2])
                reply = bytes([0x05, 0xFF, dg[2]]) + v.to_bytes(4, "big")
                self.out += reply + bytes([crc8(reply)])

    def _value(self, reg):
        if reg == 0x41:
            self.reads += 1
            return self._sg()
        return self.regs.get(reg, 0)

    def _sg(self):
        d = self.depth
        missed = d.missed
        slipped = missed != self._missed_seen
        self._missed_seen = missed
        if slipped:
            return self.slip_sg
        if d.last_step_us is None or self.sim.now - d.last_step_us > self.rest_us:
            return 0
        tcool = self.regs.get(0x14, 0)  # TSTEP threshold: 12 MHz clocks per step
        if tcool and d.rate and 12_000_000 / abs(d.rate) > tcool:
            return 0  # slower than TCOOLTHRS: StallGuard off
        return self.free_sg
