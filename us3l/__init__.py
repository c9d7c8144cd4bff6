"""us3l: universally slimmable self-supervised learning (US3L, CVPR 2023) — train once, deploy any width.

Public API::

    import us3l
    model = us3l.create_model("cifar_resnet18")
    with us3l.width(model, 0.5):
        z = model(x)
    static = us3l.materialize(model, 0.5)
"""

from us3l.models import SlimNet, create_model, list_models
from us3l.slim import WidthRange, calibrating, make_divisible, materialize, width
from us3l.version import __version__

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
