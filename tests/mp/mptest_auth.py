"""The clinician lock: HMAC-SHA256 challenge-response, rate limit, re-lock on timeout and
reboot, one-time provisioning; protected settings refused until unlocked (SP- requirements)."""

from binascii import hexlify, unhexlify

from mphelp import SIM, check, req
from protofake import TEST_SECRET, FakeApp
from ramfs import RamFlash, format_and_mount, unmount

from firmware import errors as E
from firmware.auth import CHALLENGE_MS, UNLOCK_MS, Auth, hmac_sha256


def _app():
    format_and_mount(RamFlash(512, 24))
    with open("/flash/pen_secret.key", "w") as f:
        f.write(hexlify(TEST_SECRET).decode() + "\n")
    return FakeApp(root="/flash")


def _answer(challenge, secret=TEST_SECRET):
    return hexlify(hmac_sha256(secret, challenge.encode())).decode()


@req("SP-20")
def test_hmac_sha256_matches_rfc4231():
    """SP-20: the HMAC built on hashlib.sha256 gives the RFC 4231 test vectors."""
    cases = (
        (b"\x0b" * 20, b"Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe", b"what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    )  # fmt: skip
    for key, msg, want in cases:
        check(hmac_sha256(key, msg) == unhexlify(want), want)


@req("SP-21")
def test_unlock_with_the_right_response_only():
    """SP-21: protected settings are refused until `unlock` with HMAC-SHA256(secret,
    challenge); a wrong response fails and changes nothing."""
    app = _app()
    fp = app.settings.as_json()
    check(app.err("set depth_limit 2.00") == E.LOCKED)
    ch = app.ok("unlock")["challenge"]
    check(len(ch) == 32)
    check(app.err("unlock " + _answer(ch, b"x" * 32)) == E.AUTH_FAILED, "wrong secret")
    check(app.err("set depth_limit 2.00") == E.LOCKED)
    check(app.settings.as_json() == fp)
    SIM.advance(2_000_000)  # past the rate limit of one failure
    ch = app.ok("unlock")["challenge"]
    r = app.ok("unlock " + _answer(ch).upper())  # hex in either case
    check(r == {"unlocked": True, "timeout_s": UNLOCK_MS // 1000}, repr(r))
    check(app.ok("set depth_limit 2.00") == {"depth_limit": 2.0})
    check(app.ok("status")["unlocked"] is True)
    unmount()


@req("SP-22")
def test_replayed_or_stale_responses_fail():
    """SP-22: a response works once, for its own challenge: replaying it (after a lock, or to a
    newer challenge) fails, and so does an answer to a challenge that was replaced or expired."""
    app = _app()
    ch = app.ok("unlock")["challenge"]
    good = _answer(ch)
    app.ok("unlock " + good)
    app.ok("lock")
    check(app.err("set stroke_hz_min 60") == E.LOCKED, "lock re-engaged")
    check(app.err("unlock " + good) == E.AUTH_FAILED, "replay with no challenge pending")
    SIM.advance(2_000_000)
    app.ok("unlock")
    check(app.err("unlock " + good) == E.AUTH_FAILED, "replay against a new challenge")
    SIM.advance(3_000_000)
    ch1 = app.ok("unlock")["challenge"]
    app.ok("unlock")  # replaces ch1
    check(app.err("unlock " + _answer(ch1)) == E.AUTH_FAILED, "answer to a replaced challenge")
    SIM.advance(5_000_000)
    ch = app.ok("unlock")["challenge"]
    SIM.advance((CHALLENGE_MS + 1000) * 1000)
    check(app.err("unlock " + _answer(ch)) == E.AUTH_FAILED, "stale challenge")
    check(not app.auth.unlocked())
    unmount()


@req("SP-23")
def test_attempts_are_rate_limited():
    """SP-23: after each failed answer the next attempt waits 1, 2, 4 ... (at most 60) s;
    attempts meanwhile are refused with RATE_LIMITED without being checked."""
    app = _app()
    for n in range(1, 5):
        ch = app.ok("unlock")["challenge"]
        check(app.err("unlock " + "0" * 64) == E.AUTH_FAILED)
        wait_ms = 1000 << (n - 1)
        check(app.err("unlock") == E.RATE_LIMITED, "held after failure %d" % n)
        SIM.advance((wait_ms - 100) * 1000)
        check(app.err("unlock") == E.RATE_LIMITED, "still held just before %d ms" % wait_ms)
        SIM.advance(200_000)
    ch = app.ok("unlock")["challenge"]
    # Even the right answer is refused while held.
    app.err("unlock " + "1" * 64)
    ch = app.err("unlock")
    check(ch == E.RATE_LIMITED)
    SIM.advance(60_000_000)
    ch = app.ok("unlock")["challenge"]
    app.ok("unlock " + _answer(ch))
    check(app.auth.failures == 0)
    unmount()


@req("SP-24")
def test_lock_re_engages_on_timeout_and_reboot():
    """SP-24: the unlock ends by itself after UNLOCK_MS, and a reboot (a new Auth) is locked."""
    app = _app()
    ch = app.ok("unlock")["challenge"]
    app.ok("unlock " + _answer(ch))
    check(app.auth.unlocked())
    SIM.advance((UNLOCK_MS - 1000) * 1000)
    check(app.auth.unlocked())
    SIM.advance(2_000_000)
    check(not app.auth.unlocked(), "timed out")
    check(app.err("set depth_limit 2.00") == E.LOCKED)
    ch = app.ok("unlock")["challenge"]
    app.ok("unlock " + _answer(ch))
    rebooted = Auth("/flash/pen_secret.key")
    check(rebooted.provisioned() and not rebooted.unlocked(), "locked after a reboot")
    unmount()


@req("SP-25")
def test_secret_is_provisioned_once():
    """SP-25: the secret is provisioned once (64 hex digits) into its own file; a second
    provisioning is refused; without a secret unlocking is impossible."""
    format_and_mount(RamFlash(512, 24))
    app = FakeApp(root="/flash")
    check(not app.auth.provisioned())
    check(app.err("unlock") == E.AUTH_FAILED, "no secret: no unlock")
    check(app.err("provision 1234") == E.BAD_ARGUMENT)
    key = hexlify(TEST_SECRET).decode()
    check(app.cmd("provision " + key) == "ok")
    check(app.err("provision " + "ab" * 32) == E.AUTH_FAILED, "second provisioning refused")
    check(open("/flash/pen_secret.key").read().strip() == key)
    ch = app.ok("unlock")["challenge"]
    app.ok("unlock " + _answer(ch))
    unmount()
