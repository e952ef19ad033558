"""The fault-injection matrix (docs/faults.md is generated from MATRIX below by
tools/gen_faults.py): every fault the virtual pen's plant can inject, injected into the whole
application (firmware/app.py on the virtual board, deterministic virtual clock), each with its
detection bound, the safe state reached and the record left, all asserted here.

Times run from the injection (or from the boot / the command that meets the fault) on the
virtual clock, sampled on the plant's 100 µs steps. Each test prints one `@@INFO FAULTROW {json}`
line with what it measured.

Bounds (ms), where a row has them:
  off_ms    the needle motor's bridge is off (nSLEEP low);
  latch_ms  the pen is in FAULT with the code latched and the `~E` fault event sent;
  safe_ms   the needle stop is back at the safe depth (0 mm, tips flush) or fully in;
  bound_ms  the row's own detection (what `detect` says), for rows without a latched fault.
"""

# mp-timeout: 120
# mp-heap: 576K
# (the simulator, this harness and the application's bytecode besides the firmware's data)

import json

import machine
from app_rig import AppRig, scratch_flash
from mphelp import SIM, check, info, req

from drivers.watchdog import Watchdog
from firmware.depth import DepthAxis
from firmware.homing import Homing
from firmware.link import REPLY_WAIT_MS
from firmware.needle import NeedleDrive
from firmware.supervisor import Supervisor

# Where the bounds come from: motor off from the needle drive's requirements (ND-07..ND-12); the
# pen latches a drive fault at its next poll (10 ms: +20 ms); a homed stop retracts within the
# full-range move time (DS-21, 250 ms); a stop whose position is unknown retracts blind, the whole
# travel inwards (BLIND_MS); homing gives up after HOME_TIMEOUT_MS (DS-40) and a re-home takes at
# most 1.5 s (DS-1); a hung task is noticed after its allowed silence plus one supervisor check;
# the watchdog resets the pen at most its timeout after the last feed (PS-11).
LATCH_MARGIN_MS = 20
RETRACT_MS = 250
BLIND_MS = DepthAxis.BLIND_STEPS * 1000 // DepthAxis.BLIND_SPS + 50
HOME_MS = 1500
# StallGuard (firmware/stallguard.py): judged from SETTLE_MS into a move, a reading every two
# depth polls plus one to collect it, then the pen's poll latches it.
SG_MS = 20 + 3 * DepthAxis.POLL_MS + 10 + LATCH_MARGIN_MS
BACKOFF_MS = 150  # switch still closed after backing off its over-travel (48 ms) + debounce
DEPTH_SILENCE_MS = 500  # the depth task's allowed silence (firmware/app.py)
HANG_MS = DEPTH_SILENCE_MS + Supervisor.period_ms + 10
WDT_MS = Watchdog.timeout_ms + 10
RUNNING = "running 100 Hz at 1.00 mm, skin load 0.8"
TRIPPED = "bridge off, stop retracted to 0 mm, FAULT latched: run, arm, cartridge refused"
RECORDED = "`~E` fault event, `faults` log, the session record on flash"
AT_BOOT = "motor never driven, stop driven fully in, not homed: FAULT latched, arm/run refused"
NF = "tests/mp/mptest_needle_faults.py::"
DT = "tests/mp/mptest_depth.py::"
DEV = "tests/test_device_scenarios.py::"
LINK = "tests/mp/mptest_protocol_link.py::"

