"""Serial command protocol (docs/protocol.md): one line in, exactly one reply line out.

`Protocol.handle(line)` takes one received line (bytes, without its terminator; the link has
already removed the real-time bytes `!` and `?`) and returns the reply without its newline: a
str, or a list of str parts that together form one line (large replies such as
`telemetry fetch`, written part by part). Replies are `ok`, `ok PAYLOAD` or `error:N MESSAGE`
(N from firmware/errors.py); a leading `#N ` tag on the command is echoed on the reply. A
command that is refused, malformed or fails changes nothing.

Commands are the methods `cmd_<name>(args)`; the first line of each docstring is its usage and
the rest its help: tools/gen_docs.py turns them into firmware/help.py (MicroPython drops
docstrings), which `help` returns.

What the protocol uses of the application (tests use fakes that implement all of it):
  app.pen        the state machine facade: home() arm() disarm() run(hz) stop()
                 clear_fault() confirm_cartridge() status() fault_log() motor_running()
                 enter_service() exit_service() move_steps(n); raises
                 errors.Refused(code, message)
  app.pen.targets  the treatment targets' owner (firmware/targets.py): every `set`, `depth`,
                 `calib set`, `preset delete`, `defaults` goes through it
  app.settings   firmware.settings.Settings (reading, `save`)   app.auth  firmware.auth.Auth
  app.telemetry  firmware.telemetry.Telemetry app.link  firmware.link.SerialService
                 (set_stream(hz), stream_hz)
  app.sessions   list(), get(n), last()
  app.serial_number, app.board.pins.BOARD_REV: for `hello`
"""

import gc
import json
import time
from array import array

from micropython import const

from firmware import errors as E
from firmware.errors import Refused
from firmware.schema import digits
from firmware.settings import fmt_mm, parse_int, schema_hash
from firmware.version import FIRMWARE_VERSION, PROTOCOL_VERSION

_OOM = "error:19 out of memory"  # preallocated: the reply when nothing else can be built
# A fetch's reply is built while telemetry streams: ~220 bytes of text per sample. 50 samples
# (~11 KB transient) is what `pen log` asks for; 100 ran out of heap on a busy virtual pen.
FETCH_MAX = 50
FETCH_DEFAULT = 50


def error(code, message=None):
    msg = message or E.TABLE.get(code, "error")
    if "\n" in msg or "\r" in msg:
        msg = msg.replace("\n", " ").replace("\r", " ")
    return "error:%d %s" % (code, msg)


def _word(s):
    if not s or len(s) > 24:
        return False
    for c in s:
        if not ("a" <= c <= "z" or c == "_"):
            return False
    return True


def _int_arg(text, what, lo, hi):
    try:
        v = parse_int(text)
    except ValueError:
        raise Refused(E.BAD_ARGUMENT, what + " must be an integer") from None
    if not lo <= v <= hi:
        raise Refused(E.OUT_OF_RANGE, "%s must be %d..%d" % (what, lo, hi))
    return v


LIST_MAX = const(32)  # entries in one `session list` reply (firmware.sessions.LIST_MAX)


def _nargs(args, lo, hi, usage):
    if not lo <= len(args) <= hi:
        raise Refused(E.BAD_ARGUMENT, "usage: " + usage)


