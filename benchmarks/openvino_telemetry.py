"""What Intel's usage telemetry costs an OpenVINO conversion, and what it leaves in the user's home: side by side.

``import openvino`` and ``openvino.convert_model`` report usage to Google Analytics through ``openvino_telemetry``
(us3l.deploy.backends.intel_telemetry). This script converts one ONNX graph (a registered model materialized at
one width, exported by us3l's ONNX backend) in fresh processes, each with an empty home folder (a machine where no
one ran Intel's opt-in tool, the state of a fresh install), two ways, interleaved round by round in ABBA order:

* ``library default``: ``import openvino`` and ``convert_model`` + ``save_model`` as OpenVINO ships them;
* ``declined (us3l)``: the same calls inside ``us3l.deploy.backends.intel_telemetry.telemetry_off`` (through
  ``import_openvino``), as ``us3l export`` and ``us3l profile`` make them.

Per process: the import time, the median of ``--converts`` conversions (after the first, which also loads the ONNX
frontend), and the files the process left in its home. Printed: the medians over the rounds and their ratio, with
the range of the per-round ratios. Usage::

    python benchmarks/openvino_telemetry.py [--model cifar_resnet18 --width 0.5 --rounds 5 --converts 5]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from us3l import script_cli
from us3l.profiler.provenance import provenance_line

#: One process: ``python -c CHILD MODE ONNX OUT N``; prints one JSON line.
CHILD = """
import json, os, statistics, sys, time
from pathlib import Path
mode, onnx, out, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
if mode == "declined":
    from us3l.deploy.backends.intel_telemetry import import_openvino, telemetry_off
    ov = import_openvino()
else:
    import contextlib
    import openvino as ov
    telemetry_off = contextlib.nullcontext
imported = time.perf_counter() - t
times = []
for i in range(n + 1):
    t = time.perf_counter()
    with telemetry_off():
        model = ov.convert_model(onnx)
    ov.save_model(model, str(out / f"m{i}.xml"))
    times.append(time.perf_counter() - t)
home = Path(os.environ["HOME"])
print(json.dumps({"import_s": imported, "convert_s": statistics.median(times[1:]),
                  "home": sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())}))
"""

MODES = {"default": "library default", "declined": "declined (us3l)"}


def one_process(mode: str, onnx: Path, converts: int, tmp: Path) -> dict:
    """One fresh process of ``mode`` with an empty home: its import time, median conversion time, home's files."""
    home = Path(tempfile.mkdtemp(dir=tmp))
    out = Path(tempfile.mkdtemp(dir=tmp))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")} | {"HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(onnx), str(out), str(converts)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {MODES[mode]} process failed: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = script_cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=script_cli.model, default="cifar_resnet18")
    ap.add_argument("--width", type=script_cli.width, default=0.5)
    ap.add_argument("--image-size", type=script_cli.positive_int, default=32)
    ap.add_argument("--rounds", type=script_cli.positive_int, default=5)
    ap.add_argument("--converts", type=script_cli.positive_int, default=5)
    args = ap.parse_args()

    import torch

    from us3l.deploy.backends.onnx import export_onnx
    from us3l.models import create_model
    from us3l.slim import materialize

    model = create_model(args.model, num_classes=0)
    script_cli.check_model_widths(model, [args.width], "--width")
    print(provenance_line())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        onnx = tmp / "model.onnx"
        export_onnx(materialize(model, args.width).eval(), torch.zeros(1, 3, args.image_size, args.image_size), onnx,
                    False)
        runs: dict[str, list[dict]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            order = list(MODES) if r % 2 == 0 else list(MODES)[::-1]  # ABBA: neither always goes first
            for mode in order:
                runs[mode].append(one_process(mode, onnx, args.converts, tmp))
            print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"# {args.model} width {args.width:g}, {args.image_size}px ONNX -> OpenVINO IR; {args.rounds} rounds of one "
          f"fresh process per way (ABBA), each with an empty home; convert = median of {args.converts} "
          "convert_model + save_model after the first")
    print(f"{'':16} {'import s':>9} {'convert s':>10}  files left in the home folder")
    for mode, label in MODES.items():
        rows = runs[mode]
        files = sorted({f for row in rows for f in row["home"]})
        print(f"{label:16} {statistics.median(r['import_s'] for r in rows):>9.3f} "
              f"{statistics.median(r['convert_s'] for r in rows):>10.3f}  {', '.join(files) or 'none'}")
    for key, what in (("import_s", "import"), ("convert_s", "convert + save")):
        per_round = [d[key] / o[key] for d, o in zip(runs["declined"], runs["default"], strict=True)]
        med = statistics.median(d[key] for d in runs["declined"]) / statistics.median(o[key] for o in runs["default"])
        print(f"declined / default, {what}: {med:.2f} (per round {min(per_round):.2f}-{max(per_round):.2f})")


if __name__ == "__main__":
    script_cli.run(main)
