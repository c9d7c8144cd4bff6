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

from us3l.models import SlimNet, create_model, list_models  # noqa: E402
from us3l.slim import WidthRange, calibrating, make_divisible, materialize, width  # noqa: E402
from us3l.version import __version__  # noqa: E402

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
