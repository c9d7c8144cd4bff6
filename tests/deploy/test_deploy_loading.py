"""``us3l.deploy.load`` loads only the hashed file of the manifest, checks what the caller expects, and quickstart's
export reuse re-verifies the artifact it would export now (issue 11.4). Real onnxruntime sessions."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.deploy.conftest import copy_artifact, edit_manifest
from us3l import deploy
from us3l.deploy.export import ExportResult, artifact_name, export_width
from us3l.errors import US3LError
from us3l.io import file_sha256, header

MODEL = "cifar_resnet18"
SHAPE = (1, 3, 32, 32)


def _one_line(exc: pytest.ExceptionInfo[US3LError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "manifest.json" in text
    return text


def test_expected_model_width_shape_and_checkpoint_load(exported: ExportResult, run: Path) -> None:
    sha = file_sha256(run / "checkpoint.safetensors")
    x = np.zeros(SHAPE, dtype=np.float32)
    with deploy.load(exported.directory, model=MODEL, width=0.25, input_shape=SHAPE, checkpoint_sha256=sha) as r:
        assert r.infer(x).shape[0] == 1
    with deploy.load(exported.directory, input_shape=(None, 3, 32, 32)) as r:
        assert r.manifest["model"]["width"] == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "mobilenet_v2"}, r"model 'cifar_resnet18', expected 'mobilenet_v2'"),
        ({"width": 0.5}, r"width 0.25, expected 0.5"),
        ({"input_shape": (1, 3, 64, 64)}, r"input shape \[1, 3, 32, 32\], expected \[1, 3, 64, 64\]"),
        ({"input_shape": (8, 3, 32, 32)}, r"input shape"),
        ({"checkpoint_sha256": "0" * 64}, r"checkpoint sha256 .*expected 000000000000"),
    ],
)
def test_unexpected_artifact_is_refused(exported: ExportResult, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(US3LError, match=rf"not the expected artifact \({message}") as exc:
        deploy.load(exported.directory, **kwargs)
    assert "re-export" in _one_line(exc)


def test_an_expected_width_is_matched_as_select_matches_widths() -> None:
    """Red-team 2026-12-06 (rtL): load(width=0.78125) (25/32) refused an artifact exported at the grid width 0.7813
    that us3l select chose ('width 0.7813, expected 0.78125'): 0.78125 rounds half to even to 0.7812."""
    from us3l.deploy.manifest import check_expected

    for got, want in ((0.7813, 0.78125), (0.78125, 0.7813), (0.78125, 0.78125), (0.25, 0.25001)):
        check_expected({"model": {"width": got}}, Path("m.json"), width=want)
    with pytest.raises(US3LError, match=r"^m.json: not the expected artifact \(width 0.7814, expected 0.78125\)"):
        check_expected({"model": {"width": 0.7814}}, Path("m.json"), width=0.78125)


def test_unlisted_file_is_never_loaded(exported: ExportResult, tmp_path: Path) -> None:
    d = copy_artifact(exported, tmp_path)
    (d / "evil.onnx").write_bytes(b"not what the manifest hashed")
    edit_manifest(d, lambda doc: doc["artifact"].__setitem__("file", "evil.onnx"))
    with pytest.raises(US3LError, match=r"artifact.file 'evil.onnx' is not among the hashed artifact files") as exc:
        deploy.load(d)
    _one_line(exc)


def test_listed_file_must_match_the_artifact_hash(exported: ExportResult, tmp_path: Path) -> None:
    d = copy_artifact(exported, tmp_path)
    (d / "evil.onnx").write_bytes(b"evil")

    def add(doc: dict[str, Any]) -> None:
        doc["artifact"]["files"]["evil.onnx"] = file_sha256(d / "evil.onnx")
        doc["artifact"]["file"] = "evil.onnx"

    edit_manifest(d, add)
    with pytest.raises(US3LError, match=r"artifact.sha256 differs from the hash listed for evil.onnx"):
        deploy.load(d)


@pytest.mark.parametrize("name", ["../model.onnx", "/tmp/model.onnx", "sub/model.onnx", "./model.onnx", ""])
def test_artifact_file_must_be_a_plain_name_inside_the_folder(
    exported: ExportResult, tmp_path: Path, name: str
) -> None:
    d = copy_artifact(exported, tmp_path)
    edit_manifest(d, lambda doc: doc["artifact"].__setitem__("file", name))
    with pytest.raises(US3LError, match=r"artifact.file .*(outside the artifact folder|not a .*file name)") as exc:
        deploy.load(d)
    _one_line(exc)


def test_listed_files_outside_the_folder_or_links_are_refused(exported: ExportResult, tmp_path: Path) -> None:
    d = copy_artifact(exported, tmp_path / "a")
    outside = tmp_path / "model.onnx"
    shutil.copy(d / "model.onnx", outside)

    def escape(doc: dict[str, Any]) -> None:
        doc["artifact"]["files"]["../model.onnx"] = file_sha256(outside)

    edit_manifest(d, escape)
    with pytest.raises(US3LError, match=r"'\.\./model\.onnx' points outside the artifact folder"):
        deploy.load(d)

    d = copy_artifact(exported, tmp_path / "b")
    (d / "model.onnx").unlink()
    (d / "model.onnx").symlink_to(outside)  # same bytes, same hash, but not the file that was verified
    with pytest.raises(US3LError, match=r"artifact file model.onnx is a link"):
        deploy.load(d)


# ------------------------------------------------------------------------------------------ quickstart reuse


def _selection(path: Path, width: float) -> Path:
    doc = header("selection", 1)
    doc["devices"] = [
        {
            "device": "cpu",
            "model": MODEL,
            "backend": "onnx",
            "precision": "fp32",
            "chosen": {"width": width, "latency_ms": 1.0, "accuracy": 0.5},
            "runner_up": None,
        }
    ]
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture()
def quickstart_exports(exported: ExportResult, run: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Quickstart's export step gets a copy of the module's real, verified export of the same (run, width 0.25,
    onnx, fp32, cpu) instead of exporting it again; returns the folders it was asked to export into. What the test
    below checks is the decision to reuse or redo -- the export itself is checked by the other tests here."""
    import us3l.deploy.export as export_mod

    calls: list[Path] = []

    def export_copy(run_dir: Path, w: float, backend: str, art_dir: Path, precision: str = "fp32",
                    device_name: str = "local") -> ExportResult:
        assert (run_dir, w, backend, precision, device_name) == (run, 0.25, "onnx", "fp32", "cpu")
        dst = Path(art_dir) / device_name / exported.directory.name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(exported.directory, dst)
        calls.append(dst)
        return dataclasses.replace(exported, directory=dst, manifest_path=dst / "manifest.json")

    monkeypatch.setattr(export_mod, "export_width", export_copy)
    return calls


