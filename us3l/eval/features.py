"""Frozen backbone features at a width (eval-mode BN: the width's calibrated statistics)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from us3l.errors import US3LError
from us3l.slim import width as width_ctx


@torch.no_grad()
def extract_features(
    model: nn.Module,
    w: float,
    ds: object,
    transform: Callable[[Tensor], Tensor],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    limit: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(features (N, feature_dim(w)) float32 on CPU, labels (N,) int64) of ``ds`` at width ``w``.

    The model runs in eval mode (restored afterwards); ``limit`` keeps only the first samples. Features that are
    not finite (NaN or inf: a diverged network, or broken BN statistics) are a one-line ``US3LError``.
    """
    from us3l.data import iterate_batches

    was = model.training
    model.eval()
    feats: list[Tensor] = []
    labels: list[Tensor] = []
    seen = 0
    try:
        with width_ctx(model, w):
            for images, y in iterate_batches(ds, batch_size):  # type: ignore[arg-type]
                if limit is not None and seen >= limit:
                    break
                x = transform(images).to(device)
                f = model.forward_features(x) if hasattr(model, "forward_features") else model(x)
                feats.append(f.float().cpu())
                labels.append(y.to(torch.int64).cpu())
                seen += int(y.shape[0])
    finally:
        model.train(was)
    if not feats:
        raise ValueError("no samples to extract features from")
    f_all, y_all = torch.cat(feats), torch.cat(labels)
    if limit is not None:
        f_all, y_all = f_all[:limit], y_all[:limit]
    bad = non_finite_rows(f_all)
    if bad:  # a kNN or probe over NaN features still "scores" (ties broken by index): never report that number
        raise US3LError(
            f"the network gives non-finite features (NaN or inf) at width {w:g} for {bad} of {len(f_all)} images: "
            "its weights or its BN statistics at that width are not finite (a diverged run?), so no accuracy can "
            "be measured; evaluate an earlier checkpoint or re-train"
        )
    return f_all, y_all


def non_finite_rows(features: Tensor) -> int:
    """How many rows (images) of ``features`` hold a NaN or an inf."""
    return int((~torch.isfinite(features).all(dim=1)).sum())


def embedding_std(features: Tensor) -> float | None:
    """Collapse indicator: sqrt(D) · mean over dims of the std over samples of L2-normalised features.

    About 1 for well-spread embeddings, 0 for a collapsed (constant) output; the same formula as the training
    monitor (``us3l.train.monitor.collapse_std``), here on backbone features. ``None`` for fewer than two
    samples, which have no spread (torch's std would be NaN, with a warning).
    """
    import math

    if features.shape[0] < 2:
        return None
    zn = nn.functional.normalize(features.float(), dim=1)
    return float(zn.std(dim=0).mean() * math.sqrt(features.shape[1]))
