"""us3l deploy: static subnets -> backends (onnx, openvino, tensorrt), verification, budget solver, manifests.

Public API::

    from us3l.deploy import get_backend, export_width, load, load_switchable, compare, select
"""

from __future__ import annotations

from typing import Any

from us3l.deploy.backends import Artifact, Runner, available_backends, get_backend, list_backends
from us3l.deploy.loading import load

# Bound here, not on first use: importing the submodule us3l.deploy.select sets the package attribute ``select``
# to the module, which replaced the function a lazy lookup had returned (``from us3l.deploy import select`` gave
# a module). The submodule imports no runtime and no torch.
from us3l.deploy.select import select
from us3l.deploy.verify import Verification, compare

__all__ = [
    "Artifact",
    "Runner",
    "Verification",
    "available_backends",
    "compare",
    "export_width",
    "get_backend",
    "list_backends",
    "load",
    "load_switchable",
    "select",
]


def __getattr__(name: str) -> Any:
    # export is loaded on first use: `import us3l.deploy` imports no backend runtime.
    if name == "export_width":
        from us3l.deploy.export import export_width

        return export_width
    if name == "load_switchable":
        from us3l.deploy.switchable_runtime import load_switchable

        return load_switchable
    raise AttributeError(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
