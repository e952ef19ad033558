"""A population of virtual pens: each unit is one pen built from parts with tolerances.

    p = plant_units.draw(7)      # the parameters of unit 7 (a dict), the same on every run
    plant_units.apply(pen, p)    # put them into a board_sim.VirtualPen's plant

Unit 0 is the reference pen: every part at its datasheet nominal (the numbers the firmware's
constants are written from: firmware/needle.py FF_UV_PER_HZ = Ke * 2 pi, R_MOHM = R + R_DS,
FF_OFFSET_MV = friction current * (R + R_DS)), and the depth mechanism of the reference build.
Units 1, 2, ... are drawn from TOLERANCES, seeded by the unit number (xorshift32, no library
RNG: the same draw under CPython and under the micropython binary). Each draw is uniform over
the stated tolerance band: a tolerance is a bound, not a sigma, and a uniform draw visits the
corners of the band more often than a normal one would, which is what a population test wants.
The sensors' noise (ADC noise and DNL, hall jitter, endstop scatter) is present on every unit,
unit 0 included: it is a property of the parts, not a tolerance. Sources and reasoning for every
figure: sim/README.md ("Unit population").

Pure Python with floats: runs in the simulator (micropython unix port) and under CPython.
"""

# Datasheet nominal of each part (unit 0). Keys are the plant attributes they set.
NOMINAL = {
    # needle motor (a 10 mm coreless DC motor) and the H-bridge
    "R": 2.0,  # ohm, terminal resistance at 25 C
    "Ke": 0.00236,  # V/(rad/s) (= Kt, N*m/A)
    "T_coulomb": 6.0e-5,  # N*m, brush and bearing friction (no-load current * Kt)
    "b": 1.0e-8,  # N*m/(rad/s), viscous drag
    "J": 6.0e-8,  # kg*m^2, rotor + cam + needle carriage reflected to the shaft
    "r_cam": 0.0015,  # m, cam eccentricity (3 mm stroke)
    "R_DS": 0.36,  # ohm, DRV8833 high + low side on-resistance
    # battery: 1S Li-ion
    "R_int": 0.15,  # ohm, a new cell
    # current sense: shunt x amplifier, into the ADC
    "i_gain": 1.0,  # shunt x amplifier gain relative to nominal (2.5 V/A)
    "i_offset_mv": 0.0,  # amplifier output offset, mV
    "b_gain": 1.0,  # battery divider ratio relative to nominal
    # ADC (RP2040)
    "adc_noise_lsb": 2.0,  # sigma of the conversion noise, LSB
    "adc_dnl_lsb": 9.0,  # width added to the codes at the RP2040-E11 spikes, LSB
    # hall switch
    "hall_jitter_us": 4.0,  # sigma of the edge time
    # depth stop: lead screw, nut, needle stop, home switch
    "pitch_error": 0.03,  # lead error of the reference build's screw (+3 %)
    "offset_mm": -0.12,  # protrusion at the switch's nominal point
    "backlash_mm": 0.03,
    "nonlinear_mm": 0.04,  # bow of the protrusion curve at mid-travel
    "trip_offset_um": 0.0,  # where this unit's switch trips, from its nominal point
    "trip_noise_um": 2.0,  # sigma of the switch's trip point (repeatability)
    "hysteresis_um": 15.0,
}

# (key, kind, band): "rel" = nominal * (1 + u * band), "abs" = nominal + u * band, "range" =
# uniform between the two numbers; u uniform in -1..1. Order is fixed: a new entry goes at the
# end, so every existing unit keeps its draw.
TOLERANCES = (
    ("R", "rel", 0.10),
    ("Ke", "rel", 0.10),
    ("T_coulomb", "rel", 0.30),
    ("b", "rel", 0.30),
    ("J", "rel", 0.15),
    ("r_cam", "rel", 0.03),
    ("R_DS", "rel", 0.25),
    ("R_int", "range", (0.12, 0.30)),  # new cell .. aged to 2x
    ("i_gain", "rel", 0.03),
    ("i_offset_mv", "abs", 10.0),
    ("b_gain", "rel", 0.02),
    ("adc_noise_lsb", "range", (1.5, 3.0)),
    ("adc_dnl_lsb", "range", (8.0, 10.0)),
    ("hall_jitter_us", "range", (2.0, 10.0)),
    ("pitch_error", "abs", 0.03),  # a unit's screw: 0 +- 3 % (the reference build has +3 %)
    ("offset_mm", "abs", 0.03),
    ("backlash_mm", "range", (0.01, 0.05)),
    ("nonlinear_mm", "abs", 0.04),
    ("trip_offset_um", "abs", 20.0),
    ("trip_noise_um", "range", (1.0, 3.0)),
    ("hysteresis_um", "range", (8.0, 30.0)),
)

