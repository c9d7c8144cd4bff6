"""onnxruntime and OpenVINO latency relative to PyTorch eager, per width, measured interleaved in one loop.

Every (backend, width) pair is one timer of the same ``measure_interleaved`` loop, so all of them see the same
machine state. Ratio = p50(backend) / p50(torch eager) on the same materialized network; < 1 means faster.
Beside each ratio, its bounds from the two medians' intervals (``us3l.profiler.stats.ratio_interval``).

    python benchmarks/backend_vs_eager.py [--model cifar_resnet18] [--points 4] [--max-seconds 3] [--threads N]
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from us3l import script_cli
from us3l.profiler.provenance import provenance_line
from us3l.profiler.stats import ratio_interval


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--points", type=script_cli.positive_int, default=4)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0)
    ap.add_argument("--threads", type=script_cli.positive_int, default=None)
    args = ap.parse_args()
    # after the arguments: a usage error or --help does not wait for torch's import
    from us3l.deploy.backends import get_backend
    from us3l.models import create_model
    from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
    from us3l.profiler.timers import example_input, load_interleaved, resolve_threads, runner_timer, torch_timer
    from us3l.slim import materialize

    net = create_model(args.model, num_classes=0)
    threads = resolve_threads(args.threads)
    x = example_input((1, 3, net.input_size, net.input_size))
    widths = list(net.width_grid(args.points))
    timers = {}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for i, w in enumerate(widths):
            static = materialize(net, w).eval()
            timers[("torch", w)] = torch_timer(static, x, threads)
            for name in ("onnx", "openvino"):
                art = get_backend(name).export(static, x, root / f"{name}-{i}")
                runner = stack.enter_context(load_interleaved(name, art.path, threads))
                timers[(name, w)] = runner_timer(runner, x.numpy())
        policy = MeasurementPolicy(max_seconds=args.max_seconds)
        res = measure_interleaved(timers, policy)
    print(provenance_line())
    print(f"# {args.model}, batch 1, {threads} threads, interleaved; ratio = p50(backend) / p50(torch eager), "
          "90% CI: its bounds from the two medians' 95 % intervals (us3l.profiler.stats.ratio_interval)")
    print(f"{'width':>7} {'eager ms':>9} {'onnx ms':>8} {'onnx/eager':>10} {'90% CI':>11} {'ov ms':>8} "
          f"{'ov/eager':>10} {'90% CI':>11}")
    for w in widths:
        eager = res[("torch", w)].stats
        line = f"{w:7.4g} {eager.p50_ms:9.3f}"
        for name in ("onnx", "openvino"):
            s = res[(name, w)].stats
            lo, hi = ratio_interval(s, eager)
            line += f" {s.p50_ms:8.3f} {s.p50_ms / eager.p50_ms:10.2f} {f'{lo:.2f}-{hi:.2f}':>11}"
        print(line)


if __name__ == "__main__":
    script_cli.run(main)
