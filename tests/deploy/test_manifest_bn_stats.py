"""Manifests record the calibrated BN statistics their width was materialized with (``source.bn_stats``: the run's
``bn_stats.safetensors``, its sha256, and the width's own statistics' digest), and consumers that know which
statistics they run PyTorch with (``us3l eval --artifact``, ``us3l.deploy.load(bn_stats_sha256=)``, quickstart's
export reuse) refuse or re-export an artifact built with others (red-team 2026-12-06, rtO)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.deploy.conftest import copy_artifact, edit_manifest, without_calibrated_bn
from us3l import deploy
from us3l.deploy.export import ExportResult, export_width
from us3l.errors import US3LError
from us3l.io import file_sha256

MODEL = "cifar_resnet18"


@pytest.fixture(scope="module")
def switchable_qs(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A quickstart-like folder (``run/`` and one switchable ONNX export under ``artifacts/``), made once: tests
    copy it before editing; and the export's folder relative to it."""
    from us3l.deploy.switchable_export import export_switchable

    root = tmp_path_factory.mktemp("switchable") / "qs"
    shutil.copytree(run, root / "run")
    res = export_switchable(root / "run", "onnx", root / "artifacts")
    return root, res.directory.relative_to(root)


def _copy_qs(switchable_qs: tuple[Path, Path], to: Path) -> tuple[Path, Path]:
    root, rel = switchable_qs
    shutil.copytree(root, to)
    return to, to / rel


def _recalibrated(run: Path, to: Path, width: float = 0.25) -> Path:
    """A copy of ``run`` (same weights) whose statistics of ``width`` were calibrated again, on other images."""
    from us3l.checkpoint import load_backbone
    from us3l.eval.calibrate import save_bn_stats
    from us3l.slim import calibrating

    shutil.copytree(run, to)
    ck = load_backbone(to)
    torch.manual_seed(1)
    with torch.no_grad(), calibrating(ck.model, width):
        ck.model(torch.randn(8, 3, 32, 32))
    save_bn_stats(ck.model, to, checkpoint_sha256=ck.sha256)
    return to


def test_the_manifest_records_the_bn_statistics_of_its_width(exported: ExportResult, run: Path) -> None:
    from us3l.checkpoint import load_backbone
    from us3l.eval.calibrate import width_bn_stats_sha256

    ck = load_backbone(run)
    bn = exported.manifest["source"]["bn_stats"]
    assert bn == {"file": str(run / "bn_stats.safetensors"), "sha256": file_sha256(run / "bn_stats.safetensors"),
                  "width_sha256": width_bn_stats_sha256(ck.model, 0.25)}
    assert ck.bn_stats_sha256 == bn["sha256"] and ck.bn_stats_path == run / "bn_stats.safetensors"
    assert width_bn_stats_sha256(ck.model, 1.0) != bn["width_sha256"]  # each width its own digest
    assert width_bn_stats_sha256(ck.model, 0.5) is None  # not calibrated


def test_a_fresh_model_records_no_bn_statistics(tmp_path: Path) -> None:
    from us3l.models import create_model

    res = export_width(create_model(MODEL, num_classes=0, base_channels=8), 0.25, "onnx", tmp_path,
                       model_name=MODEL)
    assert res.manifest["source"]["bn_stats"] is None


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_recalibrating_another_width_keeps_the_width_digest(run: Path, tmp_path: Path,
                                                            exported: ExportResult) -> None:
    """The file changes, the exported width's statistics do not: still the same artifact."""
    from us3l.checkpoint import load_backbone
    from us3l.eval.calibrate import width_bn_stats_sha256

    other = load_backbone(_recalibrated(run, tmp_path / "run", width=1.0))
    assert other.bn_stats_sha256 != exported.manifest["source"]["bn_stats"]["sha256"]
    with deploy.load(exported.directory, bn_stats_sha256=width_bn_stats_sha256(other.model, 0.25)):
        pass


