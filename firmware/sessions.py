"""Sessions and cartridges, and the bounded record log that keeps their summaries on the pen.

A needle cartridge is single-use: a session starts when a new cartridge is confirmed and ends
when the next one is. A session's summary (start, duration, depth and stroke rate of each pass,
strokes, faults) is what `session get N` / `session summary last` return; its JSON is the one
`pen.records.summary` checks on the host:

    {"id": 7, "pen_session": "7", "cartridge": 7, "start": "2026-03-01T10:02:00",
     "duration_s": 745.0, "strokes": 21600, "preset": "acne_scars_cheeks",
     "passes": [{"depth_mm": 1.5, "stroke_hz": 120, "strokes": 21600, "duration_s": 180.0,
                 "start_s": 12.5}],
     "faults": [{"code": "stall", "at_s": 312.5}],
     "overrides": [{"kind": "depth", "from_mm": 2.5, "to_mm": 2.55, "at_s": 200.1,
                    "by": "button", "preset": "acne_scars_cheeks"}]}

A pass is one stretch of needle running at one depth and one stroke rate (a rate change while
running starts a new pass record). `preset` is the preset active when the first pass began
(null: none). `overrides` lists every time the depth target left the active preset's range (what,
from, to, when, by whom: `button` or `serial`), at most `max_overrides` of them (later ones
are counted in `overrides_not_itemised`); a target already outside the range when the session
begins is listed at its start (from the range's bound; by `before` when its source is unknown,
e.g. after a reboot).

The record log (`RecordLog`) survives power loss: records are only ever appended, each framed
as  b"SR" | length (2 bytes, little-endian) | payload | CRC-32 of length+payload (4 bytes),
so a record torn by a power cut fails its CRC and is skipped; the scan resynchronises on the
next magic. The log is bounded: when an append would pass `max_bytes`, the newest record of each
session that fits in half the space is copied to a new file which then replaces the old one by
a rename (atomic on littlefs), so the oldest sessions are dropped, never a recent one. A session
is appended after each pass, i.e. a power cut loses at most the pass that was running.
Writes happen only while the needle motor is stopped (the pen calls `commit()` then): a flash
erase stalls both cores on the RP2040.
"""

import json
import time
from binascii import crc32

from micropython import const

_MAGIC = b"SR"
_HDR = const(4)
_TAIL = const(4)
_MAX_RECORD = const(4096)


def _crc(data):
    return crc32(data) & 0xFFFFFFFF


def frame(payload):
    n = len(payload)
    body = bytes((n & 0xFF, n >> 8)) + payload
    c = _crc(body)
    return _MAGIC + body + bytes((c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, c >> 24))


def scan(data):
    """Valid records in `data` (bytes), in order: list of (offset, payload). Torn or corrupt
    stretches are skipped by looking for the next magic."""
    out = []
    i = 0
    end = len(data)
    while i + _HDR + _TAIL <= end:
        if data[i : i + 2] != _MAGIC:
            j = data.find(_MAGIC, i + 1)
            if j < 0:
                break
            i = j
            continue
        n = data[i + 2] | (data[i + 3] << 8)
        stop = i + _HDR + n + _TAIL
        if n > _MAX_RECORD or stop > end:
            i += 1
            continue
        body = data[i + 2 : i + _HDR + n]
        t = data[stop - 4 : stop]
        c = t[0] | (t[1] << 8) | (t[2] << 16) | (t[3] << 24)
        if _crc(body) != c:
            i += 1
            continue
        out.append((i, bytes(data[i + _HDR : i + _HDR + n])))
        i = stop
    return out


