"""The settings schema and the live settings: validation, cross-setting rules, presets, the
clinician lock on protected settings, the replayable dump, observers (SP- requirements)."""

from binascii import hexlify

from mphelp import check, raises, req
from protofake import FakeApp

from firmware import errors as E
from firmware.calib import CalibrationTable
from firmware.errors import Refused
from firmware.settings import (
    CALIB_DEFAULT,
    SCHEMA,
    Settings,
    canonical_schema,
    fmt_mm,
    parse_int,
    parse_mm,
    schema_hash,
)


@req("SP-1")
def test_schema_defaults_are_valid_and_within_bounds():
    """SP-1: every schema entry has a type, unit, bounds and a default inside them; the
    uncalibrated table is firmware/calib.py's nominal one."""
    s = Settings()
    for name, typ, unit, lo, hi, default, flags, text in SCHEMA:
        check(typ in ("int", "mm", "calib", "preset"), name)
        check(text, "help text for " + name)
        if typ in ("int", "mm") and default is not None:
            check(lo <= default <= hi, name + " default within bounds")
            if not name.startswith("preset."):
                check(s.get(name) == default, name)
    check(list(CALIB_DEFAULT) == list(CalibrationTable.NOMINAL), "nominal calibration")
    for must in ("depth", "stroke_hz", "depth_limit", "depth_step", "stroke_hz_min",
                 "stroke_hz_max", "telemetry_hz", "cartridge_stroke_limit", "sleep_s", "calib",
                 "preset.active"):  # fmt: skip
        s.text(must)


@req("SP-2")
def test_schema_hash_is_sha256_of_canonical_text():
    """SP-2: the handshake's schema hash is the sha256 of the canonical schema text."""
    import hashlib

    h = schema_hash()
    check(len(h) == 64, h)
    check(h == hexlify(hashlib.sha256(canonical_schema().encode()).digest()).decode())


@req("SP-3")
def test_strict_number_parsing():
    """SP-3: values are parsed strictly: no exponents, signs, nan, blanks or excess precision."""
    check(parse_mm("1") == 1000 and parse_mm("1.25") == 1250 and parse_mm("0.050") == 50)
    check(parse_mm("2.5000") == 2500)
    for bad in ("", ".", "1.", ".5", "1e3", "+1", "nan", "inf", "1,5", "1.2.3", "0x10",
                "1.0005", " 1", "١", "99999"):  # fmt: skip
        raises(ValueError, parse_mm, bad)
    check(parse_int("-12") == -12)
    for bad in ("", "-", "1.0", "1_000", "+3", "12345678901", "0x1"):
        raises(ValueError, parse_int, bad)
    check(fmt_mm(500) == "0.50" and fmt_mm(-120) == "-0.12" and fmt_mm(1005) == "1.005")


@req("SP-4")
def test_set_validates_and_refusal_changes_nothing():
    """SP-4: `set` checks type, bounds, the 0.01 mm grid and the cross-setting rules; a refused
    value changes nothing."""
    app = FakeApp()
    s = app.settings
    fp = s.as_json()
    cases = (("set depth 3.5", E.OUT_OF_RANGE), ("set depth abc", E.BAD_ARGUMENT),
             ("set depth 1.005", E.BAD_ARGUMENT), ("set stroke_hz 151", E.OUT_OF_RANGE),
             ("set stroke_hz 99.5", E.BAD_ARGUMENT), ("set nope 1", E.UNKNOWN_SETTING),
             ("set depth", E.BAD_ARGUMENT), ("set depth 1 2", E.BAD_ARGUMENT),
             ("set depth 2.60", E.OUT_OF_RANGE),  # above the 2.50 limit
             ("set telemetry_hz 0", E.OUT_OF_RANGE))  # fmt: skip
    for line, code in cases:
        got = app.err(line)
        check(got == code, "%s -> error %d, expected %d" % (line, got, code))
        check(s.as_json() == fp, "unchanged after " + line)
    check(app.ok("set depth 1.2") == {"depth": 1.2})
    check(s.get("depth") == 1200)
    check(app.pen.targets.depth_um == 1200, "the observer moved the depth")
    check(app.ok("get depth") == {"depth": 1.2})


