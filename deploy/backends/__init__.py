"""Deploy backends, one module each, registered by name: ``get_backend("onnx" | "openvino" | "tensorrt")``.

Importing this package imports no runtime; a backend module is imported on first ``get_backend`` and its own
heavy imports happen only when it exports or loads. Adding a backend: one file defining ``BACKEND`` and one
line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib

from us3l.deploy.backends.base import INPUT_NAME, OUTPUT_NAME, Artifact, Backend, Runner
from us3l.errors import US3LError

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "Artifact",
    "Backend",
    "Runner",
    "available_backends",
    "get_backend",
    "list_backends",
]

_REGISTRY: dict[str, str] = {
    "onnx": "us3l.deploy.backends.onnx",
    "openvino": "us3l.deploy.backends.openvino",
    "tensorrt": "us3l.deploy.backends.tensorrt",
}


def list_backends() -> list[str]:
    """Every registered backend name, installed or not."""
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (case-insensitive); ``US3LError`` naming the choices otherwise."""
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise US3LError(f"unknown backend '{name}' (choose from {', '.join(list_backends())})")
    backend: Backend = importlib.import_module(_REGISTRY[key]).BACKEND
    return backend


def available_backends() -> list[str]:
    """Names of the backends whose runtime (and hardware) is present here."""
    return [n for n in list_backends() if get_backend(n).available()]
