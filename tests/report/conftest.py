"""A small synthetic pipeline folder, written with the real writers of every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploy.backends.base import Artifact
from deploy.manifest import build_manifest, write_manifest
from deploy.select import Budget, select, write_selection
from deploy.verify import compare
from profiler.profile_file import Profile, ProfileRecord, write_profile
from profiler.stats import summarize
from us3l.checkpoint import checkpoint_meta
from us3l.eval.accuracy import accuracy_doc, save_accuracy
from us3l.io import atomic_write_json, atomic_write_text

WIDTHS = (0.25, 0.5, 0.75, 1.0)
KNN = {0.25: 0.4125, 0.5: 0.5375, 0.75: 0.6125, 1.0: 0.6550}
P50 = {0.25: 1.0, 0.5: 2.0, 0.75: 3.0, 1.0: 4.0}
MACS = {w: int(100e6 * w * w) for w in WIDTHS}
PARAMS = {w: int(10e6 * w * w) for w in WIDTHS}
BUDGET_MS = 3.5


def _stats(center: float, seed: int):
    rng = np.random.default_rng(seed)
    return summarize(center * (1.0 + 0.01 * rng.standard_normal(60)))


def make_profile(root: Path, backend: str = "onnx", scale: float = 1.0) -> Path:
    records = tuple(
        ProfileRecord(width=w, channels=int(512 * w), macs=MACS[w], params=PARAMS[w], weight_bytes=4 * PARAMS[w],
                      activation_bytes=1000, latency=_stats(scale * P50[w], i))
        for i, w in enumerate(WIDTHS)
    )
    prof = Profile(model="cifar_resnet18", device="cpu", backend=backend, precision="fp32",
                   input_shape=(1, 3, 32, 32), threads=1, policy={"max_seconds": 1},
                   fingerprint={"cpu": {"model": "Test CPU 9000", "logical_cores": 2, "usable_cores": 2},
                                "packages": {"torch": "2.13.0", "onnxruntime": "1.32.0"}, "python": "3.12.1"},
                   records=records, runtime_version="1.32.0")
    return write_profile(prof, root / "profiles")[0]


def make_accuracy(root: Path, model: str = "cifar_resnet18") -> Path:
    doc = accuracy_doc(
        checkpoint={"path": "run", "sha256": "ab" * 32, "method": "us3l", "epoch": 2}, model=model,
        model_kwargs={}, data="builtin", num_classes=10, input_size=32, calibration=None,
        protocols={"knn": {"k": 20}, "linear": None},
        widths=[{"width": w, "knn_top1": KNN[w], "macs": MACS[w], "params": PARAMS[w]} for w in WIDTHS],
    )
    return save_accuracy(doc, root / "accuracy.json")


def make_run(root: Path, model: str = "cifar_resnet18") -> Path:
    run = root / "run"
    meta = checkpoint_meta(model=model, model_kwargs={}, width_range={"min": 0.25, "max": 1.0, "divisor": 8},
                           method="us3l", normalization={"mean": [0.5] * 3, "std": [0.25] * 3}, input_size=32,
                           data={"spec": "builtin", "name": "builtin-shapes", "num_classes": 10},
                           epoch=2, config={"epochs": 2})
    atomic_write_json(run / "checkpoint.json", meta)
    lines = [{"epoch": e, "loss": {"base": 1.5 / e}, "seconds": 61.5} for e in (1, 2)]
    atomic_write_text(run / "metrics.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    return run


def make_selection(root: Path, profiles: list[Path], accuracy: Path | None) -> Path:
    sel = select(profiles, Budget(latency_ms=BUDGET_MS), accuracy)
    return write_selection(root / "selection.json", sel)


def make_manifest(root: Path, width: float = 0.5) -> Path:
    d = root / "artifacts" / "cpu" / f"cifar_resnet18-w{width:g}-onnx-fp32"
    d.mkdir(parents=True)
    f = d / "model.onnx"
    f.write_bytes(b"not really onnx")
    art = Artifact(backend="onnx", path=f, files=(f,), precision="fp32", dynamic_batch=False,
                   input_shape=(1, 3, 32, 32), output_shape=(1, 256), runtime_version="1.32.0")
    ref = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    doc = build_manifest(artifact=art, model={"name": "cifar_resnet18", "width": width, "bn_stats": "calibrated"},
                         source={"checkpoint": None, "checkpoint_sha256": None}, input_spec={"name": "input"},
                         target={"device": "cpu", "runtime_device": "cpu"},
                         verification=compare(ref, ref + 1e-7, "fp32"), verification_inputs="seeded batch")
    return write_manifest(d, doc)


@pytest.fixture()
def pipeline(tmp_path: Path) -> Path:
    """A complete pipeline folder: run, accuracy, two profiles, selection, one artifact, summary."""
    root = tmp_path / "qs"
    make_run(root)
    acc = make_accuracy(root)
    profiles = [make_profile(root, "onnx"), make_profile(root, "openvino", scale=1.2)]
    make_selection(root, profiles, acc)
    make_manifest(root)
    steps = [{"name": "train", "status": "ran", "seconds": 123.0},
             {"name": "export", "status": "reused", "seconds": 0.1}]
    summary = {"kind": "summary", "budget_ms": BUDGET_MS, "seconds": 321, "steps": steps}
    atomic_write_json(root / "summary.json", summary)
    return root