class Protocol:
    def __init__(self, app):
        self.app = app
        self._sample = array("i", bytes(4 * 11))

    # -- helpers ------------------------------------------------------------------------------
    def _pen(self):
        return self.app.pen

    def running(self):
        return self.app.pen.motor_running()

    def unlocked(self):
        return self.app.auth.unlocked()

    def status(self):
        st = self.app.pen.status()
        st["firmware_version"] = FIRMWARE_VERSION
        st["protocol_version"] = PROTOCOL_VERSION
        st["unlocked"] = self.unlocked()
        t = time.localtime()  # the pen's clock, as session summaries date their start
        st["clock"] = "%04d-%02d-%02dT%02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])
        return st

    def _sessions(self):
        s = self.app.sessions
        if s is None:
            raise Refused(E.NOT_FOUND, "no session records on this pen")
        return s

    # -- one line -----------------------------------------------------------------------------
    def handle(self, line):
        """One received line (bytes) -> its reply (str, or list of str parts of one line).
        Never raises: even out of memory, the line gets its one (untagged) reply."""
        try:
            return self._handle(line)
        except MemoryError:
            gc.collect()
            return _OOM

    def _handle(self, line):
        try:
            text = line.decode()
        except UnicodeError:
            return error(E.BAD_LINE, "line is not UTF-8")
        tag = None
        if text[:1] == "#":
            sp = text.find(" ")
            num = text[1:sp] if sp > 0 else text[1:]
            if not (len(num) <= 9 and digits(num)):
                return error(E.BAD_LINE, "bad tag: #N (up to 9 digits) then a space")
            tag = "#" + num + " "
            text = text[sp + 1 :] if sp > 0 else ""
        reply = self._dispatch(text)
        if tag is None:
            return reply
        if isinstance(reply, list):
            return [tag] + reply
        return tag + reply

    def _dispatch(self, text):
        args = text.split()
        if not args:
            return error(E.BAD_LINE, "empty line")
        name = args[0]
        fn = getattr(self, "cmd_" + name, None) if _word(name) else None
        if fn is None:
            return error(E.UNKNOWN_COMMAND, "unknown command: " + name[:24])
        try:
            r = fn(args[1:])
        except Refused as e:
            return error(e.code, e.message)
        except MemoryError:
            gc.collect()
            return error(E.INTERNAL, "out of memory")
        except Exception as e:  # noqa: BLE001 -- a bug must still get its one reply
            return error(E.INTERNAL, "internal error (%s)" % type(e).__name__)
        if r is None:
            return "ok"
        if isinstance(r, list):
            return ["ok "] + r
        if len(r) > 200:
            return ["ok ", r]  # no copy of a large payload
        return "ok " + r

    # -- handshake and information ---------------------------------------------------------------
    def cmd_hello(self, args):
        """hello
        Handshake: firmware and protocol versions, the settings schema's hash, serial number
        and board revision."""
        _nargs(args, 0, 0, "hello")
        app = self.app
        return json.dumps({
            "firmware_version": FIRMWARE_VERSION, "protocol_version": PROTOCOL_VERSION,
            "schema_hash": schema_hash(), "serial": app.serial_number,
            "board_rev": app.board.pins.BOARD_REV})  # fmt: skip

    def cmd_status(self, args):
        """status
        The pen's state as one JSON object (also the real-time byte `?`, as a `~S` line)."""
        _nargs(args, 0, 0, "status")
        return json.dumps(self.status())

    def cmd_help(self, args):
        """help
        The commands, as a JSON list of {"command": usage, "help": text}."""
        _nargs(args, 0, 0, "help")
        from firmware.help import HELP

        # One part per command, as `session list` does: never one large string on a small heap
        parts = ["["]
        for u, h in HELP:
            if len(parts) > 1:
                parts.append(", ")
            parts.append(json.dumps({"command": u, "help": h}))
        parts.append("]")
        return parts

    def cmd_faults(self, args):
        """faults
        The latched fault and the fault log since boot (newest last), and how the stored
        settings loaded."""
        _nargs(args, 0, 0, "faults")
        pen = self._pen()
        st = pen.status()
        log = []
        for t, name in pen.fault_log():
            log.append({"t_ms": t, "fault": name})
        return json.dumps({"fault": st["fault"], "fault_code": st["fault_code"], "log": log,
                           "dropped": pen.fault_log_dropped,
                           "settings": self.app.settings.load_status})  # fmt: skip

    # -- settings -----------------------------------------------------------------------------
    def cmd_get(self, args):
        """get KEY
        One setting: {"KEY": value}."""
        _nargs(args, 1, 1, "get KEY")
        return '{"%s": %s}' % (args[0], self.app.settings.text(args[0]))

    def cmd_set(self, args):
        """set KEY VALUE [override]
        Change one setting, checked against the schema (docs/settings.md); protected settings
        need `unlock`, some only change while the needle is stopped. `override` lets depth
        leave the active preset's range. Saved at once while the needle is stopped."""
        if len(args) < 2:
            raise Refused(E.BAD_ARGUMENT, "usage: set KEY VALUE")
        key = args[0]
        override = False
        if key == "depth" and len(args) == 3 and args[2] == "override":
            override = True
            args = args[:2]
        if key != "calib" and len(args) != 2:
            raise Refused(E.BAD_ARGUMENT, "usage: set KEY VALUE")
        value = " ".join(args[1:])
        stored = self.app.pen.targets.set(key, value, "serial", override, self.unlocked())
        return '{"%s": %s}' % (key, stored)

    def cmd_settings(self, args):
        """settings
        Every setting as one JSON object."""
        _nargs(args, 0, 0, "settings")
        return self.app.settings.as_json()

    def cmd_dump(self, args):
        """dump
        Every setting as a JSON list of `set` lines that rebuild them (replayable)."""
        _nargs(args, 0, 0, "dump")
        return json.dumps(self.app.settings.dump())

    def cmd_save(self, args):
        """save
        Store the settings now (only while the needle is stopped)."""
        _nargs(args, 0, 0, "save")
        self.app.settings.save()

    def cmd_defaults(self, args):
        """defaults
        Factory defaults for every setting, protected ones included (needs unlock; stopped)."""
        _nargs(args, 0, 0, "defaults")
        self.app.pen.targets.defaults(self.unlocked())

    def cmd_preset(self, args):
        """preset list | preset delete NAME
        The stored presets and the active one; delete one (protected)."""
        s = self.app.settings
        if args == ["list"]:
            parts = []
            for name in s.presets():
                p = s.preset(name)
                mm = ["null" if x is None else fmt_mm(x) for x in p[:3]]
                parts.append('"%s": {"depth_min_mm": %s, "depth_max_mm": %s, '
                             '"depth_default_mm": %s, "stroke_hz": %s}' % (
                                 name, mm[0], mm[1], mm[2], json.dumps(p[3])))  # fmt: skip
            return '{"active": %s, "presets": {%s}}' % (
                json.dumps(s.get("preset.active")), ", ".join(parts))
        if len(args) == 2 and args[0] == "delete":
            self.app.pen.targets.delete_preset(args[1], self.unlocked())
            return None
        raise Refused(E.BAD_ARGUMENT, "usage: preset list | preset delete NAME")

    def cmd_calib(self, args):
        """calib get | calib set JSON
        The depth calibration table: a flat JSON list [steps0, um0, steps1, um1, ...], both
        strictly increasing (protected; stopped)."""
        s = self.app.settings
        if args == ["get"]:
            return s.text("calib")
        if len(args) >= 2 and args[0] == "set":
            return self.app.pen.targets.set("calib", " ".join(args[1:]), "serial", False,
                                            self.unlocked())  # fmt: skip
        raise Refused(E.BAD_ARGUMENT, "usage: calib get | calib set [steps, um, ...]")

    # -- the clinician lock ---------------------------------------------------------------------
    def cmd_unlock(self, args):
        """unlock [RESPONSE]
        Without RESPONSE: a new challenge. With it: RESPONSE = HMAC-SHA256(secret, challenge
        text) in hex unlocks the protected settings for 10 minutes."""
        _nargs(args, 0, 1, "unlock [RESPONSE]")
        auth = self.app.auth
        if not args:
            return '{"challenge": "%s"}' % auth.challenge()
        auth.respond(args[0])
        return '{"unlocked": true, "timeout_s": %d}' % auth.remaining_s()

    def cmd_lock(self, args):
        """lock
        Lock the protected settings again."""
        _nargs(args, 0, 0, "lock")
        self.app.auth.lock()

    def cmd_provision(self, args):
        """provision SECRET
        Store the pen's clinician-lock secret (64 hex digits), once: refused when one exists."""
        _nargs(args, 1, 1, "provision SECRET")
        if self.running():
            raise Refused(E.MOTOR_RUNNING)
        self.app.auth.provision(args[0])

    # -- the pen --------------------------------------------------------------------------------
    def cmd_home(self, args):
        """home
        Home the depth stop (also done by itself after boot)."""
        _nargs(args, 0, 0, "home")
        self._pen().home()

    def cmd_arm(self, args):
        """arm
        Arm a homed, ready pen (as holding START 1 s)."""
        _nargs(args, 0, 0, "arm")
        self._pen().arm()

    def cmd_disarm(self, args):
        """disarm
        Disarm (stops the needle if it runs)."""
        _nargs(args, 0, 0, "disarm")
        self._pen().disarm()

    def cmd_run(self, args):
        """run [HZ]
        Start the needle (soft start) at HZ or at stroke_hz; while running, change the rate."""
        _nargs(args, 0, 1, "run [HZ]")
        hz = self.app.settings.parse("stroke_hz", args[0]) if args else None
        self._pen().run(hz)

    def cmd_stop(self, args):
        """stop
        Controlled stop of the needle (also the real-time byte `!`)."""
        _nargs(args, 0, 0, "stop")
        self._pen().stop()

    def cmd_reset(self, args):
        """reset
        Restart the pen as at power-up (it homes again; unlock, arming and cartridge are
        cleared). Refused while the needle runs: stop it first."""
        _nargs(args, 0, 0, "reset")
        if self.app.needle.running:
            raise Refused(E.MOTOR_RUNNING, "the needle runs: stop it first")
        self.app.reset_soon()

    def cmd_depth(self, args):
        """depth MM [override]
        Same as `set depth MM`: out of range is refused, never clamped."""
        _nargs(args, 1, 2, "depth MM [override]")
        over = len(args) == 2
        if over and args[1] != "override":
            raise Refused(E.BAD_ARGUMENT, "usage: depth MM [override]")
        stored = self.app.pen.targets.set("depth", args[0], "serial", over, self.unlocked())
        return '{"target_depth_mm": %s}' % stored

    def cmd_clear(self, args):
        """clear
        Clear a latched fault whose cause is gone."""
        _nargs(args, 0, 0, "clear")
        self._pen().clear_fault()

    def cmd_cartridge(self, args):
        """cartridge new
        Confirm a new cartridge (as holding plus+minus 1 s): {"cartridge": N}."""
        if args != ["new"]:
            raise Refused(E.BAD_ARGUMENT, "usage: cartridge new")
        return '{"cartridge": %d}' % self._pen().confirm_cartridge()

    def cmd_service(self, args):
        """service enter | service exit | service reboot
        Service state for calibration (entering needs unlock). `service reboot` (needs unlock;
        stopped): START held 2 s on the pen within 15 s restarts it in service mode, the only
        way to the REPL (docs/protocol.md)."""
        if args == ["reboot"]:
            if not self.unlocked():
                raise Refused(E.LOCKED, "service mode needs unlock")
            return json.dumps(self.app.service.request())
        if args == ["enter"]:
            if not self.unlocked():
                raise Refused(E.LOCKED, "service needs unlock")
            self._pen().enter_service()
            return None
        if args == ["exit"]:
            self._pen().exit_service()
            return None
        raise Refused(E.BAD_ARGUMENT, "usage: service enter | service exit | service reboot")

    def cmd_move_steps(self, args):
        """move_steps N
        Service state only: a raw stepper move of N microsteps (calibration)."""
        _nargs(args, 1, 1, "move_steps N")
        n = _int_arg(args[0], "N", -20000, 20000)
        self._pen().move_steps(n)

    # -- telemetry and records ------------------------------------------------------------------
    def cmd_telemetry(self, args):
        """telemetry on [HZ] | telemetry off | telemetry fetch SEQ [N] | telemetry
        Stream `~T` samples at HZ (1..200, default telemetry_hz), stop the stream, fetch up
        to N (1..100, default 50) kept samples from SEQ on, or show the ring's state."""
        tm = self.app.telemetry
        link = self.app.link
        if not args:
            d = tm.info()
            d["stream_hz"] = link.stream_hz
            return json.dumps(d)
        sub = args[0]
        if sub == "on":
            _nargs(args, 1, 2, "telemetry on [HZ]")
            if len(args) == 2:
                hz = _int_arg(args[1], "HZ", 1, 200)
            else:
                hz = self.app.settings.get("telemetry_hz")
            link.set_stream(hz)
            return '{"stream_hz": %d, "next_seq": %d}' % (hz, tm.next_seq)
        if sub == "off":
            _nargs(args, 1, 1, "telemetry off")
            link.set_stream(0)
            return None
        if sub == "fetch":
            _nargs(args, 2, 3, "telemetry fetch SEQ [N]")
            seq = _int_arg(args[1], "SEQ", 0, 0x3FFFFFFF)
            n = _int_arg(args[2], "N", 1, FETCH_MAX) if len(args) == 3 else FETCH_DEFAULT
            first = tm.oldest()
            if seq < first:
                seq = first
            parts = ["["]
            v = self._sample
            end = tm.next_seq
            k = 0
            while k < n and seq < end:
                if tm.read(seq, v):
                    if k:
                        parts.append(", ")
                    parts.append(tm.format(v))
                    k += 1
                seq += 1
            parts.append("]")
            return parts
        raise Refused(E.BAD_ARGUMENT, "usage: telemetry on [HZ] | off | fetch SEQ [N]")

    def cmd_session(self, args):
        """session list [FIRST [N]] | session get N | session summary last | session info
        | session ack N
        Session summaries stored on the pen (one per cartridge): list gives the newest 32 (or
        N from FIRST on); info the store's counters (kept, first, last, next, acked, dropped,
        unfetched = dropped before the host confirmed them); ack N: the host stored up to N."""
        s = self._sessions()
        if args and args[0] == "list":
            _nargs(args, 1, 3, "session list [FIRST [N]]")
            first = _int_arg(args[1], "FIRST", 0, 0x3FFFFFFF) if len(args) > 1 else None
            n = _int_arg(args[2], "N", 1, LIST_MAX) if len(args) > 2 else LIST_MAX
            # One part per entry: the reply is never one large string (the heap is small).
            parts = ["["]
            for e in s.entries(first, n):
                if len(parts) > 1:
                    parts.append(", ")
                parts.append(json.dumps(e))
                gc.collect()
            parts.append("]")
            return parts
        if args == ["info"]:
            return json.dumps(s.info())
        if len(args) == 2 and args[0] == "ack":
            n = _int_arg(args[1], "N", 0, 0x3FFFFFFF)
            if self.running():
                raise Refused(E.MOTOR_RUNNING, "the pen stores only while the needle is stopped")
            s.ack(n)
            return json.dumps(s.info())
        if args == ["summary", "last"] or args == ["get", "last"]:
            r = s.last()
        elif len(args) == 2 and args[0] == "get":
            r = s.get(_int_arg(args[1], "N", 0, 0x3FFFFFFF))
        else:
            raise Refused(E.BAD_ARGUMENT, "usage: session list [FIRST [N]] | get N | summary last"
                          " | info | ack N")
        if r is None:
            raise Refused(E.NOT_FOUND, "no such session")
        return json.dumps(r)
