"""Eager slimming overhead: the slimmable model in its width context against ``materialize(model, w)``.

Per width, the same weights run two ways: the dynamic model inside ``us3l.slim.width(model, w)`` (what training
and ``us3l eval`` run) and the static network of standard layers that ``materialize`` builds (what exporters
and profilers see). Inference: eval mode, ``torch.no_grad``, batch 1, BN statistics calibrated at the width
first (so both normalise with the same statistics). Training step: train mode, forward + backward at the
recipe's batch, each side on its own train-mode copy of the weights, in NCHW (``contiguous``) and/or NHWC
(``channels_last``, what ``us3l train`` uses for conv nets on CPU) with ``--memory-format``; both sides, weights
and batch, in that format. All (mode, width, variant) timers are
interleaved round by round, so load changes hit them alike; within each (mode, width) pair the order alternates
between rounds (ABBA) and every timer makes one untimed call first, so neither side is the one that always runs
right after a switch (cold caches, another allocation pattern); ratio = median(eager) / median(static), 1.00 means
no overhead, printed with its bounds from the two medians' intervals over the rounds
(``us3l.profiler.stats.ratio_interval``). Usage::

    python benchmarks/slim_overhead.py [--model cifar_resnet18 --base-channels 16 --image-size 16 --rounds 15]
        [--memory-format both|contiguous|channels_last]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from us3l import script_cli
from us3l.profiler.provenance import provenance_line


def _timed(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def round_order(
    r: int, widths: list[float], modes: tuple[str, ...] = ("infer", "train")
) -> list[tuple[str, float, str]]:
    """The timers of round ``r`` in the order they run. Each (mode, width) pair alternates its order by round
    (ABBA), so the side that runs right after another mode's or width's timer (cold caches, the allocator in
    another state) is eager in half the rounds and static in the other half."""
    variants = ("eager", "static") if r % 2 else ("static", "eager")
    return [(mode, w, v) for mode in modes for w in widths for v in variants]


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--base-channels", type=script_cli.positive_int, default=16)
    ap.add_argument("--image-size", type=script_cli.positive_int, default=16)
    ap.add_argument("--batch-size", type=script_cli.positive_int, default=32, help="training-step batch")
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.75,0.5,0.25")
    ap.add_argument("--rounds", type=script_cli.positive_int, default=15)
    ap.add_argument("--calls", type=script_cli.positive_int, default=20, help="inference calls per round and timer")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    ap.add_argument("--memory-format", choices=("both", "contiguous", "channels_last"), default="both",
                    help="memory format of the training step (both sides)")
    args = ap.parse_args()
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    torch.set_num_threads(args.threads)
    from us3l.models import create_model
    from us3l.profiler.stats import clipped_medians_note, ratio_interval, summarize
    from us3l.slim import materialize, nhwc_training_safe, width
    from us3l.slim.context import calibrating

    widths = args.widths
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=0, base_channels=args.base_channels)
    script_cli.check_model_widths(model, widths)
    s = args.image_size
    g = torch.Generator().manual_seed(0)
    calib = torch.randn(args.batch_size, 3, s, s, generator=g)
    for w in widths:
        with torch.no_grad(), calibrating(model, w):
            model(calib)
    model.eval()
    static = {w: materialize(model, w) for w in widths}
    x1 = torch.randn(1, 3, s, s, generator=g)
    batch = torch.randn(args.batch_size, 3, s, s, generator=g)

    def eager_infer(w: float) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad(), width(model, w):
                return model(x1)

        return run

    def static_infer(w: float) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return static[w](x1)

        return run

    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    train_formats = list(formats) if args.memory_format == "both" else [args.memory_format]

    def eager_train(net: torch.nn.Module, xb: torch.Tensor, w: float) -> Callable[[], object]:
        def run() -> object:
            with width(net, w):
                net(xb).square().mean().backward()
            net.zero_grad(set_to_none=True)
            return None

        return run

    def static_train(net: torch.nn.Module, xb: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            net(xb).square().mean().backward()
            net.zero_grad(set_to_none=True)
            return None

        return run

    with torch.no_grad():  # same function both ways
        for w in widths:
            with width(model, w):
                ref = model(x1)
            torch.testing.assert_close(static[w](x1), ref, rtol=1e-4, atol=1e-5)
    timers: dict[tuple[str, float, str], tuple[Callable[[], object], int]] = {}
    for w in widths:
        timers[("infer", w, "eager")] = (eager_infer(w), args.calls)
        timers[("infer", w, "static")] = (static_infer(w), args.calls)
    for name in train_formats:
        # training runs on its own train-mode copy, as the static side does, so no timer pays for mode switches
        fmt = formats[name]
        train_model = copy.deepcopy(model).train().to(memory_format=fmt)
        xb = batch.contiguous(memory_format=fmt)
        for w in widths:
            timers[(name, w, "eager")] = (eager_train(train_model, xb, w), 1)
            # oneDNN issue 6035: the static network trains NHWC through the unit-stride kernel, as SlimConv2d does
            net = nhwc_training_safe(materialize(model, w).train().to(memory_format=fmt))
            timers[(name, w, "static")] = (static_train(net, xb), 1)
    modes = ("infer", *train_formats)
    times: dict[tuple[str, float, str], list[float]] = {k: [] for k in timers}
    for r in range(args.rounds + 1):
        for key in round_order(r, widths, modes):
            fn, calls = timers[key]
            fn()  # untimed warm-up call after the switch
            t = _timed(fn, calls)
            if r:
                times[key].append(t)
    stats = {k: summarize([t * 1e3 for t in v]) for k, v in times.items()}
    print(provenance_line())
    print(
        f"model {args.model} (base_channels {args.base_channels}), input {s}px, {torch.get_num_threads()} thread(s), "
        f"{args.rounds} interleaved rounds; inference batch 1 ({args.calls} calls per round), NCHW; "
        f"training step batch {args.batch_size}"
    )
    short = {"contiguous": "NCHW", "channels_last": "NHWC"}
    head = f"{'width':>6} {'infer eager':>12} {'static':>9} {'ratio':>6} {'90% CI':>11}"
    for name in train_formats:
        head += f"   {'train ' + short[name] + ' eager':>17} {'static':>9} {'ratio':>6} {'90% CI':>11}"
    print(head)
    for w in widths:
        line = ""
        for mode in modes:
            e, st = stats[(mode, w, "eager")], stats[(mode, w, "static")]
            lo, hi = ratio_interval(e, st)
            digits, pad = (3, 10) if mode == "infer" else (2, 15)
            line += (f"{'' if mode == 'infer' else '  '} {e.p50_ms:{pad}.{digits}f}ms {st.p50_ms:7.{digits}f}ms "
                     f"{e.p50_ms / st.p50_ms:6.2f} {f'{lo:.2f}-{hi:.2f}':>11}")
        print(f"{w:>6g}{line}")
    print("ratio = median(eager) / median(static) over the rounds; 90% CI: its bounds from the two medians' 95 % "
          "intervals (us3l.profiler.stats.ratio_interval)")
    if caveat := clipped_medians_note(args.rounds):
        print(caveat)


if __name__ == "__main__":
    script_cli.run(main)
