"""``us3l quickstart`` end to end with a tiny config: every file against its schema, ONNX parity, step reuse,
a tampered artifact re-exported, and (slow) Ctrl-C leaving nothing a re-run would trust."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.script_module import ROOT
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


HEADER_KEYS = ("kind", "schema_version", "tool", "tool_version", "environment")


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qs-config") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


def _check_every_file(out: Path, summary: dict) -> list[Path]:
    """Load every file the pipeline wrote with its own loader; return the artifact folders."""
    from us3l.checkpoint import read_meta
    from us3l.deploy.manifest import read_manifest, verify_manifest
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
    assert len(dirs) == 3 and [d.name.endswith("-int8") for d in dirs].count(True) == 1  # fp32 onnx, openvino; int8
    for d in dirs:
        man, directory = read_manifest(d)
        verify_manifest(man, directory)  # valid, files present with their recorded sha256, runtime matches
        assert man["valid"] is True and man["verification"]["passed"] is True
        if man["backend"]["precision"] == "fp32":
            assert man["verification"]["max_abs_error"] <= man["verification"]["tolerance"]["max_abs"] == 1e-4
        else:  # the INT8 line's artifact: the quantization tolerance, the default calibration set
            assert man["backend"]["name"] == "onnx" and man["quantization"]["calibration"]["size"] == 300
    summary_doc = read_json(out / "summary.json", "summary")
    check_schema(summary_doc, "quickstart", 1, out / "summary.json")
    assert summary_doc["selection"] == summary["selection"]
    readme_row = next(line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                      if line.startswith("| `quickstart/summary.json` |"))
    top_level = re.split(r"(?<!\\)\|", readme_row)[3]  # the cell: its escaped \| belongs to it
    while re.search(r"\{[^{}]*\}|\([^()]*\)", top_level):  # nested fields and remarks are not top-level keys
        top_level = re.sub(r"\{[^{}]*\}|\([^()]*\)", "", top_level)
    undocumented = [k for k in summary_doc if k not in HEADER_KEYS and not re.search(rf"\b{k}\b", top_level)]
    assert undocumented == [], "summary.json fields missing from the README's file-format table"
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
    assert [s["name"] for s in summary["steps"]] == [
        "train", "evaluate", "profile", "select", "export", "int8", "report"]
    assert all(s["status"] == "ran" for s in summary["steps"])
    dirs = _check_every_file(out, summary)

    # The INT8 line: the onnx choice as INT8 ONNX, timed beside its FP32 artifact, kNN beside FP32 PyTorch.
    from us3l.commands.quickstart import _print_summary, int8_line
    from us3l.eval.accuracy import load_accuracy

    e = summary["int8"]
    chosen_onnx = next(s for s in summary["selection"] if s["backend"] == "onnx")
    assert e["status"] == "ok" and e["backend"] == "onnx" and e["width"] == chosen_onnx["width"]
    assert Path(e["artifact"]).name == f"cifar_resnet18-w{e['width']:g}-onnx-int8"
    assert str(next(d for d in dirs if d.name.endswith("-int8"))) == e["artifact"]
    lat = e["latency"]
    assert lat["fp32_n"] >= 20 and lat["int8_n"] >= 20 and lat["ratio"] == lat["int8_p50_ms"] / lat["fp32_p50_ms"]
    row = next(r for r in load_accuracy(out / "accuracy.json")["widths"] if r["width"] == e["width"])
    assert e["fp32_knn_top1"] == row["knn_top1"]  # FP32 in the same run = the evaluate step's number
    assert e["knn_top1_drop"] == e["fp32_knn_top1"] - e["knn_top1"] and 0 <= e["prediction_agreement"] <= 1
    assert e["knn_top1_ci"][0] <= e["knn_top1"] <= e["knn_top1_ci"][1]
    _print_summary(summary)
    shown = capsys.readouterr().out.splitlines()
    assert int8_line(e) in shown and int8_line(e).startswith(f"INT8 (onnx, width {e['width']:g}, 300 calibration")

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
        "int8": "reused", "report": "ran",
    }
    assert again["selection"] == summary["selection"] and again["int8"] == summary["int8"]

    # A damaged artifact is not trusted: the re-run exports it again (--no-int8: no INT8 step this time).
    (onnx_dir / "model.onnx").write_bytes(b"not an onnx model")
    third = _run(out, tiny_config, capsys, "--no-int8")
    assert {s["name"]: s["status"] for s in third["steps"]}["export"] == "ran"
    assert "int8" not in {s["name"] for s in third["steps"]} and third["int8"] is None
    _check_every_file(out, third)

    # No width fits (exit 3), twice. Red-team 2026-12-05: report.html and summary.json kept the previous run's
    # answer beside the infeasible selection.json, and the second run reused that selection and exported width None
    # (a TypeError) instead of exiting 3.
    for _ in range(2):
        assert main(["quickstart", "--config", str(tiny_config), "--out", str(out), *ARGS, "--no-int8",
                     "--latency-ms", "1e-6"]) == 3
        err = capsys.readouterr().err
        assert "error: infeasible budget" in err and "TypeError" not in err
        assert read_json(out / "selection.json", "selection")["feasible"] is False
        doc = read_json(out / "summary.json", "summary")
        assert doc["budget_ms"] == 1e-6 and all(r["width"] is None for r in doc["selection"])
        assert doc["steps"][-1] == {"name": "select", "status": "no width fits", "seconds": 0.0,
                                    "outputs": [str(out / "selection.json")]}
        assert ": no width fits</h3>" in (out / "report.html").read_text()


@pytest.mark.slow  # a tiny quickstart up to select: CI runs it with `./test.sh -m slow`
def test_an_infeasible_quickstart_still_prints_its_summary(tmp_path: Path, tiny_config: Path, capsys) -> None:
    """No width fits (exit 3): summary.json and report.html were written, but stdout stayed empty: `--json` printed
    no document (select prints its selection on exit 3) and the tables, with the report's path, were not shown."""
    out = tmp_path / "qs"
    args = ["quickstart", "--config", str(tiny_config), "--out", str(out), *ARGS, "--no-int8", "--latency-ms", "1e-6"]
    assert main([*args, "--json"]) == 3
    captured = capsys.readouterr()
    assert "error: infeasible budget" in captured.err
    doc = json.loads(captured.out)  # exactly one JSON document: the summary.json just written
    assert doc == read_json(out / "summary.json", "summary")
    assert [r["width"] for r in doc["selection"]] == [None, None]
    assert main(args) == 3
    captured = capsys.readouterr()
    assert "us3l quickstart: cifar_resnet18" in captured.out and "selected width per backend" in captured.out
    assert f"quickstart report: {out / 'report.html'}" in captured.err
    assert captured.err.rstrip().splitlines()[-1].startswith("error: infeasible budget")


