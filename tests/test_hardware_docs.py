"""hardware/README.md's pin table says what hardware/pins.py says (pins.py is the source)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pin_constants():
    ns: dict = {}
    exec((ROOT / "hardware" / "pins.py").read_text(), ns)
    names = [
        n for n, v in ns.items()
        if n.isupper() and isinstance(v, int) and not n.startswith(("ADC_", "CURRENT_", "BATTERY_"))
        and n not in ("TMC_UART_ID", "I2C_ID", "OLED_ADDR")
    ]  # fmt: skip
    return {n: ns[n] for n in names}


def test_readme_pin_table_matches_pins_py():
    table = {}
    for m in re.finditer(r"^\| (\d+) \| (\w+) \|", (ROOT / "hardware" / "README.md").read_text(),
                         re.M):  # fmt: skip
        table[m.group(2)] = int(m.group(1))
    assert table == pin_constants()


def test_no_gpio_used_twice():
    pins = pin_constants()
    assert len(set(pins.values())) == len(pins)
