"""The simulated board: the plant's parts wired to the pins of `hardware/pins.py`, the models of
the pen's PIO programs, and the side channel's commands (buttons, load, gauge, faults)."""

import plant_depth
import plant_motor
import plant_ui
import plant_units
import rp2

import hardware.pins as P

# `press` answers once the firmware has had this long after the release to see it and show
# it: its button debounce and polling, the state machine's poll and the display's refresh
# (firmware/ui.py 20 ms and 5 ms, firmware/app.py 10 ms, firmware/display.py 100 ms) with room
# to spare. Virtual time: the same however fast the host runs the pen.
SEEN_AFTER_RELEASE_US = 250000

# The fault names the side channel injects, and which plant part takes each.
FAULTS = ("stall", "runaway", "sensor_loss", "short", "endstop_open", "endstop_closed",
          "missed_steps", "battery_low", "hang", "none")  # fmt: skip
# Sensor glitches of the field (side channel `glitch NAME RATE`): the share of events hit.
GLITCHES = ("hall_double", "hall_miss", "current_spike", "adc_outlier")
LOAD_MAX = 2.0  # `load`: 1.0 = the published top of the skin's insertion force (docs/plant.md)


class VirtualPen:
    """`unit`: which pen of the population (sim/plant_units.py); 0, the reference pen with
    every part at its datasheet nominal, is the default."""

    def __init__(self, sim, unit=0):
        self.sim = sim
        self.battery = plant_motor.Battery(sim.board)
        self.motor = plant_motor.NeedleMotor(sim, self.battery)
        self.depth = plant_depth.DepthStop(sim)
        import tmc2209_uart

        self.tmc = tmc2209_uart.TMC2209Uart(sim, self.depth)  # the stepper driver's UART
        sim.board.uart[P.TMC_UART_ID] = self.tmc
        plant_units.apply(self, plant_units.draw(unit))
        self.buttons = plant_ui.Buttons(sim)
        self.display = plant_ui.SSD1306(height=32)
        sim.board.i2c[P.OLED_ADDR] = self.display
        self.buzzer = plant_ui.BuzzerProbe(sim)
        self.hang = False
        self.power_cut = False
        sim.hang = False
        sim.devices.append(self)
        sim.devices.append(self.buttons)
        sim.devices.append(self.buzzer)
        self.register_pio_models()

    def register_pio_models(self):
        """Each PIO program of the pen's drivers gets its behavioural model here."""
        import pio_models

        pio_models.register(rp2.MODELS, self)

    def step(self, now, dt):
        if self.power_cut:
            # `power cut`: the supply is gone at this instant; the process ends as a
            # power-on reset (the supervisor boots it again, the flash keeps what was written).
            import machine

            self.power_cut = False
            raise machine.SimReset(machine.PWRON_RESET)
        self.motor.depth_mm = max(0.0, self.depth.protrusion_mm())
        self.motor.step(now, dt)
        self.depth.step(now, dt)

    # -- state that survives a reset (the mechanism does not move when the pen reboots) -----
    def save_state(self, path):
        f = open(path, "w")
        f.write("%d %.6f\n" % (self.depth.motor_usteps, self.depth.nut_mm))
        f.close()

    def load_state(self, path):
        try:
            f = open(path)
            parts = f.read().split()
            f.close()
            self.depth.motor_usteps = int(parts[0])
            self.depth.nut_mm = float(parts[1])
            self.depth._update_endstop()
        except (OSError, ValueError, IndexError):
            pass

    # -- side channel --------------------------------------------------------------------
    def ctl(self, line):
        """One side-channel command -> one reply line ('ok ...' or 'error ...'), or
        (T_US, reply line) for a reply due at virtual time T_US (sim/ctl.py waits for it)."""
        parts = line.split()
        if not parts:
            return "error empty command"
        cmd, args = parts[0], parts[1:]
        try:
            if cmd == "press":
                # press BUTTONS [--hold-ms N] [--no-wait]: answered after the release has been
                # seen (SEEN_AFTER_RELEASE_US later), or at once with --no-wait.
                hold = 100
                if "--hold-ms" in args:
                    hold = int(args[args.index("--hold-ms") + 1])
                if hold < 0:
                    return "error --hold-ms must be >= 0"
                self.buttons.press(args[0], hold)
                if "--no-wait" in args:
                    return "ok"
                return (self.sim.now + hold * 1000 + SEEN_AFTER_RELEASE_US, "ok")
            if cmd == "wait":
                # wait MS: answered after MS milliseconds of the pen's own (virtual) time.
                ms = int(args[0])
                if not 0 <= ms <= 600000:
                    return "error wait MS: 0..600000"
                return (self.sim.now + ms * 1000, "ok")
            if cmd == "load":
                v = float(args[0])
                if not 0.0 <= v <= LOAD_MAX:
                    return "error load must be 0..%g" % LOAD_MAX
                self.motor.load = v
                return "ok"
            if cmd == "gauge":
                return "ok %.4f" % self.depth.protrusion_mm()
            if cmd == "battery":
                self.battery.v_open = float(args[0])
                return "ok"
            if cmd == "unit":
                return "ok " + plant_units.describe(self.unit_params)
            if cmd == "glitch":
                return self.glitch(args)
            if cmd == "fault":
                return self.inject(args[0] if args else "")
            if cmd == "power" and args == ["cut"]:
                self.power_cut = True
                return "ok"
            if cmd == "screen":
                return self.screen(args)
            if cmd == "buzzer":
                if args and args[0] == "clear":
                    self.buzzer.tones[:] = []
                    return "ok"
                import json

                return "ok " + json.dumps(self.buzzer.tones)
            if cmd == "truth":
                return ("ok stroke_hz=%.3f depth_mm=%.4f current_a=%.3f battery_v=%.3f t_us=%d"
                        " turns=%d") % (
                    self.motor.stroke_hz(), self.depth.protrusion_mm(), self.motor.i,
                    self.battery.voltage(), self.sim.now, self.motor.turns)  # fmt: skip
            return "error unknown command %r" % cmd
        except (IndexError, ValueError) as e:
            return "error %s" % e

    def screen(self, args):
        """`screen`: the text read off the panel (JSON list of 4 lines); `screen art`: the
        pixels as ASCII art, rows joined by '|'."""
        import json

        d = self.display
        if args and args[0] == "art":
            return "ok " + "|".join(d.art())
        return "ok " + json.dumps({"on": d.on, "frames": d.frames, "lines": d.text()})

    def glitch(self, args):
        """`glitch NAME RATE` sets a glitch's rate (0..1: the share of strokes or conversions
        hit); `glitch none` clears them all; `glitch` alone: the rates and the counts so far."""
        m = self.motor
        if not args:
            return "ok hall_double=%g/%d hall_miss=%g/%d current_spike=%g/%d adc_outlier=%g/%d" % (
                m.hall_double_rate, m.glitches["hall_double"], m.hall_miss_rate,
                m.glitches["hall_miss"], m.spike_rate, m.glitches["current_spike"],
                m.conv.outlier_rate, m.conv.outliers)  # fmt: skip
        if args[0] == "none":
            m.hall_double_rate = m.hall_miss_rate = m.spike_rate = m.conv.outlier_rate = 0.0
            return "ok"
        if args[0] not in GLITCHES or len(args) != 2:
            return "error glitch NAME RATE, NAME one of %s; or glitch none" % ", ".join(GLITCHES)
        rate = float(args[1])
        if not 0.0 <= rate <= 1.0:
            return "error rate must be 0..1"
        if args[0] == "hall_double":
            m.hall_double_rate = rate
        elif args[0] == "hall_miss":
            m.hall_miss_rate = rate
        elif args[0] == "current_spike":
            m.spike_rate = rate
        else:
            m.conv.outlier_rate = rate
        return "ok"

    def inject(self, name):
        if name not in FAULTS:
            return "error unknown fault %r (%s)" % (name, ", ".join(FAULTS))
        if name == "none":
            self.motor.fault = None
            self.depth.fault = None
            self.hang = False
            self.sim.hang = False
            self.battery.v_open = 3.9
        elif name in ("stall", "runaway", "sensor_loss", "short"):
            self.motor.fault = name
        elif name in ("endstop_open", "endstop_closed", "missed_steps"):
            self.depth.fault = name
            self.depth._update_endstop()
        elif name == "battery_low":
            self.battery.v_open = 3.05
        elif name == "hang":
            # The firmware's event loop stops turning (sim/shims/select.py): only the
            # watchdog can end it.
            self.hang = True
            self.sim.hang = True
        return "ok"
