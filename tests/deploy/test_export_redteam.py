"""Red-team findings on ``us3l export``: a user's file or folder at an artifact path, batch sizes above the
verification batch, capped calibration sets, a repeated ``--backend``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from us3l.cli import main
from us3l.deploy import export as export_mod
from us3l.deploy.export import artifact_name, export_width
from us3l.errors import US3LError

from .conftest import latency

MODEL = "cifar_resnet18"


def _tiny() -> nn.Module:
    from us3l.models import create_model

    return create_model(MODEL, num_classes=0, base_channels=8)


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("export work started")


# ------------------------------------------------------------------------- a user's file or folder in the way


@pytest.mark.parametrize("kind", ["file", "folder", "other manifest"])
def test_a_user_file_or_folder_at_the_artifact_path_is_refused_before_any_work(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "cpu" / artifact_name(MODEL, 0.25, "onnx", "fp32")
    final.parent.mkdir()
    if kind == "file":
        final.write_text("results\n")
    else:
        final.mkdir()
        name = "notes.txt" if kind == "folder" else "manifest.json"  # a switchable export's manifest: another kind
        (final / name).write_text("notes\n" if kind == "folder" else '{"tool": "us3l", "kind": "switchable_manifest"}')
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    monkeypatch.setattr(export_mod, "build_deployable_graph", _no_work)
    with pytest.raises(US3LError, match=rf"^refusing to replace {final}: it is a (file|folder without a us3l "
                                        r"manifest.json of kind 'manifest'), not a previous us3l export; move it"):
        export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL, device_name="cpu")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_a_file_at_the_failed_path_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = tmp_path / "local" / f"{artifact_name(MODEL, 0.25, 'onnx', 'fp32')}.failed"
    failed.parent.mkdir()
    failed.write_text("mine\n")
    monkeypatch.setattr(export_mod, "build_deployable_graph", _no_work)
    with pytest.raises(US3LError, match="^refusing to replace .*onnx-fp32.failed: it is a file"):
        export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)
    assert failed.read_text() == "mine\n"


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_previous_export_is_replaced_and_a_link_is_replaced_not_its_target(tmp_path: Path) -> None:
    first = export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)
    second = export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)  # a previous us3l export: replaced
    assert second.valid and second.directory == first.directory
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("kept\n")
    link = tmp_path / "local" / artifact_name(MODEL, 0.5, "onnx", "fp32")
    link.symlink_to(mine, target_is_directory=True)
    res = export_width(_tiny(), 0.5, "onnx", tmp_path, model_name=MODEL)
    assert res.valid and not link.is_symlink() and (link / "manifest.json").is_file()
    assert (mine / "notes.txt").read_text() == "kept\n"  # the link went, its target stayed


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_previous_export_holding_a_users_file_is_refused_and_kept(tmp_path: Path) -> None:
    """Replacing a previous export deleted every file in its folder, the user's too (a selection copied there and
    passed back as --selection, notes): a previous export is replaced only while it holds nothing but what its
    manifest lists."""
    first = export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)
    assert sorted(p.name for p in first.directory.iterdir()) == ["manifest.json", "model.onnx"]  # listed, all
    (first.directory / "selection.json").write_text("{}\n")
    (first.directory / "README.txt").write_text("notes\n")
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    with pytest.raises(US3LError) as exc:
        export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)
    assert str(exc.value) == (
        f"refusing to replace {first.directory}: besides the previous us3l export it holds README.txt, "
        "selection.json, which its manifest.json does not list; move them away or choose another --out")
    assert {p.name: p.read_bytes() for p in first.directory.iterdir()} == before
    (first.directory / "README.txt").unlink()
    with pytest.raises(US3LError, match="it holds selection.json, which its manifest.json does not list; move it "):
        export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL)
    (first.directory / "selection.json").unlink()
    assert export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL).valid  # only ours again: replaced


def test_cli_refuses_a_user_folder_and_file_with_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "dl"
    folder = out / "local" / artifact_name(MODEL, 0.5, "onnx", "fp32")
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("notes\n")
    args = ["export", "--backend", "onnx", "--model", MODEL, "--out", str(out), "--quiet"]
    assert main([*args, "--width", "0.5"]) == 1
    assert capsys.readouterr().err == (
        f"error: refusing to replace {folder}: it is a folder without a us3l manifest.json of kind 'manifest', not "
        "a previous us3l export; move it away or choose another --out\n"
    )
    file = out / "local" / artifact_name(MODEL, 0.25, "onnx", "fp32")
    file.write_text("results\n")
    assert main([*args, "--width", "0.25"]) == 1
    assert capsys.readouterr().err.startswith(f"error: refusing to replace {file}: it is a file, not a previous")
    assert (folder / "notes.txt").read_text() == "notes\n" and file.read_text() == "results\n"


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_cli_selection_checks_every_device_before_the_first_export(write_profile, tmp_path: Path, capsys) -> None:
    profiles = [write_profile([{"width": 0.25, "latency": latency(1.0, 1.0, 1.0)}], device=d, model=MODEL)
                for d in ("cpu", "edge")]
    sel = tmp_path / "selection.json"
    assert main(["select", *[a for p in profiles for a in ("--profile", str(p))], "--latency-ms", "2",
                 "--out", str(sel)]) == 0
    out = tmp_path / "art"
    for device in ("cpu", "edge"):  # the user's file at whichever device comes second
        capsys.readouterr()
        blocked = out / device / artifact_name(MODEL, 0.25, "onnx", "fp32")
        blocked.parent.mkdir(parents=True)
        blocked.write_text("results\n")
        code = main(["export", "--backend", "onnx", "--selection", str(sel), "--model", MODEL, "--out", str(out)])
        assert code == 1 and f"error: refusing to replace {blocked}: it is a file" in capsys.readouterr().err
        assert sorted(p.name for p in out.rglob("*") if p.name != ".us3l.lock") == sorted([device, blocked.name])
        blocked.unlink()
        blocked.parent.rmdir()


def test_cli_switchable_refuses_a_user_file_before_any_work(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from us3l.deploy import switchable_export

    monkeypatch.setattr(switchable_export, "_widths", _no_work)
    blocked = tmp_path / "local" / switchable_export.artifact_name(MODEL, "onnx")
    blocked.parent.mkdir()
    blocked.write_text("results\n")
    code = main(["export", "--switchable", "--backend", "onnx", "--model", MODEL, "--widths", "1,0.5",
                 "--out", str(tmp_path)])
    assert code == 1 and capsys.readouterr().err.startswith(f"error: refusing to replace {blocked}: it is a file")
    assert blocked.read_text() == "results\n"


# ------------------------------------------------------------------------------------- batch above 8 images


def test_a_batch_above_the_verification_batch_exports(tmp_path: Path) -> None:
    res = export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL, batch=9)
    assert res.valid and res.verification.samples == 9 and res.manifest["input"]["shape"][0] == 9
    x, note = export_mod.verification_inputs((3, 3, 8, 8), {"mean": [0.5] * 3, "std": [0.25] * 3}, None)
    assert len(x) == export_mod.VERIFY_SAMPLES == 8 and "8 smooth random images" in note  # unchanged up to 8


def test_int8_verification_covers_a_batch_above_the_held_out_images() -> None:
    from us3l.deploy.quantize import VERIFY_IMAGES, CalibrationSet

    rng = np.random.default_rng(0)
    calib = CalibrationSet(rng.standard_normal((40, 3, 32, 32)).astype(np.float32), "provided array",
                           holdout=rng.standard_normal((VERIFY_IMAGES, 3, 32, 32)).astype(np.float32),
                           holdout_note="held out")
    src = export_mod._resolve_source(_tiny(), MODEL)
    for batch, n, what in ((8, VERIFY_IMAGES, "held out"), (VERIFY_IMAGES + 36, VERIFY_IMAGES + 36, "seeded")):
        _, x, note = export_mod._int8_inputs(src, 0.25, "onnx", (batch, 3, 32, 32), None, calib, 40, None, None)
        assert len(x) == n and note.startswith(what)


# ------------------------------------------------------------------------------- calibration set above the split


def test_calib_images_above_the_training_split_keep_64_held_out_and_say_so() -> None:
    from us3l.deploy.quantize import VERIFY_IMAGES, calibration_set, capped_size

    calib = calibration_set("builtin", 16, [0.5] * 3, [0.25] * 3, size=5000)
    assert calib.size == 2000 - VERIFY_IMAGES and calib.holdout is not None and len(calib.holdout) == VERIFY_IMAGES
    assert calib.note == (
        "--calib-images 5000 capped to 1936: the training split of builtin has 2000 images, 64 are held out to "
        "verify the INT8 artifact"
    )
    assert calib.describe()["note"] == calib.note
    assert capped_size(300, 2000, "builtin") == (300, None)
    size, note = capped_size(100, 80, "tiny")  # too small to hold any out: all of it, and verified on synthetic
    assert size == 80 and note is not None and "synthetic images" in note


def test_export_cli_prints_the_calibration_note_once() -> None:
    from types import SimpleNamespace

    from us3l.commands.export import _calibration_notes

    res = SimpleNamespace(manifest={"quantization": {"calibration": {"note": "capped"}}})
    fp32 = SimpleNamespace(manifest={})
    assert _calibration_notes([res, fp32, res]) == ["capped"]


# --------------------------------------------------------------------------------------------------- CLI


def test_a_repeated_backend_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code = main(["export", "--backend", "openvino", "--backend", "onnx", "--width", "0.5", "--model", MODEL,
                 "--out", str(tmp_path / "art")])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: export takes one --backend, got openvino, onnx: run us3l export once per backend\n"
    )
    assert not (tmp_path / "art").exists()


def test_a_missing_runtime_leaves_no_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-05: `export_width(..., "onnx", out)` without onnxruntime raised the right error but left an
    empty `out/` behind (the CLI cleaned up; the Python API did not)."""
    from us3l.deploy.backends import get_backend
    from us3l.errors import MissingDependencyError

    monkeypatch.setattr(type(get_backend("onnx")), "available", lambda self: False)
    with pytest.raises(MissingDependencyError, match="the 'onnx' deploy backend needs"):
        export_width(_tiny(), 0.25, "onnx", tmp_path / "out", model_name=MODEL)
    assert not (tmp_path / "out").exists()


