"""us3l: universally slimmable self-supervised learning (US3L, CVPR 2023) — train once, deploy any width.

Public API::

    import us3l
    model = us3l.create_model("cifar_resnet18")
    with us3l.width(model, 0.5):
        z = model(x)
    static = us3l.materialize(model, 0.5)
"""

import os as _os

# profiler/, devices/ and deploy/ sit beside this folder in a source checkout and install as us3l.profiler,
# us3l.devices and us3l.deploy (pyproject.toml's package-dir; issue 13 item 9). A us3l imported from a checkout
# (PYTHONPATH=<checkout>, or the editable install) also looks in the checkout's root for them, so that it never
# picks up another tree's copies; an installed us3l holds them inside its own folder and skips this.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and all(
    _os.path.isfile(_os.path.join(_root, name, "__init__.py")) for name in ("profiler", "devices", "deploy")
):
    __path__.append(_root)
del _os, _root

from typing import TYPE_CHECKING, Any  # noqa: E402

from us3l.version import __version__  # noqa: E402

if TYPE_CHECKING:
    from us3l.models import SlimNet, create_model, list_models
    from us3l.slim import WidthRange, calibrating, make_divisible, materialize, width

# The public API loads on first use (PEP 562): ``import us3l.cli`` must not import torch (1-2 s), so that the
# ``us3l`` command installs its Ctrl-C handling before anything slow starts (a Ctrl-C during that import used to
# print a KeyboardInterrupt traceback).
_LAZY = {
    "SlimNet": "us3l.models", "create_model": "us3l.models", "list_models": "us3l.models",
    "WidthRange": "us3l.slim", "calibrating": "us3l.slim", "make_divisible": "us3l.slim",
    "materialize": "us3l.slim", "width": "us3l.slim",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'us3l' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})

__all__ = [
    "SlimNet",
    "WidthRange",
    "__version__",
    "calibrating",
    "create_model",
    "list_models",
    "make_divisible",
    "materialize",
    "width",
]
