"""Tiny static models and hand-made profile/accuracy documents for the deploy tests."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.run_folders import save_run
from us3l.io import header


class TinyNet(nn.Module):
    """Conv-BN-ReLU-pool-Linear: what a materialized width looks like to a backend, in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


@pytest.fixture
def tiny_net() -> nn.Module:
    net = TinyNet()
    with torch.no_grad():  # non-trivial BN statistics, so a wrong fold would show
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


#: Samples per hand-made latency record.
LATENCY_N = 100


def latency(p50: float, p90: float, p99: float, ci90_hi: float | None = None, n: int = LATENCY_N) -> dict[str, Any]:
    """A LatencyStats record (CONTRACT.md) whose p50, p90, p99 and upper 95 % CI bound of p90 are the given values,
    summarized by the profiler's own code (``us3l.profiler.stats.summarize``) from ``n`` samples built for it, so
    that statistics and ``samples_ms`` agree as in a measured profile. The other bounds hug the point values (the
    p90 interval's low end is p90; the median's interval is [p50, p50]); min is p50 and max p99. With too few
    samples for the p90 bound (fewer than 36) it is the slowest sample, p99, as the profiler reports it."""
    from us3l.profiler.stats import order_statistic_ranks, summarize

    hi = p90 if ci90_hi is None else ci90_hi
    if not p50 <= p90 <= hi <= p99:
        raise ValueError(f"need p50 <= p90 <= ci90_hi <= p99, got {p50}, {p90}, {hi}, {p99}")
    lo90, up90 = order_statistic_ranks(n, 0.9)  # 1-based ranks of the p90 interval's bounds
    first99 = int(0.99 * (n - 1))  # p99 interpolates between this sample and the next

    def value(i: int) -> float:  # the i-th smallest sample
        if i >= first99:
            return p99
        if i >= up90 - 1:
            return hi
        return p90 if i >= min(lo90 - 1, int(0.9 * (n - 1))) else p50

    d = summarize([value(i) for i in range(n)]).to_dict()
    want_hi = hi if up90 <= first99 else p99
    got = (d["p50_ms"], d["p90_ms"], d["p99_ms"], d["ci95_ms"]["p90"][1])
    assert got == (p50, p90, p99, want_hi), f"latency({p50}, {p90}, {p99}, {ci90_hi}, n={n}) gives {got}"
    return d


@functools.cache
def fresh_macs(model: str, width: float) -> int | None:
    """MACs per image of ``model``'s fresh network at ``width`` (what ``us3l profile --model`` records), or None for
    a name that is not a registered model ("tiny"): a hand-made profile of a real model carries its real MACs, or
    ``us3l export --selection`` refuses it as a choice made for another network."""
    from us3l.deploy.export import width_macs
    from us3l.deploy.graph import fresh_model
    from us3l.models import list_models

    if model not in list_models():
        return None
    return width_macs(fresh_model(model), width, model)


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[..., Path]:
    """``write_profile(rows, device="cpu")``; rows: dicts with width, latency, macs, params, ...bytes. Without
    ``macs``, a registered model's row gets its fresh network's MACs at the width (``fresh_macs``), "tiny" width x
    1e6."""

    def make(
        rows: Sequence[dict[str, Any]],
        device: str = "cpu",
        model: str = "tiny",
        backend: str = "onnx",
        precision: str = "fp32",
    ) -> Path:
        doc = header("profile", 1)
        records = []
        for r in rows:
            rec = {
                "width": r["width"],
                "channels": 1,
                "macs": r["macs"] if "macs" in r else fresh_macs(model, float(r["width"])) or int(r["width"] * 1e6),
                "params": r.get("params", int(r["width"] * 1e5)),
                "weight_bytes": r.get("weight_bytes", int(r["width"] * 4e5)),
                "activation_bytes": r.get("activation_bytes", int(r["width"] * 1e5)),
                "latency": r["latency"],
            }
            records.append(rec)
        doc.update(
            model=model,
            checkpoint_sha256=None,
            device=device,
            backend=backend,
            precision=precision,
            input_shape=[1, 3, 32, 32],
            threads=1,
            policy={},
            fingerprint={},
            records=records,
        )
        path = tmp_path / "profiles" / f"{model}-{device}-{backend}-{precision}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(doc))
        return path

    return make