def _selection(monkeypatch: pytest.MonkeyPatch) -> None:
    select_mod = importlib.import_module("us3l.deploy.select")  # the module (us3l.deploy.select is the function)

    devices = [{"device": "cpu", "backend": "openvino", "model": "m", "chosen": {"width": 0.5}},
               {"device": "cpu", "backend": "onnx", "model": "m", "chosen": {"width": 0.25}}]
    monkeypatch.setattr(select_mod, "read_selection", lambda path: {"devices": devices})


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        ("us3l", "INT8 verification failed at width 0.25 [cosine 0.5 < 0.99]"),
        ("runtime", "RuntimeError: [ONNXRuntimeError] : 1 : FAIL (set US3L_DEBUG=1 for the traceback)"),
    ],
)
def test_a_failed_int8_step_is_a_warning_and_the_quickstart_goes_on(
    exc: str, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from us3l.commands import quickstart as qs
    from us3l.errors import US3LError

    _selection(monkeypatch)
    asked = []

    def export(run_dir, art_dir, device, model, w, backend, precision, force, network):  # the onnx choice, fp32, int8
        asked.append((device, model, w, backend, precision))
        if precision == "int8":
            if exc == "us3l":
                raise US3LError("INT8 verification failed at width 0.25 [cosine 0.5 < 0.99]")
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL")
        return "reused", tmp_path / "fp32"

    monkeypatch.setattr(qs, "_artifact", export)
    monkeypatch.delenv("US3L_DEBUG", raising=False)
    entry: dict = {}
    opts = qs.QuickstartOptions(out=tmp_path)
    run = qs._run_checkpoint(tmp_path / "run")
    assert qs._int8(opts, tmp_path / "run", tmp_path / "selection.json", tmp_path / "art", entry, run) == (
        "failed", [])
    assert asked == [("cpu", "m", 0.25, "onnx", "fp32"), ("cpu", "m", 0.25, "onnx", "int8")]
    assert entry == {"backend": "onnx", "device": "cpu", "width": 0.25, "status": "failed", "error": shown}
    assert capsys.readouterr().err == f"warning: INT8 line skipped, the quickstart goes on without it: {shown}\n"
    assert qs.int8_line(entry) is None  # no INT8 line on stdout
    if exc == "runtime":  # US3L_DEBUG=1 shows the traceback instead
        monkeypatch.setenv("US3L_DEBUG", "1")
        with pytest.raises(RuntimeError):
            qs._int8(opts, tmp_path / "run", tmp_path / "selection.json", tmp_path / "art", {}, run)


def test_int8_line() -> None:
    from us3l.commands.quickstart import int8_line

    e = {"status": "ok", "backend": "onnx", "width": 0.3438, "calibration": {"size": 300},
         "latency": {"int8_p50_ms": 0.1012, "fp32_p50_ms": 0.1634, "ratio": 0.1012 / 0.1634},
         "knn_top1": 0.348, "knn_top1_ci": [0.319, 0.378], "fp32_knn_top1": 0.351, "fp32_knn_top1_ci": [0.322, 0.381],
         "knn_top1_drop": 0.351 - 0.348, "prediction_agreement": 0.971}
    assert int8_line(e) == ("INT8 (onnx, width 0.3438, 300 calibration images): p50 0.101 ms vs 0.163 ms FP32 "
                            "(0.62x, timed interleaved); kNN top-1 34.8 ±3.0 vs 35.1 ±3.0 FP32 (-0.3 pts, "
                            "97.1% same predictions)")
    assert int8_line(None) is None and int8_line({"status": "failed", "error": "x"}) is None


def test_a_progress_line_with_a_long_path_is_not_wrapped(capsys, monkeypatch) -> None:
    """`quickstart report: <path>` on stderr: the console wrapped it at 160 columns when the path was long (a
    pytest worker's tmp folder), breaking the path a user copies."""
    from us3l.commands.quickstart import _say

    monkeypatch.setattr("us3l.cli_output._quiet", False)  # an earlier test's `--quiet` stays set in this process
    path = "/tmp/" + "/".join(["a-long-folder-name"] * 12) + "/report.html"
    _say(f"report: {path}")
    assert f"quickstart report: {path}\n" in capsys.readouterr().err


def test_quickstart_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["quickstart", "--out", str(tmp_path), "--latency-ms", "-1"]) != 0
    err = capsys.readouterr().err
    assert err == "error: --latency-ms must be a finite positive number, got -1.0\n"
    assert main(["quickstart", "--out", str(tmp_path), "--backends", "tensorrt"]) != 0
    assert "not 'tensorrt'" in capsys.readouterr().err
    assert main(["quickstart", "--out", str(tmp_path), "--config", str(tmp_path / "missing.yaml")]) != 0
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


