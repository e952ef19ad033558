"""Settings persistence on littlefs (a RAM block device): versioned CRC'd record, fallback to
defaults with SETTINGS_CORRUPT, never a crash, no writes while the motor runs (SP- reqs)."""

import os
import struct

from mphelp import check, raises, req
from ramfs import RamFlash, format_and_mount, unmount

from firmware import errors as E
from firmware import faults as F
from firmware.errors import Refused
from firmware.settings import Settings
from firmware.store import FORMAT, MAGIC, Store, decode, encode

PATH = "/flash/settings.dat"


def _fresh():
    flash = RamFlash()
    format_and_mount(flash)
    return flash


def _write_raw(data):
    with open(PATH, "wb") as f:
        f.write(data)


@req("SP-13")
def test_round_trip_and_generation():
    """SP-13: saved settings load back identical; every save raises the generation."""
    _fresh()
    s = Settings(Store(PATH))
    check(s.load() == F.NONE and s.load_status == "empty", "no record: defaults, no fault")
    s.set("depth", "1.25")
    s.set("preset.a.depth_min", "0.50", unlocked=True)
    s.set("telemetry_hz", "200")
    g = s.store.generation
    t = Settings(Store(PATH))
    check(t.load() == F.NONE and t.load_status == "ok")
    check(t.as_json() == s.as_json(), t.as_json())
    check(t.store.generation == g == 3, "generation %d" % g)
    check("settings.dat.tmp" not in os.listdir("/flash"), "no temporary file left")
    unmount()


@req("SP-14")
def test_corrupt_or_unknown_record_gives_defaults_and_fault():
    """SP-14: a record with a bad magic, CRC, length, format version, JSON or value loads as
    the defaults with the SETTINGS_CORRUPT fault, and never raises."""
    _fresh()
    s = Settings(Store(PATH))
    s.load()
    s.set("depth", "1.25")
    good = open(PATH, "rb").read()
    body = good[:-4]
    bad_version = encode(body[16:], 1)
    bad_version = bad_version[:4] + struct.pack("<H", FORMAT + 1) + bad_version[6:]
    from binascii import crc32

    bv = bad_version[:-4]
    bad_version = bv + struct.pack("<I", crc32(bv) & 0xFFFFFFFF)
    cases = {
        "flipped bit": good[:20] + bytes([good[20] ^ 1]) + good[21:],
        "truncated": good[:-7],
        "empty file": b"",
        "bad magic": b"XXXX" + good[4:],
        "wrong length": good[:12] + struct.pack("<I", 5) + good[16:],
        "unknown format": bad_version,
        "not json": encode(b"{nope", 1),
        "value out of range": encode(b'{"v":{"depth":9000},"presets":{}}', 1),
        "rule broken": encode(b'{"v":{"depth":2000,"depth_limit":1000},"presets":{}}', 1),
        "bad calib": encode(b'{"v":{"calib":[0,0,0,0]},"presets":{}}', 1),
        "bad preset": encode(b'{"v":{},"presets":{"X":[1,2,3,4]}}', 1),
        "wrong types": encode(b'{"v":[],"presets":{}}', 1),
        "float value": encode(b'{"v":{"stroke_hz":100.0},"presets":{}}', 1),
        "random": bytes(range(256)),
    }
    for what, data in cases.items():
        _write_raw(data)
        t = Settings(Store(PATH))
        fault = t.load()
        check(fault == F.SETTINGS_CORRUPT, what)
        check(t.boot_fault == F.SETTINGS_CORRUPT, what)
        check(t.get("depth") == 500 and t.get("preset.active") == "none", what)
    check(decode(bad_version)[2] == "version")
    check(decode(good)[2] == "ok" and good[:4] == MAGIC)
    unmount()


@req("SP-15")
def test_missing_keys_take_defaults_unknown_keys_ignored():
    """SP-15: a record from an older/newer schema: missing settings take their defaults,
    settings this firmware does not know are ignored, no fault."""
    _fresh()
    _write_raw(encode(b'{"v":{"depth":1200,"retired":5},"presets":{}}', 4))
    s = Settings(Store(PATH))
    check(s.load() == F.NONE)
    check(s.get("depth") == 1200 and s.get("stroke_hz") == 100)
    check(s.store.generation == 4)
    unmount()


