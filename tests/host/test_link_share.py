"""The link `pen log` lends to other `pen` commands (pen.link.share), against the fake pen."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from link_fakes import EXPECT, FakePen, FakeSerial

from pen import link as L
from pen.link.share import LinkServer, SharedLink, socket_path


@pytest.fixture
def lent(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    pen = FakePen()
    link = L.PenLink("/dev/fake", serial_factory=lambda p: FakeSerial(pen), expect=EXPECT,
                     timeout=0.5).open()  # fmt: skip
    server = LinkServer(link).start()
    yield pen, link
    server.close()
    link.close()


def test_a_second_command_goes_through_the_holders_link(lent):
    """HT-62: the lent link answers as the port would: replies, refusals, the handshake's
    facts; the pen sees the lines on the holder's connection (tagged by the holder)."""
    pen, link = lent
    shared = SharedLink.connect("/dev/fake")
    assert shared is not None and shared.hello == link.hello and shared.port == "/dev/fake"
    assert shared.call("get depth_mm") == {"depth_mm": 0.5}
    assert pen.received[-1].endswith(" get depth_mm") and pen.received[-1].startswith("#")
    with pytest.raises(L.PenRefused) as exc:
        shared.call("get nope")
    assert exc.value.code == 6
    with pytest.raises(L.LinkError):
        shared.call("x" * 300)  # refused before it is sent, as on the port
    shared.close()


def test_the_telemetry_stream_stays_with_the_holder(lent):
    """HT-62: `telemetry on|off` through a lent link is refused with what to do."""
    pen, _ = lent
    with SharedLink.connect("/dev/fake") as shared:
        for line in ("telemetry on 50", "telemetry off"):
            with pytest.raises(L.LinkError, match="stop the log first"):
                shared.call(line)
        # Fetching from the ring changes nothing: it reaches the pen (whose ring is empty).
        assert shared.request("telemetry fetch 0 1").code == 16
    assert not any(r.endswith("telemetry on 50") for r in pen.received)


def test_the_holders_failures_keep_their_kind(lent, monkeypatch):
    """HT-62: a lost link is LinkLost on the borrowing side too (by kind, not by text)."""
    _, link = lent

    def lost(line, timeout=None, retry=None):
        raise L.LinkLost("the connection to the pen was lost")

    monkeypatch.setattr(link, "request", lost)
    with SharedLink.connect("/dev/fake") as shared, pytest.raises(L.LinkLost):
        shared.call("status")


def test_no_holder_means_the_port_itself(tmp_path, monkeypatch):
    """HT-62: without a holder (or with a socket file left by a killed one) a command opens
    the port as before."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert SharedLink.connect("/dev/fake") is None
    socket_path("/dev/fake").write_text("")  # not a listening socket
    assert SharedLink.connect("/dev/fake") is None
    opened = []
    monkeypatch.setattr(L.PenLink, "open", lambda self, handshake=True: opened.append(1) or self)
    with L.session(SimpleNamespace(port="/dev/fake")) as link:
        assert isinstance(link, L.PenLink)
    assert opened == [1]
