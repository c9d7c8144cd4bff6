"""Local timers: PyTorch eager on the materialized model, and a deploy backend's ``Runner.time_once``.

A timer is ``timer(k) -> k latencies in seconds`` (see ``us3l.profiler.measure``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import torch
from torch import nn

from us3l.deploy.backends.base import Runner

P = ParamSpec("P")
R = TypeVar("R")


def keeps_torch_threads(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` and give PyTorch back the intra-op thread count it had: ``torch_timer`` pins the count it
    measures with (process-wide), which a program calling the profiler's API would otherwise keep afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        before = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def resolve_threads(threads: int | None) -> int:
    """The thread count to pin here: ``threads`` (at most ``us3l.train.threads.local_threads``'s bound) or the number
    of cores this process may run on."""
    from us3l.train.threads import local_threads, usable_cores

    return local_threads(threads) if threads else usable_cores()


def example_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A reproducible standard-normal input of ``shape`` (latency does not depend on the values)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


def torch_timer(model: nn.Module, x: torch.Tensor, threads: int, device: str = "cpu") -> Callable[[int], list[float]]:
    """Eager PyTorch under ``torch.inference_mode``; on CUDA each call is synchronised."""
    model = model.eval().to(device)
    x = x.to(device)
    cuda = device.startswith("cuda")

    def timer(k: int) -> list[float]:
        torch.set_num_threads(threads)  # pinned before every chunk: other code may change it in between
        out = []
        with torch.inference_mode():
            for _ in range(k):
                t0 = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize()
                out.append(time.perf_counter() - t0)
        return out

    return timer


def runner_timer(runner: Runner, x: np.ndarray) -> Callable[[int], list[float]]:
    """A deploy backend runner's own synchronous timing (``Runner.time_once``: the runtime's inference on the
    input bound once, the same array every call)."""
    x = np.ascontiguousarray(x, dtype=np.float32)

    def timer(k: int) -> list[float]:
        return [runner.time_once(x) for _ in range(k)]

    return timer


def load_interleaved(
    backend: str, path: str | Path, threads: int | None = None, device: str | None = None, precision: str | None = None,
    *, data: Mapping[str, bytes] | None = None,
) -> Runner:
    """Load a runner that takes turns with other runners on the same cores (an interleaved measurement).

    onnxruntime sessions are opened without spin-waiting: an idle session's spinning workers would otherwise
    steal the cores from the session being timed (see ``us3l.deploy.backends.onnx.OnnxRunner``). ``data``: the
    artifact's hash-checked files (``us3l.deploy.manifest.verify_manifest``), which the runtime is built from
    instead of reading ``path`` again (``Backend.load``).
    """
    from us3l.deploy.backends import get_backend

    extra = {"spin": False} if backend == "onnx" else {}
    return get_backend(backend).load(path, threads=threads, device=device, precision=precision, data=data, **extra)


def interleaved_notes(backend: str) -> dict[str, Any]:
    """What a profile records about how ``load_interleaved`` (and the remote runner) opened and timed ``backend``:
    ``timed_call``, the runtime call inside the timed region (``Runner.time_once``), and for onnx
    ``onnxruntime_allow_spinning``."""
    if backend == "onnx":
        from us3l.deploy.backends.onnx import TIMED_CALL

        return {"onnxruntime_allow_spinning": False, "timed_call": TIMED_CALL}
    if backend == "openvino":
        from us3l.deploy.backends.openvino import TIMED_CALL as OV_TIMED_CALL

        return {"timed_call": OV_TIMED_CALL}
    return {}
