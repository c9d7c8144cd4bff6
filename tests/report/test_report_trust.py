"""The report re-hashes artifacts, never lists an export's staging folders, and flags files not bound to the
folder's checkpoint; exports clean up the stale staging and ``$TMPDIR`` leftovers of killed exports (issue 11.6)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from us3l.deploy.staging import clean_stale, is_staging, staging_prefix
from us3l.io import OWNER_FILE, owned_temp_dir
from us3l.report import render_report
from us3l.report.collect import collect_pipeline

ARTIFACT = Path("artifacts") / "cpu" / "cifar_resnet18-w0.5-onnx-fp32"


@pytest.fixture(autouse=True)
def _figures_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about hashes, staleness and provenance, none about a figure: the figures are still built,
    but not drawn to PNG (Agg rendering was half of this file's CPU time). tests/report/test_report.py and
    test_report_pitfalls.py draw them."""
    from us3l.report import plots

    monkeypatch.setattr(plots, "png_bytes", lambda fig, dpi=0.0: b"\x89PNG\r\n\x1a\n")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_one_flipped_byte_shows_valid_no_hash_mismatch(pipeline: Path) -> None:
    assert render_report(pipeline).errors() == []
    model = pipeline / ARTIFACT / "model.onnx"
    data = bytearray(model.read_bytes())
    data[0] ^= 1
    model.write_bytes(bytes(data))
    rep = render_report(pipeline)
    (man,) = rep.files.manifests
    assert man.ok and man.doc["valid"] is False  # shown as "valid: no" in the artifacts table
    (line,) = rep.errors()
    assert "valid: no (hash mismatch)" in line and "model.onnx" in line and "\n" not in line
    assert '<span class="bad">no</span>' in rep.html and "valid: no (hash mismatch)" in rep.html
    assert json.loads((pipeline / ARTIFACT / "manifest.json").read_text())["valid"] is True  # not rewritten


def _report_of_an_edited_manifest(pipeline: Path, edit: Callable[[dict], object]) -> tuple[Path, Any, str]:
    """The artifact's manifest edited by ``edit``, the report rendered: (manifest path, report, its one error line),
    the manifest shown as listed but not valid ("manifest edited")."""
    path = pipeline / ARTIFACT / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    rep = render_report(pipeline)
    (man,) = rep.files.manifests
    assert man.ok and man.doc["valid"] is False and man.doc["report_rehash"]["reason"] == "manifest edited"
    (line,) = rep.errors()
    return path, rep, line


def test_a_precision_the_graph_contradicts_shows_valid_no_manifest_edited(pipeline: Path) -> None:
    """Red-team 2026-12-06 (rtL): an fp32 artifact whose manifest was edited to claim int8 (with an int8
    verification that passes) was listed as a valid int8 artifact; us3l.deploy.load refuses it."""
    from us3l.deploy.verify import TOLERANCES

    tol = TOLERANCES["int8"]

    def edit(doc: dict) -> None:
        doc["backend"]["precision"] = "int8"
        doc["verification"].update(precision="int8", topk_agreement=1.0, tolerance={
            "max_abs": None, "min_cosine": tol.min_cosine, "min_mean_cosine": tol.min_mean_cosine,
            "min_topk_agreement": tol.min_topk_agreement, "topk": tol.topk, "rule": tol.rule})

    path, _, line = _report_of_an_edited_manifest(pipeline, edit)
    assert line == (f"{path}: valid: no (manifest edited): backend.precision is 'int8' but model.onnx holds an fp32 "
                    "graph (the manifest was edited); re-export the artifact")


def test_an_output_shape_the_graph_contradicts_shows_valid_no_manifest_edited(pipeline: Path) -> None:
    """An artifact whose manifest's output.shape was edited (the embedding size another width's) was listed as it
    was; us3l.deploy.load refuses it (check_output_shape). Shown as an edited precision is."""
    path, rep, line = _report_of_an_edited_manifest(pipeline, lambda doc: doc["output"].update(shape=[1, 256]))
    assert line == (f"{path}: valid: no (manifest edited): output.shape is [1, 256] but model.onnx outputs "
                    "[1, 3, 32, 32] (the manifest was edited); re-export the artifact")
    assert html.escape(line.split(": ", 1)[1], quote=False) in rep.html


def test_an_input_shape_the_graph_contradicts_shows_valid_no_manifest_edited(pipeline: Path) -> None:
    """The input section is checked against the graph's input as the output shape is (check_inputs)."""
    path, _, line = _report_of_an_edited_manifest(pipeline, lambda doc: doc["input"].update(shape=[1, 3, 16, 16]))
    assert line == (f"{path}: valid: no (manifest edited): input.shape is [1, 3, 16, 16] but model.onnx's input "
                    "'input' is [1, 3, 32, 32] (the manifest was edited); re-export the artifact")


def test_missing_artifact_file_is_not_valid(pipeline: Path) -> None:
    (pipeline / ARTIFACT / "model.onnx").unlink()
    (man,) = collect_pipeline(pipeline).manifests
    assert man.doc["valid"] is False and man.doc["report_rehash"]["reason"] == "file missing"