@pytest.mark.slow  # 2.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_quickstart_reuse_reverifies_the_artifact(
    run: Path, tmp_path: Path, quickstart_exports: list[Path]
) -> None:
    from us3l.commands.quickstart import _export, _run_checkpoint

    sel = _selection(tmp_path / "selection.json", 0.25)
    art = tmp_path / "artifacts"
    status, (out,) = _export(run, sel, art, False, _run_checkpoint(run))
    assert status == "ran" and Path(out).name == artifact_name(MODEL, 0.25, "onnx", "fp32")
    assert quickstart_exports == [Path(out)]
    assert _export(run, sel, art, False, _run_checkpoint(run))[0] == "reused"
    assert len(quickstart_exports) == 1  # reused: nothing exported

    # the folder replaced by a valid, verified export of another width: not reused
    other = export_width(run, 1.0, "onnx", tmp_path / "other", device_name="cpu")  # the real export, imported above
    shutil.rmtree(out)
    shutil.copytree(other.directory, out)
    assert _export(run, sel, art, False, _run_checkpoint(run))[0] == "ran"
    assert json.loads((Path(out) / "manifest.json").read_text())["model"]["width"] == 0.25

    # an unlisted file swapped in as the artifact: not reused
    (Path(out) / "evil.onnx").write_bytes(b"evil")
    edit_manifest(Path(out), lambda doc: doc["artifact"].__setitem__("file", "evil.onnx"))
    assert _export(run, sel, art, False, _run_checkpoint(run))[0] == "ran"

    # one byte flipped in the model: not reused
    model = Path(out) / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    assert _export(run, sel, art, False, _run_checkpoint(run))[0] == "ran"
    assert quickstart_exports == [Path(out)] * 4  # every refused reuse exported again, into the same folder
    with deploy.load(out, model=MODEL, width=0.25, input_shape=SHAPE) as r:
        assert np.isfinite(r.infer(np.zeros(SHAPE, dtype=np.float32))).all()


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_quickstart_does_not_reuse_another_width_relabelled(
    run: Path, tmp_path: Path, quickstart_exports: list[Path]
) -> None:
    """Audit 2026-12-07: the folder of width 0.25 holding the export of width 1 whose manifest was edited to say 0.25
    (its canonical width, output size and channels too, and model.model_kwargs gone, as a manifest written before it
    was recorded) passed every reuse check, and quickstart shipped and timed width 1 as the selected 0.25. The graph's
    layers are compared with the run's network at the width: exported again."""
    from us3l.commands.quickstart import _export, _run_checkpoint

    sel = _selection(tmp_path / "selection.json", 0.25)
    art = tmp_path / "artifacts"
    _, (out,) = _export(run, sel, art, False, _run_checkpoint(run))
    wanted = json.loads((Path(out) / "manifest.json").read_text())["model"]
    other = export_width(run, 1.0, "onnx", tmp_path / "other", device_name="cpu")
    shutil.rmtree(out)
    shutil.copytree(other.directory, out)

    def relabel(doc: dict[str, Any]) -> None:
        doc["model"].update({k: wanted[k] for k in ("width", "canonical_width", "feature_dim", "channel_config")})
        doc["model"].pop("model_kwargs", None)

    edit_manifest(Path(out), relabel)
    assert _export(run, sel, art, False, _run_checkpoint(run))[0] == "ran"
    assert quickstart_exports == [Path(out)] * 2


