"""Numerical verification of an exported artifact against PyTorch at the same width.

Both outputs are L2-normalised per sample (the embedding is used through cosine/kNN, so its direction is
what must survive export) and compared by max/mean absolute error and per-sample cosine similarity.
``compare`` returns a ``Verification`` that is truthy exactly when the precision's tolerance holds::

    assert compare(reference, output, "fp32")

Tolerances (on L2-normalised embeddings, components are O(1/sqrt(D))):

* fp32: max abs error <= 1e-4 and cosine >= 0.9999 (export reorders float sums; errors are ~1e-7);
* fp16: max abs error <= 1e-2 and cosine >= 0.999 (fp16 has a 2**-11 relative step and a ResNet-18
  accumulates it over ~20 layers; measured errors are a few 1e-3).
* int8: a tolerance that fits quantization instead of an element-wise bound (int8 has 256 levels per tensor, so
  single components move by a few 1e-2 while the embedding's direction and its neighbours hold): **mean cosine
  >= 0.99**, **min cosine >= 0.95** and **top-5 neighbour agreement >= 0.8** -- for each sample, the share of its
  5 nearest other samples (cosine) that are the same under the artifact's embeddings as under PyTorch FP32,
  averaged over the samples; that is what a kNN classifier or a retrieval system built on the embedding sees.
  Measured on 64 held-out training images (cifar_resnet18 base 16 trained 4 epochs on the builtin data, widths
  0.25/0.5/1.0): onnxruntime Q/DQ mean cosine >= 0.99993, top-5 agreement 0.975-0.988; NNCF/OpenVINO >= 0.99995,
  0.978-0.988. A random-init network embeds every image in nearly one direction, so its neighbours hinge on
  differences as small as int8 rounding: 0.82-0.89 there. The max abs error is reported, not bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Acceptance limits for one precision. ``None`` leaves a quantity unbounded (still reported).

    ``rule`` names the kind: ``elementwise`` (max abs error and per-sample cosine) or ``quantization`` (mean and
    min cosine and top-``topk`` neighbour agreement, see ``topk_agreement``).
    """

    max_abs: float | None
    min_cosine: float
    min_mean_cosine: float | None = None
    min_topk_agreement: float | None = None
    topk: int | None = None
    rule: str = "elementwise"

    def describe(self) -> str:
        parts = [] if self.max_abs is None else [f"max abs <= {self.max_abs:g}"]
        if self.min_mean_cosine is not None:
            parts.append(f"mean cosine >= {self.min_mean_cosine:g}")
        parts.append(f"min cosine >= {self.min_cosine:g}")
        if self.min_topk_agreement is not None:
            parts.append(f"top-{self.topk} neighbour agreement >= {self.min_topk_agreement:g}")
        return ", ".join(parts)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, min_cosine=0.9999),
    "fp16": Tolerance(max_abs=1e-2, min_cosine=0.999),
    "int8": Tolerance(
        max_abs=None, min_cosine=0.95, min_mean_cosine=0.99, min_topk_agreement=0.8, topk=5, rule="quantization"
    ),
}
#: Fewest samples a neighbour-agreement check is run on (below it the neighbour sets are too small to mean much).
MIN_TOPK_SAMPLES = 16


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
    topk_agreement: float | None = None

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``verification`` fields. An error or cosine that is not finite (the artifact output NaN or
        inf) is ``null``: JSON cannot hold it, and the failed artifact must still be written for inspection."""
        doc = asdict(self)
        tol = {k: v for k, v in doc["tolerance"].items() if v is not None or k == "max_abs"}
        doc["tolerance"] = {**tol, "describe": self.tolerance.describe()}
        if self.topk_agreement is None:
            del doc["topk_agreement"]
        for key in ("max_abs_error", "mean_abs_error", "min_cosine", "mean_cosine", "topk_agreement"):
            if isinstance(doc.get(key), float) and not math.isfinite(doc[key]):
                doc[key] = None
        return doc

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        tol = self.tolerance
        if tol.rule == "quantization":
            return (
                f"{verdict}: mean cosine {self.mean_cosine:.5f} (>= {tol.min_mean_cosine:g}), min cosine "
                f"{self.min_cosine:.5f} (>= {tol.min_cosine:g}), top-{tol.topk} neighbour agreement "
                f"{self.topk_agreement:.3f} (>= {tol.min_topk_agreement:g}), max abs {self.max_abs_error:.2e} "
                f"over {self.samples} samples"
            )
        return (
            f"{verdict}: max abs {self.max_abs_error:.2e} (<= {tol.max_abs:g}), "
            f"mean abs {self.mean_abs_error:.2e}, min cosine {self.min_cosine:.6f} "
            f"(>= {tol.min_cosine:g}) over {self.samples} samples"
        )


def l2_normalize(a: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``a`` (flattened per sample) scaled to unit L2 norm, in float64."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def topk_agreement(reference: np.ndarray, output: np.ndarray, k: int = 5) -> float:
    """Mean over samples of |N_ref(i) ∩ N_out(i)| / k, where N(i) are the ``k`` nearest *other* samples of ``i``
    by cosine similarity of the L2-normalised rows (ties broken by index). 1.0: every sample keeps its
    neighbours; a kNN classifier over these embeddings then votes with the same neighbours."""
    r, o = l2_normalize(reference), l2_normalize(output)
    n = len(r)
    if n < 2:
        raise ValueError("neighbour agreement needs at least 2 samples")
    k = min(int(k), n - 1)

    def neighbours(a: np.ndarray) -> np.ndarray:
        sim = a @ a.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    nr, no = neighbours(r), neighbours(o)
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(nr, no, strict=True)]))


def compare(
    reference: np.ndarray, output: np.ndarray, precision: str = "fp32", distinct: int | None = None
) -> Verification:
    """Compare two (N, D) outputs after L2 normalisation against ``TOLERANCES[precision]``.

    A quantization tolerance (int8) needs at least ``MIN_TOPK_SAMPLES`` samples for its neighbour agreement.
    ``distinct``: how many leading rows are distinct images, where the rows after them repeat some of those (a
    dynamic-batch artifact also runs its first image alone). Every row is compared, but the neighbour agreement
    and the sample count are of the distinct rows only: a repeated image is its own copy's nearest neighbour in
    both outputs, which would lift the agreement.
    """
    if precision not in TOLERANCES:
        raise ValueError(f"no tolerance for precision '{precision}' (known: {', '.join(TOLERANCES)})")
    reference, output = np.asarray(reference), np.asarray(output)
    if reference.shape != output.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference {reference.shape}")
    if not np.all(np.isfinite(reference)):  # nothing to verify against (the manifest cannot record NaN either)
        from us3l.errors import US3LError

        raise US3LError("the network gives non-finite outputs (NaN or inf) in PyTorch: its weights or its BN "
                        "statistics at this width are not finite (a diverged run?), so no export can be verified; "
                        "export an earlier checkpoint or re-train")
    r, o = l2_normalize(reference), l2_normalize(output)
    err = np.abs(r - o)
    cos = np.sum(r * o, axis=1)
    tol = TOLERANCES[precision]
    finite = bool(np.all(np.isfinite(output)))
    max_abs = float(err.max()) if err.size else 0.0
    min_cos = float(cos.min()) if cos.size else 1.0
    mean_cos = float(cos.mean()) if cos.size else 1.0
    passed = finite and min_cos >= tol.min_cosine and (tol.max_abs is None or max_abs <= tol.max_abs)
    agreement = None
    n = len(r) if distinct is None else min(int(distinct), len(r))
    if tol.min_topk_agreement is not None:
        if n < MIN_TOPK_SAMPLES:
            raise ValueError(
                f"{precision} verification needs at least {MIN_TOPK_SAMPLES} samples for its top-{tol.topk} "
                f"neighbour agreement, got {n}"
            )
        agreement = topk_agreement(r[:n], o[:n], tol.topk or 5) if finite else 0.0
        passed = passed and agreement >= tol.min_topk_agreement
    if tol.min_mean_cosine is not None:
        passed = passed and mean_cos >= tol.min_mean_cosine
    return Verification(
        precision=precision,
        samples=n,
        max_abs_error=max_abs,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        min_cosine=min_cos,
        mean_cosine=mean_cos,
        tolerance=tol,
        passed=passed,
        topk_agreement=agreement,
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
