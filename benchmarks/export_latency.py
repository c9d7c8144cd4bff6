"""Exported-artifact latency vs PyTorch eager, per width, measured interleaved in one run.

For each width: materialize (PyTorch eager, the baseline), export to ONNX and OpenVINO IR (fp32, verified),
then time all of them round-robin with ``us3l.profiler.measure.measure_interleaved`` so that drift (thermal,
neighbours) hits every runtime alike. Prints the median (p50) per runtime and the speed-up over eager, with its
interval (``us3l.profiler.stats.ratio_interval``).

    python benchmarks/export_latency.py [--model cifar_resnet18] [--widths 0.25,0.5,0.75,1.0] [--threads 1]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence

from us3l import script_cli
from us3l.profiler.provenance import provenance_line
from us3l.profiler.stats import ratio_interval


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--widths", type=script_cli.widths, default="0.25,0.5,0.75,1.0")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=4.0, help="time cap per (width, runtime)")
    args = ap.parse_args()
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    from us3l.deploy import get_backend
    from us3l.deploy.export import export_width
    from us3l.models import create_model
    from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
    from us3l.profiler.timers import load_interleaved, runner_timer, torch_timer
    from us3l.slim import materialize

    torch.set_num_threads(args.threads)
    model = create_model(args.model, num_classes=0).eval()
    script_cli.check_model_widths(model, args.widths)
    size = model.input_size
    x = torch.randn(1, 3, size, size)
    xn = x.numpy()
    widths = args.widths
    backends = [b for b in ("onnx", "openvino") if get_backend(b).available()]
    timers: dict[tuple[float, str], Callable[[int], Sequence[float]]] = {}
    runners = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in widths:
            timers[(w, "eager")] = torch_timer(materialize(model, w), x, args.threads)
            for b in backends:
                res = export_width(model, w, b, tmp, model_name=args.model)
                r = load_interleaved(b, res.artifact.path, args.threads, precision="fp32")
                runners.append(r)
                timers[(w, b)] = runner_timer(r, xn)
        policy = MeasurementPolicy(warmup=20, min_repeats=50, max_repeats=2000, max_seconds=args.max_seconds)
        res = measure_interleaved(timers, policy)
        for r in runners:
            r.close()
    print(provenance_line())
    print(f"model {args.model}, input 1x3x{size}x{size}, {args.threads} thread(s), torch {torch.__version__}")
    head = f"{'width':>6} {'eager p50 ms':>13}" + "".join(
        f" {b + ' p50 ms':>16} {'x eager':>8} {'90% CI':>12}" for b in backends)
    print(head)
    for w in widths:
        eager = res[(w, "eager")].stats
        line = f"{w:>6g} {eager.p50_ms:>13.3f}"
        for b in backends:
            runtime = res[(w, b)].stats
            lo, hi = ratio_interval(eager, runtime)
            line += f" {runtime.p50_ms:>16.3f} {eager.p50_ms / runtime.p50_ms:>7.2f}x {f'{lo:.2f}-{hi:.2f}':>12}"
        print(line)
    print(
        "x eager = eager p50 / runtime p50 (> 1: the exported artifact is faster); 90% CI: its bounds from the two "
        "medians' 95 % intervals (us3l.profiler.stats.ratio_interval); n per cell: "
        + ", ".join(sorted({str(m.stats.n) for m in res.values()}))
    )


if __name__ == "__main__":
    script_cli.run(main)
