"""The display: the SSD1306 driver's I2C stream decoded by the virtual pen's controller model,
read back as text from the pixels; the screens for each state say what matters in words."""

import gc

import machine
import plant_ui
from mphelp import SIM, check, req

import hardware.pins as P
from firmware import faults as F


def _rig():
    # Imported here with a collection first: the heap is the pen's 190 KB and these modules
    # are compiled from source here (on the pen they are frozen bytecode).
    gc.collect()
    from mptest_pen_fakes import make_pen

    from drivers.ssd1306 import SSD1306
    from firmware.display import Display
    from firmware.ui import UI

    panel = plant_ui.SSD1306(height=32)  # the virtual pen's controller model, on the bus
    SIM.board.i2c[P.OLED_ADDR] = panel
    i2c = machine.I2C(P.I2C_ID, scl=machine.Pin(P.I2C_SCL), sda=machine.Pin(P.I2C_SDA))
    dev = SSD1306(i2c, P.OLED_ADDR, 128, 32)
    pen, needle, depth, clock, events = make_pen()
    ui = UI(pen, clock=clock)
    return panel, dev, Display(dev, pen, ui), pen, needle, ui


@req("UI-10")
def test_driver_stream_decodes_to_the_same_pixels():
    """UI-10: what the driver draws is what the controller shows, pixel for pixel, read back
    as the same text (16x4 characters of framebuf's font)."""
    panel, dev, disp, pen, needle, ui = _rig()
    check(panel.on and panel.mux == 31, "initialised for a 128x32 panel")
    dev.fill(0)
    dev.text("Hello, pen 0.50", 0, 0, 1)
    dev.text("ABC xyz 123 !?#", 0, 24, 1)
    dev.rect(0, 9, 128, 14, 1)
    dev.show()
    for y in range(32):
        for x in range(128):
            if dev.pixel(x, y) != panel.pixel(x, y):
                raise AssertionError("pixel %d,%d differs" % (x, y))
    lines = panel.text()
    check(lines[0] == "Hello, pen 0.50" and lines[3] == "ABC xyz 123 !?#", repr(lines))
    check(panel.frames == 2, "one full frame per show(), got %d" % panel.frames)
    dev.poweroff()
    check(not panel.on and panel.text() == ["", "", "", ""], "off: dark")


@req("UI-11")
def test_ready_screen_shows_state_depth_rate_battery():
    """UI-11: READY shows the state, the battery, the depth and the stroke rate."""
    panel, dev, disp, pen, needle, ui = _rig()
    pen.targets.change("depth", 1250)
    disp.draw()
    t = panel.text()
    check(t[0].startswith("READY") and t[0].endswith("3.90V"), repr(t))
    check(t[1] == "DEPTH 1.25mm", repr(t))
    check(t[2].startswith("RATE 100Hz"), repr(t))
    check("arm" in t[3], repr(t))


@req("UI-11")
def test_running_and_moving_screens_show_measured_and_target():
    """UI-11: while the stop moves the depth line shows actual > target; while running the rate
    line shows measured/target and the confirmed cartridge; the state and battery on top."""
    panel, dev, disp, pen, needle, ui = _rig()
    pen.targets.change("depth", 1250)  # the fake stop arrives at once; put it mid-way
    pen.depth.busy = True
    pen.depth.position_um = 400
    disp.draw()
    t = panel.text()
    check(t[1] == "DEPTH 0.40>1.25", repr(t))
    pen.depth.busy = False
    pen.depth.position_um = 1250
    pen.arm()
    pen.confirm_cartridge()
    pen.run()
    ui._ms.advance(ui.message_ms + 1)  # the cartridge's message has gone
    needle.rate_mhz = 98_700
    disp.draw()
    t = panel.text()
    check(t[0].startswith("RUNNING") and t[0].endswith("V"), repr(t))
    check(t[1] == "DEPTH 1.25mm", repr(t))
    check(t[2].startswith("RATE 98.7/%d" % pen.targets.rate_hz), repr(t))
    check(t[2].rstrip().endswith("C%d" % pen.cart.number) and pen.cart.ok, repr(t))


@req("UI-12", "PS-4")
def test_fault_screen_says_the_fault_in_words():
    """UI-12, PS-4: FAULT shows the fault's words and how to clear it."""
    panel, dev, disp, pen, needle, ui = _rig()
    pen.arm()
    pen.confirm_cartridge()
    pen.run()
    needle.trip(F.STALL)
    pen.poll()
    disp.draw()
    t = panel.text()
    check(t[0].startswith("FAULT"), repr(t))
    check(" ".join(t[1:3]).strip() == "needle motor stalled", repr(t))
    check(t[3] == "hold START:clear", repr(t))


@req("UI-1")
def test_refusal_message_then_back_to_normal():
    """UI-1: a refusal shows why for message_ms, then the normal screen returns."""
    panel, dev, disp, pen, needle, ui = _rig()
    ui.update(1, 0)
    ui.update(1, 30)
    ui.update(0, 100)
    ui.update(0, 130)
    disp.draw()
    t = panel.text()
    check(t[2] == "NOT ARMED" and t[3] == "hold START 1s", repr(t))


@req("UI-13")
def test_redraw_only_on_change():
    """UI-13: the panel is sent a frame only when the text changed (the I2C bus stays quiet)."""
    panel, dev, disp, pen, needle, ui = _rig()
    check(disp.draw())
    f = panel.frames
    for _ in range(10):
        disp.draw()
    check(panel.frames == f, "no redraw without a change")
    pen.targets.change("depth", 800)
    check(disp.draw() and panel.frames == f + 1)
