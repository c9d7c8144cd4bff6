"""The profiler times exactly the graph ``us3l export`` ships (issue 18), with real onnxruntime sessions.

The bug this guards against: a width without BN statistics (a fresh model, or a checkpoint width that was not
calibrated) was profiled with batch-statistics BN -- BatchNormalization plus ReduceMean/Sub/Mul chains -- while
export froze BN and folded it into the convolutions, so the measured graph was 1.2-1.4x heavier than the shipped
one. Here the profiled ONNX graph (what ``run_sweep`` hands to the timers) and the exported one are compared
operator by operator, and by hash.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import onnx
import pytest
import torch

from us3l.cli import main
from us3l.deploy.graph import compare_graphs, fresh_model

FAST = ["--threads", "1", "--max-seconds", "0.2", "--target-ci", "0.2"]


def ops(path: Path) -> Counter[str]:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def means(counts: Counter[str]) -> int:
    """Mean reductions in a graph: the global pool is the only one once BN is frozen and folded (the TorchScript
    exporter writes it as GlobalAveragePool, the dynamo one as ReduceMean)."""
    return counts["ReduceMean"] + counts["GlobalAveragePool"]


ERR: list[str] = []  # stderr of the last cli_json call


def cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    ERR[:] = [cap.err]
    return json.loads(cap.out)


def cli_quiet(argv: list[str]) -> tuple[dict, str]:
    """``cli_json`` for module fixtures (no capsys there): (stdout JSON, stderr) of ``us3l ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv)
    assert rc == 0, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fresh seeded cifar_resnet18 at width 0.25 through the CLI, once for the tests below: profiled with onnx,
    selected from that profile, and exported from that selection (two exports, each a real run of the exporter)."""
    model, tmp = "cifar_resnet18", tmp_path_factory.mktemp("fresh")
    prof, _ = cli_quiet(["profile", "--device", "cpu", "--model", model, "--widths", "0.25", "--backend", "onnx",
                         "--out", str(tmp / "p"), "--json", *FAST])
    pfile = tmp / "p" / f"{model}-cpu-onnx-fp32.json"
    sel, _ = cli_quiet(["select", "--profile", str(pfile), "--macs", "1e12", "--out", str(tmp / "s.json"), "--json"])
    out, _ = cli_quiet(["export", "--model", model, "--selection", str(tmp / "s.json"), "--backend", "onnx",
                        "--out", str(tmp / "x"), "--json"])
    (exp,) = out["exports"]
    return {"model": model, "prof": prof, "pfile": pfile, "sel": sel, "selection": tmp / "s.json", "out": out,
            "mdir": Path(exp["directory"])}


def test_fresh_model_profiled_graph_is_the_exported_graph(fresh: dict) -> None:
    prof = fresh["prof"]
    (rec,) = prof["records"]
    assert rec["bn"] == "frozen-uncalibrated" and prof["init_seed"] == 0
    mdir = fresh["mdir"]
    assert mdir.name == f"{fresh['model']}-w0.25-onnx-fp32"
    manifest = json.loads((mdir / "manifest.json").read_text())
    exported = ops(mdir / "model.onnx")
    assert exported["BatchNormalization"] == 0 and means(exported) == 1  # BN folded; only the global pool
    # byte for byte: the graph the CLI profile timed (run_sweep's own builder, prepare_widths) is the shipped file,
    # written by a second, separate export -- so the two graphs have the same operators as well
    assert rec["graph_sha256"] == manifest["model"]["graph"]["graph_sha256"]
    assert rec["graph_structure_sha256"] == manifest["model"]["graph"]["graph_structure_sha256"]
    assert manifest["model"]["graph"]["bn"] == "frozen-uncalibrated" and manifest["source"]["init_seed"] == 0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small cifar_resnet18 checkpoint with calibrated BN statistics at width 1.0 only."""
    from tests.run_folders import save_run
    from us3l.eval.calibrate import save_bn_stats
    from us3l.slim import calibrating

    torch.manual_seed(0)
    net = fresh_model("cifar_resnet18", base_channels=8)
    with torch.no_grad(), calibrating(net, 1.0):
        net(torch.randn(8, 3, 16, 16))
    run = save_run(tmp_path_factory.mktemp("run"), net, "cifar_resnet18", {"base_channels": 8}, input_size=16)
    save_bn_stats(net, run)  # bound to the checkpoint just written
    return run


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_checkpoint_uncalibrated_width_is_profiled_frozen(run_dir: Path, tmp_path: Path, capsys) -> None:
    from us3l.checkpoint import load_backbone

    prof = cli_json(capsys, ["profile", "--device", "cpu", "--ckpt", str(run_dir), "--widths", "0.25,1.0",
                             "--backend", "onnx", "--out", str(tmp_path / "p"), "--json", *FAST])
    assert "1 of 2 widths have no calibrated BN statistics" in ERR[0]
    low, full = sorted(prof["records"], key=lambda r: r["width"])
    assert (low["bn"], full["bn"]) == ("frozen-uncalibrated", "calibrated")

    # export ships calibrated widths only; the calibrated one is byte-identical to its profiled graph
    cli_json(capsys, ["export", "--ckpt", str(run_dir), "--width", "1.0", "--backend", "onnx", "--out",
                      str(tmp_path / "x"), "--json"])
    mdir = tmp_path / "x" / "local" / "cifar_resnet18-w1-onnx-fp32"
    manifest = json.loads((mdir / "manifest.json").read_text())
    assert manifest["model"]["graph"]["graph_sha256"] == full["graph_sha256"]
    assert main(["export", "--ckpt", str(run_dir), "--width", "0.25", "--backend", "onnx", "--out",
                 str(tmp_path / "x")]) == 1
    assert "no calibrated BN statistics" in capsys.readouterr().err

    # once calibrated, the width exports with the structure that was profiled (other BN values: a note only)
    from us3l.deploy.export import export_width
    from us3l.slim import calibrating

    loaded = load_backbone(run_dir)
    with torch.no_grad(), calibrating(loaded.model, 0.25):
        loaded.model(torch.randn(8, 3, 16, 16))
    res = export_width(loaded, 0.25, "onnx", tmp_path / "y")
    g = res.manifest["model"]["graph"]
    assert g["bn"] == "calibrated" and g["graph_structure_sha256"] == low["graph_structure_sha256"]
    assert g["graph_sha256"] != low["graph_sha256"]
    # the structure hash covers every node (only initializer data is left out), so the uncalibrated width's
    # profiled graph has exactly these operators: BN frozen and folded (never batch statistics), the same
    # operators as the shipped width-1.0 file
    profiled_low = ops(res.directory / "model.onnx")
    assert profiled_low["BatchNormalization"] == 0 and means(profiled_low) == 1
    assert ops(mdir / "model.onnx") == profiled_low
    side = {"backend": "onnx", "precision": "fp32", "checkpoint_sha256": prof["checkpoint_sha256"]}
    warnings, notes = compare_graphs({**low, **side}, {**g, **side, "label": "w0.25"})
    assert warnings == [] and "same graph structure" in notes[0]


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_select_and_export_warn_on_a_graph_mismatch(fresh: dict, tmp_path: Path, capsys) -> None:
    model, sel, out = fresh["model"], fresh["sel"], fresh["out"]
    assert sel["warnings"] == [] and sel["devices"][0]["chosen"]["graph"]["graph_sha256"]
    assert out["warnings"] == [] and out["notes"] == []  # the same seeded weights: byte-identical, nothing to say
    # exported at another batch size: the latency was measured on another graph
    out = cli_json(capsys, ["export", "--model", model, "--selection", str(fresh["selection"]), "--backend", "onnx",
                            "--batch", "2", "--out", str(tmp_path / "x2"), "--json"])
    assert len(out["warnings"]) == 1 and "structure" in out["warnings"][0]
    assert "warning:" in ERR[0]
    # a profile from before graphs were recorded: select says so
    doc = json.loads(fresh["pfile"].read_text())
    for r in doc["records"]:
        for k in ("bn", "graph_sha256", "graph_structure_sha256"):
            r.pop(k)
    pfile = tmp_path / fresh["pfile"].name
    pfile.write_text(json.dumps(doc))
    sel = cli_json(capsys, ["select", "--profile", str(pfile), "--macs", "1e12", "--out", str(tmp_path / "s2.json"),
                            "--json"])
    assert len(sel["warnings"]) == 1 and "no graph hash" in sel["warnings"][0]
    assert "no graph hash" in ERR[0]
