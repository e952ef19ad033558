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

The summaries are kept by `firmware.sessionstore.SessionStore` (one power-safe file per session, the
newest 256 kept, drops counted, numbers never reused). A session's record is written when a
pass is about to start (`before_run`, motor still off: so a brown-out in its first pass leaves
the session, with the pass that was running as `interrupted_pass`) and after each pass
(`commit`). Writes happen only while the needle motor is stopped: a flash erase stalls both
cores on the RP2040.
"""

import time

from micropython import const

LIST_MAX = const(32)  # entries in one `session list` reply (RAM stays bounded)


def iso(secs):
    t = time.localtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])


class Sessions:
    """The open session (one cartridge) and the stored summaries."""

    max_passes = 24  # passes kept per summary (later ones are counted, not itemised)
    max_faults = 8
    max_overrides = 6  # with 24 passes and 8 faults the summary stays under _MAX_RECORD

    def __init__(self, store, clock=None, wallclock=None):
        self.store = store
        self._ms = clock or time.ticks_ms
        self._wall = wallclock or time.time
        self.current = None
        self._pass = None  # (t0_ms, depth_um, rate_mhz, strokes0)
        self._dirty = False

    @property
    def last_id(self):
        return self.store.meta["next"] - 1

    # -- the open session ------------------------------------------------------------------
    def new_cartridge(self, info=None):
        """Close the open session (stored if it has anything in it) and open the next one.
        Returns its number (= the cartridge's number)."""
        self.close()
        n = self.store.reserve()  # durable with the session's first record
        self.current = {
            "id": n,
            "pen_session": str(n),
            "cartridge": n,
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
        return n

    def _at_s(self, t_ms):
        return round(time.ticks_diff(t_ms, self._t0) / 1000, 3)

    def before_run(self, depth_um, rate_mhz, preset=None):
        """The needle is about to start (motor still off): store the session with the pass as
        open, so a power cut during it leaves the record (only call with the motor off)."""
        cur = self.current
        if cur is None:
            return
        if not cur["passes"] and cur["preset"] is None:
            cur["preset"] = preset
        cur["pass_open"] = {"depth_mm": depth_um / 1000, "stroke_hz": _hz(rate_mhz),
                            "start_s": self._at_s(self._ms())}  # fmt: skip
        self.store.put(cur)
        self._dirty = False

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
        cur.pop("pass_open", None)
        n = strokes - p[3]
        cur["strokes"] += n
        cur["duration_s"] = self._at_s(t_ms)
        ps = cur["passes"]
        if len(ps) < self.max_passes:
            rate = p[2]
            ps.append({
                "depth_mm": p[1] / 1000,
                "stroke_hz": _hz(rate),
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
            self.store.put(self.current)
            self._dirty = False

    def close(self):
        self.commit()
        self.current = None
        self._pass = None

    # -- the stored summaries --------------------------------------------------------------
    def entries(self, first=None, n=LIST_MAX):
        """Yield up to `n` entries (id, pen_session, start, duration_s, passes), oldest first:
        the newest ones, or those from session `first` on. One summary in RAM at a time."""
        ids = self.store.ids
        if first is None:
            k = len(ids) - n if len(ids) > n else 0
        else:
            k = 0
            while k < len(ids) and ids[k] < first:
                k += 1
        end = k + n if k + n < len(ids) else len(ids)
        while k < end:
            i = ids[k]
            k += 1
            r = self.store.get(i)
            if r is not None:
                yield {"id": i, "pen_session": str(i), "start": r.get("start"),
                       "duration_s": r.get("duration_s"),
                       "passes": len(r.get("passes") or ())}  # fmt: skip
            r = None

    def list(self, first=None, n=LIST_MAX):
        return list(self.entries(first, n))

    def get(self, n):
        cur = self.current
        if cur is not None and cur["id"] == n and cur["passes"]:
            return cur
        r = self.store.get(n)
        if r is not None and "pass_open" in r and (cur is None or cur["id"] != n):
            r["interrupted_pass"] = r.pop("pass_open")  # the power failed during it
        return r

    def last(self):
        """The newest summary: the open session if it has passes, else the newest stored."""
        if self.current is not None and self.current["passes"]:
            return self.current
        ids = self.store.ids
        return self.get(ids[-1]) if ids else None

    def info(self):
        """The store's counters: kept, first, last, next, acked, dropped, unfetched, keep."""
        return self.store.info()

    def ack(self, n):
        self.store.ack(n)



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

    def before_run(self, depth_um, rate_hz, preset):
        """The needle is about to start (motor still off): the session's record, with this pass
        open, goes to flash first. Returns None, or the error's text (never stops the pen)."""
        if self.sessions is None:
            return None
        try:
            self.sessions.before_run(depth_um, rate_hz * 1000, preset)
        except (OSError, ValueError, MemoryError) as e:
            return str(e)
        return None

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


def _hz(rate_mhz):
    return rate_mhz // 1000 if rate_mhz % 1000 == 0 else rate_mhz / 1000
