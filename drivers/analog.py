"""Motor current and battery voltage from the RP2040's ADC, in integer mA and mV.

The scale factors come from `hardware/pins.py` through the board construction. Each is turned
once, at construction, into a Q-format multiplier so a reading costs one multiply and one shift
in the control tick, and every intermediate value stays a small int (< 2**30) on the pen."""

from micropython import const

_RAW_MAX = const(4095)  # 12-bit converter
_SMALL_INT = const(1 << 30)


def _q_scale(num, den):
    """(multiplier, shift) with raw * multiplier >> shift ~= raw * num / den, and
    _RAW_MAX * multiplier < 2**30 (so the product never leaves the small-int range)."""
    shift = 20
    while shift > 0:
        mult = (num << shift) // den
        if _RAW_MAX * mult < _SMALL_INT:
            return mult, shift
        shift -= 1
    raise ValueError("ADC scale too large")


class Analog:
    """adc_current / adc_battery: machine.ADC objects on the ADC inputs current_ain /
    battery_ain (0..3: GPIO 26..29). vref_mv: the ADC reference; current_mv_per_a: shunt *
    amplifier gain; battery_divider: V_bat / V_adc.

    The control tick reads the converter's registers itself (`cs_addr`: CS, RESULT the word
    after): it starts a conversion (CS.START_ONCE with AINSEL) and reads its RESULT one tick
    later, so it never waits for the 2 µs conversion nor calls read_u16(). A read_u16() of
    another input in between moves AINSEL: the tick sees that and drops that one sample."""

    def __init__(self, adc_current, adc_battery, vref_mv, current_mv_per_a, battery_divider,
                 current_ain, battery_ain):  # fmt: skip
        from drivers import regs

        if vref_mv <= 0 or current_mv_per_a <= 0 or battery_divider <= 0:
            raise ValueError("analog scale factors must be positive")
        if not (0 <= current_ain <= 3 and 0 <= battery_ain <= 3):
            raise ValueError("ADC inputs 0..3")
        self.current_ain = current_ain
        self.battery_ain = battery_ain
        self.cs_addr = regs.address(regs.ADC_BASE + regs.ADC_CS)
        self._adc_i = adc_current
        self._adc_b = adc_battery
        # mA = raw * vref / 4095 * 1000 / mV_per_A ; mV = raw * vref / 4095 * divider
        self._i_mul, self._i_shift = _q_scale(vref_mv * 1000, _RAW_MAX * current_mv_per_a)
        self._b_mul, self._b_shift = _q_scale(vref_mv * battery_divider, _RAW_MAX)
        self.current_full_scale_ma = self.current_ma_from_raw(_RAW_MAX)
        # For the control tick: the scales, mA = raw * i_mul >> i_shift, mV likewise.
        self.i_mul, self.i_shift = self._i_mul, self._i_shift
        self.b_mul, self.b_shift = self._b_mul, self._b_shift

    def current_ma_from_raw(self, raw):
        return (raw * self._i_mul) >> self._i_shift

    def current_ma(self):
        """Motor current in mA (the shunt amplifier reads 0 for a current flowing back)."""
        return ((self._adc_i.read_u16() >> 4) * self._i_mul) >> self._i_shift

    def battery_mv(self):
        """Battery voltage in mV at the pack (after the divider is undone)."""
        return ((self._adc_b.read_u16() >> 4) * self._b_mul) >> self._b_shift