def test_a_manifest_nested_too_deep_at_the_artifact_path_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest.json of arrays nested 10^5 deep at the artifact path raised RecursionError (red-team)."""
    final = tmp_path / "cpu" / artifact_name(MODEL, 0.25, "onnx", "fp32")
    final.mkdir(parents=True)
    (final / "manifest.json").write_text("[" * 100_000)
    monkeypatch.setattr(export_mod, "build_deployable_graph", _no_work)
    with pytest.raises(US3LError, match=rf"^refusing to replace {final}: it is a folder without a us3l"):
        export_width(_tiny(), 0.25, "onnx", tmp_path, model_name=MODEL, device_name="cpu")


def test_a_network_with_non_finite_weights_is_refused_as_such(tmp_path: Path) -> None:
    """Red-team: an export of NaN weights ended in 'not writing .../manifest.json: verification.max_abs_error is
    not a finite number', which named neither the cause nor the fix; nothing is left behind either way."""
    import torch

    model = _tiny()
    with torch.no_grad():
        model.conv1.weight.fill_(float("nan"))
    with pytest.raises(US3LError) as info:
        export_width(model, 0.25, "onnx", tmp_path, model_name=MODEL, device_name="cpu")
    assert str(info.value) == (
        "the network gives non-finite outputs (NaN or inf) in PyTorch: its weights or its BN statistics at this "
        "width are not finite (a diverged run?), so no export can be verified; export an earlier checkpoint or "
        "re-train")
    assert not any(p.is_file() and p.name != ".us3l.lock" for p in tmp_path.rglob("*"))
