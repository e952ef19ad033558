"""The virtual pen boots main.py (heap limited like the RP2040's) behind a pseudo-terminal that
pyserial opens like the pen's USB port."""

import json

import serial


def test_boot_and_status_over_pyserial(vpen):
    with serial.Serial(vpen.port, 115200, timeout=10) as s:
        s.reset_input_buffer()
        s.write(b"status\n")
        line = s.readline().decode()
        while line.startswith("~"):  # unsolicited lines (events) are not replies
            line = s.readline().decode()
    assert line.startswith("ok "), line
    st = json.loads(line[3:])
    for key in ("state", "homed", "depth_mm", "target_depth_mm", "measured_hz", "target_hz",
                "fault", "firmware_version", "protocol_version"):  # fmt: skip
        assert key in st, key


def test_side_channel_gauge_and_buttons(vpen):
    mm = float(vpen.ctl("gauge"))
    assert -0.5 < mm < 4.0
    assert vpen.ctl("press", "plus+minus", "--hold-ms", "200") == ""
    try:
        vpen.ctl("press", "bogus")
    except RuntimeError as e:
        assert "unknown button" in str(e)
    else:
        raise AssertionError("a bad button name must be refused")
