"""A littlefs (VfsLfs2) filesystem on a RAM block device, with a power-cut injector, for the
settings-store tests (MicroPython docs, "filesystem": the extended block-device interface).

Every programming operation counts as one *block write*: a `writeblocks` call and an erase
(ioctl 6). `cut_at(k)` makes the k-th write from now the moment the power fails: that write is
applied only in part (`torn` bytes of it, 0 = not at all) and every later write is lost, as on a
flash chip whose supply collapsed. `checkpoint()` / `rollback()` put the chip's content back as
it was (keeping copies of only the pages that changed), so a test can "reboot" onto the content
as it was when the power went, again and again.

The content is kept in 512-byte pages, whatever the block size: a fragmented MicroPython heap
has room for many small buffers but few large ones.
"""

import vfs

_PAGE = 512
_ERASED = b"\xff" * _PAGE


class _PowerCut:
    """The power-cut injector both block devices share: every block write is counted."""

    def _cut_init(self):
        self.writes = 0
        self._cut = None
        self.torn = 0
        self.dead = False

    def _write_allowed(self):
        """Count a write; True: do it; None: the power fails during it; False: power is gone."""
        if self.dead:
            return False
        self.writes += 1
        if self._cut is not None and self.writes >= self._cut:
            self.dead = True
            return None
        return True

    def cut_at(self, k, torn=0):
        """Power fails during the k-th block write from now (1 = the next one)."""
        self._cut = self.writes + k
        self.torn = torn
        self.dead = False

    def power_on(self):
        self._cut = None
        self.dead = False


class RamFlash(_PowerCut):
    def __init__(self, block_size=512, blocks=48):
        self.bs = block_size
        self.n = blocks
        self.pages = []
        for _ in range(block_size * blocks // _PAGE):
            self.pages.append(bytearray(_ERASED))
        self._cut_init()
        self._undo = None  # page -> content at the checkpoint (pages changed since)

    # -- block device protocol ---------------------------------------------------------------
    def readblocks(self, block, buf, offset=0):
        a = block * self.bs + offset
        n = len(buf)
        i = 0
        while i < n:
            p = self.pages[a // _PAGE]
            o = a % _PAGE
            k = min(_PAGE - o, n - i)
            buf[i : i + k] = p[o : o + k]
            i += k
            a += k

    def _keep(self, page):
        if self._undo is not None and page not in self._undo:
            self._undo[page] = bytes(self.pages[page])

    def _program(self, a, buf, count):
        i = 0
        while i < count:
            self._keep(a // _PAGE)
            p = self.pages[a // _PAGE]
            o = a % _PAGE
            k = min(_PAGE - o, count - i)
            p[o : o + k] = buf[i : i + k]
            i += k
            a += k

    def writeblocks(self, block, buf, offset=None):
        a = block * self.bs + (offset or 0)
        ok = self._write_allowed()
        if ok:
            self._program(a, buf, len(buf))
        elif ok is None and self.torn:
            self._program(a, buf, min(self.torn, len(buf)))
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.n
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase one block
            if self._write_allowed():
                first = arg * self.bs // _PAGE
                for pg in range(first, first + self.bs // _PAGE):
                    self._keep(pg)
                    self.pages[pg][:] = _ERASED
            return 0
        return 0

    # -- test helpers ---------------------------------------------------------------------------
    def checkpoint(self):
        """Remember the content from now on (only the pages that change are copied)."""
        self._undo = {}

    def rollback(self):
        """Put back the content as it was at the checkpoint (which stays set)."""
        for page, data in self._undo.items():
            self.pages[page][:] = data
        self._undo = {}
        self.power_on()


class FlatFlash(_PowerCut):
    """The same block device and power-cut injector as RamFlash (no checkpoint/rollback), in one
    flat buffer with memoryview copies: many times faster, for runs of thousands of writes on a
    full-sized filesystem (allocate it first, while the heap is still in one piece)."""

    def __init__(self, block_size, blocks):
        self.bs = block_size
        self.n = blocks
        self.data = bytearray(block_size * blocks)
        self.mv = memoryview(self.data)
        self.erased = b"\xff" * block_size
        for b in range(blocks):
            self.mv[b * block_size : (b + 1) * block_size] = self.erased
        self._cut_init()

    def readblocks(self, block, buf, offset=0):
        a = block * self.bs + offset
        buf[:] = self.mv[a : a + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        a = block * self.bs + (offset or 0)
        ok = self._write_allowed()
        if ok:
            self.mv[a : a + len(buf)] = buf
        elif ok is None and self.torn:
            k = min(self.torn, len(buf))
            self.mv[a : a + k] = buf[:k]
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            if self._write_allowed():
                a = arg * self.bs
                self.mv[a : a + self.bs] = self.erased
        return 0


def format_and_mount(flash, mount="/flash"):
    vfs.VfsLfs2.mkfs(flash)
    return mount_fs(flash, mount)


def mount_fs(flash, mount="/flash"):
    unmount(mount)
    fs = vfs.VfsLfs2(flash)
    vfs.mount(fs, mount)
    return fs


def unmount(mount="/flash"):
    try:
        vfs.umount(mount)
    except OSError:
        pass