# The RP2040 ADC's wide codes (erratum RP2040-E11): the code just below each boundary covers
# `adc_dnl_lsb` more input than an ordinary code.
DNL_CODES = (511, 1535, 2559, 3583)


class Rng:
    """xorshift32: the same sequence under CPython and MicroPython."""

    def __init__(self, seed):
        self.x = (seed & 0xFFFFFFFF) or 0x2545F491

    def u32(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def uniform(self):
        """0 <= u < 1"""
        return self.u32() / 4294967296.0

    def gauss(self):
        """Close to N(0, 1): the sum of 12 uniforms minus 6 (Irwin-Hall)."""
        s = 0.0
        for _ in range(12):
            s += self.uniform()
        return s - 6.0


def seed_of(unit, salt=0):
    # Mix the unit number so neighbouring units start far apart (Knuth's multiplicative hash).
    return ((unit + 1) * 2654435761 + salt * 40503 + 0x9E3779B9) & 0xFFFFFFFF


def draw(unit):
    """The parameters of `unit` (int >= 0): a new dict, NOMINAL for unit 0."""
    if not isinstance(unit, int) or unit < 0:
        raise ValueError("unit must be an int >= 0")
    p = dict(NOMINAL)
    p["unit"] = unit
    if unit == 0:
        return p
    rng = Rng(seed_of(unit))
    for _ in range(4):
        rng.u32()  # let the mixed seed spread
    for key, kind, band in TOLERANCES:
        u = rng.uniform() * 2.0 - 1.0
        if kind == "rel":
            p[key] = NOMINAL[key] * (1.0 + u * band)
        elif kind == "abs":
            p[key] = (0.0 if key == "pitch_error" else NOMINAL[key]) + u * band
        else:
            lo, hi = band
            p[key] = lo + (u + 1.0) * 0.5 * (hi - lo)
    return p


def apply(pen, p):
    """Set unit parameters `p` (from draw()) on a board_sim.VirtualPen's plant parts."""
    m = pen.motor
    for k in ("R", "Ke", "T_coulomb", "b", "J", "r_cam", "R_DS"):
        setattr(m, k, p[k])
    m.i_gain = p["i_gain"]
    m.i_offset_mv = p["i_offset_mv"]
    m.hall_jitter_us = p["hall_jitter_us"]
    m.conv.noise_lsb = p["adc_noise_lsb"]
    m.conv.dnl_lsb = p["adc_dnl_lsb"]
    pen.battery.R_int = p["R_int"]
    pen.battery.gain = p["b_gain"]
    d = pen.depth
    for k in ("pitch_error", "offset_mm", "backlash_mm", "nonlinear_mm", "trip_offset_um",
              "trip_noise_um", "hysteresis_um"):  # fmt: skip
        setattr(d, k, p[k])
    d.reseed(seed_of(p["unit"], 1))
    pen.unit = p["unit"]
    pen.unit_params = p


def describe(p):
    """One line: the parts of a unit that matter most, against nominal."""
    def rel(k):
        return "%+.0f%%" % ((p[k] / NOMINAL[k] - 1.0) * 100)

    return ("unit %d: R %s Ke %s friction %s J %s R_DS %s R_int %.0f mOhm; current gain %s "
            "offset %+.1f mV; pitch %+.1f%% backlash %.0f um trip %+.0f um (sd %.1f um)") % (
        p["unit"], rel("R"), rel("Ke"), rel("T_coulomb"), rel("J"), rel("R_DS"),
        p["R_int"] * 1000, rel("i_gain"), p["i_offset_mv"], p["pitch_error"] * 100,
        p["backlash_mm"] * 1000, p["trip_offset_um"], p["trip_noise_um"])  # fmt: skip