def test_an_artifact_of_other_bn_statistics_is_refused(exported: ExportResult, run: Path, tmp_path: Path) -> None:
    """Before: eval --artifact of an export made before `us3l calibrate` ran again compared the artifact with PyTorch
    running the new statistics and filed the old artifact's accuracy as the width's (the embeddings stay close
    enough for the same-network check)."""
    from us3l.checkpoint import load_backbone
    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval.calibrate import width_bn_stats_sha256

    new = load_backbone(_recalibrated(run, tmp_path / "run"))
    want = width_bn_stats_sha256(new.model, 0.25)
    assert want != exported.manifest["source"]["bn_stats"]["width_sha256"]
    with pytest.raises(US3LError) as info:
        evaluate_artifact(new, exported.directory)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{exported.directory / 'manifest.json'}: not the expected artifact")
    assert text.endswith(": the width was recalibrated since the export); re-export it")
    with pytest.raises(US3LError, match="recalibrated since the export"):
        deploy.load(exported.directory, bn_stats_sha256=want)
    # exported without calibrated statistics (a running/placeholder width) while the consumer has calibrated ones
    d = copy_artifact(exported, tmp_path / "copy")
    edit_manifest(d, without_calibrated_bn)
    with pytest.raises(US3LError, match="exported without calibrated BN statistics for its width"):
        deploy.load(d, bn_stats_sha256=want)
    # a manifest written before the statistics were recorded: nothing to compare, it loads as before
    edit_manifest(d, lambda doc: doc["source"].pop("bn_stats"))
    with deploy.load(d, bn_stats_sha256=want):
        pass


@pytest.mark.parametrize("bad", [5, "abc", {"sha256": 5}, {"width_sha256": ["x"]}])
def test_a_malformed_bn_stats_record_is_one_line(exported: ExportResult, tmp_path: Path, bad: object) -> None:
    d = copy_artifact(exported, tmp_path)
    edit_manifest(d, lambda doc: doc["source"].update(bn_stats=bad))
    with pytest.raises(US3LError, match=r"manifest.json: source.bn_stats must be null or"):
        deploy.load(d)


@pytest.mark.slow  # 2.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_quickstart_reuse_re_exports_after_a_recalibration(run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.commands import quickstart

    runs = tmp_path / "run"
    shutil.copytree(run, runs)
    art = tmp_path / "art"

    def export() -> str:  # as the export step asks, with the run's checkpoint loaded for this call
        return quickstart._artifact(runs, art, "cpu", MODEL, 0.25, "onnx", "fp32", False,
                                    quickstart._run_checkpoint(runs))[0]

    assert export() == "ran"
    assert export() == "reused"
    shutil.rmtree(runs)
    _recalibrated(run, runs)
    assert export() == "ran"
    assert export() == "reused"


def test_a_switchable_manifest_records_each_widths_bn_statistics(switchable_qs: tuple[Path, Path]) -> None:
    import json

    from us3l.checkpoint import load_backbone
    from us3l.eval.calibrate import width_bn_stats_sha256

    root, rel = switchable_qs
    run = root / "run"
    doc = json.loads((root / rel / "manifest.json").read_text())
    ck = load_backbone(run)
    assert doc["source"]["bn_stats"] == {"file": str(run / "bn_stats.safetensors"),
                                         "sha256": file_sha256(run / "bn_stats.safetensors")}
    assert [p["bn_stats_sha256"] for p in doc["model"]["per_width"]] == [
        width_bn_stats_sha256(ck.model, w) for w in doc["model"]["widths"]]


def _stale(root: Path) -> list[str]:
    """The report's lines about BN statistics for the quickstart-like folder ``root``."""
    from us3l.report import render_report

    return [e for e in render_report(root).errors() if "BN statistics" in e]


