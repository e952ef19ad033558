"""Sessions and their store (firmware/sessions.py, firmware/sessionstore.py): summaries
match what happened, the store is bounded and counts what it drops, and a power cut at any
moment loses no completed record."""

import os

from mphelp import check, info, req

from firmware.sessions import Sessions
from firmware.sessionstore import SessionStore


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


@req("PS-14")
def test_summary_matches_what_happened():
    """PS-14: a session's summary lists each pass with its depth, rate, strokes and duration,
    the faults, the totals; it is stored after each pass and read back the same."""
    clock = Clock()
    _mount(RamDisk(), fresh=True)
    s = Sessions(SessionStore("/fl/sessions"), clock=clock, wallclock=lambda: 1_700_000_000)
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
    s2 = Sessions(SessionStore("/fl/sessions"), clock=clock)
    check(s2.last_id == 2 and [x["id"] for x in s2.list()] == [1, 2])
    check(s2.list()[0]["pen_session"] == "1" and s2.list()[0]["passes"] == 2)
    check(s2.last()["passes"][0]["depth_mm"] == 1.0)
    os.umount("/fl")


@req("PS-15", "SP-60")
def test_store_is_bounded_drops_oldest_and_counts_unfetched():
    """PS-15, SP-60: the store keeps the newest `keep` sessions; older ones are dropped,
    oldest first, each counted, and counted as unfetched when the host had not confirmed it
    (`ack`); a listing is bounded (the newest 32, or N from FIRST)."""
    _mount(RamDisk(blocks=64), fresh=True)
    clock = Clock()
    s = Sessions(SessionStore("/fl/sessions", keep=8), clock=clock)
    for k in range(1, 41):
        s.new_cartridge()
        _session(s, clock, [(500, 100000, 100, 1000), (600, 100000, 100, 1000)])
        if k == 20:
            s.ack(15)
        check(len(s.store.ids) <= 8, "bounded")
    s.close()
    ids = s.store.ids
    check(ids == list(range(33, 41)), repr(ids))
    inf = s.info()
    check(inf["dropped"] == 32 and inf["acked"] == 15, repr(inf))
    # 1..12 went before the ack (at session 20), 13..15 after it, 16..32 were never confirmed
    check(inf["unfetched"] == 12 + 17, "dropped before the host had them: %r" % inf)
    check(inf["kept"] == 8 and inf["first"] == 33 and inf["last"] == 40 and inf["next"] == 41)
    check([e["id"] for e in s.list(None, 3)] == [38, 39, 40])
    check([e["id"] for e in s.list(35, 2)] == [35, 36])
    s2 = Sessions(SessionStore("/fl/sessions", keep=8), clock=clock)
    check(s2.info() == inf, "the counters survive a reboot: %r" % s2.info())
    # Opened with a smaller retention, the oldest beyond it go at once, each counted (none
    # was confirmed after 15), and the next session still takes a new number.
    s3 = Sessions(SessionStore("/fl/sessions", keep=3), clock=clock)
    i3 = s3.info()
    check(list(s3.store.ids) == [38, 39, 40], repr(s3.store.ids))
    check(i3["dropped"] == 37 and i3["unfetched"] == 12 + 17 + 5 and i3["next"] == 41, repr(i3))
    left = sorted(n for n in os.listdir("/fl/sessions") if n != "meta")
    check(left == ["%08d" % k for k in (38, 39, 40)], repr(left))
    check(s3.get(37) is None and s3.get(38)["id"] == 38)
    os.umount("/fl")


@req("PS-16")
def test_corrupt_record_is_absent_its_neighbours_intact():
    """PS-16: a session file whose bytes changed (bit rot, a write torn outside littlefs)
    fails its CRC and reads as absent; the others read back whole."""
    _mount(RamDisk(), fresh=True)
    clock = Clock()
    s = Sessions(SessionStore("/fl/sessions"), clock=clock)
    for _ in range(3):
        s.new_cartridge()
        _session(s, clock, [(500, 100000, 1000, 10000)])
    s.close()
    fn = "/fl/sessions/00000002"
    with open(fn, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x55
    with open(fn, "wb") as f:
        f.write(data)
    s = Sessions(SessionStore("/fl/sessions"), clock=clock)
    check(s.get(2) is None and s.get(1)["strokes"] == 1000 and s.get(3)["strokes"] == 1000)
    check(s.new_cartridge() == 4, "numbers go on")
    os.umount("/fl")


@req("PS-16", "SP-61")
def test_power_cut_on_littlefs_at_every_write():
    """PS-16, SP-61: on a littlefs flash (RAM block device), the power is cut after N block
    writes for every N while a session is stored; after remount every session stored before is
    intact and the interrupted one is the old or the new record, whole."""
    disk = RamDisk()
    _mount(disk, fresh=True)
    clock = Clock()
    s = Sessions(SessionStore("/fl/sessions"), clock=clock)
    for _ in range(3):
        s.new_cartridge()
        _session(s, clock, [(500, 100000, 1000, 10000)])
    s.new_cartridge()
    s.before_run(800, 110000)
    s.pass_begin(800, 110000, 0, clock.t)
    clock.t += 10000
    s.pass_end(2000, clock.t)
    image = bytes(disk.data)
    w0 = disk.writes
    s.commit()  # the write we are going to cut
    n_writes = disk.writes - w0
    check(n_writes > 0)
    cur = s.current
    os.umount("/fl")
    outcomes = set()
    for cut in range(n_writes + 1):
        disk.data[:] = image  # the flash as it was before the write (one disk: RAM is tight)
        disk.cut = None
        _mount(disk)
        s = Sessions(SessionStore("/fl/sessions"), clock=clock)
        s.current = cur
        s._dirty = True
        disk.cut = disk.writes + cut
        try:
            s.commit()
        except OSError:
            pass
        disk.cut = None
        _mount(disk)  # the power comes back
        s = Sessions(SessionStore("/fl/sessions"), clock=clock)
        ids = s.store.ids
        check(ids == [1, 2, 3, 4], "cut after %d writes: %r" % (cut, ids))
        for i in (1, 2, 3):
            check(s.get(i)["passes"][0]["strokes"] == 1000, "intact")
        r = s.get(4)
        if "interrupted_pass" in r:
            check(r["passes"] == [] and r["interrupted_pass"]["depth_mm"] == 0.8, repr(r))
            outcomes.add("old")
        else:
            check(r["passes"][0]["strokes"] == 2000, repr(r))
            outcomes.add("new")
        check(s.new_cartridge() == 5, "number 4 is never given again")
        os.umount("/fl")
    check(outcomes == {"old", "new"}, "both the old and the new record were exercised")
    info("block writes per session store:", n_writes)
