"""A small synthetic pipeline folder.

Run, profiles and manifest are written with the real writers. ``accuracy.json`` (schema 2: intervals and
baselines) and ``selection.json`` (``decided_by``, tied widths, warnings) are built by hand here, so the
report's tests pin what the page does with each field, whatever the solver would decide.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from us3l.checkpoint import checkpoint_meta
from us3l.deploy.backends.base import Artifact
from us3l.deploy.manifest import build_manifest, write_manifest
from us3l.deploy.select import SELECTION_KIND, SELECTION_SCHEMA, TIE_BREAK
from us3l.deploy.verify import compare
from us3l.eval.accuracy import ACCURACY_KIND, ACCURACY_SCHEMA, save_accuracy
from us3l.io import atomic_write_json, atomic_write_text, header
from us3l.profiler.profile_file import Profile, ProfileRecord, write_profile
from us3l.profiler.stats import summarize

WIDTHS = (0.25, 0.5, 0.75, 1.0)
KNN = {0.25: 0.4125, 0.5: 0.5375, 0.75: 0.6125, 1.0: 0.6550}
P50 = {0.25: 1.0, 0.5: 2.0, 0.75: 3.0, 1.0: 4.0}
MACS = {w: int(100e6 * w * w) for w in WIDTHS}
PARAMS = {w: int(10e6 * w * w) for w in WIDTHS}
RANDOM = {0.25: 0.2150, 0.5: 0.2300, 0.75: 0.2400, 1.0: 0.2450}
RAW_PIXELS = 0.3100
NUM_TEST = 400
BUDGET_MS = 3.5
UNSTABLE = {("onnx", 0.5), ("openvino", 1.0)}  # (backend, width) whose latency is marked not stable
MARGIN = 1.1  # compared latency = MARGIN * p50 in the hand-built selection


def wilson(p: float, n: int = NUM_TEST, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a fraction ``p`` over ``n`` trials."""
    den = 1 + z * z / n
    center = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [round(center - half, 6), round(center + half, 6)]


def _stats(center: float, seed: int):
    """The latency statistics of 60 seeded samples around ``center`` (``summarize`` caches the order-statistic
    ranks that made it slow)."""
    rng = np.random.default_rng(seed)
    return summarize(center * (1.0 + 0.01 * rng.standard_normal(60)))


def make_profile(root: Path, backend: str = "onnx", scale: float = 1.0, model: str = "cifar_resnet18",
                 device: str = "cpu") -> Path:
    records = tuple(
        ProfileRecord(width=w, channels=int(512 * w), macs=MACS[w], params=PARAMS[w], weight_bytes=4 * PARAMS[w],
                      activation_bytes=1000,
                      latency=dataclasses.replace(_stats(scale * P50[w], i), stable=(backend, w) not in UNSTABLE))
        for i, w in enumerate(WIDTHS)
    )
    prof = Profile(model=model, device=device, backend=backend, precision="fp32",
                   input_shape=(1, 3, 32, 32), threads=1, policy={"max_seconds": 1},
                   fingerprint={"cpu": {"model": "Test CPU 9000", "logical_cores": 2, "usable_cores": 2,
                                        "isa": ["avx2", "avx512_vnni"]},
                                "packages": {"torch": "2.13.0", "onnxruntime": "1.32.0"}, "python": "3.12.1"},
                   records=records, runtime_version="1.32.0")
    return write_profile(prof, root / "profiles")[0]


def accuracy_v2(model: str = "cifar_resnet18") -> dict[str, Any]:
    """A schema-2 accuracy document: kNN with intervals, random-init per width, raw pixels and chance."""
    doc = header(ACCURACY_KIND, ACCURACY_SCHEMA)
    doc.update(
        checkpoint={"path": "run", "sha256": "ab" * 32, "method": "us3l", "epoch": 2},
        checkpoint_sha256="ab" * 32, model=model, model_kwargs={}, data="builtin", num_classes=10,
        input_size=32, num_test=NUM_TEST, calibration=None,
        protocols={"knn": {"k": 20, "k_requested": 200, "temperature": 0.07}, "linear": None},
        baselines={"raw_pixels": {"knn_top1": RAW_PIXELS, "knn_top1_ci": wilson(RAW_PIXELS), "k": 20},
                   "chance": 0.1, "random_init_seed": 0},
        widths=[{"width": w, "canonical_width": w, "feature_dim": int(512 * w), "knn_top1": KNN[w],
                 "knn_top1_ci": wilson(KNN[w]), "knn_top5": None, "linear_top1": None, "linear_top1_ci": None,
                 "linear_top5": None, "macs": MACS[w], "params": PARAMS[w], "embedding_std": 0.1,
                 "baseline_random_init": {"knn_top1": RANDOM[w], "knn_top1_ci": wilson(RANDOM[w])}}
                for w in WIDTHS],
    )
    return doc


def accuracy_v1(model: str = "cifar_resnet18") -> dict[str, Any]:
    """The same numbers as a schema-1 file: no intervals, no baselines, no num_test."""
    doc = header(ACCURACY_KIND, 1)
    doc.update(
        checkpoint={"path": "run", "sha256": "ab" * 32, "method": "us3l", "epoch": 2},
        checkpoint_sha256="ab" * 32, model=model, model_kwargs={}, data="builtin", num_classes=10,
        input_size=32, calibration=None, protocols={"knn": {"k": 20}, "linear": None},
        widths=[{"width": w, "knn_top1": KNN[w], "macs": MACS[w], "params": PARAMS[w]} for w in WIDTHS],
    )
    return doc


def make_accuracy(root: Path, model: str = "cifar_resnet18", schema: int = 2) -> Path:
    doc = accuracy_v2(model) if schema == 2 else accuracy_v1(model)
    if schema == 1:
        return atomic_write_json(root / "accuracy.json", doc)
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


