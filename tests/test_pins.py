"""PWM slices of the pin map: every PWM user owns its slice.

The RP2040's PWM slice (one counter, one divider, one TOP: one frequency) and channel follow
from the GPIO number (slice = (gpio >> 1) & 7, A on even pins). Which pins are PWM outputs is
read from the board construction (`drivers/board.py`: every `machine.PWM(Pin(P.NAME) ...)`),
and the GPIO numbers from `hardware/pins.py`, so a new PWM user or a moved pin is checked
without a list typed here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, int]:
    ns: dict = {}
    exec((ROOT / "hardware" / "pins.py").read_text(), ns)
    return {k: v for k, v in ns.items() if k.isupper() and isinstance(v, int)}


def _pin_name(call: ast.Call) -> str | None:
    """`P.NAME` of the pin a `machine.PWM(Pin(P.NAME), ...)` call is built on."""
    if not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Call) and arg.args:
        arg = arg.args[0]
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "P":
        return arg.attr
    return None


def _is_pwm(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Attribute) and f.attr == "PWM") or (
        isinstance(f, ast.Name) and f.id == "PWM")  # fmt: skip


def pwm_users(source: str) -> list[tuple[str, str]]:
    """(user, pin name) for each PWM output the board construction builds. The user is the
    driver call the PWM object is handed to (`Motor`, `Buzzer`): one driver, one frequency."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_pwm(node):
            name = _pin_name(node)
            assert name is not None, f"PWM on a pin not named from pins.py: line {node.lineno}"
            user = None
            p = parents.get(node)
            while p is not None and user is None:
                if isinstance(p, ast.Call) and not _is_pwm(p):
                    f = p.func
                    user = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                p = parents.get(p)
            out.append((user or name, name))
    return out


def slice_channel(gpio: int) -> tuple[int, str]:
    return (gpio >> 1) & 7, "AB"[gpio & 1]


def conflicts(users: list[tuple[str, str]], pin_map: dict[str, int]) -> list[str]:
    """Shared slices between different users (each needs its own frequency), and any two PWM
    pins on one slice and channel (they would show the same output)."""
    seen: dict[int, tuple[str, str]] = {}
    chans: dict[tuple[int, str], str] = {}
    bad = []
    for user, name in users:
        sl, ch = slice_channel(pin_map[name])
        if (sl, ch) in chans and chans[(sl, ch)] != name:
            bad.append(f"{name} and {chans[(sl, ch)]} are both PWM slice {sl} channel {ch}")
        chans[(sl, ch)] = name
        if sl in seen and seen[sl][0] != user:
            bad.append(f"{user} ({name}) shares PWM slice {sl} with {seen[sl][0]} ({seen[sl][1]})")
        seen.setdefault(sl, (user, name))
    return bad


def board_source() -> str:
    return (ROOT / "drivers" / "board.py").read_text()


@pytest.mark.req("HW-1")
def test_every_pwm_user_owns_its_slice():
    """HW-1: no two PWM users of the board share a PWM slice (one frequency per slice)."""
    users = pwm_users(board_source())
    names = {n for _, n in users}
    # The finder sees the board's PWM outputs at all (so this test cannot pass on nothing).
    assert {"MOTOR_IN1", "BUZZER"} <= names, users
    assert conflicts(users, pins()) == []


@pytest.mark.req("HW-1")
def test_the_old_wiring_is_caught():
    """HW-1: the rev A draft (buzzer on GP18 = slice 1 A, the motor's IN1 channel) fails."""
    old = dict(pins(), BUZZER=18)
    bad = conflicts(pwm_users(board_source()), old)
    assert any("slice 1" in b and "BUZZER" in b for b in bad), bad


@pytest.mark.req("HW-1")
def test_a_new_pwm_user_is_found_from_the_board_construction():
    """HW-1: a PWM user added to the board construction is checked without being listed."""
    src = board_source() + "\nfan = Fan(machine.PWM(Pin(P.MOTOR_IN2)))\n"
    bad = conflicts(pwm_users(src), pins())
    assert any("Fan" in b and "slice 1" in b for b in bad), bad
