"""INT8 ONNX weight schemes on this CPU, side by side in one run: accuracy to FP32 and latency of each.

For each width of a trained run, the width's FP32 ONNX graph (``us3l.deploy.export.export_width``) is quantized
by onnxruntime's ``quantize_static`` (Q/DQ, MinMax, per-channel weights, the export's calibration set) three
ways, differing only in the weights:

* ``s8``: int8 weights in [-127, 127] with uint8 activations (U8S8);
* ``s7``: int8 weights in [-64, 64] (``reduce_range``), what ``us3l export --precision int8`` writes;
* ``u8``: uint8 weights with a zero point (U8U8).

Each is compared with the FP32 graph on the export's held-out verification images (mean and minimum cosine,
top-5 neighbour agreement, pass/fail of the int8 tolerance, ``us3l.deploy.verify.compare``), and all of them are
timed round-robin with ``us3l.profiler.measure.measure_interleaved``. On x86 without VNNI (AVX2 only)
onnxruntime multiplies U8S8 with ``vpmaddubsw``, whose 16-bit pair sums saturate with 8-bit weights: ``s8`` loses
accuracy there and ``s7`` does not. The CPU's instruction set is printed.

    python benchmarks/int8_weight_range.py --ckpt RUN [--widths 1.0,0.5,0.25] [--threads 1] [--max-seconds 3]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from us3l import script_cli
from us3l.profiler.provenance import cpu_isa, provenance_line

#: name -> (weight type, reduce_range, description)
SCHEMES: dict[str, tuple[str, bool, str]] = {
    "s8": ("QInt8", False, "int8 weights [-127, 127], uint8 activations (U8S8)"),
    "s7": ("QInt8", True, "int8 weights [-64, 64] (reduce_range), uint8 activations: us3l's INT8 ONNX"),
    "u8": ("QUInt8", False, "uint8 weights with a zero point, uint8 activations (U8U8)"),
}


def quantize(fp32: Path, out: Path, calib: Any, scheme: str) -> None:
    """Write ``fp32`` (a batch-1 graph) quantized with ``SCHEMES[scheme]`` on the calibration set ``calib`` to
    ``out``, through the export's own calibration reader."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from us3l.deploy.quantize import _quiet, _Reader

    weight_type, reduce_range, _ = SCHEMES[scheme]
    with _quiet():
        quantize_static(str(fp32), str(out), _Reader("input", calib.batches(1)),  # type: ignore[arg-type]
                        quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType[weight_type],
                        calibrate_method=CalibrationMethod.MinMax, reduce_range=reduce_range,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": weight_type == "QInt8"})


def outputs(runner: Any, images: np.ndarray) -> np.ndarray:
    """A runner's outputs, one image per call (the artifacts' batch 1)."""
    return np.concatenate([runner.infer(images[i : i + 1]) for i in range(len(images))])


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="a trained run whose widths are calibrated")
    ap.add_argument("--widths", type=script_cli.widths, default="1.0,0.5,0.25")
    ap.add_argument("--threads", type=script_cli.positive_int, default=1)
    ap.add_argument("--max-seconds", type=script_cli.positive_float, default=3.0, help="time cap per graph")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch  # after the arguments: a usage error or --help does not wait for torch's import

    from us3l.deploy.export import export_width, int8_calibration_for
    from us3l.deploy.verify import compare
    from us3l.eval.runner import open_checkpoint
    from us3l.profiler.measure import MeasurementPolicy, measure_interleaved
    from us3l.profiler.timers import load_interleaved, runner_timer

    torch.set_num_threads(args.threads)
    loaded = open_checkpoint(args.ckpt)
    script_cli.check_model_widths(loaded.model, args.widths)
    calib = int8_calibration_for(loaded)
    held_out = calib.holdout if calib.holdout is not None else calib.inputs
    print(provenance_line())
    print(f"# {args.threads} thread(s), batch 1, torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{loaded.meta['model']} (trained: {args.ckpt}); {len(calib.inputs)} calibration and {len(held_out)} "
          "held-out training images")
    print(f"# CPU: {cpu_isa()}")
    rows: list[tuple[float, str, Any]] = []
    timers: dict[tuple[float, str], Callable[[int], Sequence[float]]] = {}
    runners = []
    with tempfile.TemporaryDirectory(prefix="us3l-int8-range-") as tmp:
        for w in args.widths:
            fp32 = export_width(loaded, w, "onnx", Path(tmp) / "fp32", "fp32", "bench").artifact.path
            paths = {"fp32": fp32}
            for scheme in SCHEMES:
                paths[scheme] = Path(tmp) / f"w{w:g}-{scheme}.onnx"
                quantize(fp32, paths[scheme], calib, scheme)
            ref = None
            for name, path in paths.items():  # fp32 first: the reference of the schemes after it
                r = load_interleaved("onnx", path, args.threads, precision="fp32" if name == "fp32" else "int8")
                runners.append(r)
                timers[(w, name)] = runner_timer(r, held_out[:1])
                out = outputs(r, held_out)
                if ref is None:
                    ref = out
                else:
                    rows.append((w, name, compare(ref, out, "int8")))
        lat = measure_interleaved(timers, MeasurementPolicy(warmup=20, min_repeats=50, max_repeats=3000,
                                                            max_seconds=args.max_seconds))
        for r in runners:
            r.close()
    print(f"{'width':>5} {'weights':>7} {'mean cos':>9} {'min cos':>8} {'top-5 agr':>9} {'tolerance':>9}"
          f" {'p50 ms':>8} {'/ s7':>6} {'/ fp32':>7}")
    for w, scheme, v in rows:
        p50 = lat[(w, scheme)].stats.p50_ms
        print(f"{w:>5g} {scheme:>7} {v.mean_cosine:>9.5f} {v.min_cosine:>8.5f} {v.topk_agreement:>9.3f}"
              f" {'pass' if v else 'FAIL':>9} {p50:>8.3f} {p50 / lat[(w, 's7')].stats.p50_ms:>5.2f}x"
              f" {p50 / lat[(w, 'fp32')].stats.p50_ms:>6.2f}x")
    for scheme, (_, _, what) in SCHEMES.items():
        print(f"{scheme}: {what}")
    print("cos, top-5 agr: to the FP32 ONNX graph of the width on the held-out images (us3l.deploy.verify.compare, "
          "int8 tolerance: mean cos >= 0.99, min >= 0.95, top-5 >= 0.8); p50 timed interleaved with the width's FP32 "
          "graph; n per cell: " + ", ".join(sorted({str(m.stats.n) for m in lat.values()})))


if __name__ == "__main__":
    script_cli.run(main)
