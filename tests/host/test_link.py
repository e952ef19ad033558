"""The host's serial link (`pen.link`) against a fake serial port that plays the pen's side of
docs/protocol.md: tags, replies, unsolicited lines, half lines, pulled cables, a changed pen."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from link_fakes import EXPECT, HELLO, FakePen, FakeSerial, PortGone

from pen import link as L


def make_link(pen: FakePen, **kw) -> L.PenLink:
    kw.setdefault("expect", EXPECT)
    kw.setdefault("timeout", 0.5)
    kw.setdefault("reconnect_timeout", 2.0)
    kw.setdefault("serial_factory", lambda port: FakeSerial(pen))
    return L.PenLink("/dev/fake", **kw)


@pytest.mark.req("HT-2", "HT-3")
def test_handshake_with_tags_and_command_replies():
    """HT-2, HT-3: `hello` is checked; every command carries a `#N ` tag that the reply echoes;
    ok payloads are decoded, `error:N` becomes PenRefused with its code."""
    pen = FakePen()
    link = make_link(pen).open()
    assert link.hello["serial"] == "e66138" and link.tags
    assert link.call("get depth") == {"depth": 0.5}
    assert pen.received[-1].startswith("#") and pen.received[-1].endswith(" get depth")
    assert link.command("status").startswith("ok {")
    with pytest.raises(L.PenRefused) as exc:
        link.call("get nope")
    assert exc.value.code == 6 and "unknown setting" in str(exc.value)
    assert link.request("bogus").code == 1


@pytest.mark.req("HT-3")
def test_untagged_pen_is_spoken_to_without_tags():
    """HT-3: a pen that does not echo tags is detected at the handshake."""
    pen = FakePen(tags=False)
    link = make_link(pen).open()
    assert not link.tags
    assert link.call("get depth") == {"depth": 0.5}
    assert pen.received[-1] == "get depth"


@pytest.mark.req("HT-2")
@pytest.mark.parametrize(
    "hello, words",
    [
        ({**HELLO, "protocol_version": 0}, ["protocol version mismatch", "pen deploy"]),
        ({**HELLO, "protocol_version": 2}, ["protocol version mismatch", "update these host"]),
        ({**HELLO, "schema_hash": "fff000"}, ["settings schema mismatch", "pen deploy"]),
        ({k: v for k, v in HELLO.items() if k != "schema_hash"}, ["reports no settings schema"]),
    ],
)
def test_handshake_mismatch_says_what_to_do(hello, words):
    """HT-2: a protocol or schema mismatch is refused with what to do."""
    with pytest.raises(L.HandshakeMismatch) as exc:
        make_link(FakePen(hello=hello)).open()
    for w in words:
        assert w in str(exc.value)
    # With check=False the link opens and keeps the problem for the caller to show.
    link = make_link(FakePen(hello=hello), check=False).open()
    assert link.mismatch and words[0] in link.mismatch


@pytest.mark.req("HT-3")
def test_unsolicited_lines_are_set_aside():
    """HT-3: `~T`/`~E`/`~S` lines arriving before a reply are queued, never taken for it."""
    pen = FakePen()
    link = make_link(pen).open()
    pen.before_reply = ['~T {"seq": 7, "state": "RUNNING"}', '~E {"event": "fault"}',
                        "~T not json", "MicroPython banner noise"]  # fmt: skip
    assert link.call("get depth") == {"depth": 0.5}
    kinds = [(u.kind, u.data) for u in link.unsolicited]
    assert kinds == [("T", {"seq": 7, "state": "RUNNING"}), ("E", {"event": "fault"})]
    assert [u.data["seq"] for u in link.take_unsolicited("T")] == [7]
    assert [u.kind for u in link.unsolicited] == ["E"]
    assert "MicroPython banner noise" in link.noise


@pytest.mark.req("HT-3")
def test_stale_and_half_lines_are_not_taken_for_the_reply():
    """HT-3: a reply to an earlier tag, an untagged error for a half line, and a half
    line left in the input are all discarded; the reply with the current tag is returned."""
    pen = FakePen()
    link = make_link(pen).open()
    pen.before_reply = ["#9999 ok {\"stale\": true}", "error:2 bad line"]
    assert link.call("get depth") == {"depth": 0.5}
    assert link.stale_replies >= 1
    # A half line from before a reconnect is flushed at the handshake.
    pen.pending = b'ok {"depth": 9'
    link.reconnect()
    assert link.call("get depth") == {"depth": 0.5}


@pytest.mark.req("HT-4")
def test_pulled_cable_read_only_command_is_retried():
    """HT-4: the port fails in the middle of a read-only command: the link reopens the
    port, handshakes again and sends the command again."""
    pen = FakePen()
    link = make_link(pen).open()
    pen.swallow_reply = True
    pen.fail_after_lines = 1  # the next line goes out, then the port dies
    assert link.call("status")["state"] == "READY"
    assert link.reconnects == 1 and pen.opens == 2


@pytest.mark.req("HT-4")
def test_pulled_cable_changing_command_is_not_repeated():
    """HT-4: a command that changes something is not sent twice after a reconnect: its
    outcome is unknown, and LinkLost says so."""
    pen = FakePen()
    link = make_link(pen).open()
    pen.swallow_reply = True
    pen.fail_after_lines = 1
    with pytest.raises(L.LinkLost) as exc:
        link.call("set depth 1.0")
    assert "unknown" in str(exc.value) and "pen status" in str(exc.value)
    assert sum(1 for r in pen.received if r.endswith("set depth 1.0")) == 1
    assert link.is_open  # reconnected for the next command
    assert link.call("get depth") == {"depth": 1.0}


@pytest.mark.req("HT-4")
def test_a_different_pen_after_reconnect_is_refused():
    """HT-4: the pen that comes back must be the same pen (serial number)."""
    pen = FakePen()
    link = make_link(pen).open()
    pen.hello["serial"] = "other"
    link.close()
    with pytest.raises(L.LinkLost) as exc:
        link.reconnect()
    assert "different pen" in str(exc.value)


@pytest.mark.req("HT-4")
def test_pen_that_never_comes_back():
    """HT-4: reconnection gives up after its timeout with a clear message."""

    def factory(port):
        raise PortGone("no such device")

    link = L.PenLink("/dev/fake", serial_factory=factory, expect=EXPECT, reconnect_timeout=0.3)
    with pytest.raises(L.LinkLost) as exc:
        link.reconnect()
    assert "did not come back" in str(exc.value)


@pytest.mark.req("HT-5")
def test_repl_prompt_timeout_tells_to_deploy():
    """HT-5: a pen sitting at the MicroPython prompt (no application) is recognised."""

    class Repl(FakeSerial):
        def write(self, data):
            self.pen.pending += b"\r\n>>> "
            return len(data)

    pen = FakePen()
    link = L.PenLink("/dev/fake", serial_factory=lambda p: Repl(pen), expect=EXPECT, timeout=0.3)
    with pytest.raises(L.ReplyTimeout) as exc:
        link.open()
    assert "pen deploy" in str(exc.value)


@pytest.mark.req("HT-3")
def test_long_or_multi_line_commands_are_refused_before_sending():
    """HT-3: one command per line, at most 420 bytes."""
    pen = FakePen()
    link = make_link(pen).open()
    n = len(pen.received)
    for bad in ("set a 1\nset b 2", "x" * 421):
        with pytest.raises(L.LinkError):
            link.command(bad)
    assert len(pen.received) == n


@pytest.mark.req("HT-1")
def test_find_port(monkeypatch):
    """HT-1: --port, then $PEN_PORT, then the one USB device 2E8A:0005."""
    from serial.tools import list_ports

    monkeypatch.delenv("PEN_PORT", raising=False)
    devs = [SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, serial_number="x")]
    monkeypatch.setattr(list_ports, "comports", lambda: devs)
    with pytest.raises(L.PortNotFound) as exc:
        L.find_port(None)
    assert "2E8A:0005" in str(exc.value) and "--port" in str(exc.value)
    devs.append(SimpleNamespace(device="/dev/ttyACM0", vid=0x2E8A, pid=0x0005, serial_number="a"))
    assert L.find_port(None) == "/dev/ttyACM0"
    devs.append(SimpleNamespace(device="/dev/ttyACM1", vid=0x2E8A, pid=0x0005, serial_number="b"))
    with pytest.raises(L.PortNotFound) as exc:
        L.find_port(None)
    assert "several pens" in str(exc.value)
    monkeypatch.setenv("PEN_PORT", "/dev/ttyACM7")
    assert L.find_port(None) == "/dev/ttyACM7"
    assert L.find_port("/dev/x") == "/dev/x"


@pytest.mark.req("HT-4")
def test_read_only_classification():
    """HT-4: which commands may be sent again after a reconnect."""
    assert L.is_read_only("status") and L.is_read_only("telemetry fetch 10 5")
    assert L.is_read_only("calib get") and not L.is_read_only("calib set {}")
    assert not L.is_read_only("move_steps 10") and not L.is_read_only("telemetry on")


@pytest.mark.req("HT-6")
def test_pen_adapter_opens_this_link(monkeypatch):
    """HT-6: the treatment records' adapter opens its link through pen.link.open_link."""
    from pen.records import pen_adapter

    pen = FakePen()
    from pen.link import transport

    monkeypatch.setattr(transport, "default_serial_factory", lambda port: FakeSerial(pen))
    monkeypatch.setattr(L.Expectation, "from_checkout", classmethod(lambda cls: EXPECT))
    link = pen_adapter.open_link("/dev/fake")
    assert link.command("get depth") == 'ok {"depth": 0.5}'
    pen_adapter.close_link(link)


@pytest.mark.req("HT-60")
def test_soft_reset_restarts_the_pen_by_command_and_handshakes_again():
    """HT-60: `pen reset`: the protocol's `reset` (never Ctrl-C/Ctrl-D: the application takes
    every byte as protocol input), then the link handshakes with the pen's new boot (its
    uptime gone back); a refused reset changes nothing and says why; a pen that answers but
    never restarts is an error that says so."""
    pen = FakePen()
    link = make_link(pen).open()
    hello = link.soft_reset(timeout=2.0)
    assert pen.resets == 1 and hello["serial"] == HELLO["serial"] and link.reconnects >= 1
    assert sum(line.split()[-1:] == ["reset"] for line in pen.received) == 1
    assert link.call("get depth") == {"depth": 0.5}

    busy = FakePen()
    busy.reset_reply = "error:17 the needle runs: stop it first"
    link = make_link(busy).open()
    with pytest.raises(L.PenRefused) as exc:
        link.soft_reset(timeout=1.0)
    assert exc.value.code == 17 and busy.resets == 0 and link.reconnects == 0

    stuck = FakePen()
    stuck.reset_works = False
    link = make_link(stuck).open()
    with pytest.raises(L.LinkLost):
        link.soft_reset(timeout=0.5)
