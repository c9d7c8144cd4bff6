"""``torch.compile`` (inductor, CPU) on the training step: does fusing BatchNorm and ReLU help narrow widths?

Issue 14 item 2 lists "fused BN where the math allows" among the levers for the training step. A training-mode
BatchNorm normalises with the batch's own statistics, so it cannot be folded into the convolution before it;
what a compiler can still do is fuse the normalisation with the ReLU and the residual add after it, and cut the
per-operation overhead that dominates narrow layers. This script measures that: per width, the static network
(``us3l.slim.materialize``) steps forward + backward on the recipe's batch (both views as one batch, NHWC, as
``us3l train`` runs on CPU) eagerly and compiled, interleaved round by round (ABBA order), and prints
compiled / eager with its bounds from the two medians' intervals (``us3l.profiler.stats.ratio_interval``), next
to the one-off compile time. Usage::

    python benchmarks/compile_step.py [--widths 1,0.5,0.25 --rounds 15 --batch-size 64]
"""

from __future__ import annotations

import time
from collections.abc import Callable

from us3l import script_cli
from us3l.profiler.provenance import provenance_line


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--base-channels", type=script_cli.positive_int, default=16)
    ap.add_argument("--image-size", type=script_cli.positive_int, default=16)
    ap.add_argument("--batch-size", type=script_cli.positive_int, default=64,
                    help="images per step (the recipe's 32, times its two views)")
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.5,0.25")
    ap.add_argument("--rounds", type=script_cli.positive_int, default=15)
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    args = ap.parse_args()
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    torch.set_num_threads(args.threads)
    from us3l.models import create_model
    from us3l.profiler.stats import clipped_medians_note, ratio_interval, summarize
    from us3l.slim import materialize, nhwc_training_safe

    torch.manual_seed(0)
    model = create_model(args.model, num_classes=0, base_channels=args.base_channels)
    script_cli.check_model_widths(model, args.widths)
    s = args.image_size
    x = torch.randn(args.batch_size, 3, s, s, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)

    def stepper(net: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            net(x).square().mean().backward()
            net.zero_grad(set_to_none=True)

        return run

    timers: dict[tuple[float, str], Callable[[], None]] = {}
    compile_s: dict[float, float] = {}
    for w in args.widths:
        # oneDNN issue 6035: the static network trains NHWC through the unit-stride kernel, as SlimConv2d does
        net = nhwc_training_safe(materialize(model, w).train().to(memory_format=torch.channels_last))
        timers[(w, "eager")] = stepper(net)
        compiled = stepper(torch.compile(net))
        t0 = time.perf_counter()
        compiled()  # the first call compiles forward and backward
        compile_s[w] = time.perf_counter() - t0
        timers[(w, "compiled")] = compiled
    times: dict[tuple[float, str], list[float]] = {k: [] for k in timers}
    for r in range(args.rounds + 1):
        for w in args.widths:
            for variant in (("eager", "compiled") if r % 2 else ("compiled", "eager")):
                fn = timers[(w, variant)]
                fn()  # untimed call after the switch
                t0 = time.perf_counter()
                fn()
                if r:
                    times[(w, variant)].append(time.perf_counter() - t0)
    stats = {k: summarize([t * 1e3 for t in v]) for k, v in times.items()}
    print(provenance_line())
    print(f"model {args.model} (base_channels {args.base_channels}), input {s}px, batch {args.batch_size}, "
          f"channels_last, {torch.get_num_threads()} thread(s), {args.rounds} interleaved rounds; "
          "static network (materialize), forward + backward")
    print(f"{'width':>6} {'eager':>10} {'compiled':>10} {'ratio':>6} {'90% CI':>11} {'compile s':>10}")
    for w in args.widths:
        e, c = stats[(w, "eager")], stats[(w, "compiled")]
        lo, hi = ratio_interval(c, e)
        print(f"{w:>6g} {e.p50_ms:8.2f}ms {c.p50_ms:8.2f}ms {c.p50_ms / e.p50_ms:6.2f} {f'{lo:.2f}-{hi:.2f}':>11} "
              f"{compile_s[w]:10.1f}")
    print("ratio = median(compiled) / median(eager) over the rounds (< 1: compiling is faster); 90% CI: its bounds "
          "from the two medians' 95 % intervals (us3l.profiler.stats.ratio_interval)")
    if caveat := clipped_medians_note(args.rounds):
        print(caveat)


if __name__ == "__main__":
    script_cli.run(main)