MATRIX = [
    {"test": "test_stall", "fault": "Stall: rotor blocked while running",
     "inject": "`fault stall`", "when": RUNNING, "code": "stall",
     "off_ms": 50, "latch_ms": 50 + LATCH_MARGIN_MS, "safe_ms": 50 + LATCH_MARGIN_MS + RETRACT_MS,
     "safe": TRIPPED, "record": RECORDED, "reqs": "ND-07, PS-4, SF-03",
     "also": [NF + "test_stall_motor_off_within_50ms",
              NF + "test_stall_at_start_within_start_timeout"]},
    {"test": "test_runaway", "fault": "Runaway: the bridge drives full voltage",
     "inject": "`fault runaway`", "when": "running 100 Hz at 1.00 mm, no skin load",
     "code": "runaway",
     "off_ms": 50, "latch_ms": 50 + LATCH_MARGIN_MS, "safe_ms": 50 + LATCH_MARGIN_MS + RETRACT_MS,
     "safe": TRIPPED, "record": RECORDED, "reqs": "ND-09, PS-4, SF-03",
     "also": [NF + "test_runaway_detected"]},
    {"test": "test_sensor_loss", "fault": "Sensor loss: no hall edges, the rotor turning",
     "inject": "`fault sensor_loss`", "when": RUNNING, "code": "sensor_loss",
     "off_ms": 50, "latch_ms": 50 + LATCH_MARGIN_MS, "safe_ms": 50 + LATCH_MARGIN_MS + RETRACT_MS,
     "safe": TRIPPED, "record": RECORDED, "reqs": "ND-08, PS-4, SF-03",
     "also": [NF + "test_sensor_loss_detected"]},
    {"test": "test_short", "fault": "Over-current: short across the motor terminals",
     "inject": "`fault short`", "when": RUNNING, "code": "overcurrent",
     "off_ms": 10, "latch_ms": 10 + LATCH_MARGIN_MS, "safe_ms": 10 + LATCH_MARGIN_MS + RETRACT_MS,
     "safe": TRIPPED, "record": RECORDED, "reqs": "ND-10, PS-4, SF-03",
     "also": [NF + "test_short_is_overcurrent_within_10ms",
              NF + "test_overcurrent_blanking_at_start"]},
    {"test": "test_battery_low", "fault": "Battery low: the cell sags to 3.05 V",
     "inject": "`fault battery_low`", "when": RUNNING, "code": "battery_low",
     "off_ms": 150, "latch_ms": 150 + LATCH_MARGIN_MS,
     "safe_ms": 150 + LATCH_MARGIN_MS + RETRACT_MS,
     "safe": TRIPPED + "; `clear` refused while the battery is low", "record": RECORDED,
     "reqs": "ND-12, PS-4, SF-03",
     "also": [NF + "test_battery_low_detected_and_cleared",
              NF + "test_cannot_hold_rate_is_battery_low"]},
    {"test": "test_brown_out", "fault": "Brown-out: the supply is lost",
     "inject": "`power cut`", "when": "running the second pass of a session",
     "code": "(reset)", "bound_ms": 20,
     "detect": "power-up after the cut: homing, disarmed, no cartridge",
     "safe": "motor unpowered at the cut; boots LOCKED, homes, READY: never armed, no cartridge",
     "record": "the session record with its completed pass, on flash",
     "reqs": "PS-1, PS-16, SF-03",
     "also": [DEV + "test_power_loss_mid_session_keeps_completed_records",
              "tests/mp/mptest_sessions.py::test_power_cut_on_littlefs_at_every_write"]},
    {"test": "test_endstop_open", "fault": "Endstop stuck open: the switch never closes",
     "inject": "`fault endstop_open`", "when": "at power-up (homing from 2 mm)",
     "code": "home_not_found", "latch_ms": Homing.HOME_TIMEOUT_MS + LATCH_MARGIN_MS,
     "safe_ms": Homing.HOME_TIMEOUT_MS + LATCH_MARGIN_MS + BLIND_MS,
     "safe": AT_BOOT, "record": "`~E` fault event, `faults` log", "reqs": "DS-40, PS-4, SF-03",
     "also": [DT + "test_endstop_never_found_latches_and_retracts",
              DT + "test_stalled_stepper_times_out_homing"]},
    {"test": "test_endstop_closed_homing", "fault": "Endstop stuck closed at homing",
     "inject": "`fault endstop_closed`", "when": "at power-up (homing from 2 mm)",
     "code": "endstop_stuck", "latch_ms": BACKOFF_MS, "safe_ms": BACKOFF_MS + BLIND_MS,
     "safe": AT_BOOT, "record": "`~E` fault event, `faults` log", "reqs": "DS-41, PS-4, SF-03",
     "also": [DT + "test_endstop_stuck_closed_latches_and_retracts"]},
    {"test": "test_endstop_closed_running", "fault": "Endstop stuck closed while homed",
     "inject": "`fault endstop_closed`", "when": RUNNING, "code": "endstop_stuck",
     "off_ms": 30, "latch_ms": 30, "safe_ms": 30 + RETRACT_MS,
     "safe": TRIPPED + "; not homed: clearing re-homes", "record": RECORDED,
     "reqs": "DS-41, PS-4, PS-5, SF-03",
     "also": [DT + "test_switch_sticking_while_homed_latches_and_retracts",
              DEV + "test_depth_fault_safe_state_latched_until_cleared"]},
    {"test": "test_missed_steps_during_a_move",
     "fault": "Missed steps during a move: a binding screw loses outward steps",
     "inject": "`fault missed_steps`", "when": "a depth change 0.50 -> 2.40 mm, stopped",
     "code": "lost_steps", "latch_ms": SG_MS, "safe_ms": SG_MS + BLIND_MS,
     "detect": "StallGuard (the TMC2209's load reading over its UART) during the move",
     "safe": "motor never driven, stop driven fully in (position unknown), not homed, "
             "FAULT latched", "record": "`~E` fault event, `faults` log",
     "reqs": "SF-13, DS-42, PS-4, SF-03", "also": []},
    {"test": "test_missed_steps", "fault": "Missed steps on short moves StallGuard cannot judge",
     "inject": "`fault missed_steps`", "when": "eight 0.05 mm depth steps, then a cartridge "
     "confirmed", "code": "lost_steps", "latch_ms": HOME_MS, "safe_ms": HOME_MS + RETRACT_MS,
     "detect": "the endstop check at the cartridge confirmation (also at `home`, a clear, "
               "power-up); until then the lost steps leave the needle shallower than shown",
     "safe": "motor never driven, stop retracted, not homed, FAULT latched: run refused",
     "record": "`~E` fault event, `faults` log", "reqs": "SF-13, DS-42, PS-4, SF-03",
     "also": [DT + "test_lost_steps_found_by_rehome",
              DT + "test_overspeed_loses_steps_and_rehome_catches_it"]},
    {"test": "test_settings_corrupt", "fault": "Settings corrupted in flash",
     "inject": "garbage in `settings.dat`", "when": "at power-up",
     "code": "settings_corrupt", "latch_ms": 10, "safe_ms": 10 + BLIND_MS,
     "safe": "defaults in use; " + AT_BOOT,
     "record": "`~E` fault event, `faults` (log, and how the settings loaded)",
     "reqs": "SP-14, PS-4, SF-03",
     "also": ["tests/mp/mptest_store.py::test_corrupt_or_unknown_record_gives_defaults_and_fault",
              "tests/mp/mptest_store_powerfail.py::test_power_cut_at_every_block_write_old_or_new"]},
    {"test": "test_serial_garbage", "fault": "Serial garbage and a half line",
     "inject": "not UTF-8, a control byte, an over-long line, a half line",
     "when": "running 100 Hz at 1.00 mm", "code": "(error reply)", "bound_ms": 10,
     "detect": "one `error:N` reply per bad line, the next command answered",
     "safe": "none needed: no setting changed, the needle runs on at its rate, no fault",
     "record": "the error replies", "reqs": "SP-33, SP-41, SF-03",
     "also": [LINK + "test_garbage_and_half_lines_cost_one_error_each",
              "tests/host/test_protocol_fuzz.py::test_generated_byte_strings"]},
    {"test": "test_ctrl_c_and_garbage", "fault": "Ctrl-C and every other byte value on the port",
     "inject": "0x00..0xFF (0x03 included) in lines, and 0x03 alone, through the serial "
               "driver (drivers/serial_link.py)", "when": "running 100 Hz at 1.00 mm",
     "code": "(error reply)", "bound_ms": 20,
     "detect": "one `error:N` reply per line, never a KeyboardInterrupt (the interrupt "
               "character off), the next command answered",
     "safe": "none needed: the application runs on (no REPL), no setting changed, the needle "
             "runs on at its rate, no fault", "record": "the error replies",
     "reqs": "SF-07, SF-08, SF-03",
     "also": ["tests/test_port_security.py::test_every_byte_value_while_the_needle_runs",
              "tests/test_port_security.py::test_ctrl_c_never_reaches_the_repl",
              "tests/mp/mptest_sf_fuzz.py::test_100k_random_byte_strings_change_nothing"]},
    {"test": "test_table_inconsistent", "fault": "Calibration table inconsistent with the "
     "mechanics", "inject": "`set calib [0,-100,2700,2600]` (1.0 um/step: a 2.5x scale error; "
     "unlocked)", "when": "READY at 0.50 mm", "code": "(error reply)", "bound_ms": 10,
     "detect": "refused with the reason (error 5), in the same reply",
     "safe": "none needed: the table, the settings and the stop unchanged; the status shows the "
             "depth the needle has", "record": "the error reply",
     "reqs": "SF-04, SF-05, SF-03",
     "also": ["tests/mp/mptest_sf_calib.py::test_generated_tables_accepted_or_refused_by_the_"
              "mechanics", "tests/host/test_calib_mechanics.py::test_a_scale_error_beyond_the_"
              "tolerance_is_refused"]},
    {"test": "test_position_not_target_at_run", "fault": "Position ≠ target at run: a move "
     "cut short at the travel's end", "inject": "the axis's travel 500 steps (a mechanism "
     "shorter than designed), then `depth 2.00`", "when": "ARMED, cartridge confirmed",
     "code": "(refused)", "bound_ms": 10,
     "detect": "`run` and START refused (error 10, not at its depth), in the same reply",
     "safe": "the needle never starts; status and display show the position the stop has "
             "(1.2 mm), not the target", "record": "the error reply, the refusal on the display",
     "reqs": "SF-06, SF-03", "also": []},
    {"test": "test_position_lost_while_running", "fault": "The stop leaves its depth while the "
     "needle runs", "inject": "a move of the stop by 40 steps (a firmware fault)",
     "when": RUNNING, "code": "depth_position",
     "off_ms": 30, "latch_ms": 30, "safe_ms": 30 + RETRACT_MS,
     "safe": TRIPPED, "record": RECORDED, "reqs": "SF-06, PS-4, SF-03", "also": []},
    {"test": "test_serial_disconnect", "fault": "Serial disconnect: the host gone for 3 s",
     "inject": "the host stops reading, a command pending",
     "when": "running 100 Hz at 1.00 mm, telemetry at 200 Hz",
     "code": "(reply dropped)", "bound_ms": REPLY_WAIT_MS + 10,
     "detect": "the pending reply dropped, the link free again",
     "safe": "none needed: the needle runs on under its buttons (START stops it at once)",
     "record": "every sample kept in the ring; all fetched after the reconnect (none lost)",
     "reqs": "SP-43, TM-13, SF-03",
     "also": [LINK + "test_a_reply_the_host_never_reads_is_dropped_not_blocking",
              "tests/host/test_link_logger.py::test_disconnect_is_backfilled_without_loss"]},
    {"test": "test_hung_task", "fault": "Hung task: one task stops reporting in",
     "inject": "the depth task stops", "when": "running 100 Hz at 1.00 mm",
     "code": "watchdog", "off_ms": HANG_MS, "reset_ms": HANG_MS + Watchdog.timeout_ms,
     "latch_ms": HANG_MS + Watchdog.timeout_ms + LATCH_MARGIN_MS,
     "safe_ms": HANG_MS + Watchdog.timeout_ms + LATCH_MARGIN_MS + BLIND_MS,
     "detect": "the supervisor switches the motor off and stops feeding; the watchdog resets",
     "safe": "bridge off and stepper disabled at once; after the reset FAULT (watchdog), "
             "stop driven in",
     "record": "`~E` hang event; the running pass stored with the fault (loop_hung); after "
               "the reboot the `faults` log",
     "reqs": "PS-11, SF-03",
     "also": ["tests/mp/mptest_pen_watchdog.py::test_hung_task_stops_feeding_and_watchdog_resets"]},
    {"test": "test_hung_loop", "fault": "Hung event loop: no task runs",
     "inject": "`fault hang`", "when": "running 100 Hz at 1.00 mm",
     "code": "loop_hung, then watchdog", "off_ms": NeedleDrive.LOOP_SILENCE_MS + 15,
     "reset_ms": WDT_MS,
     "latch_ms": WDT_MS + LATCH_MARGIN_MS, "safe_ms": WDT_MS + LATCH_MARGIN_MS + BLIND_MS,
     "detect": "the control tick's dead-man switches the motor off when the loop has not "
               "reported in for LOOP_SILENCE_MS; the watchdog then resets the pen",
     "safe": "motor off by the tick; after the reset FAULT (watchdog), stop driven in",
     "record": "after the reboot the `faults` log",
     "reqs": "ND-17, PS-11, SF-03",
     "also": [DEV + "test_hung_task_watchdog_resets_pen_into_safe_fault"]},
]  # fmt: skip


