"""Cost of one US3L training epoch, per stage of schedule "A", relative to one `single` epoch at width 1.0.

Both are measured in the same process on the same batches (an epoch is a fixed number of iterations, so
the per-iteration time ratio is the per-epoch ratio). Next to it: the ratio predicted from backbone MACs
(fvcore on ``us3l.slim.materialize``, via ``profiler.costs``), counting a backward pass as 2× the forward:

    single / stage 1 (only w = 1):  2 views × (3·M(1) student fwd+bwd + 1·M(1) EMA-teacher fwd) = 8·M(1)
    stage k ≥ 2 (min width m):      8·M(1) + 2 views × 3 × (M(m) + E_u~U(m,1)[M(u)])

Heads (projector/predictor), the EMA update, the group regularizer and the optimizer steps are not in the
MAC model; they are in the measurement. Usage::

    python benchmarks/train_cost.py [--model cifar_resnet18 --base-channels 32 --image-size 16 --iters 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def backbone_macs(model_name: str, kwargs: dict, widths: list[float], image_size: int) -> dict[float, int]:
    from profiler.costs import count_costs
    from us3l.models import create_model
    from us3l.slim import materialize

    m = create_model(model_name, num_classes=0, **kwargs)
    return {w: count_costs(materialize(m, w), (1, 3, image_size, image_size)).macs for w in widths}


def predicted_ratio(macs_of, w_min: float | None) -> float:
    base = 8 * macs_of(1.0)
    if w_min is None:
        return 1.0
    grid = [w_min + (1.0 - w_min) * i / 20 for i in range(21)]
    mid = sum(macs_of(u) for u in grid) / len(grid)
    return (base + 6 * (macs_of(w_min) + mid)) / base


def time_iterations(method_name: str, epoch: int, args: argparse.Namespace, batches: list) -> float:
    """Median seconds per iteration of ``method_name`` in ``epoch`` of a 4-epoch schedule-A run."""
    from us3l.ssl import create_method
    from us3l.train import make_config
    from us3l.train.distributed import DistInfo
    from us3l.train.groupreg import GroupRegConfig, GroupRegularizer
    from us3l.train.loop import _train_step, build_backbone
    from us3l.train.sampling import FixedWidth, WidthSampler

    cfg = make_config({"method": method_name, "model": args.model, "epochs": 4, "image_size": args.image_size,
                       "model_kwargs": {"base_channels": args.base_channels}, "batch_size": args.batch_size,
                       "proj_hidden": args.hidden, "pred_hidden": args.hidden, "device": "cpu"})
    torch.manual_seed(0)
    method = create_method(method_name, build_backbone(cfg), cfg)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    reg = GroupRegularizer(method.named_parameters(), GroupRegConfig(), cfg.epochs)
    sampler = FixedWidth(1.0) if method_name == "single" else WidthSampler(0.25, 1.0, 4, seed=0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    times = []
    for i, (x1, x2) in enumerate(batches):
        t0 = time.perf_counter()
        _train_step(method, method, opt, scaler, reg, x1, x2, sampler.widths(epoch), epoch, cfg, False, DistInfo())
        if i >= 1:  # first iteration is warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifar_resnet18")
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--iters", type=int, default=8)
    args = ap.parse_args()

    from us3l.data import load_dataset, ssl_augment_for

    ds = load_dataset("builtin", "train")
    aug = ssl_augment_for(ds.name, args.image_size, ds.mean, ds.std)
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(args.iters + 1):
        imgs = ds.images[i * args.batch_size : (i + 1) * args.batch_size]
        batches.append((aug(imgs, g), aug(imgs, g)))

    grid = sorted({round(0.25 + 0.75 * i / 20, 4) for i in range(21)} | {0.25, 0.5, 0.75, 1.0})
    macs = backbone_macs(args.model, {"base_channels": args.base_channels}, grid, args.image_size)

    def macs_of(w: float) -> int:
        return macs[min(macs, key=lambda g_: abs(g_ - w))]

    single = time_iterations("single", 0, args, batches)
    print(f"model {args.model} (base_channels {args.base_channels}), input {args.image_size}px, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads; "
          f"backbone MACs at w=1: {macs_of(1.0) / 1e6:.1f}M")
    print(f"single @ w=1.0: {single * 1000:.1f} ms/iteration (= 1.00)")
    print(f"{'stage':>5} {'widths':>22} {'ms/iter':>8} {'measured':>9} {'MAC model':>9}")
    for stage, epoch, w_min in ((1, 0, None), (2, 1, 0.75), (3, 2, 0.5), (4, 3, 0.25)):
        t = time_iterations("us3l", epoch, args, batches)
        label = "{1.0}" if w_min is None else f"{{1.0, U({w_min},1), {w_min}}}"
        print(f"{stage:>5} {label:>22} {t * 1000:8.1f} {t / single:9.2f} {predicted_ratio(macs_of, w_min):9.2f}")


if __name__ == "__main__":
    main()