def test_quickstart_evaluates_on_the_data_its_config_trained_on(tmp_path: Path, monkeypatch) -> None:
    """Red-team 2026-12-05: with ``--config`` training on ``folder:PATH`` the evaluate step stopped after training
    with ``error: --data is required`` (quickstart has no --data)."""
    from types import SimpleNamespace

    import us3l.commands.quickstart as qs
    import us3l.eval.accuracy as accuracy
    import us3l.eval.runner as runner

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(b"weights")
    seen: list = []
    monkeypatch.setattr(runner, "open_checkpoint",
                        lambda path: SimpleNamespace(meta={"data": {"spec": "folder:/images", "num_classes": 3}}))
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda loaded, data, *a, **k: seen.append(data) or {})
    monkeypatch.setattr(accuracy, "save_accuracy", lambda doc, path: path)
    assert qs._evaluate(run, tmp_path / "accuracy.json", [1.0], force=True)[0] == "ran"
    assert seen == ["folder:/images"]


def test_quickstart_checks_its_data_before_training(tmp_path: Path, monkeypatch) -> None:
    """As `us3l train`: a first image that does not decode is one line before any training (quickstart called the
    training loop directly, which met it at the first batch, after building the model and the run folder)."""
    import us3l.commands.quickstart as qs
    import us3l.train.loop as loop
    from us3l.errors import US3LError

    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "images" / split / name).mkdir(parents=True)
            (tmp_path / "images" / split / name / "0.png").write_bytes(b"not a png")
    config = tmp_path / "c.yaml"
    config.write_text(f"data: folder:{tmp_path / 'images'}\n")
    monkeypatch.setattr(loop, "run_training", lambda *a, **k: pytest.fail("trained on data that does not decode"))
    with pytest.raises(US3LError, match=r"0\.png"):
        qs._train(qs.QuickstartOptions(out=tmp_path, config=config), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_of_other_settings_is_not_replaced_silently(tmp_path: Path, monkeypatch, capsys) -> None:
    """Red-team 2026-12-05: ``quickstart --out`` a folder whose run/ was trained with other settings (e.g. the
    step-by-step flow's ``us3l train --out run``) retrained over it without a word."""
    from types import SimpleNamespace

    import us3l.commands.quickstart as qs
    import us3l.train.loop as loop
    from us3l.io import atomic_write_json
    from us3l.train.config import resolve_config

    run = tmp_path / "run"
    saved = resolve_config(None, {"out": str(run), "epochs": 48}).to_dict()
    atomic_write_json(run / "checkpoint.json", {"config": saved, "epoch": 48})
    calls: list = []
    monkeypatch.setattr(loop, "run_training", lambda cfg, **kw: calls.append(kw) or SimpleNamespace(status="completed"))
    assert qs._train(qs.QuickstartOptions(out=tmp_path, epochs=8), run) == ("ran", [str(run)])
    assert [{k: v for k, v in kw.items() if k != "loaded"} for kw in calls] == [{"resume": False, "overwrite": True}]
    err = " ".join(capsys.readouterr().err.split())
    assert f"warning: {run} holds a run trained with other settings (epochs 48 -> 8); training a new one replaces " \
           "it (keep it: Ctrl-C now, or choose another --out)" in err
    qs._train(qs.QuickstartOptions(out=tmp_path, epochs=8, force=True), run)  # --force: asked for
    assert "warning" not in capsys.readouterr().err


def test_quickstart_backend_names_as_elsewhere(tmp_path: Path, capsys, monkeypatch) -> None:
    """Red-team 2026-12-05: ``--backend ONNX`` (or ``ort``) was refused although names are read in any case and
    aliases everywhere else, and ``--backend onnx,onnx`` ran the whole pipeline with one backend twice."""
    import us3l.commands.quickstart as qs

    seen: list = []

    def stop(opts: qs.QuickstartOptions) -> dict:
        seen.append(opts.backends)
        raise qs.US3LError("stopped before any work")

    monkeypatch.setattr(qs, "run_quickstart", stop)
    assert main(["quickstart", "--out", str(tmp_path), "--backend", "ONNX,ov"]) == 1
    assert seen == [("onnx", "openvino")]
    capsys.readouterr()
    assert main(["quickstart", "--out", str(tmp_path), "--backend", "onnx,ort", "--latency-ms", "1"]) == 1
    assert seen[-1] == ("onnx", "onnx")
    with pytest.raises(qs.US3LError, match=r"^--backend lists onnx more than once, got 'onnx, onnx'$"):
        qs.check_options(qs.QuickstartOptions(out=tmp_path, backends=("onnx", "onnx")))


def test_quickstart_refuses_files_of_the_users_before_any_work(tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: a report.html (or summary.json) of the user's in --out was replaced after minutes of
    training; a file given as --out was only refused by the lock."""
    page = tmp_path / "report.html"
    page.write_text("<html>my notes</html>")
    assert main(["quickstart", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"error: refusing to replace {page}: it is not a us3l report; "
                                       "choose another --out\n")
    page.unlink()
    (tmp_path / "summary.json").write_text('{"kind": "mine"}')
    assert main(["quickstart", "--out", str(tmp_path)]) == 1
    assert "it is not a us3l quickstart summary" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and (tmp_path / "summary.json").read_text() == '{"kind": "mine"}'
    assert main(["quickstart", "--out", str(tmp_path / "summary.json")]) == 1
    assert capsys.readouterr().err == f"error: --out must be a folder, got the file {tmp_path / 'summary.json'}\n"


@pytest.mark.slow
def test_ctrl_c_leaves_nothing_a_rerun_would_trust(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "us3l", "quickstart", "--config", str(tiny_config), "--out", str(out), *ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as a terminal delivers it: SIGINT at its default disposition in the child whatever this process
    # inherited. A shell without job control starts background jobs (`cmd &`) with SIGINT ignored, that is
    # inherited across exec, and Python then never installs its KeyboardInterrupt handler: run that way, the
    # quickstart rightly ignored the signal and this test failed (2026-12-02).
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # stderr is read as it comes, each line stamped, so that a failure shows which step the signal landed in
    t0 = time.monotonic()
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(f"{time.monotonic() - t0:7.2f}s {line}" for line in proc.stderr), daemon=True
    )
    reader.start()
    deadline = t0 + 300
    while not (out / "accuracy.json").is_file():  # interrupt during the profile step
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    sent = time.monotonic() - t0
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    err = "".join(lines)
    assert proc.returncode == 130, f"SIGINT sent at {sent:.2f}s\n{err}"
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


@pytest.mark.parametrize("budget", [None, "x"])
def test_a_selection_with_a_damaged_budget_is_selected_again_not_a_crash(budget: object, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team: quickstart's reuse check read `old["budget"].get(...)`, so a selection.json with `"budget": null`
    (read_selection accepts it) ended the quickstart in 'error: AttributeError' instead of selecting again."""
    import json

    from us3l.commands import quickstart as qs

    select_mod = importlib.import_module("us3l.deploy.select")
    prof, acc, sel = tmp_path / "p.json", tmp_path / "accuracy.json", tmp_path / "selection.json"
    prof.write_text("{}")
    acc.write_text("{}")
    doc = {"kind": "selection", "schema_version": 1, "budget": budget,
           "inputs": {"profiles": [{"path": str(prof), "sha256": qs.file_sha256(prof)}],
                      "accuracy": {"path": str(acc), "sha256": qs.file_sha256(acc)}},
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32", "chosen": None,
                        "decided_by": "x"}]}
    sel.write_text(json.dumps(doc))
    made: list[object] = []

    class Chosen:
        def raise_if_infeasible(self) -> None:
            pass

    monkeypatch.setattr(select_mod, "select", lambda *a, **k: made.append(a) or Chosen())
    monkeypatch.setattr(select_mod, "write_selection", lambda *a: None)
    assert qs._select([prof], acc, sel, 5.0, False) == ("ran", [str(sel)]) and len(made) == 1