def dump_matrix():
    """Not a test: prints MATRIX as one JSON line for tools/gen_faults.py."""
    print("@@MATRIX " + json.dumps(MATRIX))


def _row(test):
    for r in MATRIX:
        if r["test"] == test:
            return r
    raise KeyError(test)


def _ms(us):
    return None if us is None else (us + 999) // 1000


def _report(row, measured):
    """The row's figures for the test report (tools/gen_faults.py puts them in the table)."""
    bounds = {k: row[k] for k in ("off_ms", "reset_ms", "latch_ms", "safe_ms", "bound_ms")
              if row.get(k) is not None}  # fmt: skip
    info("FAULTROW " + json.dumps({"test": row["test"], "bounds": bounds,
                                   "measured": measured}))  # fmt: skip


def _within(row, measured):
    """Every bound of the row holds for what was measured."""
    for key in ("off_ms", "reset_ms", "latch_ms", "safe_ms", "bound_ms"):
        bound = row.get(key)
        if bound is None:
            continue
        got = measured.get(key)
        check(got is not None, "%s: %s never reached" % (row["test"], key))
        check(got <= bound, "%s: %s %d ms > bound %d ms" % (row["test"], key, got, bound))


def _watched(w, offset_us=0):
    """What the watch saw, in ms from its start (plus offset_us)."""
    out = {}
    for key, us in (("off_ms", w.motor_off), ("latch_ms", w.fault), ("safe_ms", w.retracted)):
        if us is not None:
            out[key] = _ms(us + offset_us)
    return out


