"""A manifest's word on what an artifact was exported from (``source.checkpoint_sha256``, the BN statistics,
a switchable artifact's ``model.name``): checked against the files where the reader has them, shown as unchecked
where it has not (red-team 2026-12-07: these claims were taken as fact)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import copy_artifact, edit_manifest, latency


def _folder_without_weights(run: Path, exported: Any, root: Path) -> Path:
    """A pipeline folder holding the run's results but not its weights, and ``exported`` under artifacts/cpu."""
    shutil.copytree(run, root / "run")
    (root / "run" / "checkpoint.safetensors").unlink()
    return copy_artifact(exported, root / "artifacts" / "cpu")


def test_the_report_marks_a_source_it_cannot_check(exported: Any, run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Without run/checkpoint.safetensors the report tied an artifact to the run because its manifest's
    checkpoint digest equalled the one checkpoint.json records: one claim checked against another. The artifact is
    marked "(source unchecked)" on the page, `us3l report` warns once, --json lists it; with the weights back it is
    checked (no mark), and an edited digest is stale there."""
    from us3l.cli import main
    from us3l.report import render_report

    root = tmp_path / "qs"
    d = _folder_without_weights(run, exported, root)
    sha = exported.manifest["source"]["checkpoint_sha256"]
    rep = render_report(root)
    line = (f"{d / 'manifest.json'}: source not checked: its manifest says it was exported from checkpoint "
            f"{sha[:12]}…, but {root / 'run' / 'checkpoint.safetensors'} is absent to hash and check that against "
            "(nor its BN statistics)")
    assert rep.unchecked_sources() == [line]
    assert not any("stale" in e for e in rep.errors())  # the claim equals checkpoint.json's: nothing else to say
    assert '<span class="bad" title="its manifest says it was exported from checkpoint' in rep.html
    assert "(source unchecked)</span>" in rep.html
    assert main(["report", str(root)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("source not checked") == 1 and line in err
    assert main(["report", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchecked_sources"] == [line]

    shutil.copy(run / "checkpoint.safetensors", root / "run" / "checkpoint.safetensors")
    rep = render_report(root)
    assert rep.unchecked_sources() == [] and "(source unchecked)" not in rep.html
    edit_manifest(d, lambda doc: doc["source"].update(checkpoint_sha256="ab" * 32))
    rep = render_report(root)
    assert rep.unchecked_sources() == []
    assert any(e.startswith(f"{d / 'manifest.json'}: stale: exported from another checkpoint") for e in rep.errors())


def test_the_report_marks_no_source_a_manifest_does_not_claim(exported: Any, run: Path, tmp_path: Path) -> None:
    """An export of a fresh model (``source.checkpoint_sha256`` null) claims no checkpoint: nothing to mark."""
    from us3l.report import render_report

    root = tmp_path / "qs"
    d = _folder_without_weights(run, exported, root)
    edit_manifest(d, lambda doc: doc["source"].update(checkpoint_sha256=None))
    assert render_report(root).unchecked_sources() == []


FAST = ["--max-seconds", "0.2", "--target-ci", "0.2", "--threads", "1"]


@pytest.fixture(scope="module")
def switchable_of_copy(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of ``run``, its widths 1 and 0.25 exported as one switchable ONNX artifact): edit copies of both."""
    from us3l.deploy.switchable_export import export_switchable

    copy = tmp_path_factory.mktemp("runcopy") / "run"
    shutil.copytree(run, copy)
    res = export_switchable(copy, "onnx", tmp_path_factory.mktemp("sw"), [1.0, 0.25], device_name="cpu")
    return copy, res.directory


def _profile(artifact: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any] | None, str]:
    from us3l.cli import main

    code = main(["profile", "--device", "cpu", "--artifact", str(artifact), "--out", str(out), "--json", *FAST])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, " ".join(captured.err.split())


