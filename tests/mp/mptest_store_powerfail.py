"""Power-fail injection: settings saved onto littlefs (VfsLfs2) on a RAM block device, with the
power cut during every single block write of every save (the write lost, or torn half-way);
after each cut the pen boots with the old or the new settings, never a mix, never a crash."""

# mp-timeout: 300

from mphelp import check, info, req
from ramfs import RamFlash, format_and_mount, mount_fs, unmount

from firmware import faults as F
from firmware.errors import Refused
from firmware.settings import Settings
from firmware.store import Store

PATH = "/flash/settings.dat"

# A sequence of changes; the presets make the record span several blocks, and the many saves
# on one filesystem make littlefs compact its metadata at some of them.
CHANGES = (
    ("depth", "1.00"),
    ("depth_limit", "2.80"),
    ("preset.acne_scars_cheeks.depth_min", "1.00"),
    ("preset.acne_scars_cheeks.depth_max", "2.50"),
    ("preset.acne_scars_cheeks.depth_default", "1.50"),
    ("preset.acne_scars_cheeks.stroke_hz", "120"),
    ("preset.active", "acne_scars_cheeks"),
    ("calib", "[0,-120,500,1180,1000,2470,1440,3610]"),
    ("preset.rejuvenation_forehead.depth_min", "0.25"),
    ("preset.rejuvenation_forehead.depth_max", "0.75"),
    ("preset.rejuvenation_forehead.depth_default", "0.50"),
    ("preset.rejuvenation_forehead.stroke_hz", "100"),
    ("telemetry_hz", "200"),
    ("preset.active", "rejuvenation_forehead"),
    ("stroke_hz", "110"),
    ("preset.striae_body.depth_min", "1.50"),
    ("preset.striae_body.depth_max", "2.80"),
    ("stroke_hz_min", "60"),
    ("depth", "0.70"),
    ("sleep_s", "900"),
)


def _boot(flash):
    """Power up: mount the filesystem as it is and load the settings."""
    unmount()
    flash.power_on()
    mount_fs(flash)  # must not raise: littlefs survives any cut
    s = Settings(Store(PATH))
    return s, s.load()


def _run(torn_bytes, block_size=512, blocks=24):
    flash = RamFlash(block_size, blocks)
    format_and_mount(flash)
    s = Settings(Store(PATH))
    s.load()
    prev = s.as_json()
    cuts = 0
    for key, value in CHANGES:
        flash.checkpoint()
        w0 = flash.writes
        s.set(key, value, unlocked=True)
        writes = flash.writes - w0
        check(writes > 0, "a save writes blocks")
        new = s.as_json()
        for k in range(1, writes + 1):
            unmount()
            flash.rollback()
            t, _ = _boot(flash)
            flash.cut_at(k, torn_bytes)
            try:
                t.set(key, value, unlocked=True)
            except Refused:
                pass  # the store saw the failure; what counts is what the next boot finds
            u, fault = _boot(flash)
            got = u.as_json()
            check(got == prev or got == new,
                  "cut at write %d of %d saving %s=%s: a mix\n%s" % (k, writes, key, value, got))
            check(fault == F.NONE, "cut at write %d: fault %d" % (k, fault))
            cuts += 1
        # Back to the content before the save, and save again for real (the next change's base).
        unmount()
        flash.rollback()
        _boot(flash)
        s.save()
        prev = new
    unmount()
    return cuts


@req("SP-18")
def test_power_cut_at_every_block_write_old_or_new():
    """SP-18: a cut at every block write (the write lost) of 20 saves: the next boot has the
    old or the new settings, whole, without a fault."""
    n = _run(torn_bytes=0)
    info("power cuts injected (write lost):", n)
    check(n >= 60, "cuts %d" % n)


@req("SP-18")
def test_power_cut_with_torn_writes_old_or_new():
    """SP-18: as above, but the block write during which the power fails is torn (its first
    100 bytes programmed)."""
    n = _run(torn_bytes=100)
    info("power cuts injected (torn write):", n)
    check(n >= 60, "cuts %d" % n)


@req("SP-18")
def test_power_cut_with_flash_sized_blocks():
    """SP-18: the same with 4 kB erase blocks, as on the RP2040's flash."""
    n = _run(torn_bytes=1000, block_size=4096, blocks=10)
    info("power cuts injected (4 kB blocks, torn):", n)
    check(n >= 30, "cuts %d" % n)
