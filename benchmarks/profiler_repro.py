"""Profiler reproducibility: two consecutive sweeps of the same model/device/backend, per-width relative
difference of the median latency, |p50_b - p50_a| / p50_a, next to each sweep's own CI half-width.

    python benchmarks/profiler_repro.py [--model cifar_resnet18] [--backend onnx] [--points 4] [--max-seconds 3]
"""

from __future__ import annotations

import statistics

from us3l import script_cli
from us3l.profiler.provenance import provenance_line


def summary(diffs: list[float]) -> str:
    """The last line: the median and the largest per-width relative difference between the two sweeps."""
    return f"median |rel diff| {100 * statistics.median(diffs):.1f} %, max {100 * max(diffs):.1f} %"


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--points", type=script_cli.positive_int, default=4)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0)
    ap.add_argument("--threads", type=script_cli.positive_int, default=None)
    args = ap.parse_args()
    # after the arguments: a usage error or --help does not wait for torch's import
    from us3l.deploy.graph import fresh_model
    from us3l.devices.registry import get_device
    from us3l.profiler.sweep import run_sweep

    net = fresh_model(args.model)
    spec = get_device(args.device)
    policy = spec.policy.replace(max_seconds=args.max_seconds)
    widths = list(net.width_grid(args.points))
    sweeps = [
        run_sweep(net, args.model, widths, spec, net.input_size, backend=args.backend,
                  threads=args.threads, policy=policy)
        for _ in range(2)
    ]
    a, b = sweeps
    print(provenance_line())
    print(f"# {args.model} on {spec.name} ({a.backend}, {a.threads} threads), two consecutive sweeps")
    print(f"{'width':>7} {'p50_a ms':>9} {'±a %':>6} {'p50_b ms':>9} {'±b %':>6} {'|rel diff| %':>12} stable a/b")
    diffs = []
    for ra, rb in zip(a.records, b.records, strict=True):
        d = abs(rb.latency.p50_ms - ra.latency.p50_ms) / ra.latency.p50_ms
        diffs.append(d)
        print(f"{ra.width:7.4g} {ra.latency.p50_ms:9.3f} {100 * ra.latency.rel_ci_halfwidth:6.1f} "
              f"{rb.latency.p50_ms:9.3f} {100 * rb.latency.rel_ci_halfwidth:6.1f} {100 * d:12.1f} "
              f"{ra.latency.stable}/{rb.latency.stable}")
    print(summary(diffs))


if __name__ == "__main__":
    script_cli.run(main)
