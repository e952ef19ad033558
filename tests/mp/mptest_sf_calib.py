"""Calibration tables against the axis's mechanics (SF-04, SF-05), through the user's road: the
protocol's `set calib` / `calib set` / `set depth_limit_mm` on the whole application (virtual
board, deterministic clock), with generated tables from a model of a pen's screw and switch.

The classes of tables: what a real pen measures (lead within +-5 %, a bow of the stop linkage
up to 0.05 mm, gauge noise +-2 µm, the switch 0.05..0.4 mm behind flush) must be accepted; a
scale error beyond the tolerance, an offset beyond its bound, a column out of order, or a table
whose 0..limit does not fit the travel must be refused with the reason, changing nothing."""

# mp-timeout: 180
# mp-heap: 576K
# (the simulator, this harness and the application's bytecode besides the firmware's data)

from app_rig import AppRig
from mphelp import Rand, check, info, req

from firmware.auth import hmac_sha256

SECRET = b"virtual-pen-test-secret-not-real"


def _unlock(r):
    from binascii import hexlify

    r.ok("provision " + hexlify(SECRET).decode())
    ch = r.ok("unlock")["challenge"]
    r.ok("unlock " + hexlify(hmac_sha256(SECRET, ch.encode())).decode())


def _measured(rnd, lead_ppm, offset_um, bow_um, noise_um, points):
    """A table as a dial gauge would give it: points spread over the travel."""
    flat = []
    lo, hi = 0, 1440
    for i in range(points):
        s = lo + (hi - lo) * i // (points - 1)
        x = (s - lo) * 1000 // (hi - lo)  # 0..1000 along the range
        bow = bow_um * 4 * x * (1000 - x) // 1000000
        u = offset_um + s * (2500 * (1000000 + lead_ppm) // 1000000) // 1000 + bow
        flat += [s, u + rnd.int(-noise_um, noise_um)]
    return flat


def _table(rnd, kind):
    pts = rnd.int(3, 9)
    if kind == "real":
        return _measured(rnd, rnd.int(-50000, 50000), rnd.int(-400, -50), rnd.int(-50, 50),
                         2, pts)  # fmt: skip
    if kind == "scale":  # a scale error beyond the tolerance (a typo, another screw)
        e = rnd.int(170000, 1500000) * (1 if rnd.int(0, 1) else -1)
        if e < -600000:
            e = -600000
        return _measured(rnd, e, rnd.int(-300, -100), 0, 2, pts)
    if kind == "offset":
        off = rnd.int(-1500, -470) if rnd.int(0, 1) else rnd.int(20, 800)
        return _measured(rnd, rnd.int(-30000, 30000), off, 0, 2, pts)
    # "order": two points swapped, or a column reversed
    flat = _measured(rnd, rnd.int(-30000, 30000), rnd.int(-300, -100), 0, 2, pts)
    i = 2 * rnd.int(0, pts - 2)
    flat[i], flat[i + 2] = flat[i + 2], flat[i]
    return flat


@req("SF-04", "DS-31")
def test_generated_tables_accepted_or_refused_by_the_mechanics():
    """SF-04, DS-31: 160 generated tables sent with `set calib` (unlocked): every table a real
    pen can measure is accepted; every table with a scale error beyond the tolerance, an offset
    beyond its bound or a column out of order is refused with error:5 and its reason, and the
    calibration in force is unchanged (settings, the axis's table, the status)."""
    r = AppRig()
    counts = {"real": 0, "scale": 0, "offset": 0, "order": 0}

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "the stop at its depth")
        _unlock(r)
        rnd = Rand(0x5F04)
        kinds = ("real", "scale", "offset", "order")
        for k in range(160):
            kind = kinds[k % 4]
            flat = _table(rnd, kind)
            before = r.app.settings.get("calib")
            ax_before = r.app.depth.calib.to_list()
            line = "set calib [%s]" % ",".join(str(v) for v in flat)
            reply = r.cmd(line)
            if kind == "real":
                check(reply.startswith("ok"), "%s -> %s" % (line, reply))
                check(r.app.depth.calib.to_list() == flat, "not installed: %s" % line)
            else:
                check(reply.startswith("error:5 "), "%s (%s) -> %s" % (line, kind, reply))
                check(r.app.settings.get("calib") == before and
                      r.app.depth.calib.to_list() == ax_before, "changed by %s" % line)
                check("calibration" in reply, "no reason: " + reply)
            counts[kind] += 1
            await r.until(lambda: not r.app.depth.busy, 2000, "the stop re-targeted")
        # the example: a 2.5x scale error is refused; the depth shown is the depth set
        reply = r.cmd("set calib [0,-100,2700,2600]")
        check(reply.startswith("error:5 "), reply)

    try:
        r.run(scenario, max_ms=600_000)
    finally:
        r.close()
    info("tables %r" % counts)


@req("SF-05")
def test_limit_and_table_within_the_travel_at_every_layer():
    """SF-05: a depth limit (`set depth_limit_mm`) or a table (`calib set`) whose 0..limit
    would need steps beyond the mechanical travel, or below the closest step a move goes to,
    is refused with the reason; for every accepted pair every depth 0..limit is reached on the
    table's step, never clamped at the travel's end (the status's depth is the depth set)."""
    r = AppRig()

    async def scenario(r):
        await r.ready()
        await r.until(lambda: not r.app.depth.busy, 2000, "the stop at its depth")
        _unlock(r)
        # a short lead at its tolerance and the switch far in: 3.0 mm lies past the travel
        limit = r.app.depth.limit_um
        check(limit < 2950, "the default limit %d" % limit)
        long = "[0,-450,1600,3326]"
        check(r.cmd("set calib " + long).startswith("ok"), "valid for the default limit")
        await r.until(lambda: not r.app.depth.busy, 2000, "re-targeted")
        reply = r.cmd("set depth_limit 3.0")
        check(reply.startswith("error:5 ") and "travel" in reply, reply)
        check(r.app.depth.limit_um == limit and r.app.settings.get("depth_limit") == limit,
              "limit changed")
        # a table that puts 0 µm inside MIN_STEPS (the needle out at the retract position)
        reply = r.cmd("set calib [0,-20,1440,3580]")
        check(reply.startswith("error:5 "), reply)
        # every accepted depth is reached on its step
        ax = r.app.depth
        for d in ("0.00", "0.50", "1.50", "%d.%02d" % (limit // 1000, limit % 1000 // 10)):
            r.ok("depth " + d)
            await r.until(lambda: not ax.busy, 2000, "moved")
            want = ax.calib.steps_for_um(int(float(d) * 1000 + 0.5))
            check(ax.position_steps == want, "%s mm: at %d, table says %d" % (
                d, ax.position_steps, want))  # fmt: skip
            shown = r.app.pen.status()["depth_mm"]
            check(abs(shown - float(d)) <= 0.002, "status %r for %s" % (shown, d))

    try:
        r.run(scenario, max_ms=60_000)
    finally:
        r.close()