@pytest.mark.slow  # 2.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_artifact_checks_the_claimed_checkpoint(switchable_of_copy: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`us3l profile --artifact` copied a switchable manifest's source.checkpoint_sha256 into the profile, which
    `us3l select` and the report then tie to the run's accuracies, without hashing the checkpoint the manifest
    names. Now it is hashed where it is here: the run's own digest is recorded (checkpoint_checked true), a
    manifest edited to claim another checkpoint's digest is refused before any width is timed, and where the
    checkpoint is absent the profile says the digest is unchecked (false) and a note on stderr says so."""
    from us3l.io import file_sha256

    run_copy, exported = switchable_of_copy
    weights = run_copy / "checkpoint.safetensors"
    code, doc, err = _profile(exported, tmp_path / "ok", capsys)
    assert code == 0 and doc is not None and "not checked" not in err
    assert doc["checkpoint_sha256"] == file_sha256(weights) and doc["extra"]["switchable"]["checkpoint_checked"]

    d = tmp_path / "edited" / exported.name
    shutil.copytree(exported, d)
    path = edit_manifest(d, lambda m: m["source"].update(checkpoint_sha256="ab" * 32))
    code, doc, err = _profile(d, tmp_path / "p", capsys)
    assert code != 0 and not list((tmp_path / "p").glob("*.json"))  # refused before any width was timed
    assert err == (f"error: {path}: source.checkpoint_sha256 is abababababab… but {weights} has sha256 "
                   f"{file_sha256(weights)[:12]}… (the manifest was edited, or the checkpoint replaced since the "
                   "export); re-export the artifact")

    gone = tmp_path / "gone" / "checkpoint.safetensors"
    path = edit_manifest(d, lambda m: m["source"].update(checkpoint=str(gone),
                                                         checkpoint_sha256=file_sha256(weights)))
    code, doc, err = _profile(d, tmp_path / "q", capsys)
    assert code == 0 and doc is not None
    assert doc["checkpoint_sha256"] == file_sha256(weights)
    assert doc["extra"]["switchable"]["checkpoint_checked"] is False
    assert err.count("not checked") == 1 and (
        f"note: {path}: source.checkpoint_sha256 {file_sha256(weights)[:12]}… and model.name 'cifar_resnet18' are "
        f"the manifest's word, not checked ({gone} is absent here to hash)") in err


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_artifact_records_each_widths_bn_kind_as_a_sweep_does(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`us3l profile --artifact` copied a switchable manifest's per-width ``bn_stats`` into each record's ``bn`` in
    the manifest's spelling ("uncalibrated"), where every other profile records the kind (``BN_KINDS``:
    "frozen-uncalibrated"), which profile's note on uncalibrated widths reads; nor did --artifact give that note
    (a fresh model's artifact, exported without calibration)."""
    from us3l.deploy.graph import BN_KINDS
    from us3l.deploy.switchable_export import export_switchable
    from us3l.models import create_model

    res = export_switchable(create_model("cifar_resnet18", base_channels=8), "onnx", tmp_path / "sw", [1.0, 0.25],
                            device_name="cpu")
    per_width = json.loads((res.directory / "manifest.json").read_text())["model"]["per_width"]
    assert [p["bn_stats"] for p in per_width] == ["uncalibrated", "uncalibrated"]
    code, doc, err = _profile(res.directory, tmp_path / "p", capsys)
    assert code == 0 and doc is not None
    assert [r["bn"] for r in doc["records"]] == ["frozen-uncalibrated"] * 2 and "frozen-uncalibrated" in BN_KINDS
    assert ("note: 2 of 2 widths have no calibrated BN statistics: timed with frozen placeholder statistics (the "
            "graph export ships, same latency)") in err