@req("SP-5")
def test_protected_settings_need_unlock():
    """SP-5: protected settings (depth limit, stroke-rate range, calibration, presets,
    cartridge limit) are refused with error LOCKED until unlocked."""
    app = FakeApp()
    fp = app.settings.as_json()
    for line in ("set depth_limit 2.00", "set stroke_hz_min 60", "set stroke_hz_max 140",
                 "set calib [0,0,1000,2600]", "calib set [0,0,1000,2600]",
                 "set preset.a.depth_min 1.00", "set preset.active none",
                 "set cartridge_stroke_limit 5000", "defaults", "preset delete a"):  # fmt: skip
        check(app.err(line) == E.LOCKED, line)
    check(app.settings.as_json() == fp)
    s = app.settings
    s.set("depth_limit", "2.00", unlocked=True)
    check(s.get("depth_limit") == 2000)


@req("SP-6")
def test_stopped_only_settings_refused_while_running():
    """SP-6: stopped-only settings are refused while the needle motor runs (MOTOR_RUNNING)."""
    app = FakeApp()
    app.pen.state = "RUNNING"
    check(app.err("set depth 1.00") == E.MOTOR_RUNNING)
    check(app.err("depth 1.00") == E.MOTOR_RUNNING)
    s = app.settings
    raises(Refused, s.set, "depth_limit", "2.00", True, True)
    # A setting that may change while running does, and is persisted later.
    check(app.ok("set stroke_hz 120") == {"stroke_hz": 120})


@req("SP-7")
def test_cross_setting_rules():
    """SP-7: depth <= depth_limit and stroke_hz_min <= stroke_hz <= stroke_hz_max always;
    a change breaking either is refused, never clamped."""
    s = Settings()
    s.set("depth", "2.00")
    e = raises(Refused, s.set, "depth_limit", "1.50", True)
    check(e.code == E.OUT_OF_RANGE)
    check(s.get("depth_limit") == 2500 and s.get("depth") == 2000)
    e = raises(Refused, s.set, "stroke_hz_min", "120", True)
    check(e.code == E.OUT_OF_RANGE and s.get("stroke_hz_min") == 50)
    s.set("stroke_hz_max", "110", unlocked=True)
    raises(Refused, s.set, "stroke_hz", "120")
    raises(Refused, s.set, "stroke_hz_min", "120", True)


def _load_preset(s, name, lo, hi, d, hz):
    for f, v in (("depth_min", lo), ("depth_max", hi), ("depth_default", d),
                 ("stroke_hz", hz)):  # fmt: skip
        s.set("preset.%s.%s" % (name, f), v, unlocked=True)


@req("SP-8")
def test_presets_select_range_override_and_edit():
    """SP-8: presets are stored field by field as the host sends them; selecting one checks it
    as a whole and loads its default depth and rate; depth stays inside its range unless
    overridden; editing the active preset deselects it."""
    app = FakeApp()
    s = app.settings
    _load_preset(s, "acne_scars_cheeks", "1.00", "2.50", "1.50", "120")
    check(s.get("preset.active") == "none")
    s.set("preset.active", "acne_scars_cheeks", unlocked=True)
    check(s.get("depth") == 1500 and s.get("stroke_hz") == 120)
    check(app.pen.targets.depth_um == 1500)
    check(s.depth_range_um() == (1000, 2500))
    e = raises(Refused, s.set, "depth", "0.80")
    check(e.code == E.PRESET_RANGE and s.get("depth") == 1500)
    check(app.ok("depth 0.80 override") == {"target_depth_mm": 0.8})
    check(app.ok("set depth 1.20") == {"depth": 1.2})
    # Editing a field of the active preset deselects it.
    s.set("preset.acne_scars_cheeks.depth_max", "2.00", unlocked=True)
    check(s.get("preset.active") == "none")
    # Incomplete or inconsistent presets cannot be selected.
    s.set("preset.half.depth_min", "0.50", unlocked=True)
    e = raises(Refused, s.set, "preset.active", "half", True)
    check(e.code == E.PRESET_RANGE)
    _load_preset(s, "deep", "1.50", "3.00", "2.00", "120")
    e = raises(Refused, s.set, "preset.active", "deep", True)
    check(e.code == E.PRESET_RANGE, "max above the 2.50 limit")
    e = raises(Refused, s.set, "preset.active", "missing", True)
    check(e.code == E.NOT_FOUND)
    check(s.get("preset.active") == "none")
    check(app.err("set preset.Bad-Name.stroke_hz 100") == E.LOCKED)
    e = raises(Refused, s.set, "preset.Bad.stroke_hz", "100", True)
    check(e.code == E.BAD_ARGUMENT)
    lst = app.ok("preset list")
    check(lst["presets"]["deep"]["depth_max_mm"] == 3.0 and lst["active"] == "none")