def _check_latched(rig, name):
    """FAULT latched with `name`; run, arm and cartridge refused (FAULT_ACTIVE); the motor
    stays off."""
    st = rig.app.pen.status()
    check(st["state"] == "FAULT" and st["fault"] == name, "status %r" % (st,))
    for line in ("run", "arm", "cartridge new"):
        r = rig.cmd(line)
        check(r.startswith("error:9"), "%s -> %s" % (line, r))
    check(not rig.motor_driven(), "motor off")


def _check_record(rig, name, event=True, session=True):
    """The record: the `~E` fault event, the `faults` log and (in a session) the session
    record read back from flash name the fault."""
    if event:
        check(any(e.get("event") == "fault" and e.get("fault") == name
                  for e in rig.port.events), "no ~E fault event for %s" % name)  # fmt: skip
    log = rig.ok("faults")["log"]
    check(any(e["fault"] == name for e in log), "faults log %r" % (log,))
    if session:
        last = _stored_session(rig)
        check(last is not None and any(f["code"] == name for f in last["faults"]),
              "session record %r" % (last,))  # fmt: skip


def _stored_session(rig):
    from firmware.sessions import Sessions
    from firmware.sessionstore import SessionStore

    return Sessions(SessionStore(rig.board.sessions_path)).last()


def _drive_fault(test, plant_fault=None, load=0.8, act=None):
    """The rows whose fault comes while the needle runs: run a session, inject the plant's
    fault (or `act(rig)`), measure, check, report."""
    row = _row(test)
    rig = AppRig()
    w = rig.watch

    async def scenario(r):
        await r.running(load=load)
        w.start()
        if act is None:
            r.inject(plant_fault)
        else:
            act(r)
        await r.until(lambda: w.retracted is not None, row["safe_ms"] + 200, "retracted")
        await r.sleep(50)

    rig.run(scenario)
    got = _watched(w)
    _within(row, got)
    _check_latched(rig, row["code"])
    check(rig.gauge_mm() <= rig.SAFE_MM, "stop at %.3f mm" % rig.gauge_mm())
    _check_record(rig, row["code"])
    _report(row, got)
    return rig


@req("SF-03", "ND-07", "PS-4")
def test_stall():
    """SF-03, ND-07, PS-4: a blocked rotor while the pen runs a session: motor off within
    50 ms, FAULT latched and reported, the stop retracted, the session record names it."""
    _drive_fault("test_stall", "stall").close()


@req("SF-03", "ND-09", "PS-4")
def test_runaway():
    """SF-03, ND-09, PS-4: the bridge drives full voltage (a shorted switch) while running
    without load: RUNAWAY, motor off within 50 ms, latched, retracted, recorded."""
    _drive_fault("test_runaway", "runaway", load=0.0).close()


@req("SF-03", "ND-08", "PS-4")
def test_sensor_loss():
    """SF-03, ND-08, PS-4: the hall sensor goes silent while the rotor turns: SENSOR_LOSS,
    motor off within 50 ms, latched, retracted, recorded."""
    _drive_fault("test_sensor_loss", "sensor_loss").close()


@req("SF-03", "ND-10", "PS-4")
def test_short():
    """SF-03, ND-10, PS-4: a short across the motor terminals: OVERCURRENT, motor off within
    10 ms, latched, retracted, recorded."""
    _drive_fault("test_short", "short").close()


@req("SF-03", "ND-12", "PS-4")
def test_battery_low():
    """SF-03, ND-12, PS-4: the battery sags below 3.3 V while running: BATTERY_LOW within
    150 ms, latched, retracted, recorded; `clear` is refused while it stays low."""
    rig = _drive_fault("test_battery_low", "battery_low")
    check(rig.cmd("clear").startswith("error:9"), "cleared with the battery low")
    rig.close()