@pytest.mark.slow  # 1.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_artifact_checks_the_claimed_model_name(switchable_of_copy: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A switchable graph records no model name: `us3l profile --artifact` named the profile, and `us3l select` and
    the report matched it to the run's model, by the manifest's model.name alone. With the checkpoint here, the
    name must be the model its checkpoint.json names; where that file does not describe the weights, a note says
    the name is unchecked (the digest was checked)."""
    from us3l.io import file_sha256

    run_copy, exported = switchable_of_copy
    d = tmp_path / "edited" / exported.name
    shutil.copytree(exported, d)
    path = edit_manifest(d, lambda m: m["model"].update(name="cifar_resnet50"))
    code, _, err = _profile(d, tmp_path / "p", capsys)
    assert code != 0 and not list((tmp_path / "p").glob("*.json"))
    weights = run_copy / "checkpoint.safetensors"
    assert err == (f"error: {path}: model.name 'cifar_resnet50' is not the model of {weights} (cifar_resnet18) (the "
                   "manifest was edited); re-export the artifact")

    other = tmp_path / "other" / "checkpoint.safetensors"  # the same weights beside a checkpoint.json of others
    other.parent.mkdir()
    shutil.copy(weights, other)
    meta = json.loads((run_copy / "checkpoint.json").read_text())
    (other.parent / "checkpoint.json").write_text(json.dumps({**meta, "weights_sha256": "ab" * 32}))
    path = edit_manifest(d, lambda m: m["source"].update(checkpoint=str(other)))
    code, doc, err = _profile(d, tmp_path / "q", capsys)
    assert code == 0 and doc is not None and doc["model"] == "cifar_resnet50-switchable"
    assert doc["checkpoint_sha256"] == file_sha256(weights) and doc["extra"]["switchable"]["checkpoint_checked"]
    assert f"note: {path}: model.name 'cifar_resnet50' is the manifest's word, not checked (the checkpoint.json " \
           f"beside {other}: it describes other weights)" in err


@pytest.mark.parametrize("checked", [True, False, None])
def test_select_says_a_profiles_unchecked_checkpoint_is_the_manifests_word(write_profile, write_accuracy,
                                                                           checked: bool | None) -> None:
    """`us3l select` tied a switchable artifact's profile to accuracy.json by the checkpoint digest that
    `profile --artifact` copied from the manifest without checking it (its checkpoint absent): the answer reads as
    the run's. The tie is kept, with a note that it rests on the manifest's word."""
    from us3l.deploy.select import Budget, select

    prof = write_profile([{"width": w, "latency": latency(0.8 * p, p, 1.2 * p)} for w, p in ((0.25, 1.0), (1.0, 3.0))])
    doc = json.loads(prof.read_text())
    doc["checkpoint_sha256"] = "0" * 64  # accuracy.json's (write_accuracy)
    # None: a profile written before 2026-12-07, without the key, whose digest profile --artifact copied unchecked
    doc["extra"] = {"switchable": {"artifact": "art", "sha256": "1" * 64, "widths": [0.25, 1.0],
                                   **({} if checked is None else {"checkpoint_checked": checked})}}
    prof.write_text(json.dumps(doc))
    acc = write_accuracy({0.25: 50.0, 1.0: 80.0})
    (d,) = select([prof], Budget(latency_ms=5), acc).devices
    note = (f"the profile's checkpoint sha256 is its switchable artifact's manifest's word (not checked against the "
            "checkpoint when profiled: it was absent, or its relative path held other weights there, or it was "
            f"profiled before 2026-12-07), so its tie to {acc} is unchecked")
    assert (note in d.notes) is not bool(checked)


def test_quickstart_reuses_an_export_only_with_a_bn_stats_record_it_checks(
        exported: Any, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quickstart's export step reused an artifact whose manifest records no ``source.bn_stats`` (taken as "made
    with the run's statistics as they are now"): deleting the record made an export of recalibrated-away statistics
    pass. The record is checked against the run's bn_stats.safetensors, and without one the width is re-exported."""
    from us3l.commands import quickstart as qs
    from us3l.deploy import export

    art = tmp_path / "artifacts"
    d = copy_artifact(exported, art / "cpu")
    exports: list[float] = []
    monkeypatch.setattr(export, "export_width", lambda run_dir, w, *a, **k: exports.append(w) or exported)
    loaded = qs._run_checkpoint(run)

    def step() -> str:
        return qs._artifact(run, art, "cpu", "cifar_resnet18", 0.25, "onnx", "fp32", False, loaded)[0]

    assert step() == "reused" and exports == []
    edit_manifest(d, lambda doc: doc["source"].update(bn_stats={**doc["source"]["bn_stats"], "sha256": "ab" * 32}))
    assert step() == "ran" and exports == [0.25]  # another file's statistics: as before
    edit_manifest(d, lambda doc: doc["source"].pop("bn_stats"))
    assert step() == "ran" and exports == [0.25, 0.25]


