"""Linear probe on frozen backbone features at one width (method.md §7, CIFAR protocol).

Reference settings: 100 epochs, SGD lr 30, momentum 0.9, weight decay 0, lr ×0.1 at epochs 60 and 80, batch
512 (4×128), RandomResizedCrop(scale 0.8–1) + flip on the train images, BN calibrated first, frozen eval-mode
backbone. The probe is ``Linear(feature_dim(w), classes)`` on the width-w feature (the reference's
``USLinear(us=[True, False])`` sliced to that width is the same map).

CPU scaling: by default (``augment=False``) the train and test features are computed **once per width** with
the deterministic evaluation transform and the probe trains on the cached feature matrix, which makes the
100 epochs take seconds; ``augment=True`` follows the reference (fresh augmented views through the frozen
backbone every epoch, ~``epochs`` times slower). Epochs, lr, batch size and the milestones are flags.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from us3l.errors import US3LError
from us3l.train.knn import accuracy_and_hits
from us3l.validate import require_types


@dataclass(frozen=True)
class LinearProbeSettings:
    """Linear-probe hyper-parameters (defaults: the reference CIFAR protocol)."""

    epochs: int = 100
    lr: float = 30.0
    batch_size: int = 512
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = (0.6, 0.8)  # fractions of ``epochs`` where lr is multiplied by 0.1
    augment: bool = False
    seed: int = 0
    optimizer: str = "sgd"  # "lars": SGD wrapped in LARC (trust 0.001, no clipping; reference ImageNet probe)
    schedule: str = "step"  # "step": x0.1 at ``milestones``; "cosine": per-epoch cosine to 0
    crop_min: float = 0.8  # augmented probe: RandomResizedCrop scale (crop_min, 1)
    interpolation: str = "bicubic"  # augmented probe: crop resize (CIFAR reference bicubic, ImageNet bilinear)

    def __post_init__(self) -> None:
        require_types("linear-probe epochs", self.epochs, numbers.Integral)
        require_types("linear-probe lr", self.lr, numbers.Real)
        require_types("linear-probe batch size", self.batch_size, numbers.Integral)
        if self.epochs < 1:
            raise US3LError(f"linear-probe epochs must be >= 1, got {self.epochs}")
        if not 0 < self.lr < math.inf:
            raise US3LError(f"linear-probe lr must be a finite number > 0, got {self.lr}")
        if self.batch_size < 1:
            raise US3LError(f"linear-probe batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("sgd", "lars") or self.schedule not in ("step", "cosine"):
            raise US3LError(
                f"linear-probe optimizer must be sgd or lars and schedule step or cosine, got {self.optimizer!r}, "
                f"{self.schedule!r}"
            )

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def milestone_epochs(self) -> list[int]:
        return sorted({max(1, round(m * self.epochs)) for m in self.milestones if 0 < m < 1})


def _make_probe(dim: int, num_classes: int, s: LinearProbeSettings) -> tuple[nn.Linear, torch.optim.Optimizer,
                                                                              torch.optim.lr_scheduler.LRScheduler]:
    probe = nn.Linear(dim, num_classes)
    # MoCo/US3L linear workers: weight ~ N(0, 0.01), bias 0
    nn.init.normal_(probe.weight, std=0.01)
    nn.init.zeros_(probe.bias)
    sgd = LARSSGD if s.optimizer == "lars" else torch.optim.SGD
    opt = sgd(probe.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    sched: torch.optim.lr_scheduler.LRScheduler
    if s.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1.0 + math.cos(math.pi * e / s.epochs)))
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=s.milestone_epochs(), gamma=0.1)
    return probe, opt, sched


class LARSSGD(torch.optim.SGD):
    """SGD behind apex's ``LARC(trust_coefficient=0.001, clip=False)`` (the SimSiam/US3L ImageNet linear probe):
    each gradient is scaled by ``trust * ||p|| / (||g|| + wd * ||p|| + eps)`` (weight decay folded in first)
    before the SGD step; parameters or gradients with zero norm are left as they are."""

    trust: float = 0.001
    eps: float = 1e-8

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        saved_wd = []
        for group in self.param_groups:
            wd = float(group["weight_decay"])
            saved_wd.append(wd)
            for p in group["params"]:
                if p.grad is None:
                    continue
                p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
                if p_norm != 0 and g_norm != 0:
                    scale = self.trust * p_norm / (g_norm + p_norm * wd + self.eps)
                    p.grad.add_(p, alpha=wd).mul_(scale)
            group["weight_decay"] = 0.0
        try:
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, saved_wd, strict=True):
                group["weight_decay"] = wd




def train_linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    settings: LinearProbeSettings | None = None,
) -> tuple[float, float, Tensor]:
    """Train a linear classifier on precomputed features; return (top-1, top-5, per-image top-1 hits) on the test
    features."""
    s = settings or LinearProbeSettings()
    g = torch.Generator().manual_seed(s.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        probe, opt, sched = _make_probe(train_features.shape[1], num_classes, s)
    x, y = train_features.float(), train_labels.long()
    n = x.shape[0]
    for _ in range(s.epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, s.batch_size):
            idx = order[i : i + s.batch_size]
            loss = F.cross_entropy(probe(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return _test_accuracy(probe, test_features, test_labels, s)


def _test_accuracy(probe: nn.Linear, test_features: Tensor, test_labels: Tensor, s: LinearProbeSettings,
                   ) -> tuple[float, float, Tensor]:
    """(top-1, top-5, which test images are right at top-1) of the trained probe on the test features; a one-line
    ``US3LError`` when it diverged (NaN or inf outputs, e.g. at a huge lr): topk over them still returns a number,
    near chance, that reads as an accuracy."""
    with torch.no_grad():
        logits = probe(test_features.float())
    if not bool(torch.isfinite(logits).all()):
        raise US3LError(f"the linear probe diverged: its outputs are NaN or inf after {s.epochs} epoch(s) at lr "
                        f"{s.lr:g}; lower --linear-lr")
    return accuracy_and_hits(logits, test_labels.long())


def train_linear_probe_augmented(
    model: nn.Module,
    w: float,
    train_ds: object,
    augment: Callable[[Tensor, torch.Generator | None], Tensor],
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    settings: LinearProbeSettings | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float, Tensor]:
    """The reference protocol: fresh augmented train views through the frozen backbone every epoch.

    Folder data sets get the crop and flip per image from the original (``us3l.data.folder``; seeded per epoch
    and image), then ``augment.after_crop``; in-memory sets the batched ``augment``.
    """
    from us3l.data import iterate_batches
    from us3l.data.folder import augmented_views, is_folder
    from us3l.slim import width as width_ctx

    s = settings or LinearProbeSettings()
    g = torch.Generator().manual_seed(s.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        probe, opt, sched = _make_probe(test_features.shape[1], num_classes, s)
    was = model.training
    model.eval()
    try:
        for epoch in range(s.epochs):
            folder = is_folder(train_ds)
            source = augmented_views(train_ds, augment, 1, s.seed * 1_000_003 + epoch) if folder else train_ds
            for images, y in iterate_batches(source, s.batch_size, shuffle=True, generator=g):  # type: ignore[arg-type]
                x = augment.after_crop(images[:, 0], g) if folder else augment(images, g)  # type: ignore[attr-defined]
                with torch.no_grad(), width_ctx(model, w):
                    f = model.forward_features(x.to(device)).float().cpu()
                loss = F.cross_entropy(probe(f), y.long())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    finally:
        model.train(was)
    return _test_accuracy(probe, test_features, test_labels, s)