def _candidate(backend: str, scale: float, w: float) -> dict[str, Any]:
    p50 = scale * P50[w]
    latency = {"n": 60, "p50_ms": p50, "p90_ms": 1.05 * p50, "ci95_ms": {"p90": [p50, MARGIN * p50]},
               "stable": (backend, w) not in UNSTABLE}
    lat = round(MARGIN * p50, 6)
    return {"width": w, "accuracy": KNN[w], "latency_ms": lat, "latency": latency, "macs": MACS[w],
            "params": PARAMS[w], "memory_mb": None,
            "violations": [f"latency_ms {lat:.4g} > {BUDGET_MS:g}"] if lat > BUDGET_MS else []}


def _device(backend: str, scale: float, chosen: float, runner_up: float, decided_by: str, tied: list[float],
            warnings: list[str]) -> dict[str, Any]:
    cands = [_candidate(backend, scale, w) for w in WIDTHS]
    by_w = {c["width"]: c for c in cands}
    return {"device": "cpu", "model": "cifar_resnet18", "backend": backend, "precision": "fp32",
            "profile": f"profiles/cifar_resnet18-cpu-{backend}-fp32.json", "feasible": True,
            "chosen": by_w[chosen], "runner_up": by_w[runner_up],
            "slack": {"latency_ms": round(BUDGET_MS - by_w[chosen]["latency_ms"], 6)},
            "minimum": {"latency_ms": min(c["latency_ms"] for c in cands)}, "notes": [],
            "decided_by": decided_by, "tied_widths": tied, "warnings": warnings, "candidates": cands}


def selection_v2() -> dict[str, Any]:
    """onnx: 0.75 and 0.5 tie within the noise, the faster 0.5 wins (its latency is unstable: a warning);
    openvino: 0.5 wins on accuracy."""
    doc = header(SELECTION_KIND, SELECTION_SCHEMA)
    doc.update(
        inputs={"profiles": [], "accuracy": None}, budget={"latency_ms": BUDGET_MS},
        latency_rule={"statistic": "p90", "conservative": True, "margin": 0.0,
                      "describe": "upper 95% CI bound of p90"},
        accuracy={"source": "accuracy file", "metric": "knn_top1"}, tie_break=TIE_BREAK, feasible=True,
        devices=[
            _device("onnx", 1.0, 0.5, 0.75, "tie->latency", [0.75],
                    ["latency of the chosen width 0.5 was not stable (median CI above target)"]),
            _device("openvino", 1.2, 0.5, 0.25, "accuracy", [], []),
        ],
    )
    return doc


def make_selection(root: Path, doc: dict[str, Any] | None = None) -> Path:
    return atomic_write_json(root / "selection.json", selection_v2() if doc is None else doc)


#: The stand-in graph's input and output shape (an Identity): what make_manifest's input.shape and output.shape say,
#: since the report checks the output shape claimed against the graph (as us3l.deploy.load).
STAND_IN_SHAPE = (1, 3, 32, 32)


def _tiny_onnx() -> bytes:
    """A one-node fp32 ONNX model (Identity, ``STAND_IN_SHAPE`` in and out)."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, list(STAND_IN_SHAPE))
    y = helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, list(STAND_IN_SHAPE))
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["embedding"])], "g", [x], [y])
    return helper.make_model(graph).SerializeToString()


def make_manifest(root: Path, width: float = 0.5, checkpoint_sha256: str | None = "ab" * 32) -> Path:
    """An artifact exported from the run's checkpoint (``checkpoint_sha256`` as accuracy.json records it; None: from a
    fresh ``--model``)."""
    d = root / "artifacts" / "cpu" / f"cifar_resnet18-w{width:g}-onnx-fp32"
    d.mkdir(parents=True)
    f = d / "model.onnx"
    f.write_bytes(_tiny_onnx())  # a real graph: the report checks the precision and output shape claimed against it
    art = Artifact(backend="onnx", path=f, files=(f,), precision="fp32", dynamic_batch=False,
                   input_shape=STAND_IN_SHAPE, output_shape=STAND_IN_SHAPE, runtime_version="1.32.0")
    ref = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    doc = build_manifest(artifact=art, model={"name": "cifar_resnet18", "width": width, "bn_stats": "calibrated"},
                         source={"checkpoint": None if checkpoint_sha256 is None else "run/checkpoint.safetensors",
                                 "checkpoint_sha256": checkpoint_sha256}, input_spec={"name": "input"},
                         target={"device": "cpu", "runtime_device": "cpu"},
                         verification=compare(ref, ref + 1e-7, "fp32"), verification_inputs="seeded batch")
    return write_manifest(d, doc)


@pytest.fixture()
def pipeline(tmp_path: Path) -> Path:
    """A complete pipeline folder: run, accuracy, two profiles, selection, one artifact, summary."""
    root = tmp_path / "qs"
    make_run(root)
    make_accuracy(root)
    make_profile(root, "onnx")
    make_profile(root, "openvino", scale=1.2)
    make_selection(root)
    make_manifest(root)
    steps = [{"name": "train", "status": "ran", "seconds": 123.0},
             {"name": "export", "status": "reused", "seconds": 0.1}]
    summary = {"kind": "quickstart", "budget_ms": BUDGET_MS, "seconds": 321, "steps": steps}
    atomic_write_json(root / "summary.json", summary)
    return root


@pytest.fixture(autouse=True)
def _empty_working_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each report test runs in an empty working folder. The selections these tests write by hand record their
    inputs the older way (no ``inputs.relative_to``), which the report looks up in the pipeline folder, then from
    the current folder: from a checkout where the README walkthrough had left run/accuracy.json, a test about a
    deleted run/accuracy.json found that file instead."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
