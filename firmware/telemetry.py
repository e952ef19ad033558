"""Telemetry: a preallocated ring of the pen's samples, with sequence numbers, for the `~T`
stream and for `telemetry fetch` (a host that reconnects fetches what it missed).

A sample (docs/protocol.md): seq, t_ms, state, stroke_hz, target_hz, duty, depth_mm,
target_depth_mm, current_ma, battery_mv, fault. `seq` counts samples from boot, one by one.

Memory: CAPACITY = 12,000 samples (60 s at 200 Hz) in 60 kB (5 bytes a sample), allocated at
construction in chunks of CHUNK samples (a fragmented heap has no 60 kB hole), plus a context
ring of CTX entries (9 kB). Each sample keeps the fields that change from one sample to the
next, packed into two 16-bit words and a byte:
    stroke_hz  11 bits, 0.1 Hz steps, 0 .. 204.7 Hz (saturates)
    duty       11 bits, duty_u16 / 32 (0.05 % steps)
    current_ma 10 bits, 2 mA steps, 0 .. 2046 mA (saturates)
    time        8 bits, ms off the schedule of its context entry (-127 .. +127)
The slowly changing fields (state, fault, target_hz, target_depth_mm, depth_mm, battery_mv) and
the time base go into the *context entries*, written when one of them changes (the depth at
most every DEPTH_EVERY samples while the stop moves; the battery when it moved BATTERY_STEP_MV
or more, at most every BATTERY_EVERY samples), when the sample rate changes, when a sample is
more than 127 ms off the schedule, and every FORCE_EVERY samples. A sample's time is exact:
    t_ms = t_entry + (seq - seq_entry) * 1000 // hz_entry + offset      (ticks_ms, wraps 2**30)
A sample is readable while both its slot and its context entry are kept (`oldest()`); with the
depth moving all the time the context ring still covers CTX * DEPTH_EVERY samples (100 s).

`record()` takes only ints, allocates nothing and uses no floats, so it may run anywhere (also
in a hard-timer tick).
"""

from array import array

from micropython import const

from firmware.schema import fmt_mm

CAPACITY = const(12000)
CHUNK = const(500)
CTX = const(512)
DEPTH_EVERY = const(40)
BATTERY_EVERY = const(200)
BATTERY_STEP_MV = const(20)
FORCE_EVERY = const(4096)
_MASK = const(0x3FFFFFFF)  # ticks_ms() wraps at 2**30 on every port
_HALF = const(0x20000000)

STATES = ("BOOT", "LOCKED", "HOMING", "READY", "ARMED", "RUNNING", "STOPPING", "FAULT",
          "SERVICE", "SLEEP")  # fmt: skip
FIELDS = ("seq", "t_ms", "state", "stroke_hz", "target_hz", "duty", "depth_mm",
          "target_depth_mm", "current_ma", "battery_mv", "fault")  # fmt: skip
# Index of each field in the int array `read()` fills (stroke_hz in 0.1 Hz, depths in µm).
SEQ = const(0)
T_MS = const(1)
STATE = const(2)
STROKE_DHZ = const(3)
TARGET_HZ = const(4)
DUTY = const(5)
DEPTH_UM = const(6)
TARGET_UM = const(7)
CURRENT_MA = const(8)
BATTERY_MV = const(9)
FAULT = const(10)


def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


