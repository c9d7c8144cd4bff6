"""Does the selected width hold its budget when measured again?

Solves the budget on a profile (``us3l.deploy.select``), exports the chosen width to the profile's backend, then
re-measures it ``--trials`` times (each trial: ``--repeats`` fresh timings summarised by ``us3l.profiler.stats``)
and reports how often the trial's statistic (the same one the solver used, point value) is within budget.

    python benchmarks/selection_holds.py --profile profiles/cifar_resnet18-cpu-onnx-fp32.json --latency-ms 5
"""

from __future__ import annotations

import tempfile

import numpy as np

from us3l import script_cli
from us3l.deploy.select import STATISTICS, Budget, LatencyRule, select
from us3l.errors import US3LError
from us3l.profiler.provenance import provenance_line


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--latency-ms", type=script_cli.positive_float, required=True)
    ap.add_argument("--statistic", type=script_cli.choice("latency statistic", lambda: STATISTICS), default="p90",
                    help=f"what the solver compares with the budget ({', '.join(STATISTICS)}; default p90)")
    ap.add_argument("--margin", type=script_cli.nonnegative_float, default=0.0)
    ap.add_argument("--trials", type=script_cli.positive_int, default=20)
    ap.add_argument("--repeats", type=script_cli.positive_int, default=100)
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    args = ap.parse_args()
    # after the arguments: a usage error or --help does not wait for torch's import
    from us3l.deploy import get_backend
    from us3l.deploy.export import export_width
    from us3l.models import create_model
    from us3l.profiler.stats import summarize

    rule = LatencyRule(args.statistic, margin=args.margin)
    sel = select([args.profile], Budget(latency_ms=args.latency_ms), rule=rule)
    d = sel.devices[0]
    if d.chosen is None:
        raise US3LError(f"--latency-ms {args.latency_ms:g} is infeasible on this profile: the smallest achievable "
                        f"latency is {d.minimum['latency_ms']:.3f} ms ({rule.describe()})")
    w = d.chosen.width
    model = create_model(d.model, num_classes=0).eval()
    x = np.random.default_rng(0).standard_normal((1, 3, model.input_size, model.input_size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        res = export_width(model, w, d.backend, tmp, precision=d.precision, model_name=d.model)
        with get_backend(d.backend).load(res.artifact.path, threads=args.threads, precision=d.precision) as r:
            for _ in range(20):
                r.time_once(x)
            values = []
            for _ in range(args.trials):
                stats = summarize([r.time_once(x) * 1e3 for _ in range(args.repeats)])
                values.append(getattr(stats, f"{args.statistic}_ms"))
    holds = sum(v <= args.latency_ms for v in values)
    print(provenance_line())
    print(f"profile {args.profile}: {d.device}, {d.model}, {d.backend}/{d.precision}")
    print(
        f"budget {args.latency_ms} ms on the {rule.describe()}: chosen width {w:g} "
        f"(solver latency {d.chosen.latency_ms:.3f} ms, profile p90 {d.chosen.latency['p90_ms']:.3f} ms, "
        f"slack {d.slack['latency_ms']:.3f} ms)"
    )
    print(
        f"re-measured {args.trials} trials x {args.repeats} runs, trial {args.statistic}: "
        f"min {min(values):.3f} / median {float(np.median(values)):.3f} / max {max(values):.3f} ms"
    )
    print(f"holds the budget in {holds}/{args.trials} trials ({holds / args.trials:.0%})")


if __name__ == "__main__":
    script_cli.run(main)