@req("SF-03", "PS-16", "PS-1")
def test_brown_out():
    """SF-03, PS-16, PS-1: the supply is lost while the needle runs the second pass of a
    session: the pen resets; after power-up it is homing at once, disarmed, with no cartridge,
    the motor not driven; the session's completed pass is on flash."""
    row = _row("test_brown_out")
    rig = AppRig()

    async def scenario(r):
        await r.running()
        r.ok("stop")
        await r.until(lambda: r.state() == "ARMED", 1000, "ARMED after the stop")
        r.ok("run 100")
        await r.until(lambda: r.true_hz() > 97, 1000, "running again")
        check(r.hw.ctl("power cut") == "ok")
        await r.sleep(10)

    e = rig.run(scenario)
    check(isinstance(e, machine.SimReset) and e.cause == machine.PWRON_RESET, "reset %r" % e)
    rig = rig.reboot(machine.PWRON_RESET)
    w = rig.watch
    w.start()
    t = {}

    async def after(r):
        t["homing"] = await r.until(lambda: r.state() == "HOMING", 100, "HOMING")
        t["ready"] = await r.until(lambda: r.state() == "READY", 2000, "READY")

    rig.run(after)
    st = rig.app.pen.status()
    check(not st["armed"] and st["cartridge"] == 0 and not st["cartridge_ok"], repr(st))
    check(not w.was_driven, "the motor was driven after the power-up")
    check(rig.cmd("run").startswith("error:8"), "run refused (not armed)")
    stored = _stored_session(rig)
    check(stored is not None and len(stored["passes"]) >= 1, "session record %r" % (stored,))
    check(stored["passes"][0]["strokes"] > 0 and stored["passes"][0]["depth_mm"] == 1.0)
    got = {"bound_ms": t["homing"], "ready_ms": t["ready"]}
    _within(row, got)
    check(t["ready"] <= HOME_MS, "READY after %d ms" % t["ready"])
    _report(row, got)
    rig.close()


def _boot_fault(test, plant_fault=None, flash=None, depth_usteps=800):
    """Rows met at power-up: the fault is there before the firmware starts."""
    row = _row(test)
    rig = AppRig(flash=flash, depth_usteps=depth_usteps)
    if plant_fault:
        rig.inject(plant_fault)
    w = rig.watch
    w.start()

    async def scenario(r):
        await r.until(lambda: w.fault is not None, row["latch_ms"] + 500, "FAULT")
        await r.until(lambda: w.retracted is not None and not r.app.depth.busy,
                      row["safe_ms"] + 500, "retracted")  # fmt: skip

    rig.run(scenario)
    got = _watched(w)
    got.pop("off_ms", None)  # never on
    _within(row, got)
    _check_latched(rig, row["code"])
    check(not w.was_driven, "the motor was driven")
    check(not rig.app.depth.homed, "homed on a broken switch")
    check(rig.gauge_mm() < 0, "stop not fully in: %.3f mm" % rig.gauge_mm())
    _check_record(rig, row["code"], session=False)
    _report(row, got)
    return rig


@req("SF-03", "DS-40", "PS-4")
def test_endstop_open():
    """SF-03, DS-40, PS-4: the home switch never closes: homing gives up within
    HOME_TIMEOUT_MS, HOME_NOT_FOUND latched and reported, the stop driven fully in, the
    needle never driven."""
    _boot_fault("test_endstop_open", "endstop_open").close()


@req("SF-03", "DS-41", "PS-4")
def test_endstop_closed_homing():
    """SF-03, DS-41, PS-4: the home switch reads closed at power-up and stays closed after
    backing off: ENDSTOP_STUCK latched and reported, the stop driven fully in, the needle never
    driven."""
    _boot_fault("test_endstop_closed_homing", "endstop_closed").close()


@req("SF-03", "SP-14", "PS-4")
def test_settings_corrupt():
    """SF-03, SP-14, PS-4: the settings record on flash is garbage at power-up: the defaults
    are used, SETTINGS_CORRUPT latches before anything moves, is reported with how the settings
    loaded, and the stop is driven fully in."""
    flash = scratch_flash()
    with open(flash + "/settings.dat", "wb") as f:
        f.write(b"\x00garbage\xff" * 40)
    rig = _boot_fault("test_settings_corrupt", flash=flash)
    check(rig.ok("faults")["settings"] not in (None, "ok", "empty"), "load status")
    check(rig.ok("get depth")["depth"] == 0.5, "defaults in use")
    rig.close()


@req("SF-03", "DS-41", "PS-4", "PS-5")
def test_endstop_closed_running():
    """SF-03, DS-41, PS-4, PS-5: the home switch sticks closed while the needle runs at
    1.00 mm: ENDSTOP_STUCK, motor off, stop retracted, latched and recorded; once the switch
    is free again, clearing re-homes before READY."""
    rig = _drive_fault("test_endstop_closed_running", "endstop_closed")
    check(not rig.app.depth.homed, "still homed")
    rig.inject("none")

    async def clear(r):
        await r.sleep(20)  # the switch reads open again (plant step, debounce)
        r.ok("clear")
        await r.until(lambda: r.state() == "READY", 2000, "READY after the clear")

    rig.run(clear)
    check(rig.app.depth.homed and not rig.app.pen.status()["armed"], "re-homed, disarmed")
    rig.close()


@req("SF-13", "SF-03", "DS-42", "PS-4")
def test_missed_steps_during_a_move():
    """SF-13, SF-03, DS-42, PS-4: a binding screw loses outward steps during a depth change:
    StallGuard sees the rotor slip during the move and LOST_STEPS latches within its bound of
    the move's start, the stop is driven fully in (its position is unknown), the pen is not
    homed; the steps lost by then are reported."""
    row = _row("test_missed_steps_during_a_move")
    rig = AppRig()
    w = rig.watch
    t = {}

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "at its depth")
        r.inject("missed_steps")
        m0 = r.hw.depth.missed
        w.start()
        r.ok("depth 2.40")
        await r.until(lambda: w.fault is not None, row["latch_ms"] + 500, "latched")
        t["lost"] = r.hw.depth.missed - m0
        r.inject("none")
        await r.until(lambda: w.retracted is not None and not r.app.depth.busy,
                      row["safe_ms"] + 500, "retracted")  # fmt: skip

    rig.run(scenario)
    got = _watched(w)
    got.pop("off_ms", None)
    _within(row, got)
    _check_latched(rig, row["code"])
    check(not rig.app.depth.homed and rig.gauge_mm() <= rig.SAFE_MM, "retracted, not homed")
    check(t["lost"] > 0, "the bind lost no step")
    _check_record(rig, row["code"], session=False)
    got["lost_steps"] = t["lost"]
    _report(row, got)
    rig.close()


