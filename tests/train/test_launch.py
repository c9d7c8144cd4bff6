"""``us3l train --nproc``: bad input is one line before any worker starts, and torchrun's failures end the CLI's
way (one line, no traceback). The end-to-end runs with real torchrun are in test_ddp.py (slow)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from us3l.cli import main
from us3l.train.launch import exit_status, failure_line, root_failure


def test_a_worker_killed_by_a_signal_is_one_line_and_128_plus_n() -> None:
    assert failure_line(1, -9) == "error: training process rank 1 was killed by SIGKILL"
    assert failure_line(0, -15) == "error: training process rank 0 was killed by SIGTERM"
    assert failure_line(0, 1) is None  # it printed its own error
    assert (exit_status(-9), exit_status(-15), exit_status(1), exit_status(2), exit_status(0)) == (137, 143, 1, 2, 1)


def test_the_root_failure_is_the_worker_killed_not_the_peer_that_lost_it() -> None:
    """torchrun's own choice (the smallest timestamp, in whole seconds) named rank 0, which exited 1 with
    "another training process is gone" in the same second as rank 1 died of SIGKILL: us3l then exited 1 without
    saying that a process was killed."""
    from types import SimpleNamespace as F

    assert root_failure({0: F(timestamp=100, exitcode=1), 1: F(timestamp=100, exitcode=-9)})[0] == 1
    assert root_failure({0: F(timestamp=99, exitcode=1), 1: F(timestamp=100, exitcode=-9)})[0] == 0  # earlier
    # torchrun stops the others with SIGTERM once one has failed: the one that exited 1 (its own error line) is
    # the failure; rank 0 was named, "killed by SIGTERM", exit status 143
    assert root_failure({0: F(timestamp=100, exitcode=-15), 1: F(timestamp=100, exitcode=1)})[0] == 1
    assert root_failure({0: F(timestamp=100, exitcode=-15), 1: F(timestamp=101, exitcode=1)})[0] == 0  # earlier
    assert root_failure({0: F(timestamp=100, exitcode=1), 1: F(timestamp=100, exitcode=2)})[0] == 0  # rank
    assert root_failure({0: F(timestamp=100, exitcode=2), 1: F(timestamp=100, exitcode=1)})[0] == 0  # rank
    assert root_failure({0: F(timestamp=100, exitcode=2), 1: F(timestamp=100, exitcode=-6)})[0] == 1


@pytest.mark.parametrize("stopped", [143, -15])
def test_a_worker_torchrun_stopped_is_not_the_root_failure(stopped: int) -> None:
    """Both ranks refuse the same bad input; rank 1 exits 1 first and torchrun stops rank 0, still on its way
    out, with SIGTERM (exit 143 from us3l's clean-up, or -15), in the same second. The lower rank won the tie:
    the launcher exited 143 as if it had been terminated (a flaky test_ranks_that_disagree_stop_before_training).
    Recorded as torchrun records them: the failure first, then the workers it stopped."""
    from types import SimpleNamespace as F

    assert root_failure({1: F(timestamp=100, exitcode=1), 0: F(timestamp=100, exitcode=stopped)}) == (
        1, F(timestamp=100, exitcode=1))
    assert root_failure({1: F(timestamp=100, exitcode=-9), 0: F(timestamp=100, exitcode=stopped)})[0] == 1
    assert root_failure({0: F(timestamp=99, exitcode=stopped), 1: F(timestamp=100, exitcode=1)})[0] == 0  # earlier
    assert root_failure({1: F(timestamp=100, exitcode=stopped), 0: F(timestamp=100, exitcode=-15)})[0] == 0  # rank


def test_bad_data_with_nproc_is_one_line_before_anything_starts(tiny_folder: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    shutil.copytree(tiny_folder, empty)
    for image in empty.rglob("*.png"):
        image.unlink()
    out = tmp_path / "run"
    assert main(["train", "--nproc", "2", "--data", f"folder:{empty}", "--out", str(out), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert cap.err.startswith("error: no images found under ") and cap.err.count("\n") == 1 and cap.out == ""
    assert not out.exists()


def test_gradients_are_strided_like_their_weights_at_every_width() -> None:
    """DDP copies each gradient into a bucket view strided like its parameter and warns ("grad strides do not
    match bucket view strides") where they differ. A sub-width's weight block (``_leading_block``) hands back a
    gradient in the parameter's memory format, so a channels_last run has none that differ, 1x1 kernels
    included (a slice's backward gave those contiguous strides, and the warning was filtered until 2026-12-07)."""
    from us3l.models.registry import create_model
    from us3l.slim import width

    for name in ("cifar_resnet18", "cifar_mobilenetv2"):
        kwargs = {"base_channels": 8} if name == "cifar_resnet18" else {}
        model = create_model(name, **kwargs).to(memory_format=torch.channels_last)
        x = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
        for w in (1.0, 0.75, 0.5, 0.25):
            model.zero_grad(set_to_none=True)
            with width(model, w):
                model(x).sum().backward()
            for pname, p in model.named_parameters():
                assert p.grad is not None, (name, pname, w)
                assert p.grad.stride() == p.stride(), (name, pname, tuple(p.shape), w)


def test_nproc_refuses_bad_config_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "--nproc", "2", "--epochs", "3", "--out", str(tmp_path / "r"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: schedule 'A' splits training into 4 equal stages") and err.count("\n") == 1


def test_nproc_refuses_a_batch_larger_than_the_data_before_any_worker(tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-05: each rank printed it, after the resolved config, and config.yaml was written."""
    out = tmp_path / "r"
    assert main(["train", "--nproc", "2", "--data", "digits", "--batch-size", "800", "--out", str(out),
                 "--quiet"]) == 1
    assert capsys.readouterr().err == "error: batch size 800 x 2 process(es) exceeds the 1438 training images\n"
    assert not out.exists()


def test_torchrun_gets_a_log_dir_of_ours() -> None:
    """torchrun's default log folder ($TMPDIR/torchelastic_*) was left behind by every --nproc run."""
    from us3l.train.distributed import torchrun_command

    cmd = torchrun_command(2, ["train"], "/tmp/us3l-torchrun-x")
    assert "--log-dir=/tmp/us3l-torchrun-x" in cmd and cmd.index("--log-dir=/tmp/us3l-torchrun-x") < cmd.index("-m", 3)


@pytest.mark.parametrize(("env", "says"), [
    ({"RANK": "1"}, "error: environment variables RANK=1 and WORLD_SIZE=1: a rank is one of 0..WORLD_SIZE-1"),
    ({"WORLD_SIZE": "1", "RANK": "0"}, "error: --nproc 2: this process is already one of a distributed job of 1"),
])
def test_a_stray_distributed_environment_is_one_line(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch,
                                                     env: dict[str, str], says: str) -> None:
    """Red-team 2026-12-06: a RANK left over from another job made a lone process train as a rank that writes
    nothing (and failed on a batch of one from its miscomputed shard); an exported WORLD_SIZE=1 made --nproc 2
    train one process, silently."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TORCH_CPP_LOG_LEVEL", "WARNING")  # a rank other than 0 sets it: not left to other tests
    out = tmp_path / "r"
    assert main(["train", "--nproc", "2", "--data", "digits", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize(("env", "says"), [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 and WORLD_SIZE=2: a rank is one of 0..WORLD_SIZE-1"),
    ({"WORLD_SIZE": "0"}, "RANK=0 and WORLD_SIZE=0"),
    ({"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "4"}, "LOCAL_RANK=4 with WORLD_SIZE=4"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 with WORLD_SIZE=1"),
])
def test_dist_env_refuses_what_torchrun_never_sets(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                   says: str) -> None:
    from us3l.errors import US3LError
    from us3l.train.distributed import dist_env

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(US3LError, match=re.escape(says)):
        dist_env()


def test_dist_env_reads_torchruns_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.train.distributed import dist_env

    for name, value in (("RANK", "5"), ("WORLD_SIZE", "8"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    assert dist_env() == (5, 8, 1)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert dist_env() == (0, 1, 0)


def test_more_processes_than_gpus_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    """Red-team 2026-12-06: --nproc 2 on a one-GPU machine (device auto) started both workers; the second failed
    on cuda:1 with CUDA's bare "invalid device ordinal". Refused before launching, and by a worker itself."""
    from us3l.errors import US3LError
    from us3l.train.distributed import check_gpus_for, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto", 0) == torch.device("cuda:0")
    with pytest.raises(US3LError, match=r"LOCAL_RANK 1 would train on cuda:1, but torch sees 1 CUDA GPU\(s\) here"):
        pick_device("auto", 1)
    with pytest.raises(US3LError, match=r"LOCAL_RANK 1 would train on cuda:1"):
        pick_device("cuda", 1)
    check_gpus_for(1, "auto")
    check_gpus_for(4, "cpu")
    with pytest.raises(US3LError, match=r"^--nproc 2: each process trains on its own GPU \(device auto\) and torch "
                                        r"sees 1 here; use --nproc 1 or fewer, or --torch-device cpu$"):
        check_gpus_for(2, "auto")
    out = tmp_path / "r"
    assert main(["train", "--nproc", "2", "--data", "digits", "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("error: --nproc 2: each process trains on its own GPU")
    assert not out.exists()
