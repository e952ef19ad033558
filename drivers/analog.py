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
    """adc_current / adc_battery: machine.ADC objects. vref_mv: the ADC reference;
    current_mv_per_a: shunt * amplifier gain; battery_divider: V_bat / V_adc."""

    def __init__(self, adc_current, adc_battery, vref_mv, current_mv_per_a, battery_divider):
        if vref_mv <= 0 or current_mv_per_a <= 0 or battery_divider <= 0:
            raise ValueError("analog scale factors must be positive")
        self._adc_i = adc_current
        self._adc_b = adc_battery
        # mA = raw * vref / 4095 * 1000 / mV_per_A ; mV = raw * vref / 4095 * divider
        self._i_mul, self._i_shift = _q_scale(vref_mv * 1000, _RAW_MAX * current_mv_per_a)
        self._b_mul, self._b_shift = _q_scale(vref_mv * battery_divider, _RAW_MAX)
        self.current_full_scale_ma = self.current_ma_from_raw(_RAW_MAX)
        # For the control tick: the raw readers (read_u16, C on the pen) and the scales, so a
        # reading costs one call: mA = (read_current() >> 4) * i_mul >> i_shift.
        self.read_current = adc_current.read_u16
        self.read_battery = adc_battery.read_u16
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
