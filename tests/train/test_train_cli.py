"""``us3l train`` flag combinations a red-team pass (2026-12-05) found accepted or mishandled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.errors import US3LError

from .conftest import killed_overwrite, write_junk_folder, write_tiny_config


def _config(tmp_path: Path, tiny_folder: Path, **extra: object) -> Path:
    return write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, **extra)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume", "--overwrite"], "error: give --resume (continue the run in --out) or --overwrite (start it "
                                      "over), not both"),
        (["--set", "lr=1e-3", "--set", "lr=2"], "error: --set lr is given twice with different values; give one"),
        (["--set", "=0.1"], "error: --set expects key=value, got '=0.1'"),  # was: unknown config key(s): ;
        # red-team: the optimizer's weight decay is 0 while the regularizer is on: 5e-4 was dropped without a word
        (["--set", "weight_decay=5e-4"], "error: --set weight_decay=0.0005 has no effect while the group "
                                         "regularizer is on (it replaces weight decay); add --set regularizer=false "
                                         "for plain weight decay"),
        # `cuda:١` (an Arabic-Indic digit) passed as cuda:0, and torch.device() refused it later as a RuntimeError
        (["--torch-device", "cuda:\u0661"], "error: device must be auto, cpu, cuda or cuda:N, got 'cuda:\u0661'"),
    ],
)
def test_contradictory_or_impossible_flags_are_one_line(tmp_path: Path, argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 1
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nproc", "0"], "error: Invalid value for '--nproc': Input should be greater than or equal to 1"),
        (["--nproc", "-1"], "error: Invalid value for '--nproc': Input should be greater than or equal to 1"),
        # the same bad --threads is the same usage error (exit 2) in every command (it was exit 1 in train)
        (["--threads", "0"], "error: Invalid value for '--threads': Input should be greater than or equal to 1"),
        (["--threads", "100000"], "error: Invalid value for '--threads': Input should be less than or equal to "
                                  "65536"),
        # red-team: `--set lr=$LR` with LR unset read as null, the method's default lr, and trained with it
        (["--set", "lr="], "error: --set lr= is given an empty value (--set lr=null resets the key to its default)"),
        (["--set", "model_kwargs.base_channels= "], "error: --set model_kwargs.base_channels= is given an empty value "
                                                    "(--set model_kwargs.base_channels=null resets the key to its "
                                                    "default)"),
    ],
)
def test_out_of_range_flags_are_usage_errors(tmp_path: Path, argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 2
    assert capsys.readouterr().err == message + " (see: us3l train --help)\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_resume_checks_only_what_it_uses_and_says_when_there_is_nothing_to_resume(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 0
    assert f"note: {run} holds no checkpoint to --resume: starting a new run" in capsys.readouterr().err
    # --epochs 3 is invalid under default.yaml's schedule A, but the saved run has none and ignores it anyway
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert "ignored: epochs=3" in err and "error" not in err
    # ignored, but still read: a value of the wrong type is a typo to hear about (red-team 2026-12-07: exit 0)
    assert main(["train", "--out", str(run), "--resume", "--set", "lr=abc", "-q"]) == 1
    assert capsys.readouterr().err == "error: config 'lr' must be a number (or null), got 'abc'\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"knn_max_train": 1}, "knn_max_train 1 is below the number of classes (2) of folder:{data}: the kNN bank "
                               "needs at least one image per class"),
        ({"knn_widths": [1.0, 0.1]}, "knn_widths 0.1 outside the trained range [0.25, 1]"),
        # red-team: the single baseline ran its monitor at single_width whatever knn_widths asked for
        ({"method": "single", "single_width": 0.5, "knn_widths": [1.0, 0.5]},
         "knn_widths 1: method single trains only width 0.5 (single_width); the monitor runs there ([] turns it "
         "off)"),
    ],
)
def test_a_knn_monitor_that_cannot_mean_anything_is_refused(tmp_path: Path, tiny_folder: Path, extra: dict,
                                                            message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: a 3-image bank for 10 classes printed 7.5-15 %, a width outside the range was dropped
    and the table came out empty, both with exit 0."""
    cfg = _config(tmp_path, tiny_folder, **extra)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 1
    assert capsys.readouterr().err == "error: " + message.format(data=tiny_folder) + "\n"
    assert not (tmp_path / "run").exists()