class RecordLog:
    """Append-only, CRC-framed, bounded log of JSON records in one file."""

    max_bytes = 16384

    def __init__(self, path, max_bytes=None, key="id"):
        self.path = path
        self.key = key
        if max_bytes is not None:
            self.max_bytes = max_bytes
        self.size = 0
        self.repair()

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def repair(self):
        """At boot: if the file ends in a torn record (or holds garbage), rewrite it with the
        valid records only, so new appends follow a clean record boundary."""
        data = self._read()
        recs = scan(data)
        clean = sum(_HDR + len(p) + _TAIL for _, p in recs)
        if clean != len(data):
            self._rewrite([p for _, p in recs])
        else:
            self.size = len(data)

    def _rewrite(self, payloads):
        tmp = self.path + ".new"
        with open(tmp, "wb") as f:
            for p in payloads:
                f.write(frame(p))
        import os

        os.rename(tmp, self.path)
        self.size = sum(_HDR + len(p) + _TAIL for p in payloads)

    def records(self):
        """Every valid record (decoded JSON), oldest first."""
        out = []
        for _, p in scan(self._read()):
            try:
                out.append(json.loads(p))
            except ValueError:
                pass
        return out

    def latest(self):
        """The newest record of each key, oldest key first."""
        seen = {}
        order = []
        for r in self.records():
            k = r.get(self.key)
            if k not in seen:
                order.append(k)
            seen[k] = r
        return [seen[k] for k in order]

    def append(self, obj):
        payload = json.dumps(obj).encode()
        if len(payload) > _MAX_RECORD:
            raise ValueError("record too large")
        rec = frame(payload)
        if self.size + len(rec) > self.max_bytes:
            self._compact(len(rec))
        with open(self.path, "ab") as f:
            f.write(rec)
        self.size += len(rec)

    def _compact(self, room):
        """Keep the newest record of each key, newest keys first, within half the space."""
        keep = []
        used = room
        for r in reversed(self.latest()):
            p = json.dumps(r).encode()
            if used + len(p) + _HDR + _TAIL > self.max_bytes // 2:
                break
            keep.append(p)
            used += len(p) + _HDR + _TAIL
        keep.reverse()
        self._rewrite(keep)


def iso(secs):
    t = time.localtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])


class Sessions:
    """The open session (one cartridge) and the stored summaries."""

    max_passes = 24  # passes kept per summary (later ones are counted, not itemised)
    max_faults = 8
    max_overrides = 6  # with 24 passes and 8 faults the summary stays under _MAX_RECORD

    def __init__(self, log, clock=None, wallclock=None):
        self.log = log
        self._ms = clock or time.ticks_ms
        self._wall = wallclock or time.time
        self.current = None
        self._pass = None  # (t0_ms, depth_um, rate_mhz, strokes0)
        self._dirty = False
        last = 0
        for r in log.latest():
            i = r.get("id", 0)
            if isinstance(i, int) and i > last:
                last = i
        self.last_id = last

    # -- the open session ------------------------------------------------------------------
    def new_cartridge(self, info=None):
        """Close the open session (stored if it has anything in it) and open the next one.
        Returns its number (= the cartridge's number)."""
        self.close()
        self.last_id += 1
        self.current = {
            "id": self.last_id,
            "pen_session": str(self.last_id),
            "cartridge": self.last_id,
            "start": iso(self._wall()),
            "duration_s": 0.0,
            "strokes": 0,
            "preset": None,
            "passes": [],
            "faults": [],
            "overrides": [],
        }
        self._t0 = self._ms()
        self._pass = None
        self._dirty = False
        return self.last_id

    def _at_s(self, t_ms):
        return round(time.ticks_diff(t_ms, self._t0) / 1000, 3)

    def pass_begin(self, depth_um, rate_mhz, strokes, t_ms, preset=None):
        cur = self.current
        if cur is not None:
            if not cur["passes"] and cur["preset"] is None:
                cur["preset"] = preset
            self._pass = (t_ms, depth_um, rate_mhz, strokes)

    def pass_end(self, strokes, t_ms):
        cur = self.current
        p = self._pass
        if cur is None or p is None:
            return
        self._pass = None
        n = strokes - p[3]
        cur["strokes"] += n
        cur["duration_s"] = self._at_s(t_ms)
        ps = cur["passes"]
        if len(ps) < self.max_passes:
            rate = p[2]
            ps.append({
                "depth_mm": p[1] / 1000,
                "stroke_hz": rate // 1000 if rate % 1000 == 0 else rate / 1000,
                "strokes": n,
                "duration_s": round(time.ticks_diff(t_ms, p[0]) / 1000, 3),
                "start_s": self._at_s(p[0]),
            })  # fmt: skip
        else:
            cur["passes_not_itemised"] = cur.get("passes_not_itemised", 0) + 1
        self._dirty = True

    def add_fault(self, name, t_ms):
        cur = self.current
        if cur is None:
            return
        if len(cur["faults"]) < self.max_faults:
            cur["faults"].append({"code": name, "at_s": self._at_s(t_ms)})
        else:
            # SF-11: every fault is in the record: beyond max_faults counted, never dropped
            cur["faults_not_itemised"] = cur.get("faults_not_itemised", 0) + 1
        self._dirty = True

    def add_override(self, from_um, to_um, by, preset, t_ms):
        """The depth target left the active preset's range (recorded in the open session)."""
        cur = self.current
        if cur is None:
            return
        ov = cur["overrides"]
        if len(ov) < self.max_overrides:
            ov.append({"kind": "depth", "from_mm": from_um / 1000, "to_mm": to_um / 1000,
                       "at_s": self._at_s(t_ms), "by": by, "preset": preset})  # fmt: skip
        else:
            cur["overrides_not_itemised"] = cur.get("overrides_not_itemised", 0) + 1
        self._dirty = True

    def commit(self):
        """Append the open session's summary if it changed (only call with the motor off)."""
        if self.current is not None and self._dirty:
            self.log.append(self.current)
            self._dirty = False

    def close(self):
        self.commit()
        self.current = None
        self._pass = None

    # -- the stored summaries --------------------------------------------------------------
    def list(self):
        out = []
        for r in self.log.latest():
            out.append({"id": r.get("id"), "start": r.get("start"),
                        "duration_s": r.get("duration_s")})  # fmt: skip
        return out

    def get(self, n):
        for r in self.log.latest():
            if r.get("id") == n:
                return r
        return None

    def last(self):
        """The newest summary: the open session if it has passes, else the newest stored."""
        if self.current is not None and self.current["passes"]:
            return self.current
        recs = self.log.latest()
        return recs[-1] if recs else None