@req("SF-13", "SF-03", "DS-42", "PS-4")
def test_missed_steps():
    """SF-13, SF-03, DS-42, PS-4: a binding screw loses outward steps on 0.05 mm depth steps
    (20 microsteps: too short to reach the speed StallGuard is judged at; the needle only ends
    shallower than shown); confirming a cartridge checks the position at the endstop (a re-home
    that compares): LOST_STEPS within the homing time, latched and reported, the stop
    retracted, run refused. The steps lost until then are the worst error left unnoticed."""
    row = _row("test_missed_steps")
    rig = AppRig()
    w = rig.watch
    t = {}

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "at its depth")
        r.inject("missed_steps")
        m0 = r.hw.depth.missed
        w.max_depth_mm = r.gauge_mm()  # from here on
        for k in range(8):
            r.ok("depth %.2f" % (0.55 + 0.05 * k))
            await r.until(lambda: not r.app.depth.busy, 1000, "move")
        check(r.state() == "READY" and not r.app.depth.fault, "StallGuard judged a short move")
        t["lost"] = r.hw.depth.missed - m0
        t["shown"] = r.app.pen.status()["depth_mm"]
        t["true"] = r.gauge_mm()
        r.inject("none")
        t["max_mm"] = w.max_depth_mm
        w.start()
        r.ok("cartridge new")
        check(r.cmd("run").startswith("error:"), "run while the position is checked")
        await r.until(lambda: w.retracted is not None and not r.app.depth.busy,
                      row["safe_ms"] + 500, "retracted")  # fmt: skip

    rig.run(scenario)
    check(t["lost"] > 0, "the bind lost no step")
    check(t["max_mm"] <= 0.90 + 0.01, "deeper than commanded: %.3f mm" % t["max_mm"])
    check(t["true"] < t["shown"], "the lost steps leave the needle shallower than shown")
    got = _watched(w)
    got.pop("off_ms", None)
    _within(row, got)
    _check_latched(rig, row["code"])
    check(not rig.app.depth.homed and rig.gauge_mm() <= rig.SAFE_MM, "retracted, not homed")
    _check_record(rig, row["code"], session=False)
    got["lost_steps"] = t["lost"]
    _report(row, got)
    rig.close()


@req("SF-03", "SP-33", "SP-41")
def test_serial_garbage():
    """SF-03, SP-33, SP-41: binary garbage, a control byte, an over-long line and a half line
    arrive while the needle runs: one error reply each within 10 ms, the next command answered
    normally, no setting changed, the needle runs on at its rate without a fault."""
    row = _row("test_serial_garbage")
    rig = AppRig()
    t = {}

    async def scenario(r):
        await r.running()
        before = r.ok("settings")
        port = r.port
        n0 = len(port.replies)
        port.send(b"\xff\xfe\x80\x81garbage\xc3\n")  # not UTF-8
        port.send(b"set depth \x01 2.00\n")  # a control byte
        port.send(b"x" * 500 + b"\n")  # over-long (MAX_LINE 420)
        port.send(b"set depth_m")  # half a line: the cable was pulled here ...
        port.send(b"\n#5 status\n")  # ... the host's reconnect ends it, then a command
        t["ms"] = await r.until(lambda: len(port.replies) >= n0 + 5, 100, "replies")
        t["replies"] = port.replies[n0:]
        await r.sleep(100)
        t["hz"] = r.true_hz()
        check(r.ok("settings") == before, "a setting changed")

    rig.run(scenario)
    rep = t["replies"]
    codes = [x.split()[0] for x in rep[:4]]
    # not UTF-8, control byte: BAD_LINE; over-long: LINE_TOO_LONG; the half line: BAD_ARGUMENT
    check(codes == ["error:2", "error:2", "error:3", "error:4"], "replies %r" % rep)
    check(rep[4].startswith("#5 ok {"), "next command: %r" % rep[4])
    check(rig.state() == "RUNNING" and rig.app.pen.fault == 0, "still running, no fault")
    check(abs(t["hz"] - 100) < 3, "rate %.1f Hz" % t["hz"])
    got = {"bound_ms": t["ms"], "errors": 4}
    _within(row, got)
    _report(row, got)
    rig.close()


class _PortLink:
    """drivers/serial_link.py's SerialLink reading the rig's HostPort byte by byte (its own
    read_into, so its handling of the interrupt character is what runs)."""

    def __init__(self, port):
        from drivers.serial_link import SerialLink

        class _In:
            def readinto(self, b):
                if not port.inbox:
                    return 0
                b[0] = port.inbox[0]
                port.inbox = port.inbox[1:]
                return 1

        class _Poll:
            def poll(self, t=0):
                return bool(port.inbox)

        class _Link(SerialLink):
            def __init__(self):  # the driver's fields, without a real poll object
                self._in = _In()
                self._pin = _Poll()
                self._b1 = bytearray(1)
                self.dropped = 0
                self.intr = 3  # MicroPython's default until the application turns it off

        self.link = _Link()
        self.port = port

    def read_into(self, buf, limit=None):
        return self.link.read_into(buf, limit)

    def kbd_intr(self, ch):
        self.link.intr = ch

    def writable(self):
        return self.port.writable()

    def write(self, data):
        return self.port.write(data)


