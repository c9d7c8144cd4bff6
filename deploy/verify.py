"""Numerical verification of an exported artifact against PyTorch at the same width.

Both outputs are L2-normalised per sample (the embedding is used through cosine/kNN, so its direction is
what must survive export) and compared by max/mean absolute error and per-sample cosine similarity.
``compare`` returns a ``Verification`` that is truthy exactly when the precision's tolerance holds::

    assert compare(reference, output, "fp32")

Tolerances (on L2-normalised embeddings, components are O(1/sqrt(D))):

* fp32: max abs error <= 1e-4 and cosine >= 0.9999 (export reorders float sums; errors are ~1e-7);
* fp16: max abs error <= 1e-2 and cosine >= 0.999 (fp16 has a 2**-11 relative step and a ResNet-18
  accumulates it over ~20 layers; measured errors are a few 1e-3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Acceptance limits for one precision."""

    max_abs: float
    min_cosine: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, min_cosine=0.9999),
    "fp16": Tolerance(max_abs=1e-2, min_cosine=0.999),
}


@dataclass(frozen=True)
class Verification:
    """Result of comparing an artifact's outputs with PyTorch's; ``bool(v)`` is ``v.passed``."""

    precision: str
    samples: int
    max_abs_error: float
    mean_abs_error: float
    min_cosine: float
    mean_cosine: float
    tolerance: Tolerance
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{verdict}: max abs {self.max_abs_error:.2e} (<= {self.tolerance.max_abs:g}), "
            f"mean abs {self.mean_abs_error:.2e}, min cosine {self.min_cosine:.6f} "
            f"(>= {self.tolerance.min_cosine:g}) over {self.samples} samples"
        )


def l2_normalize(a: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``a`` (flattened per sample) scaled to unit L2 norm, in float64."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def compare(reference: np.ndarray, output: np.ndarray, precision: str = "fp32") -> Verification:
    """Compare two (N, D) outputs after L2 normalisation against ``TOLERANCES[precision]``."""
    if precision not in TOLERANCES:
        raise ValueError(f"no tolerance for precision '{precision}' (known: {', '.join(TOLERANCES)})")
    reference, output = np.asarray(reference), np.asarray(output)
    if reference.shape != output.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference {reference.shape}")
    r, o = l2_normalize(reference), l2_normalize(output)
    err = np.abs(r - o)
    cos = np.sum(r * o, axis=1)
    tol = TOLERANCES[precision]
    finite = bool(np.all(np.isfinite(output)))
    max_abs = float(err.max()) if err.size else 0.0
    min_cos = float(cos.min()) if cos.size else 1.0
    return Verification(
        precision=precision,
        samples=int(len(r)),
        max_abs_error=max_abs,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        min_cosine=min_cos,
        mean_cosine=float(cos.mean()) if cos.size else 1.0,
        tolerance=tol,
        passed=finite and max_abs <= tol.max_abs and min_cos >= tol.min_cosine,
    )


def seeded_inputs(
    shape: Sequence[int], mean: Sequence[float], std: Sequence[float], samples: int = 8, seed: int = 0
) -> np.ndarray:
    """A fixed batch of ``samples`` normalised "images": smooth random RGB in [0, 1], then (x - mean) / std.

    Smooth (low-frequency) content keeps activations in the range real photos give; pure noise would make
    every pooled feature nearly equal and hide errors.
    """
    _, c, h, w = (int(d) for d in shape)
    rng = np.random.default_rng(seed)
    coarse = rng.random((samples, c, max(h // 4, 1), max(w // 4, 1)))
    img = np.repeat(np.repeat(coarse, 4, axis=2), 4, axis=3)[:, :, :h, :w]
    if img.shape[2:] != (h, w):
        img = np.resize(img, (samples, c, h, w))
    img = np.clip(img + 0.1 * rng.standard_normal(img.shape), 0.0, 1.0)
    m = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float64).reshape(1, -1, 1, 1)
    return ((img - m) / s).astype(np.float32)


def batches(x: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """Split ``x`` into the batch size a fixed-batch artifact accepts (``None``: dynamic, the whole array
    plus a batch of one, which exercises the symbolic axis)."""
    if batch is None:
        return [x, x[:1]]
    usable = (len(x) // batch) * batch
    if usable == 0:
        raise ValueError(f"need at least {batch} verification samples for a batch-{batch} artifact")
    return [x[i : i + batch] for i in range(0, usable, batch)]