@pytest.mark.slow  # 1.8 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_flags_an_artifact_of_other_bn_statistics_than_the_run_holds_now(run: Path,
                                                                                   tmp_path: Path) -> None:
    """`us3l report` re-hashed the artifact files and showed an export made before `us3l calibrate` ran again as
    valid and current; it now says the width was recalibrated since (a stale line, as for another checkpoint)."""
    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    res = export_width(root / "run", 0.25, "onnx", root / "artifacts", device_name="cpu")

    assert _stale(root) == []
    shutil.rmtree(root / "run")
    _recalibrated(run, root / "run", width=1.0)  # another width: this artifact's statistics are unchanged
    assert _stale(root) == []
    shutil.rmtree(root / "run")
    _recalibrated(run, root / "run")
    (line,) = _stale(root)
    assert line.startswith(f"{res.manifest_path}: stale: exported with other BN statistics of width 0.25 (")
    assert line.endswith(f"than {root / 'run' / 'bn_stats.safetensors'} holds now ("
                         f"{line.rsplit('(', 1)[1].split(':')[0]}: recalibrated since); re-run us3l export")
    (root / "run" / "bn_stats.safetensors").unlink()
    (line,) = _stale(root)
    assert "no longer holds (removed since)" in line


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_does_not_call_statistics_removed_when_the_run_is_not_in_the_folder(run: Path,
                                                                                     tmp_path: Path) -> None:
    """Audit 2026-12-07: `us3l train --out runs/r18` (the README's example), an export from it and `us3l report .`
    warned `stale: exported with calibrated BN statistics of width 0.25 that run/bn_stats.safetensors no longer holds
    (removed since)` for every artifact: the folder has no run/ at all, so nothing was removed and nothing can be
    compared. Only a run folder that is there without its statistics gets that line."""
    root = tmp_path / "steps"
    shutil.copytree(run, root / "runs" / "r18")
    export_width(root / "runs" / "r18", 0.25, "onnx", root / "artifacts", device_name="cpu")
    assert _stale(root) == []
    shutil.copytree(run, root / "run")  # the run in the report's run/: its statistics are compared again
    (root / "run" / "bn_stats.safetensors").unlink()
    (line,) = _stale(root)
    assert "no longer holds (removed since)" in line


@pytest.mark.parametrize("source", [5, {"bn_stats": 5}, {"bn_stats": {"width_sha256": "ab"}}])
def test_the_report_reads_an_edited_switchable_source_without_a_traceback(switchable_qs: tuple[Path, Path],
                                                                          tmp_path: Path, source: object) -> None:
    """A switchable manifest reaches the report without the one-width manifest's field checks: `"source": 5` was an
    AttributeError traceback in its checkpoint comparison (red-team of the manifest trust path, rtO), and the BN
    statistics comparison must read it as safely."""
    from us3l.report import render_report

    root, directory = _copy_qs(switchable_qs, tmp_path / "qs")
    edit_manifest(directory, lambda doc: doc.update(source=source))
    render_report(root).errors()  # no AttributeError


