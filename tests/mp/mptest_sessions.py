"""Sessions and the record log (firmware/sessions.py): summaries match what happened, the log
is bounded, and a power cut at any moment loses no completed record."""

import os

from mphelp import check, info

from firmware.sessions import RecordLog, Sessions, frame, scan


class RamDisk:
    """A block device in RAM for littlefs, with a power cut after `cut` block writes."""

    def __init__(self, blocks=32, bs=512):
        self.bs = bs
        self.data = bytearray(blocks * bs)
        self.writes = 0
        self.cut = None

    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, b, buf, off=None):
        if self.cut is not None and self.writes >= self.cut:
            raise OSError(5)  # the power is gone: nothing more reaches the flash
        self.writes += 1
        a = b * self.bs + (off or 0)
        self.data[a : a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            a = arg * self.bs
            if self.cut is not None and self.writes >= self.cut:
                raise OSError(5)
            self.data[a : a + self.bs] = b"\xff" * self.bs
            return 0
        return 0


def _mount(disk, fresh=False):
    if fresh:
        os.VfsLfs2.mkfs(disk)
    try:
        os.umount("/fl")
    except OSError:
        pass
    os.mount(os.VfsLfs2(disk), "/fl")


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _session(s, clock, passes, strokes0=0):
    """Run `passes` [(depth_um, rate_mhz, strokes, ms)] through a Sessions object."""
    st = strokes0
    for depth_um, rate_mhz, n, ms in passes:
        s.pass_begin(depth_um, rate_mhz, st, clock.t)
        clock.t += ms
        st += n
        s.pass_end(st, clock.t)
        s.commit()
        clock.t += 5000
    return st


def test_summary_matches_what_happened():
    """PS-14: a session's summary lists each pass with its depth, rate, strokes and duration,
    the faults, the totals; it is stored after each pass and read back the same."""
    clock = Clock()
    _mount(RamDisk(), fresh=True)
    log = RecordLog("/fl/sessions.log")
    s = Sessions(log, clock=clock, wallclock=lambda: 1_700_000_000)
    n = s.new_cartridge()
    check(n == 1)
    clock.t = 2000
    _session(s, clock, [(500, 100000, 3000, 30000), (750, 120000, 6000, 50000)])
    s.add_fault("stall", clock.t)
    s.commit()
    r = s.get(1)
    check(r is not None and r["id"] == 1 and r["cartridge"] == 1)
    check(r["strokes"] == 9000, "total strokes")
    p = r["passes"]
    check(len(p) == 2)
    check(p[0]["depth_mm"] == 0.5 and p[0]["stroke_hz"] == 100 and p[0]["strokes"] == 3000)
    check(p[0]["duration_s"] == 30.0 and p[0]["start_s"] == 2.0)
    check(p[1]["depth_mm"] == 0.75 and p[1]["stroke_hz"] == 120 and p[1]["strokes"] == 6000)
    check(r["faults"] == [{"code": "stall", "at_s": 92.0}], repr(r["faults"]))
    check(r["start"].startswith("20"), r["start"])
    # A new cartridge closes it and opens session 2; a reboot (new objects) keeps counting.
    s.new_cartridge()
    _session(s, clock, [(1000, 100000, 100, 1000)])
    s2 = Sessions(RecordLog(log.path), clock=clock)
    check(s2.last_id == 2 and [x["id"] for x in s2.list()] == [1, 2])
    check(s2.last()["passes"][0]["depth_mm"] == 1.0)
    os.umount("/fl")


def test_log_is_bounded_and_drops_oldest():
    """PS-15: the log never grows past max_bytes; the oldest sessions go first, the newest
    is always kept."""
    _mount(RamDisk(), fresh=True)
    path = "/fl/sessions.log"
    clock = Clock()
    s = Sessions(RecordLog(path, max_bytes=4096), clock=clock)
    for _ in range(60):
        s.new_cartridge()
        _session(s, clock, [(500, 100000, 100, 1000), (600, 100000, 100, 1000)])
        check(os.stat(path)[6] <= 4096, "bounded")
    ids = [r["id"] for r in s.log.latest()]
    check(ids[-1] == 60 and ids == sorted(ids), repr(ids))
    check(ids == list(range(ids[0], 61)), "a contiguous run of the newest: %r" % ids)
    info("sessions kept in 4 KB:", len(ids))
    os.umount("/fl")


def test_torn_append_at_every_byte_loses_nothing_completed():
    """PS-16: a power cut during an append, modelled by the file ending at every possible byte
    of the new record: every record completed before it reads back intact; after the repair
    at boot new records append cleanly."""
    recs = [frame(('{"id": %d, "x": "%s"}' % (i, "a" * i)).encode()) for i in range(1, 6)]
    base = b"".join(recs[:4])
    last = recs[4]
    _mount(RamDisk(), fresh=True)
    path = "/fl/sessions.log"
    for cut in range(len(last)):
        with open(path, "wb") as f:
            f.write(base + last[:cut])
        log = RecordLog(path)
        got = [r["id"] for r in log.records()]
        check(got == [1, 2, 3, 4], "cut at %d: %r" % (cut, got))
        log.append({"id": 9})
        got = [r["id"] for r in log.records()]
        check(got == [1, 2, 3, 4, 9], "append after repair at cut %d: %r" % (cut, got))
    # A corrupt byte inside a record: that record is lost, its neighbours are not.
    data = bytearray(b"".join(recs))
    data[len(recs[0]) + 7] ^= 0x55
    got = [int(p[1].split(b",")[0][7:]) for p in scan(bytes(data))]
    check(got == [1, 3, 4, 5], repr(got))
    os.umount("/fl")


def test_power_cut_on_littlefs_at_every_write():
    """PS-16: on a littlefs flash (RAM block device), the power is cut after N block writes for
    every N during the storing of a session; after remount every session stored before is
    intact and the interrupted one is either absent or complete."""
    disk = RamDisk()
    _mount(disk, fresh=True)
    clock = Clock()
    s = Sessions(RecordLog("/fl/sessions.log"), clock=clock)
    for _ in range(3):
        s.new_cartridge()
        _session(s, clock, [(500, 100000, 1000, 10000)])
    s.new_cartridge()
    s.pass_begin(800, 110000, 0, clock.t)
    clock.t += 10000
    s.pass_end(2000, clock.t)
    image = bytes(disk.data)
    w0 = disk.writes
    s.commit()  # the write we are going to cut
    n_writes = disk.writes - w0
    check(n_writes > 0)
    os.umount("/fl")
    outcomes = set()
    for cut in range(n_writes + 1):
        disk.data[:] = image  # the flash as it was before the write (one disk: RAM is tight)
        disk.cut = None
        _mount(disk)
        s = Sessions(RecordLog("/fl/sessions.log"), clock=clock)
        s.current = {"id": 4, "pen_session": "4", "cartridge": 4, "start": "x",
                     "duration_s": 10.0, "strokes": 2000, "passes": [], "faults": []}  # fmt: skip
        s._dirty = True
        disk.cut = disk.writes + cut
        try:
            s.commit()
        except OSError:
            pass
        disk.cut = None
        _mount(disk)  # the power comes back
        got = Sessions(RecordLog("/fl/sessions.log"), clock=clock).log.latest()
        ids = [r["id"] for r in got]
        check(ids[:3] == [1, 2, 3], "cut after %d writes: %r" % (cut, ids))
        check(ids in ([1, 2, 3], [1, 2, 3, 4]), repr(ids))
        outcomes.add(len(ids))
        for r in got[:3]:
            check(r["passes"][0]["strokes"] == 1000, "intact")
        os.umount("/fl")
    check(outcomes == {3, 4}, "both a lost and a kept interrupted append were exercised")
    info("block writes per session append:", n_writes)
