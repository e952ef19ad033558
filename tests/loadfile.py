"""A repository file loaded as a module by its path: the tools and benches are scripts, not a
package, and `import conftest` may name another folder's conftest (tests/chip has one)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_file(rel: str, name: str):
    """The module in ROOT/rel under `name` (registered in sys.modules; loaded once per name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
