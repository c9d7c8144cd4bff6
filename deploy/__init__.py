"""us3l deploy: static subnets -> backends (onnx, openvino, tensorrt), verification, budget solver, manifests.

Public API::

    from us3l.deploy import get_backend, export_width, load, load_switchable, compare, select
"""

from __future__ import annotations

from typing import Any

from us3l.deploy.backends import Artifact, Runner, available_backends, get_backend, list_backends
from us3l.deploy.loading import load
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
    # export and select are loaded on first use: `import us3l.deploy` imports no backend runtime.
    if name == "export_width":
        from us3l.deploy.export import export_width

        return export_width
    if name == "load_switchable":
        from us3l.deploy.switchable_runtime import load_switchable

        return load_switchable
    if name == "select":
        from us3l.deploy.select import select

        return select
    raise AttributeError(name)