def test_an_edited_switchable_verification_section_is_one_line(switchable_qs: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """`"verification": 5` in a switchable manifest was an AttributeError traceback in load_switchable, profile
    --artifact and the report (red-team of the manifest trust path, rtO)."""
    from us3l.deploy.switchable_runtime import read_switchable

    _, directory = _copy_qs(switchable_qs, tmp_path / "qs")
    edit_manifest(directory, lambda doc: doc.update(verification=5))
    with pytest.raises(US3LError, match=r"manifest.json: verification must be an object, got 5; re-export"):
        read_switchable(directory)


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_flags_a_switchable_width_of_other_bn_statistics(switchable_qs: tuple[Path, Path], run: Path,
                                                                    tmp_path: Path) -> None:
    """A switchable artifact records each width's statistics (model.per_width[i].bn_stats_sha256), but the report
    compared only a one-width manifest's record: an `export --switchable` made before `us3l calibrate` ran again was
    shown as current. Each recalibrated width now gets the one-width artifact's stale line, naming its index."""
    import json

    root, directory = _copy_qs(switchable_qs, tmp_path / "qs")
    doc = json.loads((directory / "manifest.json").read_text())
    index = doc["model"]["widths"].index(0.25)

    assert _stale(root) == []
    shutil.rmtree(root / "run")
    _recalibrated(run, root / "run")
    (line,) = _stale(root)
    assert line.startswith(f"{directory / 'manifest.json'}: stale: exported with other BN statistics of width 0.25 "
                           f"(index {index}) (")
    assert line.endswith("recalibrated since); re-run us3l export")
    # a manifest written before canonical_width was recorded per width is compared as well, without false alarms
    edit_manifest(directory, lambda d: [p.pop("canonical_width") for p in d["model"]["per_width"]])
    assert len(_stale(root)) == 1
    shutil.rmtree(root / "run")
    shutil.copytree(run, root / "run")
    assert _stale(root) == []
    (root / "run" / "bn_stats.safetensors").unlink()
    assert len(_stale(root)) == len(doc["model"]["widths"]) and all("(removed since)" in e for e in _stale(root))


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_load_switchable_refuses_a_width_of_other_bn_statistics(switchable_qs: tuple[Path, Path], run: Path,
                                                                tmp_path: Path) -> None:
    """us3l.deploy.load takes the BN statistics the caller runs (bn_stats_sha256=) and refuses an artifact of older
    ones; load_switchable took nothing of the kind and ran a switchable artifact of recalibrated widths unchecked."""
    from us3l.checkpoint import load_backbone
    from us3l.deploy.switchable_runtime import load_switchable
    from us3l.eval.calibrate import width_bn_stats_sha256

    root, directory = switchable_qs
    directory = root / directory
    widths = (0.25, 1.0)
    same = load_backbone(run).model
    with load_switchable(directory, bn_stats_sha256={w: width_bn_stats_sha256(same, w) for w in widths}):
        pass
    new = load_backbone(_recalibrated(run, tmp_path / "run")).model
    with pytest.raises(US3LError) as info:
        load_switchable(directory, bn_stats_sha256={w: width_bn_stats_sha256(new, w) for w in widths})
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{directory / 'manifest.json'}: not the expected artifact (width 0.25")
    assert text.endswith(": the width was recalibrated since the export); re-export it")
    with load_switchable(directory, bn_stats_sha256={1.0: width_bn_stats_sha256(new, 1.0)}):  # 1.0 unchanged
        pass


@pytest.mark.parametrize(("field", "bad"), [("bn_stats_sha256", 5), ("canonical_width", "x")])
def test_a_malformed_switchable_bn_stats_record_is_one_line(switchable_qs: tuple[Path, Path], tmp_path: Path,
                                                            field: str, bad: object) -> None:
    from us3l.deploy.switchable_runtime import read_switchable

    _, directory = _copy_qs(switchable_qs, tmp_path / "qs")
    edit_manifest(directory, lambda doc: doc["model"]["per_width"][0].update({field: bad}))
    with pytest.raises(US3LError, match=rf"manifest.json: model.per_width\[0\].{field} must be"):
        read_switchable(directory)


def test_eval_artifact_refuses_when_the_checkpoint_has_no_statistics_for_the_width(
        exported: ExportResult, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-06 (rtS): with the run's bn_stats.safetensors removed (or stale, so ignored), `us3l eval
    --artifact` compared an artifact frozen with calibrated statistics against PyTorch running batch statistics
    (another network: about a third of the kNN predictions agreed) and filed that as the width's FP32 accuracy."""
    import json

    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval import open_checkpoint

    bare = tmp_path / "run"
    shutil.copytree(run, bare)
    (bare / "bn_stats.safetensors").unlink()

    def evaluated(*_: object, **__: object) -> None:
        raise AssertionError("the artifact was evaluated against a reference without its BN statistics")

    monkeypatch.setattr("us3l.eval.runner.resolve_data_spec", evaluated)  # the first step after the checks
    with pytest.raises(US3LError) as info:
        evaluate_artifact(open_checkpoint(bare), exported.directory)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{exported.directory / 'manifest.json'}: not the expected artifact "
                                                "(exported with calibrated BN statistics ")
    assert "expected none: the checkpoint has no calibrated statistics for this width now" in text
    # an artifact exported without calibrated statistics is compared as before (nothing to hold it to)
    d = copy_artifact(exported, tmp_path / "copy")
    edit_manifest(d, lambda doc: doc["source"].update(bn_stats=None))
    from us3l.deploy.accuracy import _check_reference_has_bn_stats

    _check_reference_has_bn_stats(json.loads((d / "manifest.json").read_text()), d, open_checkpoint(bare).model, None)


def test_eval_artifact_of_another_checkpoint_says_so_first(exported: ExportResult, run: Path, tmp_path: Path) -> None:
    """The BN statistics refusal ran before load's checkpoint check: an artifact of another run, evaluated against
    a checkpoint without calibrated statistics, was refused as 'restore the run's bn_stats.safetensors, or run us3l
    calibrate and re-export it', which neither helps nor names the cause. It is now refused as another
    checkpoint's artifact."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval import open_checkpoint

    other = tmp_path / "other"
    shutil.copytree(run, other)
    (other / "bn_stats.safetensors").unlink()
    weights = other / "checkpoint.safetensors"
    with safe_open(weights, "pt") as f:
        meta = f.metadata()
    state = load_file(weights)
    first = next(iter(state))
    state[first] = state[first] + 1.0  # other weights: another checkpoint
    save_file(state, weights, metadata=meta)
    record = json.loads((other / "checkpoint.json").read_text())
    (other / "checkpoint.json").write_text(json.dumps({**record, "weights_sha256": file_sha256(weights)}))
    with pytest.raises(US3LError) as info:
        evaluate_artifact(open_checkpoint(other), exported.directory, data="builtin")
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{exported.directory / 'manifest.json'}: not the expected artifact "
                                                "(checkpoint sha256 "), text


@pytest.mark.parametrize("bad", ["x", True, -1.0])
def test_an_edited_canonical_width_is_one_line(exported: ExportResult, tmp_path: Path, bad: object) -> None:
    """Red-team 2026-12-06 (rtS): `"canonical_width": "x"` loaded, and the report, which looks the width's BN
    statistics up under it, skipped the comparison without a word (a recalibrated width went unflagged)."""
    d = copy_artifact(exported, tmp_path)
    edit_manifest(d, lambda doc: doc["model"].update(canonical_width=bad))
    with pytest.raises(US3LError, match=r"manifest.json: model.canonical_width must be a finite number > 0, got"):
        deploy.load(d)


@pytest.mark.parametrize("width", [2.0, 1e308])
def test_eval_artifact_names_the_manifest_of_a_width_the_checkpoint_lacks(exported: ExportResult, run: Path,
                                                                         tmp_path: Path, width: float) -> None:
    """Red-team 2026-12-06 (rtS): an edited `"width": 2.0` gave `error: width must be in [0.25, 1], got 2.0`, naming
    neither the artifact nor its manifest (with several --artifact folders, no way to tell which)."""
    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval import open_checkpoint

    d = copy_artifact(exported, tmp_path)
    edit_manifest(d, lambda doc: doc["model"].update(width=width))
    with pytest.raises(US3LError) as info:
        evaluate_artifact(open_checkpoint(run), d, data="builtin")
    # refused when the manifest is read (its model.model_kwargs rebuild the network), before any evaluation
    assert str(info.value) == (f"{d / 'manifest.json'}: model.width {width:g} is not a width of cifar_resnet18 (as "
                               f"model.model_kwargs builds it) (width must be in [0.25, 1], got {width!r}) (the "
                               "manifest was edited); re-export the artifact")


def test_a_refusal_after_the_artifact_was_loaded_closes_its_runtime(
        exported: ExportResult, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks after `load` (data spec, image size, normalisation) raised with the runtime session left open
    until garbage collection; the manifest's checks before them closed it."""
    import us3l.deploy.loading as loading
    from us3l.deploy.accuracy import evaluate_artifact
    from us3l.eval import open_checkpoint

    closed: list[bool] = []
    real = loading.load

    def load(*a: Any, **k: Any) -> Any:
        runner = real(*a, **k)
        close = runner.close
        runner.close = lambda: closed.append(True) or close()  # type: ignore[method-assign]
        return runner

    monkeypatch.setattr(loading, "load", load)
    with pytest.raises(US3LError, match="not found"):
        evaluate_artifact(open_checkpoint(run), exported.directory, data=f"folder:{tmp_path / 'nope'}")
    assert closed == [True]


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_artifacts_of_one_evaluation_load_the_data_once(
        exported: ExportResult, run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`us3l eval --artifact A --artifact B` listed both splits and opened each class's first image once per
    artifact; the splits are now shared by (data spec, input size)."""
    import us3l.deploy.accuracy as accuracy
    import us3l.eval.runner as runner
    from us3l.eval import open_checkpoint

    calls: list[str] = []
    real = runner.knn_data
    monkeypatch.setattr(runner, "knn_data", lambda spec, *a: calls.append(spec) or real(spec, *a))
    seen: list[int] = []  # the embeddings are not needed: each evaluation stops at the artifact's first batch

    def first_batch(runner: object, ds: object, *a: object) -> None:
        seen.append(id(ds))
        raise KeyboardInterrupt

    monkeypatch.setattr(accuracy, "runner_features", first_batch)
    loaded, splits = open_checkpoint(run), {}
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            accuracy.evaluate_artifact(loaded, exported.directory, data="builtin", splits=splits)
    assert calls == ["builtin"] and len(set(seen)) == 1  # one load; the second artifact ran on the same split


def test_the_report_flags_an_artifact_exported_before_its_width_was_calibrated(run: Path, tmp_path: Path) -> None:
    """Red-team 2026-12-06 (rtS): an artifact exported without calibrated BN statistics (running statistics, as an
    S-Nets or track-running-stats run has before `us3l calibrate`) is refused by `us3l eval --artifact` once the run
    has calibrated ones, but the report skipped it and showed it as current beside the calibrated network's
    accuracy."""
    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    res = export_width(root / "run", 0.25, "onnx", root / "artifacts", device_name="cpu")
    edit_manifest(res.directory, without_calibrated_bn)  # as exported before calibrating
    (line,) = _stale(root)
    assert line == (f"{res.manifest_path}: stale: exported without calibrated BN statistics of width 0.25, which "
                    f"{root / 'run' / 'bn_stats.safetensors'} holds now (calibrated since); re-run us3l export")
    (root / "run" / "bn_stats.safetensors").unlink()  # nothing calibrated now: nothing to hold it to
    assert _stale(root) == []


@pytest.mark.slow  # a report over three exports; the report's BN checks above stay fast
def test_the_report_reads_the_runs_bn_statistics_once_for_every_manifest(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`us3l report` read and digested run/bn_stats.safetensors (every width) once per manifest."""
    from us3l.eval import calibrate

    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    for w in (0.25, 1.0):
        export_width(root / "run", w, "onnx", root / "artifacts", device_name="cpu")
    reads: list[Path] = []
    digests = calibrate.file_bn_stats_digests
    monkeypatch.setattr(calibrate, "file_bn_stats_digests", lambda p: reads.append(Path(p)) or digests(p))
    assert _stale(root) == []
    assert reads == [root / "run" / "bn_stats.safetensors"]