class Cartridge:
    """The fitted cartridge and its passes, for the state machine (firmware/pen.py): its
    number, whether it has strokes left, the strokes used (completed passes + the running one),
    the warning and the limit; and the session record (a `Sessions`, optional) that the passes,
    faults and overrides go into."""

    LIMIT = const(1)  # check(): the cartridge is spent
    WARN = const(2)  # check(): it has used its warning share

    def __init__(self, sessions=None, clock=None):
        self.sessions = sessions
        self._ms = clock or time.ticks_ms
        self.number = 0  # confirmed cartridge number (0: none since boot)
        self.ok = False  # a confirmed cartridge with strokes left
        self.warned = False
        self.strokes = 0  # strokes on the current cartridge
        self._base = 0  # strokes of its completed passes
        self._strokes0 = 0  # the drive's stroke count when the running pass began

    def new(self, depth_um, rate_hz):
        """A new cartridge is fitted: closes the previous session, opens the next one."""
        if self.sessions is not None:
            info = {"depth_um": depth_um, "rate_mhz": rate_hz * 1000}
            self.number = self.sessions.new_cartridge(info)
        else:
            self.number += 1
        self.ok = True
        self.warned = False
        self.strokes = 0
        self._base = 0
        return self.number

    def pass_begin(self, strokes_now, depth_um, rate_hz, preset):
        self._strokes0 = strokes_now
        if self.sessions is not None:
            self.sessions.pass_begin(depth_um, rate_hz * 1000, strokes_now, self._ms(), preset)

    def pass_end(self, strokes_now):
        self._base += strokes_now - self._strokes0
        self._strokes0 = strokes_now
        self.strokes = self._base
        if self.sessions is not None:
            self.sessions.pass_end(strokes_now, self._ms())

    def check(self, strokes_now, limit, warn_pct):
        """While running: 0, or LIMIT once spent (no strokes left), or WARN once."""
        used = self._base + strokes_now - self._strokes0
        self.strokes = used
        if used >= limit:
            self.ok = False
            return self.LIMIT
        if not self.warned and used * 100 >= limit * warn_pct:
            self.warned = True
            return self.WARN
        return 0

    def add_fault(self, name):
        if self.sessions is not None and self.ok:
            self.sessions.add_fault(name, self._ms())

    def add_spent(self, name):
        if self.sessions is not None:
            self.sessions.add_fault(name, self._ms())

    def add_override(self, from_um, to_um, by, preset):
        if self.sessions is not None:
            self.sessions.add_override(from_um, to_um, by, preset, self._ms())

    def store(self):
        """Write the session record (flash: call only with the motor off). Returns None, or
        the error's text when it cannot be written (which never stops the pen)."""
        if self.sessions is None:
            return None
        try:
            self.sessions.commit()
        except (OSError, ValueError, MemoryError) as e:
            return str(e)
        return None
