"""Achieved MACs/s per width relative to the best of a large dense fp32 matmul on the same cores.

The reference is the best of several ``torch.matmul`` runs of an N x N by N x N product (N^3 MACs) with the
same thread count, probed before and after the sweep (both printed: how far the reference itself moved); each
width's achieved rate is MACs / p50 latency of the width's deployable graph, timed by
``us3l.profiler.sweep.run_sweep`` (onnxruntime by default), which builds it with
``us3l.deploy.graph.build_deployable_graph`` like ``us3l export``: BN frozen and folded into the convolutions.

    python benchmarks/roofline.py [--model cifar_resnet18] [--points 4] [--max-seconds 3] [--n 2048]
"""

from __future__ import annotations

import time

from us3l import script_cli
from us3l.deploy.graph import fresh_model
from us3l.devices.registry import get_device
from us3l.profiler.provenance import provenance_line


def matmul_peak(n: int, threads: int, repeats: int = 10) -> float:
    """Best MACs/s of an n x n fp32 matmul over ``repeats`` runs."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return n**3 / best


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--points", type=script_cli.positive_int, default=4)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0)
    ap.add_argument("--threads", type=script_cli.positive_int, default=None)
    ap.add_argument("--n", type=script_cli.positive_int, default=2048)
    args = ap.parse_args()
    from us3l.profiler.sweep import run_sweep  # after the arguments: these import torch
    from us3l.profiler.timers import resolve_threads

    threads = resolve_threads(args.threads)
    before = matmul_peak(args.n, threads)
    net = fresh_model(args.model)
    spec = get_device("cpu")
    prof = run_sweep(net, args.model, list(net.width_grid(args.points)), spec,
                     net.input_size, backend=args.backend, threads=threads,
                     policy=spec.policy.replace(max_seconds=args.max_seconds))
    after = matmul_peak(args.n, threads)  # the reference moves with the machine too: probed on both sides
    peak = max(before, after)
    print(provenance_line())
    print(f"# dense {args.n}x{args.n} fp32 matmul, {threads} threads: best {peak / 1e9:.1f} GMAC/s "
          f"(before the sweep {before / 1e9:.1f}, after {after / 1e9:.1f})")
    print(f"# {args.model} ({prof.backend}, batch 1, input {prof.input_shape[-1]})")
    print(f"{'width':>7} {'MMACs':>8} {'p50 ms':>8} {'GMAC/s':>7} {'of peak':>8}")
    for r in prof.records:
        rate = r.macs / (r.latency.p50_ms / 1e3)
        print(f"{r.width:7.4g} {r.macs / 1e6:8.1f} {r.latency.p50_ms:8.3f} {rate / 1e9:7.2f} {100 * rate / peak:7.1f}%")


if __name__ == "__main__":
    script_cli.run(main)