class Telemetry:
    def __init__(self, capacity=CAPACITY, ctx=CTX):
        n = (capacity + CHUNK - 1) // CHUNK
        self.capacity = n * CHUNK
        self._w = [array("H", bytes(4 * CHUNK)) for _ in range(n)]  # two words per sample
        self._o = [bytearray(CHUNK) for _ in range(n)]  # time offset + 128 per sample
        self.ctx = ctx
        self._cseq = array("i", bytes(4 * ctx))
        self._ct = array("i", bytes(4 * ctx))
        self._chz = bytearray(ctx)
        self._cst = bytearray(ctx)
        self._cfault = bytearray(ctx)
        self._cthz = bytearray(ctx)
        self._ctd = array("h", bytes(2 * ctx))
        self._cd = array("h", bytes(2 * ctx))
        self._cb = array("H", bytes(2 * ctx))
        self.next_seq = 0
        self.entries = 0
        # What the newest context entry says.
        self._e_seq = -1
        self._e_t = 0
        self._e_hz = 0
        self._st = 0
        self._fault = 0
        self._thz = 0
        self._td = 0
        self._d = 0
        self._d_seq = 0
        self._b = 0
        self._b_seq = 0

    # -- writing (allocation-free) -----------------------------------------------------------
    def record(self, t, hz, state, stroke_dhz, target_hz, duty, depth_um, target_um,
               current_ma, battery_mv, fault):  # fmt: skip
        """Append one sample taken at ticks_ms `t` by a sampler running at `hz` (1..200).
        Returns its seq."""
        seq = self.next_seq
        depth_um = _clamp(depth_um, -32768, 32767)
        target_um = _clamp(target_um, -32768, 32767)
        battery_mv = _clamp(battery_mv, 0, 65535)
        target_hz = _clamp(target_hz, 0, 255)
        fault = _clamp(fault, 0, 255)
        state = _clamp(state, 0, 255)
        hz = _clamp(hz, 1, 200)
        k = seq - self._e_seq
        need = self._e_seq < 0 or hz != self._e_hz or k >= FORCE_EVERY
        off = 0
        if not need:
            nominal = (self._e_t + (k * 1000) // hz) & _MASK
            off = ((t - nominal + _HALF) & _MASK) - _HALF
            need = off > 127 or off < -127
        if not need:
            need = (state != self._st or fault != self._fault or target_hz != self._thz
                    or target_um != self._td)  # fmt: skip
        if not need and depth_um != self._d and seq - self._d_seq >= DEPTH_EVERY:
            need = True
        if not need and seq - self._b_seq >= BATTERY_EVERY:
            db = battery_mv - self._b
            need = db >= BATTERY_STEP_MV or -db >= BATTERY_STEP_MV
        if need:
            i = self.entries % self.ctx
            self._cseq[i] = seq
            self._ct[i] = t & _MASK
            self._chz[i] = hz
            self._cst[i] = state
            self._cfault[i] = fault
            self._cthz[i] = target_hz
            self._ctd[i] = target_um
            self._cd[i] = depth_um
            self._cb[i] = battery_mv
            self.entries += 1
            self._e_seq = seq
            self._e_t = t & _MASK
            self._e_hz = hz
            self._st = state
            self._fault = fault
            self._thz = target_hz
            self._td = target_um
            self._d = depth_um
            self._d_seq = seq
            self._b = battery_mv
            self._b_seq = seq
            off = 0
        s = _clamp(stroke_dhz, 0, 2047)
        d = _clamp(duty, 0, 65535) >> 5
        c = _clamp(current_ma, 0, 2047) >> 1
        j = seq % self.capacity
        w = self._w[j // CHUNK]
        self._o[j // CHUNK][j % CHUNK] = off + 128
        j = (j % CHUNK) << 1
        w[j] = s | ((d >> 6) << 11)
        w[j + 1] = (d & 0x3F) | (c << 6)
        self.next_seq = seq + 1
        return seq

    # -- reading -----------------------------------------------------------------------------
    def oldest(self):
        """The oldest seq that can still be read."""
        lo = self.next_seq - self.capacity
        if lo < 0:
            lo = 0
        if self.entries > self.ctx:
            e = self._cseq[self.entries % self.ctx]  # the oldest entry still kept
            if e > lo:
                lo = e
        return lo

    def _entry(self, seq):
        """Slot of the newest context entry with seq_entry <= seq."""
        lo = self.entries - self.ctx
        if lo < 0:
            lo = 0
        hi = self.entries - 1
        cn = self.ctx
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if self._cseq[mid % cn] <= seq:
                lo = mid
            else:
                hi = mid - 1
        return lo % cn

    def read(self, seq, out):
        """Fill `out` (array('i', 11), indices SEQ..FAULT) with sample `seq`; False if it is
        no longer (or not yet) kept."""
        if seq < self.oldest() or seq >= self.next_seq:
            return False
        e = self._entry(seq)
        k = seq - self._cseq[e]
        j = seq % self.capacity
        off = self._o[j // CHUNK][j % CHUNK] - 128
        out[SEQ] = seq
        out[T_MS] = (self._ct[e] + (k * 1000) // self._chz[e] + off) & _MASK
        out[STATE] = self._cst[e]
        out[TARGET_HZ] = self._cthz[e]
        out[DEPTH_UM] = self._cd[e]
        out[TARGET_UM] = self._ctd[e]
        out[BATTERY_MV] = self._cb[e]
        out[FAULT] = self._cfault[e]
        w = self._w[j // CHUNK]
        j = (j % CHUNK) << 1
        w0 = w[j]
        w1 = w[j + 1]
        out[STROKE_DHZ] = w0 & 0x7FF
        out[DUTY] = (((w0 >> 11) << 6) | (w1 & 0x3F)) << 5
        out[CURRENT_MA] = (w1 >> 6) << 1
        return True

    @staticmethod
    def format(v):
        """A sample (the array `read` filled) as its JSON object text."""
        st = v[STATE]
        return ('{"seq": %d, "t_ms": %d, "state": "%s", "stroke_hz": %d.%d, "target_hz": %d, '
                '"duty": %d, "depth_mm": %s, "target_depth_mm": %s, "current_ma": %d, '
                '"battery_mv": %d, "fault": %d}') % (
            v[SEQ], v[T_MS], STATES[st] if st < len(STATES) else "UNKNOWN",
            v[STROKE_DHZ] // 10, v[STROKE_DHZ] % 10, v[TARGET_HZ], v[DUTY],
            fmt_mm(v[DEPTH_UM], 3), fmt_mm(v[TARGET_UM], 3), v[CURRENT_MA], v[BATTERY_MV],
            v[FAULT])  # fmt: skip

    def info(self):
        return {"next_seq": self.next_seq, "oldest_seq": self.oldest(),
                "capacity": self.capacity}  # fmt: skip