@req("SP-52")
def test_record_with_the_old_depth_key_names_keeps_its_values():
    """SP-52: a record stored before the depth keys were renamed (depth_mm, depth_limit_mm,
    depth_step_mm held µm then too) loads with its values: the clinic's limit survives."""
    _fresh()
    _write_raw(encode(b'{"v":{"depth_mm":1200,"depth_limit_mm":2000,"depth_step_mm":100},'
                      b'"presets":{}}', 4))  # fmt: skip
    s = Settings(Store(PATH))
    check(s.load() == F.NONE)
    check(s.get("depth") == 1200 and s.get("depth_limit") == 2000 and s.get("depth_step") == 100)
    raises(KeyError, s.get, "depth_limit_mm")
    unmount()


@req("SP-16")
def test_no_flash_write_while_motor_runs():
    """SP-16: the store refuses to write while the needle motor runs (MOTOR_RUNNING); a change
    made meanwhile is kept in RAM and written by flush() once stopped."""
    _fresh()
    running = [False]
    st = Store(PATH, motor_running=lambda: running[0])
    s = Settings(st)
    s.load()
    s.set("stroke_hz", "110")
    running[0] = True
    e = raises(Refused, s.save)
    check(e.code == E.MOTOR_RUNNING)
    s.set("stroke_hz", "120", running=True)
    check(s.dirty and st.saves == 1, "not written while running")
    raises(Refused, s.flush)
    running[0] = False
    s.flush()
    check(not s.dirty and st.saves == 2)
    t = Settings(Store(PATH))
    t.load()
    check(t.get("stroke_hz") == 120)
    unmount()


class _FailingStore(Store):
    def save(self, payload):
        raise Refused(E.STORAGE, "storage write failed (28)")


@req("SP-17", "SP-53")
def test_failed_write_changes_nothing():
    """SP-17, SP-53: when the flash write fails, a change answers STORAGE and the setting (and
    what the hardware was told) is as before: the targets' owner puts the depth stop back."""
    from mptest_pen_fakes import make_pen

    s = Settings(_FailingStore("/nonexistent/settings.dat"))
    e = raises(Refused, s.set, "depth", "1.00")
    check(e.code == E.STORAGE and s.get("depth") == 500)
    pen, needle, depth, clock, events = make_pen(settings=s)  # the limit kept at its default
    e = raises(Refused, pen.targets.change, "depth", 1000)
    check(e.code == E.STORAGE)
    check(s.get("depth") == 500 and depth.target_um == 500)
    check(depth.moves[-2:] == [1000, 500], "the stop was sent back: %r" % depth.moves)


@req("SP-17")
def test_full_filesystem_is_a_storage_error():
    """SP-17: on a full filesystem `set` fails with STORAGE and changes nothing; the stored
    record stays readable; with room again, saving works."""
    flash = RamFlash(block_size=512, blocks=16)
    format_and_mount(flash)
    s = Settings(Store(PATH))
    s.load()
    s.set("depth", "1.00")
    n = 0
    try:
        while True:  # fill it with committed files until nothing more fits
            with open("/flash/fill%d" % n, "wb") as f:
                f.write(b"x" * 400)
            n += 1
    except OSError:
        pass
    e = raises(Refused, s.set, "depth", "1.50")
    check(e.code == E.STORAGE, "code %d" % e.code)
    check(s.get("depth") == 1000, "unchanged in RAM")
    t = Settings(Store(PATH))
    check(t.load() == F.NONE and t.get("depth") == 1000, "old record intact")
    for i in range(n + 1):
        try:
            os.remove("/flash/fill%d" % i)
        except OSError:
            pass
    s.set("depth", "1.50")
    t = Settings(Store(PATH))
    check(t.load() == F.NONE and t.get("depth") == 1500)
    unmount()
