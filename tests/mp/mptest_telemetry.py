"""The telemetry ring (TM- requirements): 60 s at 200 Hz in a preallocated, compact ring;
allocation-free recording; sequence numbers; time base; reading back what was recorded."""

import gc

import micropython
from mphelp import check, info, req

from firmware.telemetry import (
    BATTERY_MV,
    CAPACITY,
    CURRENT_MA,
    DEPTH_UM,
    DUTY,
    FAULT,
    SEQ,
    STATE,
    STROKE_DHZ,
    T_MS,
    TARGET_HZ,
    TARGET_UM,
    Telemetry,
)

RUNNING = 5


def _sample(i):
    """Deterministic, varied values for sample i."""
    return (RUNNING, (i * 37) % 2048, 100 + (i // 300) % 3, (i * 613) % 65536,
            1000 + (i * 7) % 300, 1000, (i * 7) % 2048, 3700 + (i // 400) * 10, 0)  # fmt: skip


@req("TM-1")
def test_ring_holds_60_s_at_200_hz_compactly():
    """TM-1: the ring keeps at least 12,000 samples (60 s at 200 Hz), preallocated at
    construction in about 60 kB plus the context ring, even with the depth stop moving all the
    time; older samples drop out in order."""
    gc.collect()
    before = gc.mem_free()
    tm = Telemetry()
    gc.collect()
    used = before - gc.mem_free()
    info("ring: %d samples, %d bytes (%.2f bytes/sample)" % (tm.capacity, used,
                                                              used / tm.capacity))  # fmt: skip
    check(tm.capacity >= 12000 and CAPACITY >= 12000)
    check(used < 76 * 1024, "ring uses %d bytes" % used)
    t = 0
    n = 12500
    for i in range(n):
        tm.record(t, 200, *_sample(i))
        t += 5
    check(tm.next_seq == n)
    check(tm.oldest() == n - tm.capacity, "oldest %d" % tm.oldest())
    from array import array

    out = array("i", bytes(44))
    check(not tm.read(tm.oldest() - 1, out), "overwritten sample not readable")
    check(tm.read(tm.oldest(), out) and out[SEQ] == tm.oldest())
    check(not tm.read(n, out), "future sample not readable")
    gc.collect()
    check(gc.mem_free() >= before - used - 4096, "recording allocated nothing lasting")


@req("TM-2")
def test_record_allocates_nothing():
    """TM-2: record() uses ints only and allocates nothing (heap locked), so it can run in any
    context, even a hard-timer tick."""
    tm = Telemetry(1000, 32)
    args = _sample(3)
    tm.record(0, 200, *args)
    st, s, thz, duty, d, td, c, b, f = args
    micropython.heap_lock()
    try:
        t = 5
        for i in range(2000):
            tm.record(t, 200, st, s, thz, duty, d, td, c, b, f)
            t += 5
    finally:
        micropython.heap_unlock()
    check(tm.next_seq == 2001)


@req("TM-3")
def test_fields_read_back_within_their_resolution():
    """TM-3: every field reads back as recorded: stroke_hz to 0.1 Hz (0..204.7), duty to 1/32
    of duty_u16, current to 2 mA (0..2046), the slow fields exactly; seq one by one."""
    from array import array

    tm = Telemetry(1000, 256)
    out = array("i", bytes(44))

    def values(i):
        st, s, thz, duty, d, td, c, b, f = _sample(i)
        if i % 97 == 0:
            st = 3  # a state change now and then
        return st, s, thz, duty, d, td, c, b, f

    for i in range(900):
        tm.record(1000 + 5 * i, 200, *values(i))
    for i in range(900):
        st, s, thz, duty, d, td, c, b, f = values(i)
        check(tm.read(i, out), "sample %d" % i)
        check(out[SEQ] == i and out[T_MS] == 1000 + 5 * i, "seq/t %d %d" % (out[SEQ], out[T_MS]))
        check(out[STATE] == st and out[TARGET_HZ] == thz and out[FAULT] == f, "slow %d" % i)
        check(out[STROKE_DHZ] == min(s, 2047), "stroke %d" % i)
        check(0 <= duty - out[DUTY] < 32, "duty %d %d" % (duty, out[DUTY]))
        check(0 <= c - out[CURRENT_MA] < 2, "current %d" % i)
        check(out[TARGET_UM] == td, "target depth")
        # While the stop moves its position is logged every DEPTH_EVERY (40) samples: the value
        # read is one of the last 40 recorded.
        recent = [values(k)[4] for k in range(max(0, i - 39), i + 1)]
        check(out[DEPTH_UM] in recent, "depth %d not in %r" % (out[DEPTH_UM], recent))
        check(abs(out[BATTERY_MV] - b) < 20, "battery")


@req("TM-4")
def test_time_base_is_exact_through_jitter_and_pauses():
    """TM-4: a sample's t_ms is the ticks_ms it was taken at, whatever the scheduling jitter;
    pauses (a GC, a slow display write) cost a context entry only when the samples have drifted
    more than 127 ms off the schedule."""
    from array import array

    tm = Telemetry(2000, 128)
    out = array("i", bytes(44))
    actual = []
    t = 0x3FFFFFFF - 3000  # across the ticks_ms wrap too
    for i in range(1500):
        tt = (t + (i * 7919) % 5 - 2) & 0x3FFFFFFF  # -2..+2 ms jitter
        tm.record(tt, 200, *_sample(0))
        actual.append(tt)
        t += 5
        if i % 100 == 50:
            t += 40  # a 40 ms pause
        if i == 1000:
            t += 300  # a long one
    for i in range(1500):
        check(tm.read(i, out), "sample %d" % i)
        check(out[T_MS] == actual[i], "t of %d: %d != %d" % (i, out[T_MS], actual[i]))
    info("context entries for 1500 samples with pauses:", tm.entries)
    check(tm.entries <= 10, "entries %d" % tm.entries)


@req("TM-5")
def test_context_eviction_moves_oldest_up():
    """TM-5: if the slow fields change so often that the context ring wraps, the samples that
    lost their context are no longer offered (oldest() moves up), never misreported."""
    from array import array

    tm = Telemetry(1000, 16)
    out = array("i", bytes(44))
    for i in range(200):
        tm.record(i * 5, 200, i % 7, 0, 100, 0, 0, 0, 0, 3700, 0)  # state changes every sample
    check(tm.oldest() == 200 - 16, "oldest %d" % tm.oldest())
    check(not tm.read(183, out))
    check(tm.read(184, out) and out[STATE] == 184 % 7)