def test_a_wrong_input_shape_is_one_line_naming_both_shapes(exported: ExportResult) -> None:
    """Red-team 2026-12-05: onnxruntime's three-line INVALID_ARGUMENT text reached the caller."""
    with deploy.load(exported.directory) as runner:
        assert runner.infer(np.zeros(SHAPE, np.float32)).shape[0] == 1
        with pytest.raises(US3LError) as info:
            runner.infer(np.zeros((1, 3, 16, 16), np.float32))
    assert str(info.value) == "input of shape 1x3x16x16 does not fit this artifact's input 1x3x32x32 (NCHW, float32)"


def test_the_package_attribute_select_is_the_function_whatever_was_imported_first() -> None:
    """Red-team 2026-12-05: importing the submodule us3l.deploy.select replaced the lazily returned function."""
    import subprocess
    import sys

    code = ("import us3l.deploy as d; f = d.select; import us3l.deploy.select; from us3l.deploy import select; "
            "assert callable(d.select) and select is f and {'select', 'export_width'} <= set(dir(d))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_file_of_the_export_folder_is_refused_naming_the_folder(exported: ExportResult) -> None:
    """Red-team 2026-12-05 (rtA): deploy.load(".../model.onnx") read the model as a manifest: 'is not UTF-8 text'."""
    from us3l.deploy.switchable_runtime import load_switchable

    model = exported.directory / "model.onnx"
    message = f"^{re.escape(f'{model} is a file of the export folder {exported.directory}: pass the folder')}"
    with pytest.raises(US3LError, match=message):
        deploy.load(model)
    with pytest.raises(US3LError, match=message):
        load_switchable(model)
    with deploy.load(exported.directory / "manifest.json") as runner:  # the manifest itself still loads
        assert runner.manifest is not None


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.slow  # 2 cases, 0.8 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_time_once_refuses_a_wrong_input_shape_like_infer(run: Path, tmp_path: Path, backend: str) -> None:
    """Red-team 2026-12-05 (rtA): infer named both shapes, time_once (the profiler's call) passed the runtime's
    multi-line INVALID_ARGUMENT / RuntimeError text on."""
    res = export_width(run, 0.25, backend, tmp_path)
    with deploy.load(res.directory) as runner:
        with pytest.raises(US3LError) as info:
            runner.time_once(np.zeros((1, 3, 16, 16), np.float32))
        assert runner.time_once(np.zeros(SHAPE, np.float32)) > 0
    assert str(info.value) == "input of shape 1x3x16x16 does not fit this artifact's input 1x3x32x32 (NCHW, float32)"


def _other_weights(onnx_file: Path) -> bytes:
    """``onnx_file`` with every float initializer halved: a valid model of the same graph that answers otherwise."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    for i, init in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a * 0.5, init.name))
    return model.SerializeToString()


def test_a_file_swapped_after_its_hash_was_checked_is_not_what_runs(
    exported: ExportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files were hashed, then the runtime opened the path again: a model swapped in between ran unchecked.
    Now the runtime is built from the bytes that were hashed."""
    from us3l.deploy.backends.onnx import OnnxBackend

    d = copy_artifact(exported, tmp_path)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    with deploy.load(d) as r:
        checked = r.infer(x)
    other = _other_weights(d / "model.onnx")
    real = OnnxBackend.load

    def swap_then_load(self, path, *args, **kwargs):
        Path(path).write_bytes(other)  # after verify_manifest hashed the file, before the runtime reads it
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(OnnxBackend, "load", swap_then_load)
    with deploy.load(d) as r:
        np.testing.assert_array_equal(r.infer(x), checked)
    assert (d / "model.onnx").read_bytes() == other  # the swap did happen


@pytest.mark.slow  # an OpenVINO export; the ONNX swap check stays fast
def test_an_openvino_ir_swapped_after_its_hash_was_checked_is_not_what_runs(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO reads the .xml and .bin bytes that were hashed (read_model from memory), not the files again."""
    from us3l.deploy.backends.openvino import OpenVinoBackend

    checked_dir = export_width(run, 0.25, "openvino", tmp_path / "a", device_name="cpu").directory
    other_dir = export_width(run, 1.0, "openvino", tmp_path / "b", device_name="cpu").directory
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    with deploy.load(checked_dir) as r:
        checked = r.infer(x)
    real = OpenVinoBackend.load

    def swap_then_load(self, path, *args, **kwargs):
        for name in ("model.xml", "model.bin"):  # another valid IR: width 1.0
            (checked_dir / name).write_bytes((other_dir / name).read_bytes())
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(OpenVinoBackend, "load", swap_then_load)
    with deploy.load(checked_dir) as r:
        np.testing.assert_array_equal(r.infer(x), checked)


def test_eval_artifact_refuses_a_manifest_that_changed_between_its_two_reads(
    exported: ExportResult, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval --artifact records the sha256 of the manifest it read; deploy.load reads it again, so a manifest edited
    in between would be recorded with a digest of the other one. Refused instead."""
    from us3l.checkpoint import load_backbone
    from us3l.deploy import loading
    from us3l.deploy.accuracy import evaluate_artifact

    d = copy_artifact(exported, tmp_path)
    real = loading.read_manifest

    def edit_then_read(path):
        edit_manifest(d, lambda doc: doc["target"].update(device="elsewhere"))
        return real(path)

    monkeypatch.setattr(loading, "read_manifest", edit_then_read)
    with pytest.raises(US3LError) as info:
        evaluate_artifact(load_backbone(run), d)
    assert str(info.value) == f"{d / 'manifest.json'} changed while it was being read; run the evaluation again"


def test_an_artifact_of_a_fresh_model_says_so_when_a_checkpoint_is_expected() -> None:
    """Red-team 2026-12-06 (rtL): `eval --artifact` of an artifact exported with `--model` (random weights) said
    'checkpoint sha256 None, expected …', not that it holds no trained weights."""
    from us3l.deploy.manifest import check_expected

    fresh = {"model": {"name": "cifar_resnet18"}, "source": {"checkpoint": None, "checkpoint_sha256": None,
                                                             "init_seed": 0}}
    with pytest.raises(US3LError) as exc:
        check_expected(fresh, Path("m.json"), checkpoint_sha256="ab" * 32)
    assert str(exc.value) == ("m.json: not the expected artifact (exported from a freshly initialised "
                              "'cifar_resnet18' (no checkpoint), expected the checkpoint abababababab…); re-export it")


def test_eval_artifact_refuses_two_artifacts_of_one_width_written_two_ways(exported: ExportResult,
                                                                           tmp_path: Path) -> None:
    """Red-team 2026-12-06 (rtO): `us3l eval --artifact A --artifact B` with A at 0.78125 and B at 0.7813 (25/32, one
    width: accuracy.json stores both in the row 0.7813) passed the one-entry-per-width check, which rounded half to
    even (0.7812 vs 0.7813), and B's accuracy replaced A's without a word."""
    from us3l.commands.eval import _check_one_per_entry

    a, b = copy_artifact(exported, tmp_path / "a"), copy_artifact(exported, tmp_path / "b")
    edit_manifest(a, lambda doc: doc["model"].update(width=0.78125))
    edit_manifest(b, lambda doc: doc["model"].update(width=0.7813))
    with pytest.raises(US3LError, match=rf"^--artifact {a} and {b} are both onnx/fp32 at width 0.781"):
        _check_one_per_entry([a, b])
    _check_one_per_entry([a, exported.directory])  # 0.78125 and 0.25: two entries


def test_an_artifact_re_exported_while_it_is_read_says_so(exported: ExportResult, tmp_path: Path) -> None:
    """Red-team 2026-12-06 (rtS): a re-export into the folder between a reader's read of the manifest and of the
    files (us3l export swaps the new folder in) was reported as 'model.onnx does not match its recorded sha256
    (modified or corrupted); re-export it': the artifact is neither, it was replaced; read it again."""
    from us3l.deploy.manifest import read_manifest, verify_manifest

    d = copy_artifact(exported, tmp_path)
    doc, directory = read_manifest(d)
    data = bytearray((d / "model.onnx").read_bytes())
    data[-1] ^= 1
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(US3LError, match=r"model.onnx does not match its recorded sha256 \(modified or corrupted\)"):
        verify_manifest(doc, directory)  # damaged: the manifest is the one read
    edit_manifest(d, lambda m: m["artifact"]["files"].update({"model.onnx": file_sha256(d / "model.onnx")}))
    with pytest.raises(US3LError) as info:
        verify_manifest(doc, directory)  # the folder now holds another export than the manifest read before
    assert _one_line(info) == (f"{d / 'manifest.json'}: the artifact was replaced while it was being read (re-exported "
                               "by another process?); open it again")
