"""INT8 vs FP32 per width and backend, measured side by side in one run: latency ratio and the kNN drop.

For each model and width: export FP32 and post-training INT8 artifacts with ``us3l.deploy.export.export_width``
(ONNX: onnxruntime Q/DQ; OpenVINO: NNCF; each verified), then time all of them round-robin with
``us3l.profiler.measure.measure_interleaved`` (the runtimes' own synchronous calls, as ``us3l profile`` times
them), so drift hits every artifact alike. Prints p50 per precision and the INT8/FP32 ratio (< 1: INT8 faster)
with its interval (``us3l.profiler.stats.ratio_interval``).

Fresh models (``--models``, seeded init, calibration images from ``--calib-data``) give latency only; with
``--ckpt RUN`` (a trained run whose widths are calibrated) the run's model is added and, per width and backend,
the kNN top-1 of the INT8 artifact's own embeddings beside FP32 PyTorch (``us3l.deploy.accuracy``, the
``us3l eval --artifact`` protocol: same bank, k, temperature, 95 % Wilson intervals). The CPU's instruction set
is printed: INT8 convolutions are fast with AVX512-VNNI / AVX-VNNI (``vpdpbusd``) or AMX; with AVX2 only they
use ``vpmaddubsw`` + ``vpmaddwd`` and often do not beat FP32.

    python benchmarks/int8_vs_fp32.py [--models cifar_resnet18,resnet50] [--widths 1.0,0.5,0.25] \\
        [--ckpt RUN] [--threads 1] [--max-seconds 3] [--calib-images 300]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from us3l import script_cli
from us3l.deploy import get_backend
from us3l.deploy.graph import fresh_model
from us3l.deploy.quantize import MIN_CALIB_IMAGES
from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
from us3l.profiler.provenance import cpu_isa, provenance_line
from us3l.profiler.stats import ratio_interval

#: ``--models``: registered names; ``''`` for none (only ``--ckpt``)
FRESH_MODELS = script_cli.comma_list(script_cli.model, "registered model names", empty_ok=True)

def calib_images(text: str) -> int:
    """``--calib-images``: as many as ``us3l export --precision int8`` takes (a usage error here, not an error
    after the models were built and the header printed)."""
    n = script_cli.positive_int(text)
    if n < MIN_CALIB_IMAGES:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_CALIB_IMAGES} (stable INT8 activation ranges), got {text!r}")
    return n


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=FRESH_MODELS, default="cifar_resnet18,resnet50",
                    help="fresh registered models ('' for none)")
    ap.add_argument("--ckpt", default=None, help="a trained run (calibrated widths): adds it, with the kNN drop")
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.5,0.25")
    ap.add_argument("--backends", type=script_cli.backends, default="onnx,openvino")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0, help="time cap per artifact")
    ap.add_argument("--calib-images", type=calib_images, default=300,
                    help=f"calibration images of the INT8 artifacts (>= {MIN_CALIB_IMAGES}; default 300)")
    ap.add_argument("--calib-data", default="builtin", help="calibration data of the fresh models")
    ap.add_argument("--knn-max-train", type=script_cli.positive_int, default=None,
                    help="cap the kNN bank (seeded stratified)")
    args = ap.parse_args()
    if not args.models and not args.ckpt:
        ap.error("nothing to measure: --models '' needs --ckpt RUN")
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    from us3l.deploy.export import VerificationFailed, export_width, int8_calibration_for
    from us3l.profiler.timers import load_interleaved, runner_timer

    torch.set_num_threads(args.threads)
    widths = args.widths
    backends = [b for b in args.backends if get_backend(b).available()]
    sources: list[tuple[str, Any, str | None]] = [(m, fresh_model(m), m) for m in args.models]
    loaded = None
    if args.ckpt:
        from us3l.eval.runner import open_checkpoint

        loaded = open_checkpoint(args.ckpt)
        sources.append((f"{loaded.meta['model']} (trained: {args.ckpt})", loaded, None))
    for _, source, _ in sources:  # a width outside a model's range: one line naming the flag, before any export
        script_cli.check_model_widths(source if isinstance(source, torch.nn.Module) else source.model, widths)

    print(provenance_line())
    print(f"# {args.threads} thread(s), batch 1, torch {torch.__version__}, "
          + ", ".join(f"{b} {get_backend(b).runtime_version()}" for b in backends))
    print(f"# CPU: {cpu_isa()}")
    timers: dict[tuple[str, float, str, str], Callable[[int], Sequence[float]]] = {}
    runners, exported = [], {}
    with tempfile.TemporaryDirectory(prefix="us3l-int8-bench-") as tmp:
        for i, (label, src, name) in enumerate(sources):
            calib = int8_calibration_for(src, args.calib_images, None if name is None else args.calib_data,
                                         model_name=name)
            for w in widths:
                for b in backends:
                    for prec in ("fp32", "int8"):
                        try:
                            res = export_width(src, w, b, Path(tmp) / f"s{i}", prec, "bench", model_name=name,
                                               calibration=calib if prec == "int8" else None)
                        except VerificationFailed as exc:  # timed anyway; the table says it failed
                            res = exc.result
                        exported[(label, w, b, prec)] = res
                        r = load_interleaved(b, res.artifact.path, args.threads, precision=prec)
                        runners.append(r)
                        x = np.ascontiguousarray(calib.inputs[:1])
                        timers[(label, w, b, prec)] = runner_timer(r, x)
        policy = MeasurementPolicy(warmup=20, min_repeats=50, max_repeats=3000, max_seconds=args.max_seconds)
        lat = measure_interleaved(timers, policy)
        for r in runners:
            r.close()
        knn: dict[tuple[float, str], dict[str, Any]] = {}
        if loaded is not None:
            from us3l.deploy.accuracy import evaluate_artifact
            from us3l.eval.runner import EvalSettings, KnnSettings

            settings = EvalSettings(knn=KnnSettings(max_train=args.knn_max_train))
            label = sources[-1][0]
            for w in widths:
                for b in backends:
                    out = evaluate_artifact(loaded, exported[(label, w, b, "int8")].directory, settings=settings,
                                            threads=args.threads)
                    knn[(w, b)] = out["entry"]

    print(f"{'model':<38} {'width':>5} {'backend':>9} {'fp32 p50 ms':>12} {'int8 p50 ms':>12} {'int8/fp32':>10}"
          f" {'90% CI':>11} {'verify cos':>10}"
          + (f" {'fp32 kNN@1':>11} {'int8 kNN@1':>11} {'drop pts':>9}" if knn else ""))
    for label, _, name in sources:
        for w in widths:
            for b in backends:
                f, q = lat[(label, w, b, "fp32")].stats, lat[(label, w, b, "int8")].stats
                v = exported[(label, w, b, "int8")].verification
                lo, hi = ratio_interval(q, f)
                line = (f"{label:<38} {w:>5g} {b:>9} {f.p50_ms:>12.3f} {q.p50_ms:>12.3f} {q.p50_ms / f.p50_ms:>9.2f}x"
                        f" {f'{lo:.2f}-{hi:.2f}':>11} {v.mean_cosine:>10.5f}"
                        + ("" if v else " (int8 verification FAILED)"))
                if knn and name is None:
                    e = knn[(w, b)]
                    line += (f" {100 * e['fp32_knn_top1']:>11.1f} {100 * e['knn_top1']:>11.1f}"
                             f" {100 * e['knn_top1_drop']:>+9.1f}")
                print(line)
    print("int8/fp32 = INT8 p50 / FP32 p50 of the same width and backend, timed interleaved (< 1: INT8 faster); "
          "90% CI: its bounds from the two medians' 95 % intervals (us3l.profiler.stats.ratio_interval); "
          "verify cos = mean cosine of the INT8 artifact to FP32 PyTorch on held-out images; drop = FP32 - INT8 "
          "kNN top-1 (same bank, k, test images); n per cell: "
          + ", ".join(sorted({str(m.stats.n) for m in lat.values()})))


if __name__ == "__main__":
    script_cli.run(main)
