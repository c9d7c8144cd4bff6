"""``us3l quickstart`` end to end with a tiny config: every file against its schema, ONNX parity, step reuse,
a tampered artifact re-exported, and (slow) Ctrl-C leaving nothing a re-run would trust."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from us3l.cli import main
from us3l.io import check_schema, read_json

TINY_CONFIG = """\
method: us3l
model: cifar_resnet18
model_kwargs: {base_channels: 8}
data: builtin
image_size: 8
epochs: 4
batch_size: 128
lr: 0.1
proj_hidden: 32
pred_hidden: 32
proj_dim: 16
knn_widths: [1.0, 0.25]
knn_k: 20
save_every: 2
threads: 1
quiet: true
"""

ARGS = ["--points", "3", "--max-seconds", "0.2", "--threads", "1"]


def _run(out: Path, config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    rc = main(["quickstart", "--config", str(config), "--out", str(out), *ARGS, *extra, "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out)  # --json: stdout holds exactly one JSON document


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qs-config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


def _check_every_file(out: Path, summary: dict) -> list[Path]:
    """Load every file the pipeline wrote with its own loader; return the artifact folders."""
    from us3l.checkpoint import read_meta
    from us3l.deploy.manifest import check_manifest, read_manifest
    from us3l.deploy.select import read_selection
    from us3l.eval.accuracy import load_accuracy
    from us3l.profiler.profile_file import load_profile

    meta = read_meta(out / "run" / "checkpoint.safetensors")
    assert meta["kind"] == "checkpoint" and meta["epoch"] == 4 and meta["model"] == "cifar_resnet18"
    acc = load_accuracy(out / "accuracy.json")
    widths = sorted(r["width"] for r in acc["widths"])
    assert widths[0] == 0.25 and widths[-1] == 1.0 and len(widths) >= 3
    assert all(0.0 <= r["knn_top1"] <= 1.0 for r in acc["widths"])
    profiles = sorted((out / "profiles").glob("*.json"))
    assert [p.name for p in profiles] == ["cifar_resnet18-cpu-onnx-fp32.json", "cifar_resnet18-cpu-openvino-fp32.json"]
    for p in profiles:
        prof = load_profile(p)
        assert sorted(r.width for r in prof.records) == widths  # the evaluated widths are the profiled ones
        assert all(r.latency.n >= 2 and r.latency.p50_ms > 0 for r in prof.records)
        assert prof.checkpoint_sha256 == acc["checkpoint"]["sha256"]
    sel = read_selection(out / "selection.json")
    assert {d["backend"] for d in sel["devices"]} == {"onnx", "openvino"}
    assert sel["budget"]["latency_ms"] == summary["budget_ms"] > 0
    dirs = sorted(p for p in (out / "artifacts" / "cpu").iterdir() if not p.name.startswith("."))
    assert len(dirs) == 2
    for d in dirs:
        man, directory = read_manifest(d)
        check_manifest(man, directory)  # valid, files present with their recorded sha256, runtime matches
        assert man["valid"] is True and man["verification"]["passed"] is True
        assert man["verification"]["max_abs_error"] <= man["verification"]["tolerance"]["max_abs"] == 1e-4
    summary_doc = read_json(out / "summary.json", "summary")
    check_schema(summary_doc, "quickstart", 1, out / "summary.json")
    assert summary_doc["selection"] == summary["selection"]
    html = (out / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "<img" in html
    leftovers = [p for p in out.rglob(".*") if p.name.endswith(".tmp") or ".staging-" in p.name]
    assert leftovers == []
    return dirs


@pytest.mark.slow  # three full quickstart runs, about a minute on 2 cores: CI runs it with `./test.sh -m slow`
def test_quickstart_end_to_end_files_parity_and_reuse(tmp_path: Path, tiny_config: Path, capsys) -> None:
    import onnxruntime as ort

    from us3l.checkpoint import load_backbone
    from us3l.deploy.manifest import read_manifest
    from us3l.slim import materialize

    out = tmp_path / "qs"
    summary = _run(out, tiny_config, capsys)
    assert [s["name"] for s in summary["steps"]] == ["train", "evaluate", "profile", "select", "export", "report"]
    assert all(s["status"] == "ran" for s in summary["steps"])
    dirs = _check_every_file(out, summary)

    # The exported ONNX file reproduces PyTorch at the chosen width (plain onnxruntime, no us3l runtime).
    onnx_dir = next(d for d in dirs if "-onnx-" in d.name)
    man, _ = read_manifest(onnx_dir)
    width = man["model"]["width"]
    chosen = next(s for s in summary["selection"] if s["backend"] == "onnx")
    assert width == chosen["width"]
    loaded = load_backbone(out / "run")
    static = materialize(loaded.model, width, require_bn_stats=True).eval()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = static(x).numpy()
    sess = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i : i + 1].numpy()})[0] for i in range(4)])
    norm = np.linalg.norm
    assert np.abs(got / norm(got, axis=1, keepdims=True) - ref / norm(ref, axis=1, keepdims=True)).max() <= 1e-4

    # A re-run reuses every finished step and selects the same widths.
    again = _run(out, tiny_config, capsys)
    assert {s["name"]: s["status"] for s in again["steps"]} == {
        "train": "reused", "evaluate": "reused", "profile": "reused", "select": "reused", "export": "reused",
        "report": "ran",
    }
    assert again["selection"] == summary["selection"]

    # A damaged artifact is not trusted: the re-run exports it again.
    (onnx_dir / "model.onnx").write_bytes(b"not an onnx model")
    third = _run(out, tiny_config, capsys)
    assert {s["name"]: s["status"] for s in third["steps"]}["export"] == "ran"
    _check_every_file(out, third)


def test_quickstart_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["quickstart", "--out", str(tmp_path), "--latency-ms", "-1"]) != 0
    err = capsys.readouterr().err
    assert err == "error: --latency-ms must be a finite positive number, got -1.0\n"
    assert main(["quickstart", "--out", str(tmp_path), "--backends", "tensorrt"]) != 0
    assert "not 'tensorrt'" in capsys.readouterr().err
    assert main(["quickstart", "--out", str(tmp_path), "--config", str(tmp_path / "missing.yaml")]) != 0
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_leaves_nothing_a_rerun_would_trust(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "us3l", "quickstart", "--config", str(tiny_config), "--out", str(out), *ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (out / "accuracy.json").is_file():  # interrupt during the profile step
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # no temporary or half-written file is left; what exists is complete
    assert [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".staging-" in p.name] == []
    for p in out.rglob("*.json"):
        read_json(p, "file")
    assert not (out / "selection.json").exists() and not (out / "summary.json").exists()
    # the re-run trusts the finished steps only and completes
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    steps = {s["name"]: s["status"] for s in json.loads(res.stdout)["steps"]}
    assert steps["train"] == "reused" and steps["evaluate"] == "reused" and steps["select"] == "ran"
