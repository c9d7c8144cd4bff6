"""Import a script that is not a package module (benchmarks/, scripts/) by its path, for the tests of it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(relpath: str, name: str) -> ModuleType:
    """The script at ``ROOT/relpath`` imported as module ``name``, registered in ``sys.modules`` (dataclasses
    look their module up there while a class is created)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