@req("SF-07", "SF-08", "SF-03")
def test_ctrl_c_and_garbage():
    """SF-07, SF-08, SF-03: every byte value 0x00..0xFF (0x03 included; `!` is the stop byte
    and `?` the status byte, so they are left out), in lines, and 0x03 alone, through the
    serial driver while the needle runs: one error reply per line within 20 ms, the next
    command answered, no KeyboardInterrupt (the application turned the interrupt character
    off), no setting changed, the needle runs on at its rate without a fault."""
    row = _row("test_ctrl_c_and_garbage")
    rig = AppRig(app=False)
    pl = _PortLink(rig.port)
    # the driver as MicroPython leaves it: 0x03 is the keyboard interrupt
    rig.port.send(b"\x03")
    try:
        pl.read_into(bytearray(4))
        check(False, "0x03 did not interrupt with the default setting")
    except KeyboardInterrupt:
        pass
    rig.board.serial = pl
    rig.start_app()
    rig.app.link.serial = pl
    t = {}

    async def scenario(r):
        await r.running()
        check(pl.link.intr == -1, "the application left the interrupt character on")
        before = r.ok("settings")
        port = r.port
        n0 = len(port.replies)
        values = [b for b in range(256) if b not in (0x21, 0x3F, 0x0A, 0x0D)]
        lines = 0
        for i in range(0, len(values), 16):
            port.send(bytes(values[i:i + 16]) + b"\n")
            lines += 1
        t["ms"] = await r.until(lambda: len(port.replies) >= n0 + lines, 100, "replies")
        port.send(b"\x03\n\x03\x03\r\n#7 status\n")
        lines += 3
        ms = await r.until(lambda: len(port.replies) >= n0 + lines, 100, "replies")
        t["ms"] = max(t["ms"], ms)
        t["replies"] = port.replies[n0:]
        await r.sleep(100)
        t["hz"] = r.true_hz()
        check(r.ok("settings") == before, "a setting changed")

    rig.run(scenario)
    rep = t["replies"]
    check(all(x.startswith("error:") for x in rep[:-1]), "replies %r" % rep)
    check(rep[-1].startswith("#7 ok {"), "next command: %r" % rep[-1])
    check(rig.state() == "RUNNING" and rig.app.pen.fault == 0, "still running, no fault")
    check(abs(t["hz"] - 100) < 3, "rate %.1f Hz" % t["hz"])
    got = {"bound_ms": t["ms"], "errors": len(rep) - 1}
    _within(row, got)
    _report(row, got)
    rig.close()


@req("SF-04", "SF-05", "SF-03")
def test_table_inconsistent():
    """SF-04, SF-05, SF-03: the issue's table (1.0 um/step, a 2.5x scale error) sent unlocked
    while READY: refused with the reason in the same reply; table, settings and stop
    unchanged, and the status's depth is the needle's (the gauge) within the nominal table's
    error."""
    row = _row("test_table_inconsistent")
    rig = AppRig()
    t = {}

    async def scenario(r):
        from binascii import hexlify

        from firmware.auth import hmac_sha256

        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "at its depth")
        secret = b"virtual-pen-test-secret-not-real"
        r.ok("provision " + hexlify(secret).decode())
        ch = r.ok("unlock")["challenge"]
        r.ok("unlock " + hexlify(hmac_sha256(secret, ch.encode())).decode())
        before = (r.ok("settings"), r.app.depth.calib.to_list(), r.app.depth.position_steps)
        t0 = SIM.now
        t["reply"] = r.cmd("set calib [0,-100,2700,2600]")
        t["us"] = SIM.now - t0
        await r.sleep(100)
        after = (r.ok("settings"), r.app.depth.calib.to_list(), r.app.depth.position_steps)
        check(after == before, "changed: %r" % (after,))
        r.ok("depth 2.50")
        await r.until(lambda: not r.app.depth.busy, 2000, "at 2.50")
        t["shown"] = r.app.pen.status()["depth_mm"]
        t["gauge"] = r.gauge_mm()

    rig.run(scenario)
    check(t["reply"].startswith("error:5 ") and "calibration" in t["reply"], t["reply"])
    # the nominal table assumes the longest lead: the needle is at most 0.15 mm shallower
    check(0 <= t["shown"] - t["gauge"] <= 0.15, "shown %.3f, gauge %.3f" % (t["shown"], t["gauge"]))
    got = {"bound_ms": _ms(t["us"])}
    _within(row, got)
    _report(row, got)
    rig.close()


@req("SF-06", "SF-03")
def test_position_not_target_at_run():
    """SF-06, SF-03: the stop cannot reach the depth set (its travel shorter than designed:
    the move is clamped at the travel's end): `run` and START are refused at once, the needle
    never starts, and the status shows the stop's position, not the target."""
    row = _row("test_position_not_target_at_run")
    rig = AppRig()
    t = {}

    async def scenario(r):
        await r.ready()
        ax = r.app.depth
        await r.until(lambda: not ax.busy, 2000, "at its depth")
        ax.TRAVEL_STEPS = 500  # the mechanism ends at 500 steps (about 1.2 mm)
        r.ok("depth 2.00")
        await r.until(lambda: not ax.busy, 2000, "moved")
        r.ok("arm")
        r.ok("cartridge new")
        await r.position_checked()
        t0 = SIM.now
        t["reply"] = r.cmd("run")
        t["us"] = SIM.now - t0
        r.hw.buttons.press("start", 100)
        await r.sleep(300)
        t["state"] = r.state()
        t["status"] = r.app.pen.status()
        t["gauge"] = r.gauge_mm()
        t["turns"] = r.hw.motor.turns

    rig.run(scenario)
    check(t["reply"].startswith("error:10 ") and "not at its depth" in t["reply"], t["reply"])
    check(t["state"] == "ARMED" and t["turns"] == 0 and not rig.motor_driven(), repr(t))
    st = t["status"]
    check(st["target_depth_mm"] == 2.0 and st["depth_mm"] < 1.4, repr(st))
    check(abs(st["depth_mm"] - t["gauge"]) < 0.15, "shown %r, gauge %.3f" % (st, t["gauge"]))
    got = {"bound_ms": _ms(t["us"])}
    _within(row, got)
    _report(row, got)
    rig.close()


@req("SF-06", "SF-03", "PS-4")
def test_position_lost_while_running():
    """SF-06, SF-03, PS-4: the stop is moved off its depth's step while the needle runs (a
    firmware fault: nothing may move it then): DEPTH_POSITION latched, motor off, the stop
    retracted, recorded."""

    def move_the_stop(r):
        ax = r.app.depth
        ax._go(ax.position_steps + 40)

    _drive_fault("test_position_lost_while_running", act=move_the_stop).close()


