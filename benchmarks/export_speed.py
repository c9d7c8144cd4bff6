"""Guard: exported widths stay as fast as a hand-built plain network of the same channels, and near the CPU's
dense-matmul MAC rate. Exits 1, naming the width, when either regresses (issue 14: "keep it that way").

For each width, two ONNX graphs of the same channels are built and timed interleaved in one loop, same runtime,
same threads, batch 1:

* **us3l**: what ``us3l export`` ships, ``us3l.deploy.graph.build_deployable_graph`` (materialize, freeze BN,
  export with the default exporter);
* **plain**: a CIFAR ResNet-18 written here with ``nn.Conv2d``/``nn.BatchNorm2d`` and nothing from
  ``us3l.models`` or ``us3l.slim`` (only its channel counts are read from the materialized width), with random
  BN statistics, exported by the same ONNX exporter function.

The ONNX graphs must also hold the same operators (counted by type): an extra Slice, Reshape or unfolded BN in
the shipped graph fails the check whatever the timings say.

Ratio = p50(us3l) / p50(plain): 1.00 means the slimmable origin costs nothing in the deployed graph; beside it
its bounds from the two medians' 95 % intervals (``us3l.profiler.stats.ratio_interval``). Next to it,
each graph's MAC rate (fvcore MACs of the width / p50) as a fraction of the best large fp32 matmul at the same
thread count (``benchmarks/roofline.py``), probed before and after the timing (both printed). The check fails
when a ratio is above ``--max-ratio`` (default 1.10: single-thread runs here measure 0.99-1.02; the margin
absorbs this VM's noise) or a us3l MAC rate is below ``--min-of-peak`` of the matmul rate (default 0.5; measured
0.7-1.1 at widths 1.0-0.5). Usage::

    python benchmarks/export_speed.py                       # onnxruntime, widths 1.0 / 0.5 / 0.25, 1 thread
    python benchmarks/export_speed.py --backends onnx,openvino --max-seconds 4
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from roofline import matmul_peak  # benchmarks/ is on sys.path when this script runs

from us3l import script_cli
from us3l.profiler.provenance import provenance_line

if TYPE_CHECKING:  # imported where it runs, after the arguments: a usage error or --help does not wait for it
    from torch import nn


def plain_cifar_resnet18(stem: int, stages: list[int]) -> nn.Module:
    """A CIFAR ResNet-18 feature extractor (3x3 stem, no max-pool, 2 blocks per stage), global average pool, with
    ``stem`` and ``stages`` output channels, written with ``nn.Conv2d``/``nn.BatchNorm2d`` alone."""
    import torch
    from torch import nn

    class PlainBlock(nn.Module):
        def __init__(self, inp: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.down: nn.Module | None = None
            if stride != 1 or inp != planes:
                self.down = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, 0, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.down is None else self.down(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class PlainCifarResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.relu = nn.ReLU(inplace=True)
            blocks, inp = [], stem
            for i, planes in enumerate(stages):
                for j in range(2):
                    blocks.append(PlainBlock(inp, planes, 2 if (i > 0 and j == 0) else 1))
                    inp = planes
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            g = torch.Generator().manual_seed(0)
            for m in self.modules():  # BN statistics and affines that are not the identity, as after calibration
                if isinstance(m, nn.BatchNorm2d):
                    c = m.num_features
                    m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                    m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.blocks(self.relu(self.bn1(self.conv1(x))))
            return torch.flatten(self.pool(x), 1)

    return PlainCifarResNet18()


def stage_channels(static: nn.Module) -> tuple[int, list[int]]:
    """(stem, per-stage) output channels of a materialized cifar_resnet18 width."""
    stages = [getattr(static, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)]
    return static.conv1.out_channels, stages


def op_counts(path: Path) -> dict[str, int]:
    """Operators of an ONNX graph, counted by type."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def main() -> int:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.5,0.25")
    ap.add_argument("--backends", type=script_cli.backends, default="onnx", help="comma-separated: onnx,openvino")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1,
                    help="runtime threads (default 1: on a shared 2-core VM two threads add +-15 %% noise)")
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0, help="measurement time per timer")
    ap.add_argument("--max-ratio", type=script_cli.positive_float, default=1.10)
    ap.add_argument("--min-of-peak", type=script_cli.positive_float, default=0.5)
    args = ap.parse_args()
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    from us3l.deploy.backends import get_backend
    from us3l.deploy.backends.onnx import export_onnx
    from us3l.deploy.graph import build_deployable_graph, fresh_model
    from us3l.profiler.costs import count_costs
    from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
    from us3l.profiler.stats import ratio_interval
    from us3l.profiler.timers import example_input, load_interleaved, resolve_threads, runner_timer

    threads = resolve_threads(args.threads)
    widths, backends = args.widths, args.backends
    net = fresh_model("cifar_resnet18")
    script_cli.check_model_widths(net, widths)
    shape = (1, 3, net.input_size, net.input_size)
    x = example_input(shape)
    before = matmul_peak(2048, threads)
    timers, macs, channels, ops = {}, {}, {}, {}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="us3l-export-speed-")))
        for i, w in enumerate(widths):
            for b in backends:
                graph = build_deployable_graph(net, w, b, root / f"us3l-{b}-{i}", shape, example=x)
                assert graph.artifact is not None
                if b == "onnx":
                    ops[("us3l", w)] = op_counts(graph.artifact.path)
                runner = stack.enter_context(load_interleaved(b, graph.artifact.path, threads))
                timers[("us3l", b, w)] = runner_timer(runner, x.numpy())
            static = build_deployable_graph(net, w, None, None, shape).module
            stem, stages = stage_channels(static)
            channels[w] = (stem, stages)
            plain = plain_cifar_resnet18(stem, stages).eval()
            with torch.no_grad():
                assert plain(x).shape == static(x).shape, "plain network does not match the width's output"
            macs[w] = count_costs(static, shape).macs
            plain_macs = count_costs(plain, shape).macs
            assert plain_macs == macs[w], f"width {w:g}: plain network has {plain_macs} MACs, us3l {macs[w]}"
            for b in backends:
                out = root / f"plain-{b}-{i}"
                out.mkdir()
                if b == "onnx":
                    path = out / "model.onnx"
                    export_onnx(plain, x, path)
                    ops[("plain", w)] = op_counts(path)
                else:
                    path = get_backend(b).export(plain, x, out).path
                runner = stack.enter_context(load_interleaved(b, path, threads))
                timers[("plain", b, w)] = runner_timer(runner, x.numpy())
        res = measure_interleaved(timers, MeasurementPolicy(max_seconds=args.max_seconds))
    after = matmul_peak(2048, threads)  # the reference moves with the machine too: probed on both sides
    peak = max(before, after)
    print(provenance_line())
    print(f"# cifar_resnet18, batch 1, input {shape[-1]} px, {threads} thread(s), timers interleaved; "
          f"dense 2048^3 fp32 matmul best {peak / 1e9:.1f} GMAC/s (before {before / 1e9:.1f}, after {after / 1e9:.1f})")
    print(f"{'backend':>8} {'width':>6} {'channels':>22} {'MMACs':>7} {'us3l ms':>8} {'plain ms':>8} "
          f"{'us3l/plain':>10} {'90% CI':>11} {'us3l of peak':>12} {'plain of peak':>13}")
    failures = [
        f"onnx width {w:g}: operators differ from the plain network's: us3l {ops[('us3l', w)]}, "
        f"plain {ops[('plain', w)]}"
        for w in widths
        if ("us3l", w) in ops and ops[("us3l", w)] != ops[("plain", w)]
    ]
    for b in backends:
        for w in widths:
            us, ps = res[("us3l", b, w)].stats, res[("plain", b, w)].stats
            u, p = us.p50_ms, ps.p50_ms
            ratio = u / p
            lo, hi = ratio_interval(us, ps)
            u_peak, p_peak = macs[w] / (u / 1e3) / peak, macs[w] / (p / 1e3) / peak
            stem, stages = channels[w]
            chan = f"{stem}/{'-'.join(map(str, stages))}"
            print(f"{b:>8} {w:6.3g} {chan:>22} {macs[w] / 1e6:7.1f} {u:8.3f} {p:8.3f} {ratio:10.3f} "
                  f"{f'{lo:.2f}-{hi:.2f}':>11} {u_peak:12.2f} {p_peak:13.2f}")
            if ratio > args.max_ratio:
                failures.append(f"{b} width {w:g}: us3l graph {ratio:.2f}x the plain network (limit {args.max_ratio})")
            if u_peak < args.min_of_peak:
                failures.append(f"{b} width {w:g}: {u_peak:.2f} of the matmul MAC rate (limit {args.min_of_peak})")
    for f in failures:
        print(f"REGRESSION: {f}", file=sys.stderr)
    if "onnx" in backends:
        print("onnx operators (us3l = plain at every width): " + ", ".join(
            f"{k} {v}" for k, v in ops[("us3l", widths[0])].items()))
    print("ok" if not failures else f"FAILED ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    script_cli.run(main)
