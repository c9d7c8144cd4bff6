"""Cost of one US3L training epoch, per stage of schedule "A", relative to one `single` epoch at width 1.0.

Both are measured in the same process on the same batches (an epoch is a fixed number of iterations, so
the per-iteration time ratio is the per-epoch ratio). Next to it: the ratio predicted from backbone MACs
(fvcore on ``us3l.slim.materialize``, via ``us3l.profiler.costs``), counting a backward pass as 2× the forward:

    single / stage 1 (only w = 1):  2 views × (3·M(1) student fwd+bwd + 1·M(1) EMA-teacher fwd) = 8·M(1)
    stage k ≥ 2 (min width m):      8·M(1) + 2 views × 3 × (M(m) + (N − 2)·E_u~U(m,1)[M(u)])

with N widths per iteration (``--num-samples``; default the packaged recipe's, 2 since 2026-12-06: {1, m}; the
reference's sandwich is 3: {1, U(m, 1), m}).

Heads (projector/predictor), the EMA update, the group regularizer and the optimizer steps are not in the
MAC model; they are in the measurement.

``--memory-format both`` (the default) runs every configuration twice, NCHW (``contiguous``) and NHWC
(``channels_last``, what ``us3l train`` uses for conv nets on CPU, ``us3l.train.loop.train_memory_format``),
interleaved, so the before/after ratio is measured under the same load. The training MAC rate of ``single``
(8·M(1)·batch MACs per iteration) is reported against the best single-process fp32 matmul rate
(``benchmarks/roofline.py``) at the same thread count, probed before and after the timing. Every measured ratio
is printed with its bounds from the two medians' intervals over the timed iterations
(``us3l.profiler.stats.ratio_interval``). Usage::

    python benchmarks/train_cost.py [--model cifar_resnet18 --base-channels 16 --batch-size 32 --iters 8]
    python benchmarks/train_cost.py --memory-format channels_last --views batched --precision both --threads 2

``--precision both`` adds every configuration under bfloat16 autocast (``amp: bf16``, what ``amp: auto`` picks on
a CPU with AMX or AVX512-BF16), interleaved with float32, and prints the ratio; its MAC rate is still given
against the float32 matmul.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from roofline import matmul_peak  # benchmarks/ is on sys.path when this script runs

from us3l import script_cli
from us3l.profiler.provenance import provenance_line

if TYPE_CHECKING:  # imported where it runs, after the arguments: a usage error or --help does not wait for it
    import torch


def backbone_macs(model_name: str, kwargs: dict, widths: list[float], image_size: int) -> dict[float, int]:
    from us3l.models import create_model
    from us3l.profiler.costs import count_costs
    from us3l.slim import materialize

    m = create_model(model_name, num_classes=0, **kwargs)
    return {w: count_costs(materialize(m, w), (1, 3, image_size, image_size)).macs for w in widths}


def predicted_ratio(macs_of, w_min: float | None, num_samples: int = 3) -> float:
    """MACs of one iteration of a schedule-A stage with min width ``w_min`` (None: stage 1, the full width only)
    over one ``single`` iteration, ``num_samples`` widths per iteration (the sandwich: 1, N - 2 draws, min)."""
    base = 8 * macs_of(1.0)
    if w_min is None:
        return 1.0
    grid = [w_min + (1.0 - w_min) * i / 20 for i in range(21)]
    mid = sum(macs_of(u) for u in grid) / len(grid)
    return (base + 6 * (macs_of(w_min) + (num_samples - 2) * mid)) / base


def stage_label(w_min: float | None, num_samples: int) -> str:
    """The widths of one iteration: ``{1.0}``, ``{1.0, 0.75}``, ``{1.0, U(0.75,1), 0.75}``,
    ``{1.0, U(0.75,1)x2, 0.75}``."""
    if w_min is None:
        return "{1.0}"
    draws = num_samples - 2
    mid = "" if draws == 0 else f"U({w_min},1)" + ("" if draws == 1 else f"x{draws}") + ", "
    return f"{{1.0, {mid}{w_min}}}"


class _Runner:
    """One method at one epoch of a 4-epoch schedule-A run, stepping on the shared batches."""

    def __init__(
        self,
        method_name: str,
        epoch: int,
        args: argparse.Namespace,
        memory_format: torch.memory_format,
        view_batching: bool = True,
        amp_dtype: torch.dtype | None = None,
    ) -> None:
        import torch

        from us3l.ssl import create_method
        from us3l.train import make_config
        from us3l.train.config import fill_method_defaults
        from us3l.train.groupreg import GroupRegConfig, GroupRegularizer
        from us3l.train.loop import build_backbone
        from us3l.train.sampling import FixedWidth, WidthSampler

        self.cfg = fill_method_defaults(
            make_config(
                {
                    "method": method_name,
                    "model": args.model,
                    "epochs": 4,
                    "image_size": args.image_size,
                    "model_kwargs": {"base_channels": args.base_channels},
                    "batch_size": args.batch_size,
                    "proj_hidden": args.hidden,
                    "pred_hidden": args.hidden,
                    "device": "cpu",
                    "view_batching": view_batching,
                }
            )
        )
        torch.manual_seed(0)
        self.method = create_method(method_name, build_backbone(self.cfg), self.cfg)
        self.memory_format = memory_format
        self.method.to(memory_format=memory_format)
        params = [p for p in self.method.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
        self.reg = GroupRegularizer(self.method.named_parameters(), GroupRegConfig(), self.cfg.epochs)
        self.sampler = (FixedWidth(1.0) if method_name == "single"
                        else WidthSampler(0.25, 1.0, 4, num_samples=args.num_samples, seed=0))
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)
        self.epoch = epoch
        self.amp_dtype = amp_dtype  # autocast dtype of the step (None: float32), as `amp` sets it in us3l train
        self.times: list[float] = []

    def step(self, x1: torch.Tensor, x2: torch.Tensor, record: bool) -> None:
        from us3l.train.distributed import DistInfo
        from us3l.train.loop import _train_step

        t0 = time.perf_counter()
        x1, x2 = x1.contiguous(memory_format=self.memory_format), x2.contiguous(memory_format=self.memory_format)
        _train_step(
            self.method,
            self.method,
            self.opt,
            self.scaler,
            self.reg,
            x1,
            x2,
            self.sampler.widths(self.epoch),
            self.epoch,
            self.cfg,
            self.amp_dtype,
            DistInfo(),
        )
        if record:
            self.times.append(time.perf_counter() - t0)


def backbone_rates(
    args: argparse.Namespace, macs_of: Callable[[float], int], batches: list, names: list[str], formats: dict
) -> dict[str, dict[float, float]]:
    """Training MAC rate of the backbone alone per width (why narrow sub-networks cost more than their MACs)."""
    import torch

    from us3l.models import create_model
    from us3l.slim import width

    widths = (1.0, 0.75, 0.5, 0.25)
    torch.manual_seed(0)
    nets = {f: create_model(args.model, num_classes=0, base_channels=args.base_channels) for f in names}
    times: dict[tuple[str, float], list[float]] = {(f, w): [] for f in names for w in widths}
    for i, (x1, _) in enumerate(batches):
        for f in names:
            net = nets[f].to(memory_format=formats[f]).train()
            x = x1.contiguous(memory_format=formats[f])
            for w in widths:
                t0 = time.perf_counter()
                with width(net, w):
                    net(x).square().mean().backward()
                if i >= 1:
                    times[(f, w)].append(time.perf_counter() - t0)
                net.zero_grad(set_to_none=True)
    return {
        f: {w: 3 * macs_of(w) * args.batch_size / statistics.median(times[(f, w)]) for w in widths} for f in names
    }


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--base-channels", type=script_cli.positive_int, default=16)
    ap.add_argument("--image-size", type=script_cli.positive_int, default=16)
    ap.add_argument("--batch-size", type=script_cli.positive_int, default=32)
    ap.add_argument("--hidden", type=script_cli.positive_int, default=512)
    ap.add_argument("--iters", type=script_cli.positive_int, default=8)
    ap.add_argument("--threads", type=script_cli.positive_int, default=1,
                    help="torch CPU threads (1 is robust to other load)")
    ap.add_argument("--memory-format", choices=("both", "contiguous", "channels_last"), default="both")
    ap.add_argument(
        "--views",
        choices=("both", "batched", "separate"),
        default="both",
        help="both views as one batch with per-view BN statistics (view_batching, the default), one call per "
        "view (the reference), or both, interleaved",
    )
    ap.add_argument(
        "--precision",
        choices=("fp32", "bf16", "both"),
        default="fp32",
        help="the training step in float32, under bfloat16 autocast (config `amp: bf16`), or both, interleaved",
    )
    ap.add_argument("--matmul-n", type=script_cli.positive_int, default=512,
                    help="size of the reference matmul (MAC rate)")
    ap.add_argument("--num-samples", type=script_cli.positive_int, default=None,
                    help="widths per us3l iteration, at least 2 (default: the packaged recipe's num_samples)")
    args = ap.parse_args()
    if args.num_samples is None:
        from us3l.train.config import resolve_config

        args.num_samples = resolve_config().num_samples
    if args.num_samples < 2:
        ap.error(f"argument --num-samples: expects at least 2 (1 is single's work), got {args.num_samples}")
    import torch

    torch.set_num_threads(args.threads)

    from us3l.data import load_dataset, ssl_augment_for

    ds = load_dataset("builtin", "train")
    need = (args.iters + 1) * args.batch_size  # one warm-up iteration, then --iters timed ones, each its own images
    if need > len(ds.images):
        from us3l.errors import US3LError

        raise US3LError(f"--iters {args.iters} and --batch-size {args.batch_size} need {need} training images "
                        f"((iters + 1) x batch); the built-in data has {len(ds.images)}")
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

    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    fmt_names = list(formats) if args.memory_format == "both" else [args.memory_format]
    view_names = ["separate", "batched"] if args.views == "both" else [args.views]
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    # a variant: memory format + whether both views run as one batch (us3l.ssl.views) + the step's precision
    variant = {
        f"{f}, views {v}" + ("" if p == "fp32" else f", {p}"): (f, v, p)
        for f in fmt_names
        for v in view_names
        for p in precisions
    }
    names = list(variant)
    stages = ((1, 0, None), (2, 1, 0.75), (3, 2, 0.5), (4, 3, 0.25))
    runners: dict[tuple[str, str], _Runner] = {}
    for name in names:
        fmt, views, prec = variant[name]
        runners[(name, "single")] = _Runner("single", 0, args, formats[fmt], views == "batched", dtypes[prec])
        for stage, epoch, _ in stages:
            runners[(name, f"stage{stage}")] = _Runner(
                "us3l", epoch, args, formats[fmt], views == "batched", dtypes[prec]
            )
    before = matmul_peak(args.matmul_n, args.threads)  # the reference moves with the machine: probed on both sides
    # Round-robin over the configurations, one iteration each, so that load changes hit all of them alike.
    for i, (x1, x2) in enumerate(batches):
        for r in runners.values():
            r.step(x1, x2, record=i >= 1)
    eff = backbone_rates(args, macs_of, batches, fmt_names, formats)
    after = matmul_peak(args.matmul_n, args.threads)
    peak = max(before, after)
    from us3l.profiler.stats import clipped_medians_note, ratio_interval, summarize

    per_iter = {k: summarize([t * 1e3 for t in r.times]) for k, r in runners.items()}
    med = {k: st.p50_ms / 1e3 for k, st in per_iter.items()}

    def spread(num: tuple[str, str], den: tuple[str, str]) -> str:
        lo, hi = ratio_interval(per_iter[num], per_iter[den])
        return f"{lo:.2f}-{hi:.2f}"

    print(provenance_line())
    print(
        f"model {args.model} (base_channels {args.base_channels}), input {args.image_size}px, "
        f"batch {args.batch_size}, {torch.get_num_threads()} thread(s), {args.num_samples} widths per us3l "
        f"iteration, {args.iters} timed iterations each, "
        f"configurations interleaved; backbone MACs at w=1: {macs_of(1.0) / 1e6:.1f}M; "
        f"{args.matmul_n}x{args.matmul_n} fp32 matmul: {peak / 1e9:.1f} GMAC/s (best of before the timing "
        f"{before / 1e9:.1f} and after {after / 1e9:.1f})"
    )
    for fmt in names:
        single = med[(fmt, "single")]
        rate = 8 * macs_of(1.0) * args.batch_size / single
        print(
            f"\n[{fmt}] single @ w=1.0: {single * 1000:.1f} ms/iteration (= 1.00); training MAC rate "
            f"{rate / 1e9:.1f} GMAC/s = {rate / peak:.2f} of matmul"
        )
        print(f"{'stage':>5} {'widths':>22} {'ms/iter':>8} {'measured':>9} {'90% CI':>11} {'MAC model':>9} {'over':>6}")
        for stage, _, w_min in stages:
            t = med[(fmt, f"stage{stage}")]
            label = stage_label(w_min, args.num_samples)
            pred = predicted_ratio(macs_of, w_min, args.num_samples)
            ci = spread((fmt, f"stage{stage}"), (fmt, "single"))
            print(f"{stage:>5} {label:>22} {t * 1000:8.1f} {t / single:9.2f} {ci:>11} {pred:9.2f} "
                  f"{t / single / pred:6.2f}")
        mean_us3l = sum(med[(fmt, f"stage{s_}")] for s_, _, _ in stages) / 4 / single
        mean_pred = sum(predicted_ratio(macs_of, w, args.num_samples) for _, _, w in stages) / 4
        print(
            f"whole schedule-A run vs. single: measured {mean_us3l:.2f}x, MAC model {mean_pred:.2f}x "
            f"(sandwich without the schedule, every epoch like stage 4: "
            f"{predicted_ratio(macs_of, 0.25, args.num_samples):.2f}x)"
        )
    print(
        "\nbackbone alone (one view), forward+backward at one width (3·M(w)·batch MACs), GMAC/s and fraction "
        "of matmul:"
    )
    for fmt in fmt_names:
        print(f"  [{fmt}] " + ", ".join(f"w={w:g}: {r / 1e9:.1f} ({r / peak:.2f})" for w, r in eff[fmt].items()))
    keys = ["single"] + [f"stage{s_}" for s_, _, _ in stages]
    pairs = []
    if len(fmt_names) == 2:
        pairs += [(f"contiguous, views {v}", f"channels_last, views {v}") for v in view_names]
    if len(view_names) == 2:
        pairs += [(f"{f}, views separate", f"{f}, views batched") for f in fmt_names]
    if len(precisions) == 2:
        pairs += [(f"{f}, views {v}", f"{f}, views {v}, bf16") for f in fmt_names for v in view_names]
    if pairs:
        print()
    for a, b in pairs:
        print(f"[{b}] / [{a}], ms per iteration: "
              + ", ".join(f"{k} {med[(b, k)] / med[(a, k)]:.2f} ({spread((b, k), (a, k))})" for k in keys))
    print("\nmeasured and [x] / [y]: ratios of median ms per iteration; 90% CI and (lo-hi): their bounds from the two "
          "medians' 95 % intervals over the timed iterations (us3l.profiler.stats.ratio_interval)")
    if caveat := clipped_medians_note(args.iters, "timed iterations", "iterations"):
        print(caveat)


if __name__ == "__main__":
    script_cli.run(main)