@req("SF-03", "SP-43", "TM-13")
def test_serial_disconnect():
    """SF-03, SP-43, TM-13: the host goes away for 3 s (stops reading) with a command pending
    while the needle runs and telemetry streams at 200 Hz: the reply is dropped within
    REPLY_WAIT_MS, the needle runs on, sampling goes on; after the reconnect the stream resumes
    and `telemetry fetch` returns every sample missed; START still stops the needle at once."""
    row = _row("test_serial_disconnect")
    rig = AppRig()
    t = {}

    async def scenario(r):
        await r.running()
        port = r.port
        r.ok("telemetry on 200")
        await r.sleep(200)
        check(port.samples > 30 and port.seq_gaps == 0, "stream before")
        last_before = port.last_seq
        port.open = False
        port.send(b"#9 status\n")
        link = r.app.link
        d0 = link.dropped_replies
        t["ms"] = await r.until(lambda: link.dropped_replies > d0, REPLY_WAIT_MS + 500,
                                "reply dropped")  # fmt: skip
        await r.sleep(3000 - t["ms"])
        t["hz"] = r.true_hz()
        t["state"] = r.state()
        port.open = True
        await r.until(lambda: port.last_seq > last_before + 1, 200, "stream back")
        first_after = port.last_seq
        gap = first_after - last_before - 1
        have = bytearray(gap)  # one byte per missed sample: fetched yet?
        seq = last_before + 1
        while seq < first_after:
            got = r.fetch(seq, 50)  # FETCH_MAX
            check(got, "fetch %d returned nothing" % seq)
            for s in got:
                if last_before < s["seq"] < first_after:
                    have[s["seq"] - last_before - 1] = 1
            seq = got[-1]["seq"] + 1
            got = None
        t["gap"] = gap
        t["missing"] = gap - sum(have)
        r.hw.buttons.press("start", 100)
        t["stop_ms"] = await r.until(lambda: r.state() in ("STOPPING", "ARMED"), 200, "stop")

    rig.run(scenario)
    check(t["state"] == "RUNNING" and abs(t["hz"] - 100) < 3, "needle ran on: %r" % t)
    check(t["gap"] > 400 and t["missing"] == 0, "backfill: %r" % t)
    check(t["stop_ms"] <= 60, "START stopped after %d ms" % t["stop_ms"])
    got = {"bound_ms": t["ms"], "gap_samples": t["gap"], "lost": t["missing"],
           "start_stop_ms": t["stop_ms"]}  # fmt: skip
    _within(row, got)
    _report(row, got)
    rig.close()


def _hang_and_reboot(test, hang):
    """Rows that end in a watchdog reset: run, hang (`hang(rig)`), measure until the reset,
    reboot with the watchdog cause, measure the FAULT after the reboot."""
    row = _row(test)
    rig = AppRig()
    w = rig.watch
    t = {}

    async def scenario(r):
        await r.running()
        w.start()
        t["t0"] = SIM.now
        hang(r)
        await r.sleep(row["reset_ms"] + 1000)

    e = rig.run(scenario)
    check(isinstance(e, machine.SimReset) and e.cause == machine.WDT_RESET, "reset %r" % e)
    reset_us = SIM.now - t["t0"]
    off_us = w.motor_off if w.motor_off is not None else reset_us  # the reset stops it
    events = rig.port.events
    rig = rig.reboot(machine.WDT_RESET)
    w2 = rig.watch
    w2.start()

    async def after(r):
        await r.until(lambda: w2.fault is not None, 100, "FAULT after the reboot")
        await r.until(lambda: w2.retracted is not None and not r.app.depth.busy, 2000,
                      "retracted")  # fmt: skip

    rig.run(after)
    got = {"off_ms": _ms(off_us), "reset_ms": _ms(reset_us),
           "latch_ms": _ms(reset_us + w2.fault), "safe_ms": _ms(reset_us + w2.retracted)}
    _within(row, got)
    _check_latched(rig, "watchdog")
    check(not w2.was_driven and rig.gauge_mm() <= rig.SAFE_MM, "safe after the reboot")
    _check_record(rig, "watchdog", session=False)
    return rig, row, got, events


@req("SF-03", "PS-11")
def test_hung_task():
    """SF-03, PS-11: one supervised task (the depth stop's) stops reporting in while the
    needle runs: the supervisor switches the motor off within its allowed silence plus one
    check, reports the hang, stops feeding; the watchdog resets the pen, which boots into FAULT
    (watchdog) with the stop retracted."""

    def hang(r):
        r.app.depth.POLL_MS = 10_000_000  # its next sleep never ends within the test

    rig, row, got, events = _hang_and_reboot("test_hung_task", hang)
    check(any(e.get("event") == "hang" and e.get("task") == "depth" for e in events),
          "no ~E hang event")  # fmt: skip
    # The pass that was running is closed and stored before the reset, with the fault.
    last = _stored_session(rig)
    check(last is not None and last["passes"] and any(f["code"] == "loop_hung"
                                                      for f in last["faults"]),
          "session record after the hang: %r" % (last,))  # fmt: skip
    _report(row, got)
    rig.close()


@req("SF-03", "PS-11", "ND-17")
def test_hung_loop():
    """SF-03, PS-11, ND-17: the whole event loop hangs while the needle runs (no task, no
    supervisor runs): the control tick's dead-man switches the motor off within
    LOOP_SILENCE_MS, and the watchdog resets the pen within its timeout, which boots into FAULT
    (watchdog) with the stop retracted."""

    def hang(r):
        r.inject("hang")

    rig, row, got, _ = _hang_and_reboot("test_hung_loop", hang)
    _report(row, got)
    rig.close()