def test_the_report_marks_calibrated_statistics_it_cannot_check(exported: Any, run: Path, tmp_path: Path) -> None:
    """With the run's weights, the report compares an artifact's BN-statistics digest with the run's
    bn_stats.safetensors; a manifest whose record was deleted (as one written before 2026-12-06 lacks it) was
    skipped, and its width shown as made with the run's statistics as they are now. It is marked unchecked, whatever
    model.bn_stats says (without the record, nothing holds that kind to calibrated statistics)."""
    from us3l.report import render_report

    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    d = copy_artifact(exported, root / "artifacts" / "cpu")
    assert render_report(root).unchecked_sources() == []
    line = (f"{d / 'manifest.json'}: source not checked: its manifest records no BN statistics it was exported with "
            "(source.bn_stats, or a switchable one's model.per_width[].bn_stats_sha256: written before 2026-12-06, or "
            f"the record deleted) to check against {root / 'run' / 'bn_stats.safetensors'}; re-export it to have "
            "them checked")
    edit_manifest(d, lambda doc: doc["source"].pop("bn_stats"))
    rep = render_report(root)
    assert rep.unchecked_sources() == [line]
    assert "(source unchecked)</span>" in rep.html

    def uncalibrated(doc: dict[str, Any]) -> None:  # the kind edited with it: the same
        doc["model"].update(bn_stats="uncalibrated")
        doc["model"]["graph"].update(bn="frozen-uncalibrated")

    edit_manifest(d, uncalibrated)
    assert render_report(root).unchecked_sources() == [line]


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_checks_a_switchable_model_name_against_the_run(switchable_of_copy: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    """A switchable graph records no model name: the report listed a switchable artifact of the run's weights whose
    manifest names another model as valid. Of the run's weights (source.checkpoint_sha256 the hash of
    run/checkpoint.safetensors), its model.name must be the run's model: valid no, the manifest edited."""
    from us3l.report.collect import collect_pipeline

    run_copy, exported = switchable_of_copy
    root = tmp_path / "qs"
    shutil.copytree(run_copy, root / "run")
    d = root / "artifacts" / "cpu" / exported.name
    shutil.copytree(exported, d)
    (man,) = collect_pipeline(root).manifests
    assert man.doc["valid"] is True and "report_rehash" not in man.doc
    edit_manifest(d, lambda doc: doc["model"].update(name="cifar_resnet50"))
    (man,) = collect_pipeline(root).manifests
    assert man.doc["valid"] is False and man.doc["report_rehash"] == {
        "reason": "manifest edited",
        "detail": "model.name 'cifar_resnet50' is not the run's model cifar_resnet18, whose weights "
                  "source.checkpoint_sha256 names (the manifest was edited); re-export the artifact"}

    # another network of the same name (fewer channels), its manifest claiming the run's weights: its feature sizes
    from us3l.deploy.graph import fresh_model
    from us3l.deploy.switchable_export import export_switchable
    from us3l.io import file_sha256

    shutil.rmtree(d)
    net = fresh_model("cifar_resnet18", base_channels=8)
    net.input_size = 16
    other = export_switchable(net, "onnx", root / "artifacts", [1.0, 0.25], device_name="cpu",
                              model_name="cifar_resnet18").directory
    edit_manifest(other, lambda doc: doc["source"].update(checkpoint_sha256=file_sha256(root / "run" /
                                                                                        "checkpoint.safetensors")))
    (man,) = collect_pipeline(root).manifests
    assert man.doc["valid"] is False and man.doc["report_rehash"]["detail"].startswith(
        "model.per_width[0].feature_dim 64 is not the run's cifar_resnet18 at width 1 (")


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_profile_artifact_warns_when_a_relative_checkpoint_path_holds_other_weights(
        switchable_of_copy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``source.checkpoint`` is recorded as given to the export, relative to the folder it ran in: another run's
    checkpoint may lie at that path from here. Its other digest leaves the claim unchecked, with a warning, rather
    than refusing the artifact as edited."""
    from us3l.io import file_sha256

    run_copy, exported = switchable_of_copy
    d = tmp_path / "art" / exported.name
    shutil.copytree(exported, d)
    path = edit_manifest(d, lambda m: m["source"].update(checkpoint="run/checkpoint.safetensors"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"another run's weights")
    monkeypatch.chdir(tmp_path)
    code, doc, err = _profile(d, tmp_path / "p", capsys)
    assert code == 0 and doc is not None and doc["extra"]["switchable"]["checkpoint_checked"] is False
    assert doc["checkpoint_sha256"] == file_sha256(run_copy / "checkpoint.safetensors")
    assert (f"warning: {path}: source.checkpoint_sha256 {doc['checkpoint_sha256'][:12]}… and model.name "
            "'cifar_resnet18' are the manifest's word, not checked: run/checkpoint.safetensors (relative to the "
            f"folder the export ran in) has sha256 {file_sha256(tmp_path / 'run' / 'checkpoint.safetensors')[:12]}… "
            "here") in err


def test_quickstart_hashes_the_checkpoint_once_for_its_reuse_checks(exported: Any, run: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reuse check of quickstart's export and INT8 steps hashed run/checkpoint.safetensors again to compare
    with the manifest's source.checkpoint_sha256, beside the load of the run that hashes the same bytes. The digest
    of the bytes loaded (``LoadedCheckpoint.sha256``, loaded once) is the one compared now."""
    from us3l.commands import quickstart as qs

    art = tmp_path / "artifacts"
    copy_artifact(exported, art / "cpu")
    hashed: list[Path] = []
    real = qs.file_sha256
    monkeypatch.setattr(qs, "file_sha256", lambda p: hashed.append(Path(p)) or real(p))
    loaded = qs._run_checkpoint(run)
    for _ in range(3):
        assert qs._artifact(run, art, "cpu", "cifar_resnet18", 0.25, "onnx", "fp32", False, loaded)[0] == "reused"
    assert [p.name for p in hashed if p.suffix == ".safetensors"] == ["bn_stats.safetensors"] * 3


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_marks_a_switchable_profiles_unchecked_checkpoint(write_profile, run: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A profile of a switchable artifact whose checkpoint `us3l profile --artifact` could not hash
    (``extra.switchable.checkpoint_checked`` false) records the manifest's digest, and the report tied it to the run
    like any other profile. Without run/checkpoint.safetensors it is marked as an unchecked artifact is: "(source
    unchecked)" on the page, one warning on stderr, a line in --json's unchecked_sources; checked when profiled, or
    with the weights here to check the digest against, it is not."""
    from us3l.cli import main
    from us3l.report import render_report

    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "run" / "checkpoint.safetensors").unlink()
    sha = json.loads((run / "checkpoint.json").read_text())["weights_sha256"]
    prof = write_profile([{"width": w, "latency": latency(p, p, p)} for w, p in ((0.25, 1.0), (1.0, 3.0))],
                         model="cifar_resnet18")

    def profiled(checked: bool | None) -> None:  # None: written before 2026-12-07, without the key
        doc = json.loads(prof.read_text())
        doc.update(model="cifar_resnet18-switchable", checkpoint_sha256=sha,
                   extra={"switchable": {"artifact": "art", "sha256": "1" * 64, "widths": [0.25, 1.0],
                                         **({} if checked is None else {"checkpoint_checked": checked})}})
        prof.write_text(json.dumps(doc))

    profiled(False)
    rep = render_report(tmp_path)
    line = (f"{prof}: source not checked: it was profiled through a switchable artifact whose manifest says it was "
            f"exported from checkpoint {sha[:12]}…, which us3l profile --artifact could not check "
            f"(extra.switchable.checkpoint_checked false, or absent: profiled before 2026-12-07), and "
            f"{tmp_path / 'run' / 'checkpoint.safetensors'} is absent to hash and check that against")
    assert prof not in rep.files.foreign and rep.unchecked_sources() == [line]
    assert "(source unchecked)</span></h3>" in rep.html and rep.html.count("source not checked") == 1
    assert main(["report", str(tmp_path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("source not checked") == 1 and line in err
    assert main(["report", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchecked_sources"] == [line]

    profiled(None)
    assert render_report(tmp_path).unchecked_sources() == [line]
    profiled(True)
    assert render_report(tmp_path).unchecked_sources() == []
    profiled(False)
    shutil.copy(run / "checkpoint.safetensors", tmp_path / "run" / "checkpoint.safetensors")
    rep = render_report(tmp_path)
    assert rep.unchecked_sources() == [] and "(source unchecked)" not in rep.html


@pytest.mark.parametrize(("edit", "why"), [
    (lambda doc: doc["model"].update(bn_stats="calibrated (trust me)"),
     'model.bn_stats must be one of "calibrated", "running", "uncalibrated", "none (no BatchNorm)", got '
     "'calibrated (trust me)'; re-export the artifact"),
    (lambda doc: doc["model"].update(bn_stats="running"),
     "model.bn_stats 'running' is not the BN kind model.graph.bn records ('calibrated') (the manifest was edited); "
     "re-export the artifact"),
    (lambda doc: (doc["model"].update(bn_stats="running"), doc["model"]["graph"].update(bn="running")),
     "model.bn_stats 'running' but source.bn_stats records calibrated statistics (the manifest was edited); "
     "re-export the artifact"),
    (lambda doc: (doc["model"].update(bn_stats="running"), doc["model"]["graph"].update(bn="running"),
                  doc["source"].update(bn_stats=None)),
     "model.bn_stats 'running' (its BatchNorm is 'calibrated' or 'uncalibrated') does not describe cifar_resnet18 "
     "(as model.model_kwargs builds it) at model.width 0.25 (the manifest was edited); re-export the artifact"),
    (lambda doc: (doc["model"].update(bn_stats="none (no BatchNorm)"), doc["model"]["graph"].update(bn="none"),
                  doc["source"].update(bn_stats=None)),
     "model.bn_stats 'none (no BatchNorm)' (its BatchNorm is 'calibrated' or 'uncalibrated') does not describe "
     "cifar_resnet18 (as model.model_kwargs builds it) at model.width 0.25 (the manifest was edited); re-export the "
     "artifact"),
])
def test_the_bn_kind_a_manifest_claims_is_checked(exported: Any, run: Path, tmp_path: Path, edit: Any,
                                                  why: str) -> None:
    """``model.bn_stats`` (how the width's BatchNorm was frozen: calibrated, running, uncalibrated placeholders, or
    none) was repeated as written: the report's "BN stats" column showed an edited kind as the artifact's. It must
    name a kind, the one model.graph.bn records, "calibrated" exactly where source.bn_stats records calibrated
    statistics, and one the network's BatchNorm allows (cifar_resnet18 keeps no running statistics: calibrated or
    uncalibrated); every reader refuses another, the report as an unreadable manifest."""
    from us3l import deploy
    from us3l.errors import US3LError
    from us3l.report.collect import collect_pipeline

    d = copy_artifact(exported, tmp_path / "a")
    with deploy.load(d):  # as exported
        pass
    path = edit_manifest(d, edit)
    with pytest.raises(US3LError) as info:
        deploy.load(d)
    assert str(info.value) == f"{path}: {why}"
    root = tmp_path / "qs"
    shutil.copytree(run, root / "run")
    copy_artifact(exported, root / "artifacts" / "cpu")
    edit_manifest(root / "artifacts" / "cpu" / d.name, edit)
    assert any(why in line for line in collect_pipeline(root).errors())


@pytest.mark.slow  # 3.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_report_refuses_a_switchable_width_outside_the_runs_range(switchable_of_copy: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    """A switchable manifest claiming the run's weights with a width the run's network does not have (exported from
    a network of a wider width range) reached ``feature_dim``'s ValueError: a traceback from `us3l report`, not the
    artifact shown as valid no."""
    from us3l.deploy.graph import fresh_model
    from us3l.deploy.switchable_export import export_switchable
    from us3l.io import file_sha256
    from us3l.report.collect import collect_pipeline

    run_copy, _ = switchable_of_copy
    root = tmp_path / "qs"
    shutil.copytree(run_copy, root / "run")
    net = fresh_model("cifar_resnet18", width_min=0.125)
    net.input_size = 16
    other = export_switchable(net, "onnx", root / "artifacts", [1.0, 0.125], device_name="cpu",
                              model_name="cifar_resnet18").directory
    weights = file_sha256(root / "run" / "checkpoint.safetensors")
    edit_manifest(other, lambda doc: doc["source"].update(checkpoint_sha256=weights))
    (man,) = collect_pipeline(root).manifests
    assert man.doc["valid"] is False and man.doc["report_rehash"] == {
        "reason": "manifest edited",
        "detail": "model.per_width[1].width 0.125 is not a width of the run's cifar_resnet18 (width must be in "
                  "[0.25, 1], got 0.125): not exported from the weights source.checkpoint_sha256 names (the manifest "
                  "was edited); re-export the artifact"}