def test_staging_folders_are_never_listed(pipeline: Path) -> None:
    """What a SIGKILL during the final rename leaves: a complete, verified artifact in a hidden staging
    folder (and a swapped-aside old one). Neither is an artifact."""
    art = pipeline / ARTIFACT
    staging = art.parent / f".{art.name}.staging-{_dead_pid()}-k1ll3d"
    old = art.parent / f".{art.name}.old-abc123"
    shutil.copytree(art, staging)
    (old / art.name).mkdir(parents=True)
    shutil.copy(art / "manifest.json", old / art.name / "manifest.json")
    shutil.copytree(art, pipeline / "artifacts" / ".hidden-device" / art.name)
    files = collect_pipeline(pipeline)
    assert [m.path.parent for m in files.manifests] == [art]
    assert is_staging(staging.name) and is_staging(old.name) and not is_staging(art.name)


def test_clean_stale_removes_only_our_dead_or_old_leftovers(tmp_path: Path) -> None:
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    dev = out / "local"
    dev.mkdir(parents=True)
    tmp.mkdir()
    dead = dev / f".m-w0.5-onnx-fp32.staging-{_dead_pid()}-abc"
    live = Path(tempfile.mkdtemp(prefix=staging_prefix("m-w0.5-onnx-fp32"), dir=dev))
    old_no_pid = dev / ".m-w1-onnx-fp32.old-q1w2e3"
    fresh_no_pid = dev / ".m-w1-onnx-fp32.staging-z9y8x7"
    artifact = dev / "m-w0.5-onnx-fp32"
    user_hidden = dev / ".git"
    tmp_old, tmp_fresh, tmp_other = tmp / "us3l-profile-abc", tmp / "us3l-trt.def", tmp / "other-old"
    tmp_dead, tmp_live = tmp / "us3l-fp.ghi", tmp / "us3l-fp.jkl"
    # a user's own folders whose names look like ours (red-team 2026-12-05: export deleted them)
    user_old, user_dead_pid = tmp / "us3l-myruns", tmp / f"us3l-results-p{_dead_pid()}-final"
    for d in (dead, old_no_pid, fresh_no_pid, artifact, user_hidden, tmp_old, tmp_fresh, tmp_other, tmp_dead,
              tmp_live, user_old, user_dead_pid):
        d.mkdir()
        (d / "f").write_text("x")
    for d, owner in ((tmp_old, "pid"), (tmp_fresh, "pid"), (tmp_dead, f"pid {_dead_pid()}"),
                     (tmp_live, f"pid {os.getpid()}")):
        (d / OWNER_FILE).write_text(owner + "\n")
    day_ago = time.time() - 2 * 24 * 3600
    for d in (old_no_pid, tmp_old, tmp_other, artifact, user_hidden, user_old):
        for f in d.iterdir():
            os.utime(f, (day_ago, day_ago))
        os.utime(d, (day_ago, day_ago))
    removed = clean_stale(out, tmp)
    assert sorted(removed) == sorted([dead, old_no_pid, tmp_old, tmp_dead])
    for kept in (live, fresh_no_pid, artifact, user_hidden, tmp_fresh, tmp_other, tmp_live, user_old,
                 user_dead_pid):
        assert kept.is_dir()
    assert (user_old / "f").read_text() == "x" and (user_dead_pid / "f").read_text() == "x"


def test_export_cleans_leftovers_and_stages_with_its_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from us3l.deploy.export import artifact_name, export_width
    from us3l.models import create_model

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    out = tmp_path / "out"
    name = artifact_name("cifar_resnet18", 0.25, "onnx", "fp32")
    leftover = out / "local" / f".{name}.staging-{_dead_pid()}-xyz"
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"half written")
    killed_tmp = tmp / "us3l-profile-killed"
    killed_tmp.mkdir()
    (killed_tmp / OWNER_FILE).write_text("pid\n")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(killed_tmp / OWNER_FILE, (day_ago, day_ago))
    os.utime(killed_tmp, (day_ago, day_ago))

    seen: list[str] = []
    import us3l.deploy.export as export_mod

    real = export_mod._move_into_place

    def spy(staging: Path, final: Path) -> None:
        seen.append(staging.name)
        real(staging, final)

    monkeypatch.setattr(export_mod, "_move_into_place", spy)
    import torch

    from us3l.slim import calibrating

    torch.manual_seed(0)
    model = create_model("cifar_resnet18", num_classes=0)
    with torch.no_grad(), calibrating(model, 0.25):
        model(torch.randn(8, 3, 32, 32))
    res = export_width(model, 0.25, "onnx", out, model_name="cifar_resnet18")
    assert res.valid and not leftover.exists() and not killed_tmp.exists()
    assert seen and seen[0].startswith(f".{name}.staging-{os.getpid()}-") and is_staging(seen[0])
    assert sorted(p.name for p in (out / "local").iterdir()) == [name]


def test_the_answer_card_says_when_its_accuracy_file_is_of_another_checkpoint(pipeline: Path) -> None:
    """Red-team 2026-12-07: after the run was re-trained (quickstart interrupted in its train step), the page's
    answer card showed the old width and accuracy with no warning; only the Inputs section said accuracy.json
    was computed for another checkpoint."""
    import re as _re

    assert "these numbers come from" not in render_report(pipeline).html
    (pipeline / "run" / "checkpoint.safetensors").write_bytes(b"the weights now")  # accuracy.json says "ab"*32
    page = render_report(pipeline).html
    card = _re.search(r'<section id="selection">(.*?)</section>', page, _re.S).group(1)
    assert "these numbers come from stale files: accuracy.json was computed for another checkpoint" in \
        html.unescape(card)