@pytest.fixture
def write_accuracy(tmp_path: Path) -> Callable[..., Path]:
    """``write_accuracy({width: linear_top1 % or None}, knn={width: knn_top1 %})``: a schema-1 file, the
    percentages stored as fractions as us3l eval writes them."""

    def frac(v: float | None) -> float | None:
        return None if v is None else v / 100.0

    def make(linear: dict[float, float | None], knn: dict[float, float] | None = None) -> Path:
        doc = header("accuracy", 1)
        widths = sorted(set(linear) | set(knn or {}))
        doc.update(
            checkpoint_sha256="0" * 64,
            model="tiny",
            data="synthetic",
            protocols={"knn": None, "linear": None},
            widths=[
                {
                    "width": w,
                    "linear_top1": frac(linear.get(w)),
                    "knn_top1": frac((knn or {}).get(w)),
                    "linear_top5": None,
                    "knn_top5": None,
                    "macs": None,
                    "params": None,
                }
                for w in widths
            ],
        )
        path = tmp_path / "accuracy.json"
        path.write_text(json.dumps(doc))
        return path

    return make


def calibrated_run(folder: Path, widths: tuple[float, ...], batch: int, model_name: str = "cifar_resnet18") -> Path:
    """A checkpoint run folder (seed 0) whose BN statistics, calibrated at ``widths`` on one random batch of
    ``batch`` images, are saved with ``save_bn_stats`` (bound to the saved weights)."""
    from us3l.eval.calibrate import save_bn_stats
    from us3l.models import create_model
    from us3l.slim import calibrating

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=0)
    for w in widths:
        with torch.no_grad(), calibrating(model, w):
            model(torch.randn(batch, 3, 32, 32))
    save_run(folder, model, model_name, input_size=32, method="simclr", data="synthetic")
    save_bn_stats(model, folder)
    return folder


def switchable_exports_of(
    run: Path, tmp_path_factory: pytest.TempPathFactory, **kwargs: Any
) -> Callable[..., Any]:
    """``get(backend, widths=None)``: ``export_switchable(run, backend, out, widths, **kwargs)``, made once per
    (backend, widths) for the fixture that holds ``get``; tests that edit its files work on a copy
    (``copy_artifact``)."""
    from us3l.deploy.switchable_export import export_switchable

    done: dict[tuple[str, tuple[float, ...] | None], Any] = {}

    def get(backend: str, widths: Sequence[float] | None = None) -> Any:
        key = (backend, None if widths is None else tuple(widths))
        if key not in done:
            done[key] = export_switchable(run, backend, tmp_path_factory.mktemp("switchable"),
                                          None if widths is None else list(widths), **kwargs)
        return done[key]

    return get


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cifar_resnet18 run folder with BN statistics (bound to its weights) at widths 0.25 and 1.0, shared by
    the test files that only read it: copy it before editing."""
    return calibrated_run(tmp_path_factory.mktemp("run"), (0.25, 1.0), batch=8)


@pytest.fixture(scope="session")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``run``'s width 0.25 exported to ONNX (an ``ExportResult``), shared: edit a ``copy_artifact`` of it."""
    from us3l.deploy.export import export_width

    return export_width(run, 0.25, "onnx", tmp_path_factory.mktemp("out"), device_name="cpu")


def copy_artifact(res: Any, tmp_path: Path) -> Path:
    """A copy of an exported artifact's folder (``ExportResult.directory``) under ``tmp_path``, to edit freely."""
    import shutil

    dst = tmp_path / res.directory.name
    shutil.copytree(res.directory, dst)
    return dst


def edit_manifest(d: Path, fn: Callable[[dict[str, Any]], Any]) -> Path:
    """Apply ``fn`` to the manifest of artifact folder ``d`` in place (a hand edit); return the manifest's path."""
    doc = json.loads((d / "manifest.json").read_text())
    fn(doc)
    (d / "manifest.json").write_text(json.dumps(doc))
    return d / "manifest.json"


def without_calibrated_bn(doc: dict[str, Any]) -> None:
    """Edit a one-width manifest (``edit_manifest``) into what an export of its width without calibrated BN statistics
    writes (placeholder statistics frozen, as a cifar_resnet18 width before ``us3l calibrate``): no BN record, and
    the BN kind (``model.bn_stats``, ``model.graph.bn``) that says so."""
    doc["source"]["bn_stats"] = None
    doc["model"]["bn_stats"] = "uncalibrated"
    doc["model"]["graph"]["bn"] = "frozen-uncalibrated"
