"""The link `pen log` lends to other `pen` commands (pen.link.share), against the fake pen."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


@pytest.mark.req("HT-62")
def test_a_second_command_goes_through_the_holders_link(lent):
    """HT-62: the lent link answers as the port would: replies, refusals, the handshake's
    facts; the pen sees the lines on the holder's connection (tagged by the holder)."""
    pen, link = lent
    shared = SharedLink.connect("/dev/fake")
    assert shared is not None and shared.hello == link.hello and shared.port == "/dev/fake"
    assert shared.call("get depth") == {"depth": 0.5}
    assert pen.received[-1].endswith(" get depth") and pen.received[-1].startswith("#")
    with pytest.raises(L.PenRefused) as exc:
        shared.call("get nope")
    assert exc.value.code == 6
    with pytest.raises(L.LinkError):
        shared.call("x" * 300)  # refused before it is sent, as on the port
    shared.close()


@pytest.mark.req("HT-62")
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


@pytest.mark.req("HT-62")
def test_the_holders_failures_keep_their_kind(lent, monkeypatch):
    """HT-62: a lost link is LinkLost on the borrowing side too (by kind, not by text)."""
    _, link = lent

    def lost(line, timeout=None, retry=None):
        raise L.LinkLost("the connection to the pen was lost")

    monkeypatch.setattr(link, "request", lost)
    with SharedLink.connect("/dev/fake") as shared, pytest.raises(L.LinkLost):
        shared.call("status")


@pytest.mark.req("HT-62")
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


_requests = st.one_of(
    st.binary(max_size=80).filter(lambda b: b"\n" not in b),
    st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                     max_size=3),
                 max_leaves=6).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"op": st.sampled_from(["hello", "request", "realtime", "x"]),
                           "line": st.text(max_size=40), "timeout": st.none() | st.floats(),
                           "char": st.text(max_size=2)}).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip


@pytest.mark.req("HT-62")
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(reqs=st.lists(_requests, min_size=1, max_size=5))
def test_any_request_gets_one_answer_and_the_server_goes_on(lent, reqs):
    """HT-62: whatever a local process writes to the socket, each line gets one JSON answer and
    the holder's link goes on serving (the class of inputs, not one case)."""
    _, link = lent
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(socket_path("/dev/fake")))
        f = s.makefile("rwb")
        for raw in reqs:
            f.write(raw + b"\n")
            f.flush()
            answer = json.loads(f.readline())
            assert isinstance(answer, dict)
    with SharedLink.connect("/dev/fake") as shared:
        assert shared.call("get depth") == {"depth": 0.5}