def test_files_of_another_checkpoint_or_other_inputs_are_flagged(pipeline: Path) -> None:
    (pipeline / "run" / "checkpoint.safetensors").write_bytes(b"the weights now")  # accuracy.json says "ab"*32
    sel = json.loads((pipeline / "selection.json").read_text())
    sel["inputs"] = {"profiles": [], "accuracy": {"path": "elsewhere/accuracy.json", "sha256": "cd" * 32}}
    (pipeline / "selection.json").write_text(json.dumps(sel))
    errors = render_report(pipeline).errors()
    assert any("accuracy.json: stale: computed for another checkpoint" in e and "us3l eval" in e for e in errors)
    assert any("selection.json: stale: made from other versions of accuracy.json" in e for e in errors)
    assert all("\n" not in e for e in errors)


def test_an_artifact_of_a_fresh_model_and_a_profile_of_other_macs_are_flagged(pipeline: Path) -> None:
    """Red-team 2026-12-07: ``us3l profile --model`` of the default network (64 base channels, 32 px) in the folder
    of a run trained with 16 base channels records neither a checkpoint nor model kwargs, and the page put its
    latencies beside the run's MACs and accuracies; an ``export --model`` artifact (initial weights) was listed among
    the run's as valid, without a word."""
    import dataclasses

    from tests.report.conftest import make_manifest
    from us3l.profiler.profile_file import load_profile, write_profile

    path = pipeline / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    prof = load_profile(path)
    write_profile(dataclasses.replace(prof, records=tuple(dataclasses.replace(r, macs=r.macs * 63) for r in
                                                          prof.records)), pipeline / "profiles")
    fresh = make_manifest(pipeline, 0.25, checkpoint_sha256=None)
    rep = render_report(pipeline)
    assert rep.files.foreign == [path]
    macs = prof.records[0]
    errors = rep.errors()
    assert f"{path}: left out: profile of cifar_resnet18 with {macs.macs * 63} MACs at width {macs.width:g}, not the " \
           f"run's {macs.macs} (other model options or input size); re-run us3l profile on the run's checkpoint (or " \
           "move it out of profiles/)" in errors
    assert any(e.startswith(f"{fresh}: stale: exported from a fresh model's initial weights, not from the one ")
               and e.endswith("re-run us3l export --ckpt on the run") for e in errors), errors
    assert any(e.startswith(f"{pipeline / 'selection.json'}: cpu/onnx: this answer comes from profiles/{path.name}, a "
                            f"profile of cifar_resnet18 with {macs.macs * 63} MACs") for e in errors), errors
    assert len(errors) == 3


@pytest.mark.slow  # 1.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_switchable_export_is_listed_and_rehashed(pipeline: Path) -> None:
    """``us3l export --switchable`` writes a switchable_manifest beside the static ones: the report lists it with
    its grid and worst verification, and a changed file turns it to valid: no like any artifact."""
    from us3l.deploy.graph import fresh_model
    from us3l.deploy.switchable_export import export_switchable

    net = fresh_model("cifar_resnet18", base_channels=8)
    net.input_size = 16
    res = export_switchable(net, "onnx", pipeline / "artifacts", [1.0, 0.25], device_name="cpu",
                            model_name="cifar_resnet18")
    rep = render_report(pipeline)
    (line,) = rep.errors()  # exported from a fresh model here, not from the run's checkpoint: said, and still listed
    assert line.startswith(f"{res.directory / 'manifest.json'}: stale: exported from a fresh model's initial weights, "
                           "not from the one ")
    assert len(rep.files.manifests) == 2 and all(m.ok and m.doc["valid"] for m in rep.files.manifests)
    assert "switchable: 1, 0.25" in rep.html
    data = bytearray((res.directory / "model.onnx").read_bytes())
    data[-1] ^= 1
    (res.directory / "model.onnx").write_bytes(bytes(data))
    rep = render_report(pipeline)
    (line,) = [e for e in rep.errors() if "stale: exported from a fresh model" not in e]
    assert "valid: no (hash mismatch)" in line and "model.onnx" in line


def test_a_width_schedule_is_shown_beside_the_answer(pipeline: Path) -> None:
    """``select --latency-schedule`` adds ``schedule`` to selection.json: the answer section shows it per device,
    with each width's index in the switchable artifact and 'none fits' where no width fits."""
    from us3l.io import atomic_write_json

    doc = json.loads((pipeline / "selection.json").read_text())
    doc["schedule"] = [{
        "device": "cpu", "model": "m-switchable", "backend": "onnx", "precision": "fp32", "profile": "p.json",
        "switchable": {"artifact": "artifacts/local/m-switchable-onnx-fp32", "sha256": "0" * 64},
        "steps": [
            {"latency_ms": 0.5, "width": None, "width_index": None, "precision": None, "accuracy": None,
             "accuracy_ci": None, "compared_latency_ms": None, "decided_by": None},
            {"latency_ms": 2.0, "width": 0.25, "width_index": 3, "precision": "fp32", "accuracy": 0.41,
             "accuracy_ci": [0.38, 0.44], "compared_latency_ms": 1.2, "decided_by": "tie->latency"},
        ],
    }]
    atomic_write_json(pipeline / "selection.json", doc)
    rep = render_report(pipeline)
    assert rep.errors() == []
    html = rep.html
    assert "Width schedule: cpu (onnx/fp32; switchable artifact <code>artifacts/local/m-switchable-onnx-fp32</code>)" \
        in html
    assert "none fits" in html and ">3<" in html and "tie-&gt;latency" in html and "41.0 %" in html