def test_one_class_is_refused(tmp_path: Path, tiny_folder: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: one class scored 100 % at every width, with 'chance 100.0'."""
    import shutil

    one = tmp_path / "one"
    shutil.copytree(tiny_folder / "train" / "a", one / "a")
    message = (f"error: folder:{one} has 1 class: kNN accuracy needs at least 2 (one folder per class); --set "
               "knn_widths=[] trains without the kNN monitor (unlabelled images)\n")
    cfg = _config(tmp_path, tiny_folder, data=f"folder:{one}")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 1
    assert capsys.readouterr().err == message


@pytest.mark.slow  # 2.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_one_class_trains_without_the_monitor(tmp_path: Path, tiny_folder: Path) -> None:
    """Red-team 2026-12-06: unlabelled images in one folder (self-supervised pretraining needs no labels) were
    refused for the kNN monitor's sake even with the monitor off (knn_widths: [])."""
    import shutil

    one = tmp_path / "one"
    for split in ("train", "test"):
        shutil.copytree(tiny_folder / split / "a", one / split / "a")
    cfg = _config(tmp_path, tiny_folder, data=f"folder:{one}", knn_widths=[], epochs=1, schedule="none")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()


def test_json_prints_no_progress(tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: ``--json`` promised no progress, yet every epoch line and the amp line reached stderr."""
    import json

    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1, amp="auto", threads="auto")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--json"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["epochs"] == 1
    assert "epoch 1 |" not in cap.err and "amp: auto" not in cap.err and "threads: auto" not in cap.err, cap.err


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_train_state_of_another_model_is_refused_on_resume(tmp_path: Path, tiny_folder: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: it loaded, and the run failed at the first SGD step with a bare size mismatch."""
    import shutil

    runs = {}
    for channels in (8, 16):
        (tmp_path / f"c{channels}").mkdir()
        cfg = _config(tmp_path / f"c{channels}", tiny_folder, schedule="none", epochs=1,
                      model_kwargs={"base_channels": channels})
        runs[channels] = tmp_path / f"run{channels}"
        assert main(["train", "--config", str(cfg), "--out", str(runs[channels]), "-q"]) == 0
    shutil.copy(runs[16] / "train_state.pt", runs[8] / "train_state.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(runs[8]), "--resume", "--epochs", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {runs[8] / 'train_state.pt'} is not a safe us3l training state (ValueError: "
                          "optimizer momentum_buffer of parameter ") and "the state of another model" in err, err


@pytest.mark.parametrize("method", ["us3l", "single", "snets"])
def test_no_monitor_widths_is_a_note_not_an_empty_table(tmp_path: Path, tiny_folder: Path, method: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: `knn_widths: []` ended with an accuracy table of headers only; `single` and `snets`
    ran the monitor anyway (at single_width, at every switch) under the note that there was none."""
    cfg = _config(tmp_path, tiny_folder, method=method, schedule="none", epochs=1, knn_widths=[])
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run)]) == 0
    (line,) = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert not line.get("knn_top1"), line  # nothing measured
    # nor recorded as measured: the line had empty knn_top1/collapse_std/backbone_std (the epoch line '| knn  | std ')
    assert not {"knn_top1", "collapse_std", "backbone_std", "knn"} & set(line), line
    cap = capsys.readouterr()
    assert "knn_top1" not in cap.out and f"run folder: {run}  (1 epoch, " in cap.out  # not "1 epochs"
    assert f"note: knn_widths is empty: no kNN monitor; measure the accuracy with us3l eval --ckpt {run}" in cap.err


def test_one_sample_per_iteration_says_only_the_max_width_trains(tmp_path: Path, tiny_folder: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: num_samples 1 trained width 1 only, without a word, while recording min_width 0.25."""
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1, num_samples=1)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert "note: num_samples 1: every iteration trains width 1 only" in capsys.readouterr().err


def test_a_weight_decay_in_the_config_file_under_the_regularizer_is_one_line(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: `--set weight_decay=5e-4` was refused with the regularizer on, `weight_decay: 5e-4` in
    the --config file trained without it and without a word."""
    cfg = _config(tmp_path, tiny_folder, weight_decay=5e-4)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == ("error: weight_decay 0.0005 has no effect while the group regularizer is on (it "
                                       "replaces weight decay); set regularizer: false for plain weight decay, or "
                                       "leave weight_decay out (the method's 0.0001, unused)\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sync_bn", [True, False])
def test_sync_bn_on_one_process_says_it_has_no_effect(tmp_path: Path, tiny_folder: Path, sync_bn: bool,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: sync_bn only acts in a distributed run (us3l.slim.syncbn); on one
    process it was dropped without a word. A note, not a refusal: a shipped config sets it for 1 to N processes."""
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1, sync_bn=sync_bn)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    note = ("note: sync_bn has no effect on one process: it synchronizes every BatchNorm's statistics across the "
            "processes of a distributed run (--nproc N or torchrun)\n")
    assert (note in capsys.readouterr().err) is sync_bn


@pytest.mark.parametrize(("edit", "why"), [
    ("momentum", "ValueError: optimizer momentum of parameter group 0 is 0.0, the config gives 0.9)"),
    ("momentum_str", "ValueError: optimizer momentum of parameter group 0 is 'x', the config gives 0.9)"),
    ("sampler", "AttributeError: 'list' object has no attribute 'tolist')"),
])
def test_an_edited_train_state_is_refused_on_resume(edit: str, why: str, tmp_path: Path, tiny_folder: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team: torch takes the param groups' momentum / weight decay from the file, so an edited state trained
    on with momentum 0 while the config said 0.9 (or failed at the first step with a bare TypeError), and a
    sampler state of the wrong type ended in 'error: AttributeError'."""
    import torch

    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "-q"]) == 0
    state = torch.load(run / "train_state.pt", weights_only=True)
    if edit == "sampler":
        state["sampler"]["internal"] = [1, 2]
    else:
        state["optimizer"]["param_groups"][0]["momentum"] = 0.0 if edit == "momentum" else "x"
    torch.save(state, run / "train_state.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'train_state.pt'} is not a safe us3l training state ({why}"), err


@pytest.mark.parametrize("epoch", [-2, 0, 3])
def test_a_checkpoint_epoch_outside_the_config_is_refused_on_resume(epoch: int, tmp_path: Path, tiny_folder: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team: with the three checkpoint files agreeing on epoch -2, --resume trained epochs -2 and -1 on (with
    the learning rate and widths of negative epochs); on epoch 3 of a 2-epoch config it reported a completed run."""
    import hashlib
    import json

    import torch
    from safetensors.torch import load_file

    from us3l.safetensors_io import safetensors_bytes

    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "-q"]) == 0
    blob = safetensors_bytes(load_file(run / "checkpoint.safetensors"), {"epoch": str(epoch), "format": "pt"})
    (run / "checkpoint.safetensors").write_bytes(blob)
    meta = json.loads((run / "checkpoint.json").read_text())
    meta.update(epoch=epoch, weights_sha256=hashlib.sha256(blob).hexdigest())
    (run / "checkpoint.json").write_text(json.dumps(meta))
    state = torch.load(run / "train_state.pt", weights_only=True)
    state["epoch"] = epoch
    torch.save(state, run / "train_state.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "-q"]) == 1
    assert capsys.readouterr().err == (f"error: checkpoint in {run} records epoch {epoch}, outside the 1..2 epochs "
                                       "of its config (edited?); restore the original files or start over with "
                                       "--overwrite\n")


def test_resume_of_a_run_killed_before_its_first_checkpoint_is_one_error_line(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team: --resume there printed 'note: ... starting a new run' and then the error refusing to."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 1
    assert capsys.readouterr().err == (f"error: {run} holds the metrics of a run that stopped before its first "
                                       "checkpoint (nothing to --resume); pass --overwrite to start over, or choose "
                                       "another --out\n")


def test_resume_of_weights_without_their_checkpoint_json_names_what_is_missing(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: with checkpoint.json gone, `--resume` said "already holds a checkpoint; pass --resume"."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(b"weights")  # never read: refused before
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume", "-q"]) == 1
    assert capsys.readouterr().err == (f"error: {run} holds checkpoint.safetensors but not its checkpoint.json, "
                                       "without which it cannot be resumed: restore checkpoint.json, or pass "
                                       "--overwrite to start over\n")
    assert (run / "checkpoint.safetensors").read_bytes() == b"weights"


def test_a_width_range_edited_in_checkpoint_json_is_refused_on_resume(tmp_path: Path, tiny_folder: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """width_range is saved with the weights too (us3l.checkpoint.check_bound): a hand edit is refused on resume."""
    import json

    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "-q"]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["width_range"]["min"] = 0.5
    (run / "checkpoint.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "-q"]) == 1
    err = capsys.readouterr().err
    weights = run / "checkpoint.safetensors"
    assert err.startswith(f"error: checkpoint {weights}: checkpoint.json records width_range "), err
    assert err.endswith("(checkpoint.json was edited); restore the original checkpoint.json or re-train\n"), err
    assert err.count("\n") == 1


@pytest.mark.slow  # 4.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_resumed_runs_knn_header_names_the_runs_own_k_and_temperature(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-06: after --resume the table's header read the command line's defaults (k asked 20,
    T=0.1) for a run monitored with its saved knn_k 3 and knn_t 0.2."""
    cfg = _config(tmp_path, tiny_folder, knn_t=0.2)
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--epochs", "4"]) == 0
    first = capsys.readouterr().out
    assert "(k asked 3, capped at half a class; T=0.2)" in first
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert "(k asked 3, capped at half a class; T=0.2)" in capsys.readouterr().out
    # a run whose monitor is off says so on resume too, instead of an empty table
    off = tmp_path / "off"
    assert main(["train", "--config", str(cfg), "--out", str(off), "--set", "knn_widths=[]"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(off)]) == 0
    captured = capsys.readouterr()
    assert "knn_widths is empty" in captured.err and "kNN accuracy" not in captured.out


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_resume_on_another_number_of_processes_says_the_batch_changed(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """batch_size is per process: a run trained on 2 processes and resumed on 1 halves the images per iteration
    (the learning rate stays), which went unsaid."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(_config(tmp_path, tiny_folder)), "--out", str(out)]) == 0
    meta = json.loads((out / "checkpoint.json").read_text())
    meta["distributed"]["world_size"] = 2  # as a run of `us3l train --nproc 2` records it
    (out / "checkpoint.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count(f"note: {out} last trained on 2 process(es) and resumes on 1: batch_size 4 is per process, so "
                     "an iteration now takes 4 images (it took 8) at the same learning rate\n") == 1, err


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-06: --overwrite sets the old run aside until the new one saves; a SIGKILL before that (the
    OOM killer, torchrun stopping a worker) left the old checkpoint hidden in .replaced-PID, and --resume said the
    folder held the metrics of a run with nothing to resume."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(_config(tmp_path, tiny_folder)), "--out", str(out), "--quiet"]) == 0
    old = killed_overwrite(out)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["epochs"] == 4  # the old run, complete
    assert not list(out.glob(".replaced-*"))
    assert (out / "checkpoint.safetensors").read_bytes() == old["checkpoint.safetensors"]
    assert (out / "metrics.jsonl").read_bytes() == old["metrics.jsonl"]
    # killed after the new run saved its checkpoint (before it dropped the old files): the old files go
    killed_overwrite(out, tag="999998")
    for name, data in old.items():
        if name != "metrics.jsonl":
            (out / name).write_bytes(data)
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    assert not list(out.glob(".replaced-*"))


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_overwrite_killed_under_this_processs_pid_gives_the_old_run_back(
        tmp_path: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The set-aside folder was named by the PID alone, and one named by this process's PID was taken for its own
    and left hidden. PIDs repeat (a container restarted after the SIGKILL often gives the job the same ones):
    --resume then said the folder held a run stopped before its first checkpoint, and a new run into it would
    have deleted the old checkpoint with its own set-aside folder at its first save."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(_config(tmp_path, tiny_folder)), "--out", str(out), "--quiet"]) == 0
    old = killed_overwrite(out, tag=str(os.getpid()))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["epochs"] == 4
    assert not list(out.glob(".replaced-*"))
    assert (out / "checkpoint.safetensors").read_bytes() == old["checkpoint.safetensors"]


def test_data_without_images_is_one_line_before_the_config(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Last session's notes: class folders that are all empty, or hold no readable image, printed the whole
    resolved config before the error (the unreadable ones after the model was built and the first batch read)."""
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    junk = write_junk_folder(tmp_path / "junk")
    for data, message in ((empty, f"error: no images found under {empty} (extensions: "),
                          (junk, f"error: cannot read image {junk / 'a' / '1.png'}: not an image in a format read "
                                 "here")):
        run = tmp_path / f"run-{data.name}"
        assert main(["train", "--data", f"folder:{data}", "--out", str(run), "--epochs", "4"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
        assert not run.exists()


def test_a_resume_on_moved_data_without_images_is_one_line(tmp_path: Path, tiny_folder: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    junk = write_junk_folder(tmp_path / "junk")
    assert main(["train", "--out", str(run), "--resume", "--data", f"folder:{junk}"]) == 1
    err = capsys.readouterr().err
    # the first training image of class a (a/0.png hashes into the test split, split rule 2)
    assert err.startswith(f"error: cannot read image {junk / 'a' / '1.png'}: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("launched", [False, True])
def test_workers_of_nproc_do_not_check_the_data_their_launcher_checked(
        launched: bool, tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data check before the resolved config lists both splits and opens an image per class; --nproc's launcher
    does it once before its workers start, which then read the data in the loop only (a second listing of a large
    folder per worker otherwise)."""
    import us3l.train as train_api
    import us3l.train.loop as train_loop
    from us3l.errors import LAUNCHED_BY_ENV

    checked: list[object] = []
    monkeypatch.setattr(train_loop, "check_data", lambda cfg, world: checked.append(world))
    monkeypatch.setattr(train_api, "run_training", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    if launched:
        monkeypatch.setenv(LAUNCHED_BY_ENV, "12345")
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 130
    assert checked == ([] if launched else [1])


def test_the_data_check_and_the_loop_load_the_data_once(tmp_path: Path, tiny_folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The data check before the resolved config loaded both splits, then the training loop loaded them again (a
    second listing of every class folder); the loop now trains on what the check loaded, at the model's image size."""
    import us3l.data.datasets as datasets

    real = datasets._scan
    listed: list[str] = []

    def counted(split_dir: Path, *args: object, **kwargs: object) -> object:
        listed.append(split_dir.name)
        return real(split_dir, *args, **kwargs)

    sizes: list[int] = []
    real_load_image = datasets.load_image

    def seen(path: Path, image_size: int) -> object:
        sizes.append(image_size)
        return real_load_image(path, image_size)

    monkeypatch.setattr(datasets, "_scan", counted)
    monkeypatch.setattr(datasets, "load_image", seen)
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert sorted(listed) == ["test", "train"]  # each split folder listed once
    assert sizes and set(sizes) == {16}  # the kNN monitor's images: the config's image_size, not the default 224


@pytest.mark.parametrize("value", ["0", "1", "4097"])
def test_batch_size_is_worded_as_in_calibrate(value: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`train --batch-size 1` said 'batch_size must be >= 2 (BatchNorm and contrastive losses)', naming the config key
    and no upper bound, while calibrate's --batch-size, which needs 2 as well, said '--batch-size must be 2 to 4096';
    `train --batch-size 4097` was taken. One flag name, one check (us3l.validate.batch_size); the config key's
    range is the same."""
    for args in (["train", "--out", str(tmp_path / "run")], ["calibrate", "--ckpt", str(tmp_path / "nope")]):
        assert main([*args, "--batch-size", value]) == 1, args
        assert capsys.readouterr().err == f"error: --batch-size must be 2 to 4096, got {value}\n", args
    assert main(["train", "--out", str(tmp_path / "run"), "--set", f"batch_size={value}"]) == 1
    assert capsys.readouterr().err == f"error: batch_size must be 2 to 4096, got {value}\n"
    assert not (tmp_path / "run").exists()


def test_the_nproc_launcher_does_not_hold_the_data_while_its_workers_train(
        tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher checks the data before its workers start, which read it themselves: what the check loaded is
    not kept alive in the launcher (a CIFAR set's arrays) for the whole run."""
    import gc
    import sys

    import us3l.train.distributed as distributed
    from us3l.train.loop import LoadedData

    held: list[int] = []

    def launcher(cmd: list[str], grace_s: float = 60.0) -> int:
        gc.collect()
        held.append(sum(isinstance(o, LoadedData) for o in gc.get_objects()))
        return 0

    monkeypatch.setattr(distributed, "run_launcher", launcher)
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1)
    argv = ["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--nproc", "2", "-q"]
    monkeypatch.setattr(sys, "argv", ["us3l", *argv])
    assert main(argv) == 0
    assert held == [0]


@pytest.mark.parametrize("as_input", [True, False])
def test_a_config_yaml_us3l_did_not_write_is_never_replaced(as_input: bool, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe of the user's named config.yaml in the new run's folder (``us3l train -c exp/config.yaml --out
    exp``, or any file of that name there): refused before any work. It was replaced by the run's resolved
    settings, comments and all, without a word. One that a run stopped before its first epoch wrote (every
    setting) is replaced as before."""
    import yaml

    from us3l.train import loop
    from us3l.train.config import TrainConfig

    run = tmp_path / "exp"
    run.mkdir()
    recipe = "# lab recipe: keep these notes\nepochs: 4\nlr: 0.1\n"
    (run / "config.yaml").write_text(recipe, encoding="utf-8")
    argv = ["train", "--out", str(run), "--set", "model_kwargs.base_channels=8", "--knn-every", "0"]
    assert main([*argv, "--config", str(run / "config.yaml")] if as_input else argv) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: refusing to replace {run / 'config.yaml'}: it is not a run config that us3l train wrote; choose "
        "another --out")
    assert (run / "config.yaml").read_text(encoding="utf-8") == recipe
    assert os.listdir(run) == ["config.yaml"]
    (run / "config.yaml").write_text(yaml.safe_dump(TrainConfig().to_dict(), sort_keys=False), encoding="utf-8")
    loop._check_run_dir(run, resume=False, overwrite=False)  # a run's own: no error


def test_a_config_edited_in_checkpoint_json_is_refused_on_resume(tmp_path: Path, tiny_folder: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: a resume trains with checkpoint.json's ``config``, which nothing compared with the
    settings bound to the weights: an edited ``config.single_width`` went on training another width of a `single`
    run, and its next checkpoint bound the new one."""
    cfg = _config(tmp_path, tiny_folder, method="single", single_width=0.5, knn_widths=[0.5], schedule="none", epochs=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "-q"]) == 0
    meta_file = run / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    meta["config"]["single_width"] = 1.0  # (an edited config.method changes the heads: refused on load already)
    meta_file.write_text(json.dumps(meta))
    weights = (run / "checkpoint.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "-q"]) == 1
    assert capsys.readouterr().err == (
        f"error: {meta_file}: its config resolves to single_width 1.0, but the checkpoint was saved with 0.5 "
        "(checkpoint.json was edited); restore the original checkpoint.json\n")
    assert (run / "checkpoint.safetensors").read_bytes() == weights


@pytest.mark.slow  # 2.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_relative_data_path_is_recorded_where_it_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: `us3l train --data folder:imgs` recorded the spec as typed, so the commands that default
    to the run's data (INT8 calibration in export and profile) read the imgs/ of the directory they ran in: other
    data, without a word, or a missing path. It is recorded absolute (config.yaml, checkpoint.json); a run an
    earlier version saved with a relative spec resumes from the directory it names data in, and records it
    absolute from then on."""
    import yaml

    from us3l.deploy.export import int8_calibration_for

    from .conftest import write_tiny_folder

    for place in ("one", "two"):
        write_tiny_folder(tmp_path / place / "imgs", per_class_train=16, per_class_test=2)
    (tmp_path / "three").mkdir()
    config = write_tiny_config(tmp_path / "tiny.yaml", Path("imgs"), epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "one")
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    first = f"folder:{tmp_path / 'one' / 'imgs'}"
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["data"]["spec"] == first and meta["config"]["data"] == first
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == first
    monkeypatch.chdir(tmp_path / "two")
    assert int8_calibration_for(run, calib_images=32).source == first  # not two/imgs
    assert int8_calibration_for(run, calib_images=32, calib_data="imgs").source == str(tmp_path / "two" / "imgs")
    assert main(["train", "--out", str(run), "--resume"]) == 0
    # as an earlier version saved it, stopped after epoch 1 of 2
    meta["data"]["spec"] = meta["config"]["data"] = "folder:imgs"
    meta["config"]["epochs"] = 2
    (run / "checkpoint.json").write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path / "three")
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 1
    assert capsys.readouterr().err == "error: data path not found: imgs\n"
    monkeypatch.chdir(tmp_path / "one")
    assert main(["train", "--out", str(run), "--resume"]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["epoch"] == 2 and meta["data"]["spec"] == first and meta["config"]["data"] == first


def test_the_resolved_config_is_printed_as_yaml_lines(tmp_path: Path, tiny_folder: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """2026-12-08: the resolved config was one stderr line with its newlines shown as `\\n` (plain notes are one
    line each, since 2026-12-07). Each YAML line is its own line again; a newline in a value stays quoted by yaml."""
    import yaml

    import us3l.train

    def stop(*args: object, **kwargs: object) -> None:
        raise US3LError("stopped after the config")

    monkeypatch.setattr(us3l.train, "run_training", stop)
    cfg = _config(tmp_path, tiny_folder, schedule="none", epochs=1, quiet=False)
    out = tmp_path / "a\nerror: b"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    yaml_text, _, tail = err.partition("resolved config\n")[2].partition("error: stopped after the config\n")
    assert tail == "" and "\\n" not in yaml_text and not any(x.startswith("error:") for x in yaml_text.splitlines())
    printed = yaml.safe_load(yaml_text)
    assert printed["out"] == str(out) and printed["epochs"] == 1