@pytest.mark.parametrize("threads", [0, 65537, 1.5, True])
def test_quickstart_options_word_a_bad_thread_count_as_every_number(tmp_path: Path, threads: object) -> None:
    """QuickstartOptions(threads=1.5) (or True) passed the two hand-written bounds and reached torch; 0 and 65537
    were worded apart from every other number check (``us3l.validate.number``)."""
    import us3l.commands.quickstart as qs

    with pytest.raises(qs.US3LError, match=r"^--threads must be a finite positive integer <= 65536, got "):
        qs.check_options(qs.QuickstartOptions(out=tmp_path, threads=threads))  # type: ignore[arg-type]


def test_a_selection_recorded_relative_to_its_folder_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A written selection records its inputs relative to its own folder (``inputs.relative_to``): quickstart's
    reuse check finds them there, from whatever folder quickstart runs in."""
    import json

    from us3l.commands import quickstart as qs

    select_mod = importlib.import_module("us3l.deploy.select")
    (tmp_path / "profiles").mkdir()
    prof, acc, sel = tmp_path / "profiles" / "p.json", tmp_path / "accuracy.json", tmp_path / "selection.json"
    prof.write_text("{}")
    acc.write_text("{}")
    doc = {"kind": "selection", "schema_version": 1, "budget": {"latency_ms": 5.0}, "feasible": True,
           "inputs": {"profiles": [{"path": "profiles/p.json", "sha256": qs.file_sha256(prof)}],
                      "accuracy": {"path": "accuracy.json", "sha256": qs.file_sha256(acc)}, "relative_to": "file"},
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32", "chosen": None,
                        "decided_by": "x"}]}
    sel.write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setattr(select_mod, "select", lambda *a, **k: pytest.fail("selected again"))
    assert qs._select([prof], acc, sel, 5.0, False) == ("reused", [str(sel)])


def test_quickstart_evaluates_again_after_the_run_was_recalibrated(tmp_path: Path, monkeypatch) -> None:
    """Red-team 2026-12-08: after `us3l calibrate` with other settings, a re-run reused accuracy.json (measured
    with the statistics replaced since) while its export step shipped the new ones: the summary's and the page's
    accuracies described other networks than the artifacts."""
    from types import SimpleNamespace

    import torch
    from safetensors.torch import save_file

    import us3l.commands.quickstart as qs
    import us3l.eval.runner as runner
    from tests.report.conftest import WIDTHS, accuracy_v2
    from us3l.eval.accuracy import save_accuracy
    from us3l.eval.calibrate import CalibrationSettings
    from us3l.io import file_sha256

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(b"weights")
    sha = file_sha256(run / "checkpoint.safetensors")
    settings = CalibrationSettings(batches=2, batch_size=128, data="builtin").to_dict()
    doc = accuracy_v2()
    doc.update(checkpoint={**doc["checkpoint"], "sha256": sha}, checkpoint_sha256=sha, calibration=settings)
    acc = save_accuracy(doc, tmp_path / "accuracy.json")

    def stats(batches: int) -> None:
        meta = {k: str(v) for k, v in {**settings, "batches": batches}.items()}
        save_file({"1.0000/bn.mean": torch.zeros(2)}, str(run / "bn_stats.safetensors"),
                  metadata={**meta, "checkpoint_sha256": sha})

    monkeypatch.setattr(runner, "open_checkpoint", lambda path: SimpleNamespace(meta={}))
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda *a, **k: doc)
    stats(2)
    assert qs._evaluate(run, acc, list(WIDTHS), force=False)[0] == "reused"
    stats(1)  # recalibrated since
    assert qs._evaluate(run, acc, list(WIDTHS), force=False)[0] == "ran"


def test_quickstart_profiles_again_after_the_run_was_recalibrated(tmp_path: Path, monkeypatch, capsys) -> None:
    """Review 2026-12-08: a re-run reused a profile whenever its checkpoint sha256 and widths matched, also after
    `us3l calibrate` had replaced the BN statistics its graphs fold in: the export step then shipped graphs other
    than the profiled ones (export's "not byte-identical to the profiled one"). The profile records each width's
    statistics now; other ones (or none recorded) profile again, as the accuracy step evaluates again."""
    from types import SimpleNamespace

    import us3l.commands.quickstart as qs
    import us3l.profiler.sweep as sweep
    from tests.eval.conftest import SIZE, TINY, tiny_model
    from tests.report.conftest import make_profile
    from tests.run_folders import save_run
    from us3l.profiler.profile_file import load_profile

    run = save_run(tmp_path / "run", tiny_model(), "cifar_resnet18", TINY, input_size=SIZE,
                   data={"spec": "builtin", "name": "test"})
    widths = [0.25, 0.5, 0.75, 1.0]
    sweeps: list[list[float]] = []

    def fake_sweep(model, name, ws, spec, size, *, backend, checkpoint_sha256, **kw):
        sweeps.append(list(ws))
        prof = load_profile(make_profile(tmp_path / "made", backend=backend, model=name))
        return dataclasses.replace(prof, checkpoint_sha256=checkpoint_sha256)

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    opts = SimpleNamespace(backends=("onnx",), force=False, max_seconds=1.0, threads=None)
    calibrate = ["calibrate", "--ckpt", str(run), "--widths", "1,0.5", "--quiet"]
    assert main([*calibrate, "--batches", "1"]) == 0
    assert qs._profile(opts, run, widths, tmp_path / "profiles")[0] == "ran"
    path = tmp_path / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    recorded = load_profile(path).extra[qs.PROFILED_BN_STATS]
    assert recorded["0.2500"] is None and isinstance(recorded["1.0000"], str)  # 0.25 uncalibrated
    assert qs._profile(opts, run, widths, tmp_path / "profiles")[0] == "reused"
    assert main([*calibrate, "--batches", "2"]) == 0  # other settings: the statistics replaced, same weights
    capsys.readouterr()
    assert qs._profile(opts, run, widths, tmp_path / "profiles")[0] == "ran"
    assert load_profile(path).extra[qs.PROFILED_BN_STATS]["1.0000"] != recorded["1.0000"]
    assert qs._profile(opts, run, widths, tmp_path / "profiles")[0] == "reused"
    doc = json.loads(path.read_text())
    del doc["extra"][qs.PROFILED_BN_STATS]  # a profile quickstart wrote before it recorded them
    path.write_text(json.dumps(doc))
    assert qs._profile(opts, run, widths, tmp_path / "profiles")[0] == "ran"
    assert len(sweeps) == 3


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
@pytest.mark.slow  # 2.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_export_and_int8_steps_load_the_run_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reuse check of the export and INT8 steps (two reused exports, the INT8 line's FP32 artifact) loaded the
    run's checkpoint again to check the artifact's graph against it: three loads of the same network, now one.
    Training, evaluation, profiling, selection and the report are stubbed; the reuse checks are real (a calibrated
    run, its width 0.25 exported to onnx and openvino), and the INT8 export is refused, as a failed INT8 export is."""
    from tests.deploy.conftest import calibrated_run
    from us3l import checkpoint
    from us3l.commands import quickstart as qs
    from us3l.deploy import export
    from us3l.errors import US3LError

    out = tmp_path / "qs"
    run = calibrated_run(out / "run", (0.25,), batch=16)
    for backend in ("onnx", "openvino"):
        export.export_width(run, 0.25, backend, out / "artifacts", device_name="cpu")
    select_mod = importlib.import_module("us3l.deploy.select")
    monkeypatch.setattr(select_mod, "read_selection", lambda path: {"devices": [
        {"device": "cpu", "backend": b, "model": "cifar_resnet18", "chosen": {"width": 0.25}} for b in ("onnx",
                                                                                                      "openvino")]})
    for step in ("_train", "_evaluate", "_profile", "_select"):
        monkeypatch.setattr(qs, step, lambda *a, **k: ("reused", []))
    monkeypatch.setattr(qs, "_widths", lambda *a: [0.25])
    monkeypatch.setattr(qs, "_write_report", lambda out: out / "report.html")
    monkeypatch.setattr("us3l.report.write_report", lambda out: out / "report.html")
    steps: dict[str, str] = {}
    monkeypatch.setattr(qs, "_summary", lambda out, meta, budget, logs, *a: steps.update(
        (s.name, s.status) for s in logs) or {})

    def no_int8(*args, precision=None, **kwargs):
        assert precision == "int8", "the fp32 artifacts were not reused"
        raise US3LError("no INT8 export in this test")

    monkeypatch.setattr(export, "export_width", no_int8)
    loads = []
    real_load = checkpoint.load_backbone
    monkeypatch.setattr(checkpoint, "load_backbone", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    opts = qs.QuickstartOptions(out=out, latency_ms=1.0)
    qs._run_pipeline(opts)
    assert steps["export"] == "reused" and steps["int8"] == "failed"
    assert len(loads) == 1


@pytest.mark.slow  # 2.7 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_step_warns_as_us3l_report_does_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The report step printed only some of `us3l report`'s warnings (unchecked widths, unrendered sections), from a
    list of its own: accuracies measured on data changed since training, and unreadable files, went unsaid on the
    terminal. Both print ``Report.warnings`` now; the pipeline renders the page twice and warns once. Every step but
    the report is stubbed; the folder is a pipeline folder with such an accuracy.json and a broken profile."""
    from tests.report.conftest import make_accuracy, make_manifest, make_profile, make_run, make_selection
    from us3l.commands import quickstart as qs
    from us3l.eval.accuracy import save_accuracy
    from us3l.report.data_check import CHANGED_NOTE

    out = tmp_path / "qs"
    make_run(out)
    acc = make_accuracy(out)
    doc = json.loads(acc.read_text())
    doc["data_check"] = {"fingerprint": "v1:" + "0" * 64, "changed_since_training": True, "train_test_overlaps": 0}
    save_accuracy(doc, acc)
    make_profile(out, "onnx")
    (out / "profiles" / "broken.json").write_text("{not json", encoding="utf-8")
    make_selection(out)
    make_manifest(out)
    assert main(["report", str(out), "--quiet"]) == 0
    expected = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert f"warning: {acc}: {CHANGED_NOTE}" in expected
    assert any("broken.json" in line for line in expected)  # the unreadable file

    for step in ("_train", "_evaluate", "_profile", "_select", "_export"):
        monkeypatch.setattr(qs, step, lambda *a, **k: ("reused", []))
    monkeypatch.setattr(qs, "_widths", lambda *a: [0.25, 1.0])
    qs._run_pipeline(qs.QuickstartOptions(out=out, latency_ms=1.0, backends=("onnx",), int8=False))
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")] == expected
