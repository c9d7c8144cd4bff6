"""us3l deploy: static subnets -> backends (onnx, openvino, tensorrt), verification, budget solver, manifests.

Public API::

    from deploy import get_backend, export_width, load, compare, select
"""

from __future__ import annotations

from typing import Any

from deploy.backends import Artifact, Runner, available_backends, get_backend, list_backends
from deploy.loading import load
from deploy.verify import Verification, compare

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
    "select",
]


def __getattr__(name: str) -> Any:
    # export (imports torch) and select are loaded on first use, keeping `import deploy` light.
    if name == "export_width":
        from deploy.export import export_width

        return export_width
    if name == "select":
        from deploy.select import select

        return select
    raise AttributeError(name)
