"""The session summaries on the pen's flash (`SessionStore`): bounded, power-safe, counted.

See the class's docstring for the layout, the retention and the RAM it needs.
"""

import os
from array import array
from binascii import crc32

from micropython import const


def _crc(data):
    return crc32(data) & 0xFFFFFFFF


_REC_MAX = const(4096)  # a session summary's JSON, at most (sessions.Sessions keeps it under)
KEEP = const(256)  # sessions kept on the pen (see SessionStore)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _put_atomic(path, data):
    """Write `data` to `path` by write-and-rename: a power cut leaves the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def _is_id(name):
    return len(name) == 8 and name.isdigit()


# Every `os.ilistdir` loop below runs to its end: littlefs keeps an open directory on a list
# until its iterator is exhausted, and an iterator left half-way can be freed while listed.


class _Ids:
    """The kept session numbers, ascending, in one fixed buffer (4 bytes each, `cap` of them)
    allocated once when the store opens: the store's one long-lived block besides the meta
    dict, the same size whatever the number of sessions, and never regrown (a fragmented heap
    cannot fail a later append)."""

    def __init__(self, cap):
        self._a = array("i", bytes(4 * cap))
        self._n = 0

    def __len__(self):
        return self._n

    def __bool__(self):
        return self._n > 0

    def __getitem__(self, k):
        n = self._n
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("index out of range")
        return self._a[k]

    def __iter__(self):
        a = self._a
        for k in range(self._n):
            yield a[k]

    def _find(self, v):
        """The index of the first number >= v."""
        a = self._a
        lo, hi = 0, self._n
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def __contains__(self, v):
        k = self._find(v)
        return k < self._n and self._a[k] == v

    def add(self, v):
        """Insert v in order (no-op when present). The caller keeps len below the capacity."""
        a = self._a
        k = self._find(v)
        if k < self._n and a[k] == v:
            return
        if self._n >= len(a):
            raise MemoryError("session index full")
        j = self._n
        while j > k:
            a[j] = a[j - 1]
            j -= 1
        a[k] = v
        self._n += 1

    def remove(self, v):
        a = self._a
        k = self._find(v)
        if k >= self._n or a[k] != v:
            raise ValueError("not kept")
        self._n -= 1
        while k < self._n:
            a[k] = a[k + 1]
            k += 1

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        return repr(list(self))


class SessionStore:
    """The session summaries on the pen's flash: one small file per session in a folder.

    `DIR/NNNNNNNN` (the session number, 8 digits) holds one summary as
    b"SR1 " + CRC-32 (8 hex digits) + b"\\n" + JSON, replaced whole by write-and-rename (atomic on
    littlefs and POSIX), so a power cut leaves the previous or the new summary, never a mix; a
    file whose CRC fails is treated as absent. `DIR/meta` (the same framing) holds the counters
    that must survive power loss:

        next      the number the next session gets (written before a session's first record, so
                  a number on record never repeats, even when the power fails in its first pass)
        acked     the newest session the host has confirmed it stored (`session ack N`)
        dropped   sessions removed to make room (oldest first)
        unfetched sessions among those that the host had not confirmed: counted, never silent
        floor     the newest session dropped (a file at or below it left by a power cut is
                  removed at the next start, not counted twice)

    Retention: the newest KEEP (256) sessions. On littlefs a summary of 0.2-4 KB takes one
    4 KiB block, so the store needs at most (KEEP + 2) * 4 KiB = 1032 KiB of the pen's 1408 KiB
    filesystem; the rest is for the settings (and a left-over `.tmp`). RAM: one summary (at
    most 4 KB) while it is read or written, plus the index of the kept numbers (one fixed
    buffer of 4 * (KEEP + 1) bytes, allocated first when the store opens): nothing grows with
    the number of sessions ever recorded.

    Flash writes happen only while the needle motor is stopped (the callers see to it).
    """

    def __init__(self, path="sessions", keep=KEEP):
        self.path = path
        self.keep = keep
        # The index first, while the heap is in one piece: the scan below leaves garbage.
        ids = _Ids(keep + 1)
        self.meta = {"next": 1, "acked": 0, "dropped": 0, "unfetched": 0, "floor": 0}
        try:
            os.mkdir(path)
        except OSError:
            pass
        m = self._load(path + "/meta")
        if m is not None:
            for k in self.meta:
                v = m.get(k)
                if isinstance(v, int) and v >= 0:
                    self.meta[k] = v
        stale = None
        for ent in os.ilistdir(path):
            name = ent[0]
            if name.endswith(".tmp") or (_is_id(name) and int(name) <= self.meta["floor"]):
                stale = name  # a write the power cut short; a drop whose removal it cut short
        while stale is not None:
            try:
                os.remove(path + "/" + stale)
            except OSError:
                pass
            stale = None
            for ent in os.ilistdir(path):
                name = ent[0]
                if name.endswith(".tmp") or (_is_id(name) and int(name) <= self.meta["floor"]):
                    stale = name
        over = False  # more files than the index holds (`keep` made smaller since)
        for ent in os.ilistdir(path):
            name = ent[0]
            if _is_id(name):
                n = int(name)
                if len(ids) > keep:
                    over = True
                    if n < ids[0]:
                        continue  # older than every indexed one: dropped below
                    ids.remove(ids[0])
                ids.add(n)
        self.ids = ids
        while over:  # the oldest beyond the index go, counted, one fresh listing per removal
            over = False
            for ent in os.ilistdir(path):
                if _is_id(ent[0]) and int(ent[0]) < ids[0]:
                    over = int(ent[0])
            if over:
                self._drop(over, indexed=False)
        while len(ids) > keep:
            self._drop(ids[0])
        if ids and ids[-1] >= self.meta["next"]:
            self.meta["next"] = ids[-1] + 1
        self.durable_next = self.meta["next"]

    # -- framing --------------------------------------------------------------------------------
    def _file(self, n):
        return "%s/%08d" % (self.path, n)

    @staticmethod
    def _frame(payload):
        return b"SR1 %08x\n" % _crc(payload) + payload

    def _load(self, fn):
        """The JSON object in `fn`, or None (absent, torn or corrupt)."""
        import json

        try:
            if os.stat(fn)[6] > _REC_MAX + 16:
                return None
            with open(fn, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if len(data) < 13 or data[:4] != b"SR1 " or data[12:13] != b"\n":
            return None
        payload = data[13:]
        try:
            if int(data[4:12], 16) != _crc(payload):
                return None
            obj = json.loads(payload)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def _save_meta(self):
        import json

        _put_atomic(self.path + "/meta", self._frame(json.dumps(self.meta).encode()))
        self.durable_next = self.meta["next"]

    # -- numbers ----------------------------------------------------------------------------------
    def reserve(self):
        """The next session number. It becomes durable with the session's first record
        (`put`, before its first pass), so a number that reached a pass is never given again;
        one whose cartridge never ran may be given again after a power cut (nothing was
        recorded under it). No flash write here: this runs inside the buttons' gesture."""
        n = self.meta["next"]
        self.meta["next"] = n + 1
        return n

    def ack(self, n):
        """The host confirms it stored every session up to `n`."""
        if n > self.meta["acked"]:
            self.meta["acked"] = min(n, self.meta["next"] - 1)
            self._save_meta()

    # -- records ----------------------------------------------------------------------------------
    def put(self, rec):
        """Store (or replace) session `rec["id"]`'s summary; make room first when it is new."""
        import json

        n = rec["id"]
        payload = json.dumps(rec).encode()
        if len(payload) > _REC_MAX:
            raise ValueError("record too large")
        ids = self.ids
        new = n not in ids
        if new:
            while len(ids) >= self.keep:
                self._drop(ids[0])
        if new and n >= self.durable_next:
            if n >= self.meta["next"]:
                self.meta["next"] = n + 1
            self._save_meta()  # the number is taken for good before the record exists
        _put_atomic(self._file(n), self._frame(payload))
        if new:
            ids.add(n)

    def _drop(self, n, indexed=True):
        """Remove the oldest session; counted (on flash) before it goes."""
        m = self.meta
        m["dropped"] += 1
        if n > m["acked"]:
            m["unfetched"] += 1
        if n > m["floor"]:
            m["floor"] = n
        self._save_meta()
        try:
            os.remove(self._file(n))
        except OSError:
            pass
        if indexed:
            self.ids.remove(n)

    def get(self, n):
        if n not in self.ids:
            return None
        return self._load(self._file(n))

    def info(self):
        d = dict(self.meta)
        d["kept"] = len(self.ids)
        d["keep"] = self.keep
        d["first"] = self.ids[0] if self.ids else None
        d["last"] = self.ids[-1] if self.ids else None
        return d