@req("SP-8")
def test_preset_count_is_bounded():
    """SP-8: at most MAX_PRESETS presets (bounded memory and record size)."""
    s = Settings()
    for i in range(16):
        s.set("preset.p%d.stroke_hz" % i, "100", unlocked=True)
    e = raises(Refused, s.set, "preset.p16.stroke_hz", "100", True)
    check(e.code == E.OUT_OF_RANGE)
    s.commit(s.check_delete("p3", unlocked=True))
    s.set("preset.p16.stroke_hz", "100", unlocked=True)


@req("SP-9")
def test_calibration_table_is_validated():
    """SP-9: the calibration table is a flat [steps, um, ...] list, strictly increasing in both
    columns with a plausible slope; anything else is refused and changes nothing."""
    s = Settings()
    for bad in ("[0,0]", "[0,0,1000,2500,900,3000]", "[0,0,1000,0]", "[0,0,1000]",
                "[[0,0],[1000,2500]]", "[0,0,1000,2500.5]", "{}", "[0,0,1000,9999]",
                "[true,0,1000,2500]", "nonsense"):  # fmt: skip
        raises(Refused, s.set, "calib", bad, True)
        check(s.get("calib") == list(CALIB_DEFAULT), bad)
    s.set("calib", "[0, -120, 700, 1700, 1440, 3600]", unlocked=True)
    check(s.get("calib") == [0, -120, 700, 1700, 1440, 3600])
    check(s.text("calib") == "[0,-120,700,1700,1440,3600]")


@req("SP-10")
def test_dump_replays_onto_any_pen():
    """SP-10: `dump` gives `set` lines that rebuild the same settings on a pen holding anything
    else (including a different active preset and narrower limits)."""
    a = FakeApp()
    sa = a.settings
    sa.set("depth_limit", "2.80", unlocked=True)
    sa.set("stroke_hz_min", "80", unlocked=True)
    _load_preset(sa, "x", "1.00", "2.50", "1.50", "120")
    _load_preset(sa, "y", "0.25", "0.75", "0.50", "90")
    sa.set("preset.active", "x", unlocked=True)
    sa.set("depth", "2.70", override=True)
    sa.set("telemetry_hz", "200")
    sa.set("calib", "[0,-100,1440,3600]", unlocked=True)
    b = FakeApp()
    sb = b.settings
    sb.set("depth_limit", "1.00", unlocked=True)
    sb.set("stroke_hz", "60")
    sb.set("stroke_hz_max", "90", unlocked=True)
    _load_preset(sb, "y", "0.25", "0.50", "0.25", "60")
    sb.set("preset.active", "y", unlocked=True)
    lines = a.ok("dump")
    check(isinstance(lines, list) and all(x.startswith("set ") for x in lines))
    for line in lines:
        parts = line.split()
        over = len(parts) == 4
        sb.set(parts[1], parts[2], unlocked=True, override=over)
    check(sb.as_json() == sa.as_json(), "replayed:\n%s\n%s" % (sb.as_json(), sa.as_json()))
    check(sb.as_json() == sa.as_json())


@req("SP-11")
def test_observer_can_veto_and_rollback():
    """SP-11: a change the hardware refuses (the observer raises Refused) leaves the setting
    as it was, and nothing is stored."""
    app = FakeApp()
    s = app.settings
    app.pen.depth.limit_um = 1000  # the axis refuses beyond 1.00 mm (a fake veto)
    check(app.err("set depth 1.50") == E.OUT_OF_RANGE)
    check(s.get("depth") == 500 and app.pen.targets.depth_um == 500)


@req("SP-12")
def test_config_getter_units_and_no_aliases():
    """SP-12: `get` returns the internal value (µm for a depth, Hz, s), what the firmware
    reads; only the schema's names exist (no second name for a setting)."""
    s = Settings()
    check(s.get("depth") == 500 and s.get("depth_step") == 50)
    check(s.get("stroke_hz") == 100)
    check(s.get("cartridge_stroke_limit") == 200000 and s.get("sleep_s") == 300)
    raises(KeyError, s.get, "cartridge_strokes")
    raises(KeyError, s.get, "sleep_after_s")
    raises(KeyError, s.get, "no_such_key")
