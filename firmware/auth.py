"""The clinician lock: protected settings change only after an HMAC-SHA256 challenge-response.

    unlock                 -> ok {"challenge": "<32 hex digits>"}
    unlock <64 hex digits> -> ok {"unlocked": true, "timeout_s": 600}   when the response is
                              HMAC-SHA256(secret, challenge) in hex, where the message is the
                              challenge's hex text as sent (ASCII) and the secret is the pen's key

e.g. with openssl:  printf %s CHALLENGE | openssl dgst -sha256 -mac HMAC -macopt hexkey:KEYHEX

The secret is 32 bytes, kept as 64 hex digits in its own file (SECRET_FILE) and provisioned
once (`provision`, refused when the file exists). Each challenge is random, valid for one
answer and CHALLENGE_MS; a new `unlock` replaces it, so an old response (a replay) fails.
Failed answers are rate-limited: after the n-th failure in a row the next attempt waits
min(2**(n-1), 60) s (errors.RATE_LIMITED). The count of failures survives a reboot and a power
cut (SF-09): with a `store` (firmware/store.py, the settings' atomic write-and-rename) every
failure is written before the answer is given, and a boot with failures on record starts
their whole wait again, so rebooting never shortens it. An answer while the needle runs is
refused (flash writes only while stopped). The unlock lasts UNLOCK_MS, ends with `lock`, and
never survives a reboot (it is kept only in RAM).

The secret is never printed, logged or sent (no command returns it; `provision` answers
without it), and while the application runs the only way to its file is the REPL, which needs
service mode (firmware/service.py, SF-10).

The virtual pen's test secret (provisioned by sim/vpen.py when the flash has no key): the 32
ASCII bytes `virtual-pen-test-secret-not-real`; documented in docs/protocol.md. Never on a pen.
"""

import hashlib
import os
import time
from binascii import hexlify, unhexlify

from micropython import const

from firmware import errors as E
from firmware.errors import Refused

SECRET_FILE = "pen_secret.key"
KEY_LEN = const(32)
UNLOCK_MS = const(600_000)
CHALLENGE_MS = const(60_000)
_BACKOFF_MAX_MS = const(60_000)


def hmac_sha256(key, msg):
    """RFC 2104 HMAC over hashlib.sha256 (MicroPython has no hmac module)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]))
    inner.update(msg)
    outer = hashlib.sha256(bytes([b ^ 0x5C for b in key]))
    outer.update(inner.digest())
    return outer.digest()


def _same(a, b):
    """Compare two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def _is_hex(s, n):
    if len(s) != n:
        return False
    for c in s:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            return False
    return True


class Auth:
    def __init__(self, path=SECRET_FILE, clock=None, unlock_ms=UNLOCK_MS, store=None):
        self.path = path
        self._ms = clock or time.ticks_ms
        self.unlock_ms = unlock_ms
        self._key = self._read_key()
        self._challenge = None
        self._challenge_t = 0
        self._until = None  # ticks_ms when the unlock ends
        self.failures = 0
        self._hold_until = None
        self._store = store
        if store is not None:
            payload, status = store.load()
            if status == "ok":
                try:
                    self.failures = int(payload.decode())
                except ValueError:
                    self.failures = 7  # unreadable: assume the longest wait
            elif status != "empty":
                self.failures = 7
            if self.failures:
                self._hold_until = time.ticks_add(self._ms(), self._wait_ms())

    def _wait_ms(self):
        n = self.failures - 1
        return min(1000 << (n if n < 6 else 6), _BACKOFF_MAX_MS)

    def _persist(self):
        """Store the failure count (raises Refused when it cannot be written)."""
        if self._store is not None:
            self._store.save(("%d" % self.failures).encode())

    def _read_key(self):
        try:
            with open(self.path) as f:
                text = f.read(200).strip()
        except OSError:
            return None
        if not _is_hex(text, 2 * KEY_LEN):
            return None  # unusable: unlock is impossible until the file is fixed
        return unhexlify(text)

    def provisioned(self):
        return self._key is not None

    def _exists(self):
        try:
            os.stat(self.path)
            return True
        except OSError:
            return False

    def provision(self, key_hex):
        """Store the pen's secret (64 hex digits) once. Refused if a key file exists."""
        if not _is_hex(key_hex, 2 * KEY_LEN):
            raise Refused(E.BAD_ARGUMENT, "the secret is 64 hex digits")
        if self._exists():
            raise Refused(E.AUTH_FAILED, "a secret is already provisioned")
        try:
            with open(self.path, "w") as f:
                f.write(key_hex.lower() + "\n")
        except OSError:
            raise Refused(E.STORAGE, "could not store the secret") from None
        self._key = unhexlify(key_hex)

    def _held(self):
        if self._hold_until is None:
            return 0
        left = time.ticks_diff(self._hold_until, self._ms())
        if left <= 0:
            self._hold_until = None
            return 0
        return left

    def challenge(self):
        """A new challenge (hex text); the previous one is void."""
        if self._key is None:
            raise Refused(E.AUTH_FAILED, "no secret provisioned on this pen")
        left = self._held()
        if left:
            raise Refused(E.RATE_LIMITED, "too many failed attempts: wait %d s" % (
                (left + 999) // 1000))  # fmt: skip
        self._challenge = hexlify(os.urandom(16)).decode()
        self._challenge_t = self._ms()
        return self._challenge

    def respond(self, response_hex):
        """Check the answer to the current challenge; unlock, or raise Refused. The challenge
        is used up either way."""
        if self._store is not None and self._store.motor_running is not None \
                and self._store.motor_running():  # fmt: skip
            raise Refused(E.MOTOR_RUNNING, "unlock only while the needle is stopped")
        ch = self._challenge
        self._challenge = None
        left = self._held()
        if left:
            raise Refused(E.RATE_LIMITED, "too many failed attempts: wait %d s" % (
                (left + 999) // 1000))  # fmt: skip
        ok = (
            ch is not None and self._key is not None and _is_hex(response_hex, 64)
            and time.ticks_diff(self._ms(), self._challenge_t) < CHALLENGE_MS
        )  # fmt: skip
        if ok:
            expect = hmac_sha256(self._key, ch.encode())
            ok = _same(unhexlify(response_hex), expect)
        if not ok:
            self.failures += 1
            self._hold_until = time.ticks_add(self._ms(), self._wait_ms())
            self._persist()  # before the answer: a power cut now cannot forget the failure
            if ch is None:
                raise Refused(E.AUTH_FAILED, "no challenge pending: send `unlock` first")
            raise Refused(E.AUTH_FAILED, "wrong response")
        if self.failures:
            self.failures = 0
            self._persist()
        self._until = time.ticks_add(self._ms(), self.unlock_ms)

    def unlocked(self):
        if self._until is None:
            return False
        if time.ticks_diff(self._until, self._ms()) <= 0:
            self._until = None
            return False
        return True

    def lock(self):
        self._until = None
        self._challenge = None

    def remaining_s(self):
        if not self.unlocked():
            return 0
        return time.ticks_diff(self._until, self._ms()) // 1000
