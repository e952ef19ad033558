"""Import the firmware's pure-logic modules (settings schema, versions) into CPython, so the host
checks the pen against the very definitions that go onto it.

The pen's modules say `from micropython import const`; CPython has no `micropython` module, so a
stand-in with the few names pure logic uses is installed before the first import."""

from __future__ import annotations

import importlib
import sys
import types


def _install_micropython_shim() -> None:
    if "micropython" in sys.modules:
        return
    mod = types.ModuleType("micropython")
    mod.const = lambda x: x  # type: ignore[attr-defined]
    for name in ("native", "viper", "bytecode"):
        setattr(mod, name, lambda f: f)
    mod.heap_lock = mod.heap_unlock = lambda: 0  # type: ignore[attr-defined]
    mod.alloc_emergency_exception_buf = lambda n: None  # type: ignore[attr-defined]
    mod.schedule = lambda f, a: f(a)  # type: ignore[attr-defined]
    sys.modules["micropython"] = mod


def firmware_module(name: str):
    """Import `firmware.<name>` (or another pen module, e.g. 'firmware.settings') from the
    checkout in CPython. Returns None when the module does not exist (yet)."""
    from .. import paths

    try:
        root = paths.checkout_root()
    except FileNotFoundError:
        return None
    full = name if "." in name else f"firmware.{name}"
    if not (root / (full.replace(".", "/") + ".py")).exists():
        return None
    _install_micropython_shim()
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return importlib.import_module(full)