def test_temporary_folders_us3l_makes_are_marked_as_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.io import owned_temporary_directory, owner_pid
    from us3l.profiler.executors import LocalExecutor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = [Path(LocalExecutor().mkdtemp("us3l-trt")), owned_temp_dir("us3l-x-")]
    with owned_temporary_directory("us3l-profile-") as tmp:
        made.append(tmp)
        assert [owner_pid(d) for d in made] == [os.getpid()] * 3
    assert not made[2].exists() and owner_pid(tmp_path) is None


def test_an_interrupt_between_the_renames_puts_the_old_artifact_back(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team 2026-12-05: Ctrl-C after the old artifact was renamed aside and before the new one was moved in
    lost the old one (the next export's clean-up then deleted the swapped-aside copy)."""
    import us3l.deploy.export as export_mod

    final, staging = tmp_path / "dev" / "m-w0.5-onnx-fp32", tmp_path / "dev" / ".m-w0.5-onnx-fp32.staging-1-a"
    final.mkdir(parents=True)
    (final / "model.onnx").write_text("old")
    staging.mkdir()
    (staging / "model.onnx").write_text("new")
    real = os.replace

    def interrupted(src: str | Path, dst: str | Path) -> None:
        if Path(src) == staging:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(export_mod.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_mod._move_into_place(staging, final)
    assert (final / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == [staging.name, final.name]  # no .old-* folder left
    monkeypatch.setattr(export_mod.os, "replace", real)
    export_mod._move_into_place(staging, final)
    assert (final / "model.onnx").read_text() == "new" and [p.name for p in final.parent.iterdir()] == [final.name]


def test_clean_stale_puts_back_an_artifact_a_killed_export_had_swapped_aside(tmp_path: Path) -> None:
    """Red-team 2026-12-05 (rtA): an export SIGKILLed between its two renames leaves the previous artifact only in
    `.<name>.old-<pid>-*`; the next export's clean_stale deleted that one copy (its PID is dead)."""
    out = tmp_path / "out"
    dev = out / "local"
    name = "m-w0.5-onnx-fp32"
    aside = dev / f".{name}.old-{_dead_pid()}-abc"
    (aside / name).mkdir(parents=True)
    (aside / name / "manifest.json").write_text("previous\n")
    replaced = dev / f".m-w1-onnx-fp32.old-{_dead_pid()}-def"  # killed after the second rename: garbage
    (replaced / "m-w1-onnx-fp32").mkdir(parents=True)
    (replaced / "m-w1-onnx-fp32" / "manifest.json").write_text("old\n")
    (dev / "m-w1-onnx-fp32").mkdir()
    (dev / "m-w1-onnx-fp32" / "manifest.json").write_text("new\n")
    removed = clean_stale(out, tmp_path / "tmp")
    assert sorted(removed) == sorted([aside, replaced])
    assert (dev / name / "manifest.json").read_text() == "previous\n"
    assert (dev / "m-w1-onnx-fp32" / "manifest.json").read_text() == "new\n"
    assert sorted(p.name for p in dev.iterdir()) == ["m-w0.5-onnx-fp32", "m-w1-onnx-fp32"]


def test_files_of_two_checkpoints_are_flagged_without_the_weights(pipeline: Path) -> None:
    """Red-team 2026-12-05: without run/checkpoint.safetensors (results copied without the weights) nothing was
    compared, so a profile of another run beside accuracy.json gave a page with no warning at all."""
    from us3l.profiler.profile_file import load_profile, write_profile

    assert not (pipeline / "run" / "checkpoint.safetensors").exists()
    assert render_report(pipeline).errors() == []  # profiles without a checkpoint_sha256 (--model) are not flagged
    path = pipeline / "profiles" / "cifar_resnet18-cpu-onnx-fp32.json"
    import dataclasses

    write_profile(dataclasses.replace(load_profile(path), checkpoint_sha256="cd" * 32), pipeline / "profiles")
    (line,) = render_report(pipeline).errors()
    assert line.startswith(f"{path}: stale: profiled from another checkpoint than the one {pipeline}/accuracy.json "
                           "was computed from (sha256 abababababab…; ") and "checkpoint.safetensors is absent" in line
    assert "\n" not in line


def test_the_run_section_shows_the_runs_own_checkpoint_sha256(pipeline: Path) -> None:
    """Red-team 2026-12-05: the Run section's "checkpoint sha256" was accuracy.json's, so a stale accuracy file made
    the run look like the checkpoint it was computed from; a checkpoint.json of other weights went unnoticed."""
    from us3l.io import file_sha256

    weights = pipeline / "run" / "checkpoint.safetensors"
    weights.write_bytes(b"the weights now")  # accuracy.json says "ab" * 32
    sha = file_sha256(weights)
    rep = render_report(pipeline)
    assert f"<td>checkpoint sha256</td><td>{sha}</td>" in rep.html and "ab" * 32 not in rep.html
    meta_path = pipeline / "run" / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "weights_sha256": "ef" * 32}))
    lines = [e for e in render_report(pipeline).errors() if e.startswith(f"{meta_path}: stale: ")]
    assert lines == [f"{meta_path}: stale: describes other weights (sha256 {'ef' * 6}…) than {weights} (sha256 "
                     f"{sha[:12]}…): the run section may not be of these weights (replaced, damaged, or a save in "
                     "progress)"]
    weights.unlink()  # without the weights: checkpoint.json's own record, said so
    assert f"{'ef' * 32} (recorded in checkpoint.json; the weights file is absent)" in render_report(pipeline).html


def test_clean_stale_reads_no_fifo_or_link_as_an_owner_file(tmp_path: Path) -> None:
    """Red-team: anyone can make a `us3l-*` folder in a shared /tmp; its `.us3l-owner` as a FIFO blocked every
    export's clean-up forever (a link to /dev/zero read until memory ran out). Neither is read."""
    import threading

    from us3l.io import OWNER_FILE, owner_pid

    fifo_dir, link_dir, ours = tmp_path / "us3l-fifo", tmp_path / "us3l-link", tmp_path / "us3l-ours"
    for d in (fifo_dir, link_dir, ours):
        d.mkdir()
    os.mkfifo(fifo_dir / OWNER_FILE)
    (tmp_path / "elsewhere").write_text("pid 1\n")
    (link_dir / OWNER_FILE).symlink_to(tmp_path / "elsewhere")
    (ours / OWNER_FILE).write_text("pid 999999999\n")  # no such process: stale, removed
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(clean_stale(None, tmp_path)), daemon=True)
    thread.start()
    thread.join(60)
    blocked = thread.is_alive()
    try:  # let a blocked reader go (end of file)
        os.close(os.open(fifo_dir / OWNER_FILE, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    thread.join(10)
    assert not blocked
    assert result == [[ours]] and fifo_dir.is_dir() and link_dir.is_dir()
    assert owner_pid(fifo_dir) is None and owner_pid(link_dir) is None


def test_a_run_stopped_between_checkpoints_shows_the_checkpoints_epochs(pipeline: Path) -> None:
    """Red-team 2026-12-05: a run killed while appending to metrics.jsonl (a last line cut off) made the whole file
    an error, and epochs logged after the last checkpoint counted in the training time and the last loss."""
    metrics = pipeline / "run" / "metrics.jsonl"  # epochs 1 and 2 at 61.5 s each; the checkpoint is of epoch 2
    metrics.write_text(metrics.read_text() + json.dumps({"epoch": 3, "loss": {"base": 9.0}, "seconds": 500.0})
                       + '\n{"epoch": 4, "loss": {"ba')
    rep = render_report(pipeline)
    assert rep.errors() == []
    assert "<td>training time</td><td>2 min 3 s (123.0 s)</td>" in rep.html
    assert "<td>last epoch loss</td><td>base 0.7500</td>" in rep.html
    metrics.write_text(metrics.read_text() + "\n")  # a damaged line that is not the last append: still an error
    assert any("line 4 is not valid JSON" in e for e in render_report(pipeline).errors())


def test_a_metrics_file_too_large_to_be_ours_is_an_error_not_read(pipeline: Path) -> None:
    """Red-team 2026-12-06: metrics.jsonl was read whole, however large."""
    metrics = pipeline / "run" / "metrics.jsonl"
    with open(metrics, "r+b") as fh:  # 8 GiB on paper, sparse: never read
        fh.truncate(8 << 30)
    errors = render_report(pipeline).errors()
    assert f"metrics file {metrics} is larger than 64 MiB; it is not a us3l metrics file" in errors


def test_a_width_spelled_exactly_in_the_profiles_shares_its_row_with_the_accuracy_files_4_decimals(
        pipeline: Path) -> None:
    """Red-team 2026-12-06: the table keyed widths by round() (half to even), so a profile's 25/32 = 0.78125
    (0.7812) and the accuracy file's 0.7813 were two rows, one without latency, one without accuracy, while
    `us3l select` matched them as one width."""
    for path in (pipeline / "profiles").glob("*.json"):
        doc = json.loads(path.read_text())
        for rec in doc["records"]:
            rec["width"] = 0.78125 if rec["width"] == 0.75 else rec["width"]
        path.write_text(json.dumps(doc))
    acc = pipeline / "accuracy.json"
    doc = json.loads(acc.read_text())
    for row in doc["widths"]:
        if row["width"] == 0.75:
            row["width"] = row["canonical_width"] = 0.7813
    acc.write_text(json.dumps(doc))
    html = render_report(pipeline).html
    assert '<td class="num">0.78125</td><td class="num">61.3 % [56.4–65.9 %]</td>' in html
    assert '<td class="num">3.005</td>' in html  # the onnx p50 in the same table
    assert ">0.7813</td>" not in html and ">0.7812</td>" not in html
    from us3l.report.plots import panels_from_profiles

    files = collect_pipeline(pipeline)
    panels = panels_from_profiles(files.usable_profiles(), files.accuracy.doc)  # the plot drew no point for it
    point = next(p for p in panels[0].points if p.width == 0.78125)
    assert point.accuracy == 100 * 0.6125 and point.random_init == 100 * 0.24 and point.ci is not None


def test_a_summary_of_other_files_is_flagged_stale(pipeline: Path) -> None:
    """Red-team 2026-12-05: quickstart's summary.json recorded no inputs, so one copied from another quickstart
    folder (or left from before the files were re-made by hand) showed its numbers without a word."""
    import json

    from us3l.io import file_sha256

    summary = pipeline / "summary.json"
    doc = json.loads(summary.read_text())
    doc["inputs"] = {name: {"path": name, "sha256": file_sha256(pipeline / name)}
                     for name in ("accuracy.json", "selection.json")}
    summary.write_text(json.dumps(doc))
    assert not [line for line in render_report(pipeline).errors() if line.startswith(str(summary))]
    doc["inputs"]["selection.json"]["sha256"] = "0" * 64
    summary.write_text(json.dumps(doc))
    (line,) = [line for line in render_report(pipeline).errors() if line.startswith(str(summary))]
    assert line == (f"{summary}: stale: its numbers come from other versions of selection.json than this folder "
                    "holds; re-run us3l quickstart")


def test_a_stale_selection_names_the_changed_file_by_its_place_in_the_folder(pipeline: Path) -> None:
    """The step-by-step layout keeps accuracy.json in run/ (``us3l eval --ckpt run``): the README quotes the
    warning as '... made from other versions of run/accuracy.json', the report said '... of accuracy.json'."""
    (pipeline / "accuracy.json").rename(pipeline / "run" / "accuracy.json")
    profile = next((pipeline / "profiles").glob("*.json"))
    sel = json.loads((pipeline / "selection.json").read_text())
    sel["inputs"] = {"profiles": [{"path": f"profiles/{profile.name}", "sha256": "ef" * 32}],
                     "accuracy": {"path": "run/accuracy.json", "sha256": "cd" * 32}}
    (pipeline / "selection.json").write_text(json.dumps(sel))
    errors = render_report(pipeline).errors()
    assert any(e.endswith(f"selection.json: stale: made from other versions of run/accuracy.json, profiles/"
                          f"{profile.name}; re-run us3l select") for e in errors), errors


def test_a_selection_input_that_is_gone_is_named_as_the_selection_recorded_it(pipeline: Path) -> None:
    """Red-team 2026-12-06: with the step-by-step layout's run/accuracy.json deleted, the line said the selection
    was made from accuracy.json, a file it never read."""
    (pipeline / "accuracy.json").rename(pipeline / "run" / "accuracy.json")
    sel = json.loads((pipeline / "selection.json").read_text())
    sel["inputs"] = {"profiles": [], "accuracy": {"path": "run/accuracy.json", "sha256": "cd" * 32}}
    (pipeline / "selection.json").write_text(json.dumps(sel))
    (pipeline / "run" / "accuracy.json").unlink()
    assert f"{pipeline / 'selection.json'}: stale: made from run/accuracy.json, which this folder no longer holds; " \
        "re-run us3l select" in render_report(pipeline).errors()


def test_a_selection_from_profiles_in_another_folder_is_compared_with_those(pipeline: Path, tmp_path: Path) -> None:
    """Red-team 2026-12-06: a selection made from another folder's profile was compared with the pipeline's
    profiles/<same name>: stale when that other file was untouched, silent when it had changed."""
    from us3l.io import file_sha256

    profile = next((pipeline / "profiles").glob("*.json"))
    other = tmp_path / "elsewhere" / profile.name
    other.parent.mkdir()
    other.write_text(profile.read_text().replace('"threads"', '"threads" ', 1))  # same profile, other bytes
    sel = json.loads((pipeline / "selection.json").read_text())
    sel["inputs"] = {"profiles": [{"path": str(other), "sha256": file_sha256(other)}], "accuracy": None}
    (pipeline / "selection.json").write_text(json.dumps(sel))
    assert not [e for e in render_report(pipeline).errors() if "selection.json: stale" in e]
    other.write_text(other.read_text() + "\n")
    assert f"{pipeline / 'selection.json'}: stale: made from other versions of {other}; re-run us3l select" \
        in render_report(pipeline).errors()


def test_a_selection_made_from_run_accuracy_in_a_quickstart_folder_is_read_with_that_file(pipeline: Path) -> None:
    """The README's step-by-step commands run in a quickstart folder: `us3l eval --ckpt run` writes
    run/accuracy.json beside quickstart's accuracy.json and `us3l select --accuracy run/accuracy.json` records it.
    `us3l report .` compared the selection with the top accuracy.json ("stale: made from other versions of
    accuracy.json") and showed that file's numbers beside the selection made from the other."""
    from us3l.io import file_sha256

    doc = json.loads((pipeline / "accuracy.json").read_text())
    doc["num_test"] = doc.get("num_test", 0) + 1  # the re-run eval: other bytes than quickstart's file
    nested = pipeline / "run" / "accuracy.json"
    nested.write_text(json.dumps(doc))
    sel = json.loads((pipeline / "selection.json").read_text())
    sel["inputs"] = {"profiles": [{"path": f"profiles/{p.name}", "sha256": file_sha256(p)}
                                  for p in sorted((pipeline / "profiles").glob("*.json"))],
                     "accuracy": {"path": "run/accuracy.json", "sha256": file_sha256(nested)}}
    (pipeline / "selection.json").write_text(json.dumps(sel))
    rep = render_report(pipeline)
    assert not [e for e in rep.errors() if "selection.json: stale" in e], rep.errors()
    assert rep.files.accuracy is not None and rep.files.accuracy.path == nested
    nested.write_text(json.dumps({**doc, "num_test": doc["num_test"] + 1}))  # changed since: still flagged
    assert any(e.endswith("selection.json: stale: made from other versions of run/accuracy.json; re-run us3l "
                          "select") for e in render_report(pipeline).errors())


def test_profiles_spelling_a_width_two_ways_share_one_row(pipeline: Path) -> None:
    """Red-team 2026-12-06: the width table keyed each profile's records by round() (half to even), so one
    profile's 25/32 = 0.78125 (0.7812) and another's 0.7813 were two rows, each with one device's latency."""
    paths = sorted((pipeline / "profiles").glob("*.json"))
    assert len(paths) >= 2
    for path, spelling in zip(paths, (0.78125, 0.7813), strict=False):
        doc = json.loads(path.read_text())
        for rec in doc["records"]:
            rec["width"] = spelling if rec["width"] == 0.75 else rec["width"]
        path.write_text(json.dumps(doc))
    html = render_report(pipeline).html
    assert html.count('<tr><td class="num">0.78125</td>') == 1
    assert '<tr><td class="num">0.7813</td>' not in html


def test_a_tie_spelled_with_4_decimals_is_the_chosen_width_itself() -> None:
    from us3l.report.plots import tied_widths

    dev = {"chosen": {"width": 0.78125}, "tied_widths": [0.7813, 0.75]}
    assert tied_widths(dev) == [0.75]


@pytest.mark.slow  # 1.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_profile_of_a_switchable_artifact_re_exported_since_is_flagged_stale(pipeline: Path, monkeypatch,
                                                                               tmp_path_factory) -> None:
    """Red-team 2026-12-06 (rtS): `us3l export --switchable` again into the same folder (another grid, or another
    run) replaces the artifact a `profile --artifact` measured; the report showed the old profile, and a latency
    schedule whose width indices are of the old grid, beside the new artifact without a word."""
    from us3l.deploy.graph import fresh_model
    from us3l.deploy.switchable_export import export_switchable

    net = fresh_model("cifar_resnet18", base_channels=8)
    net.input_size = 16
    res = export_switchable(net, "onnx", pipeline / "artifacts", [1.0, 0.25], device_name="cpu",
                            model_name="cifar_resnet18")
    path = next((pipeline / "profiles").glob("*.json"))
    doc = json.loads(path.read_text())
    doc["extra"]["switchable"] = {"artifact": str(res.directory), "sha256": res.manifest["artifact"]["sha256"],
                                  "widths": [r["width"] for r in doc["records"]], "index_input": "width_index",
                                  "mode": "onnxruntime"}
    path.write_text(json.dumps(doc))
    assert [e for e in render_report(pipeline).errors() if "re-exported since" in e] == []
    doc["extra"]["switchable"]["sha256"] = "ab" * 32  # measured through the artifact the folder held before
    path.write_text(json.dumps(doc))
    (line,) = [e for e in render_report(pipeline).errors() if "re-exported since" in e]
    assert line == (f"{path}: stale: measured through another version of "
                    f"{res.directory.relative_to(pipeline).as_posix()} (sha256 abababababab…, the folder holds "
                    f"{res.manifest['artifact']['sha256'][:12]}…: re-exported since; a latency schedule's width "
                    "indices may name other widths there); re-run us3l profile --artifact")
    # as us3l profile --artifact records it now: relative to the profile's folder, read from any folder
    from us3l.profiler.switchable_profile import placed_artifact

    doc["extra"]["switchable"].update(placed_artifact(res.directory, path))
    path.write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert [e for e in render_report(pipeline).errors() if "re-exported since" in e] == [line]


def test_a_summary_is_checked_against_the_files_it_recorded(pipeline: Path) -> None:
    """Red-team 2026-12-06 (rtF): the summary's staleness check compared `root/accuracy.json` and
    `root/selection.json` by name, not the paths summary.json recorded (as the selection's check does with
    ``used_input``): a recorded file changed since went unflagged while the folder's namesake matched."""
    import shutil

    from us3l.io import file_sha256

    summary = pipeline / "summary.json"
    kept = pipeline / "kept"
    kept.mkdir()
    shutil.copy(pipeline / "selection.json", kept / "selection.json")
    doc = json.loads(summary.read_text())
    doc["inputs"] = {"accuracy.json": {"path": "accuracy.json", "sha256": file_sha256(pipeline / "accuracy.json")},
                     "selection.json": {"path": "kept/selection.json",
                                        "sha256": file_sha256(kept / "selection.json")}}
    summary.write_text(json.dumps(doc))
    assert not [line for line in render_report(pipeline).errors() if line.startswith(str(summary))]
    (kept / "selection.json").write_text((kept / "selection.json").read_text() + "\n")  # re-made since
    (line,) = [line for line in render_report(pipeline).errors() if line.startswith(str(summary))]
    assert line == (f"{summary}: stale: its numbers come from other versions of kept/selection.json than this "
                    "folder holds; re-run us3l quickstart")


def test_a_selection_written_from_another_folder_is_checked_against_its_own_inputs(
        pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`us3l select` run beside the pipeline folder recorded `pipe/accuracy.json`, relative to where it ran; the
    report looked that up in the pipeline folder, then from the current folder, where a namesake (another
    pipeline's) made the selection stale. A written selection records its inputs relative to its own folder."""
    from us3l.deploy.select import Budget, read_selection, select, write_selection

    profiles = sorted((pipeline / "profiles").glob("*.json"))
    monkeypatch.chdir(pipeline.parent)
    given = [Path(pipeline.name) / "profiles" / p.name for p in profiles]
    sel = select(given, Budget(latency_ms=1e6), accuracy=Path(pipeline.name) / "accuracy.json")
    write_selection(pipeline / "selection.json", sel)
    doc = read_selection(pipeline / "selection.json")
    assert doc["inputs"]["relative_to"] == "file" and doc["inputs"]["accuracy"]["path"] == "accuracy.json"
    assert [p["path"] for p in doc["inputs"]["profiles"]] == [f"profiles/{p.name}" for p in profiles]
    decoy = tmp_path / "elsewhere"  # the report run where another folder of the same name holds other files
    shutil.copytree(pipeline, decoy / pipeline.name)
    (decoy / pipeline.name / "accuracy.json").write_text(
        (pipeline / "accuracy.json").read_text().replace('"model"', '"model" ', 1))
    monkeypatch.chdir(decoy)
    assert not [e for e in render_report(pipeline).errors() if "selection.json: stale" in e]
    moved = tmp_path / "moved"  # the folder moved: still its own files
    shutil.move(str(pipeline), moved)
    assert not [e for e in render_report(moved).errors() if "selection.json: stale" in e]
    (moved / "accuracy.json").write_text((moved / "accuracy.json").read_text() + "\n")
    assert f"{moved / 'selection.json'}: stale: made from other versions of accuracy.json; re-run us3l select" \
        in render_report(moved).errors()


def test_a_selection_whose_inputs_say_another_base_is_refused(pipeline: Path) -> None:
    doc = json.loads((pipeline / "selection.json").read_text())
    doc.setdefault("inputs", {})["relative_to"] = "cwd"
    (pipeline / "selection.json").write_text(json.dumps(doc))
    assert any(e.endswith("'inputs.relative_to' must be 'file', got 'cwd'") for e in render_report(pipeline).errors())


def test_a_summary_input_gone_from_its_folder_is_not_found_in_the_current_folder(
        pipeline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """quickstart records its summary's inputs relative to the summary's folder; the report also looked them up
    from the current folder, where a copy of the deleted accuracy.json hid that the folder no longer holds it."""
    from us3l.io import file_sha256

    summary = pipeline / "summary.json"
    doc = json.loads(summary.read_text())
    doc["inputs"] = {name: {"path": name, "sha256": file_sha256(pipeline / name)}
                     for name in ("accuracy.json", "selection.json")}
    summary.write_text(json.dumps(doc))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(pipeline / "accuracy.json"), elsewhere / "accuracy.json")
    monkeypatch.chdir(elsewhere)
    (line,) = [line for line in render_report(pipeline).errors() if line.startswith(str(summary))]
    assert line == (f"{summary}: stale: its numbers come from other versions of accuracy.json than this folder "
                    "holds; re-run us3l quickstart")


def test_accuracies_measured_with_bn_statistics_recalibrated_since_are_flagged(pipeline: Path) -> None:
    """Red-team 2026-12-08: after `us3l calibrate --batches 1` on a run evaluated with 2 batches, accuracy.json
    (and a selection made from it) described networks the run no longer holds -- every export since ships the new
    statistics -- and the page showed it without a word; quickstart reused it as fresh too."""
    import torch
    from safetensors.torch import save_file

    from us3l.eval.accuracy import save_accuracy
    from us3l.eval.calibrate import CalibrationSettings

    settings = CalibrationSettings(batches=2, batch_size=128, data="builtin").to_dict()
    doc = json.loads((pipeline / "accuracy.json").read_text())
    doc["calibration"] = settings
    save_accuracy(doc, pipeline / "accuracy.json")

    def stats(batches: int) -> None:
        meta = {k: str(v) for k, v in {**settings, "batches": batches}.items()}
        save_file({"1.0000/bn.mean": torch.zeros(2)}, str(pipeline / "run" / "bn_stats.safetensors"),
                  metadata={**meta, "checkpoint_sha256": "ab" * 32})

    stats(2)  # the statistics the accuracies were measured with
    assert not [e for e in render_report(pipeline).errors() if "BN statistics" in e]
    stats(1)  # recalibrated since
    errors = render_report(pipeline).errors()
    line = (f"{pipeline / 'accuracy.json'}: stale: measured with other BN statistics than "
            f"{pipeline / 'run' / 'bn_stats.safetensors'} holds now (recalibrated since: batches 2 -> 1); "
            "re-run us3l eval")
    assert line in errors
