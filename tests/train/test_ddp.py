"""2-process CPU DDP (gloo) through real torchrun: same widths on every rank, rank-0-only I/O."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.train.conftest import write_tiny_config


@pytest.mark.slow
def test_torchrun_two_processes(tiny_folder: Path, tmp_path: Path) -> None:
    p = _tiny_config(tiny_folder, tmp_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        f"--log-dir={tmp_path / 'torchrun'}",  # not $TMPDIR/torchelastic_*, which torchrun leaves behind
        "-m",
        "us3l",
        "train",
        "--config",
        str(p),
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Grad strides do not match" not in proc.stderr  # the 1x1-kernel false positive (test_launch.py)
    # PyTorch's C++ warnings print on rank 0 only, like everything else (DDP's "find_unused_parameters=True was
    # specified ... but did not find any unused parameters" came once per rank)
    assert proc.stderr.count("[rank1]:") == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # exactly one JSON document: only rank 0 prints
    assert doc["epochs"] == 4 and set(doc["knn_top1"]) == {"1", "0.25"}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]  # written once, by rank 0
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["distributed"]["world_size"] == 2
    assert any(k.startswith("backbone.") for k in load_file(str(out / "checkpoint.safetensors")))
    # a resume names the settings it ignores once, like every note (rank 1 said it too)
    resume = [*cmd[: cmd.index("--config")], "--resume", "--epochs", "8", "--out", str(out), "--json"]
    proc = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("note: --resume continues the run with its saved config; ignored: epochs=8") == 1
    assert json.loads(proc.stdout)["epochs"] == 4


@pytest.mark.slow
def test_torchrun_two_processes_with_sync_bn(tiny_folder: Path, tmp_path: Path) -> None:
    """sync_bn on CPU: nn.SyncBatchNorm, which it used to swap in, stopped every rank at the first step
    ("SyncBatchNorm layers only work with GPU modules"); now every BatchNorm synchronises (us3l.slim.syncbn),
    views batched, and the ranks end with the same weights (the run's own checksum comparison)."""
    p = write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, batch_size=2, sync_bn=True)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           f"--log-dir={tmp_path / 'torchrun'}", "-m", "us3l", "train", "--config", str(p), "--out", str(out),
           "--json"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["epochs"] == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["sync_bn"] is True


def _processes_mentioning(text: str) -> list[int]:
    """Live processes (not zombies) whose command line contains ``text``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(d.name))
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("loader_workers", [0, 1])
def test_sigterm_to_us3l_train_nproc_stops_its_workers(tiny_folder: Path, tmp_path: Path,
                                                       loader_workers: int) -> None:
    """``kill PID`` of ``us3l train --nproc 2`` (a scheduler's timeout) used to leave both DDP workers training on
    as orphans: the launcher's process group is now stopped with it. With data-loader workers (the ImageNet
    recipes' num_workers: 8), torchrun's SIGTERM to each worker's process group killed them first and the
    trainer printed PyTorch's "Exception ignored ... DataLoader worker (pid N) is killed by signal" traceback."""
    import signal
    import time

    out = tmp_path / "ddp-term"
    cmd = [sys.executable, "-m", "us3l", "train", "--nproc", "2", "--data", f"folder:{tiny_folder}",
           "--epochs", "400", "--out", str(out), "--set", "model_kwargs.base_channels=8", "--set", "image_size=16",
           "--batch-size", "2", "--knn-every", "0", "--quiet", "--set", f"num_workers={loader_workers}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not (out / "metrics.jsonl").is_file():  # both workers are past set-up and training
        assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "training did not start within 180 s"
        time.sleep(0.2)
    assert len(_processes_mentioning(str(out))) >= 3  # us3l, torchrun and the two workers
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.rstrip().endswith("us3l: terminated")
    assert "Traceback" not in err and "SignalException" not in err, err[-2000:]  # torchrun's, no longer printed
    assert "Exception ignored" not in err and "DataLoader worker" not in err, err[-2000:]
    deadline = time.monotonic() + 30
    while (left := _processes_mentioning(str(out))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"processes still running after us3l exited: {left}"


@pytest.mark.slow
def test_a_worker_killed_by_a_signal_ends_us3l_train_nproc_in_one_line(tiny_folder: Path, tmp_path: Path) -> None:
    """A DDP worker that dies of SIGKILL (the OOM killer) prints nothing itself: us3l says which rank and how,
    in one line, exits 137, and prints no torchrun traceback or failure table."""
    import signal
    import time

    out = tmp_path / "ddp-kill"
    cmd = [sys.executable, "-m", "us3l", "train", "--nproc", "2", "--data", f"folder:{tiny_folder}",
           "--epochs", "400", "--out", str(out), "--set", "model_kwargs.base_channels=8", "--set", "image_size=16",
           "--batch-size", "2", "--knn-every", "0", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 180
    while not (out / "metrics.jsonl").is_file():
        assert proc.poll() is None, proc.stderr.read()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "training did not start within 180 s"
        time.sleep(0.2)
    workers = _processes_mentioning(f"-u -m us3l train --data folder:{tiny_folder}")
    assert len(workers) == 2
    os.kill(max(workers), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err[-2000:]
    assert "Traceback" not in err and "ChildFailedError" not in err, err[-2000:]
    assert re.search(r"^error: training process rank [01] was killed by SIGKILL$", err, re.M), err[-2000:]


_RANK1_ARGS = """
import os, sys
if os.environ.get("RANK") == "1":  # this rank's command line differs (another node's config, another data copy)
    extra = os.environ["RANK1_ARGS"].split("|")  # option/value pairs: a value replaces the option's own (given once)
    for opt, value in zip(extra[::2], extra[1::2]):
        if opt in sys.argv:
            sys.argv[sys.argv.index(opt) + 1] = value
        else:
            sys.argv += [opt, value]
from us3l.cli import main
sys.exit(main())
"""


def _tiny_config(tiny_folder: Path, tmp_path: Path) -> Path:
    """``tmp_path/tiny.yaml``: the tiny recipe on ``tiny_folder``, batch size 2 per process."""
    return write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, batch_size=2)


def _torchrun_rank1_differs(tmp_path: Path, train_args: list[str],
                            rank1_args: list[str]) -> subprocess.CompletedProcess[str]:
    """``us3l train TRAIN_ARGS`` on two torchrun processes, rank 1's command line extended by ``rank1_args``."""
    script = tmp_path / "rank1_differs.py"
    script.write_text(_RANK1_ARGS)
    cmd = [sys.executable, "-m", "us3l.train.launch", "--standalone", "--nproc_per_node=2",
           f"--log-dir={tmp_path / 'torchrun'}", str(script), "train", *train_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK1_ARGS": "|".join(rank1_args)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.parametrize(("rank1", "says"), [
    (["--lr", "0.2"], "the config: rank 1 has lr 0.2 (rank 0: 0.05)"),
    (["--data", "OTHER"], "the data: rank 1 has fingerprint v2:"),
])
def test_ranks_that_disagree_stop_before_training(tiny_folder: Path, tmp_path: Path, rank1: list[str],
                                                  says: str) -> None:
    """Each torchrun process reads its own command line and data: a rank given another learning rate trained
    the whole run and failed only at the end ("DDP replicas diverged"), after rank 0 had saved checkpoints of
    it; another data set (or epoch count) made the ranks wait on each other. Now both stop at the start."""
    from tests.train.conftest import write_tiny_folder

    other = write_tiny_folder(tmp_path / "other", per_class_train=6)  # another data set: 12 training images
    out = tmp_path / "ddp-disagree"
    cfg = _tiny_config(tiny_folder, tmp_path)
    proc = _torchrun_rank1_differs(tmp_path, ["--config", str(cfg), "--out", str(out)],
                                   [a.replace("OTHER", f"folder:{other}") for a in rank1])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"error: the training processes disagree on {says}" in proc.stderr, proc.stderr[-3000:]
    assert "replicas diverged" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (out / "checkpoint.safetensors").exists()


@pytest.mark.slow
def test_ranks_may_differ_on_what_only_rank0_acts_on(tiny_folder: Path, tmp_path: Path) -> None:
    """The kNN monitor's settings and the checkpoint cadence are acted on by rank 0 alone: a rank given another
    --knn-every was refused like one given another learning rate. Now the job trains with rank 0's values and
    rank 0 says which differ, once."""
    out = tmp_path / "ddp-monitor"
    cfg = _tiny_config(tiny_folder, tmp_path)
    proc = _torchrun_rank1_differs(tmp_path, ["--config", str(cfg), "--out", str(out)],
                                   ["--knn-every", "1", "--save-every", "2", "--set", "knn_k=5"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("note: the training processes differ on knn_every 1 on rank 1 (rank 0: 0); knn_k 5 "
                             "on rank 1 (rank 0: 3); save_every 2 on rank 1 (rank 0: 1): only rank 0 acts on these "
                             "settings, so rank 0's values are used\n") == 1, proc.stderr[-3000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [("knn_top1" in r) for r in records] == [False, False, False, True]  # rank 0's knn_every 0: at the end
    assert records[-1]["knn"]["k_requested"] == 3
    assert yaml.safe_load((out / "config.yaml").read_text())["save_every"] == 1


@pytest.mark.slow
def test_ranks_that_resume_other_checkpoints_stop_before_training(tiny_folder: Path, tmp_path: Path) -> None:
    """Each rank resumes from its own --out (on several nodes, a node's own copy of the run folder). Two
    checkpoints of the same config and epoch passed the comparison; DDP then copied rank 0's weights to every
    rank, but each kept its own optimizer state. Now the checkpoints' weights digests are compared too."""
    import shutil

    import torch

    from us3l import checkpoint as ckpt

    cfg = _tiny_config(tiny_folder, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run, other = tmp_path / "run", tmp_path / "other"
    train = [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(run)]
    assert subprocess.run(train, env=env, capture_output=True, timeout=240).returncode == 0
    shutil.copytree(run, other)  # then another checkpoint of the same run and epoch, saved as us3l saves
    meta = ckpt.read_meta(other)
    backbone = ckpt.read_tensors(other, ckpt.BACKBONE_PREFIX)
    name = next(k for k, v in backbone.items() if v.is_floating_point() and v.dim() > 1)
    backbone[name] = backbone[name] + 0.01
    state = torch.load(other / ckpt.STATE_FILE, weights_only=True)
    ckpt.save_checkpoint(other, backbone_state=backbone, train_tensors=ckpt.read_tensors(other, ckpt.TRAIN_PREFIX),
                         meta={k: v for k, v in meta.items() if k != "weights_sha256"}, train_state=state)
    proc = _torchrun_rank1_differs(tmp_path, ["--resume", "--out", str(run)], ["--out", str(other)])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: the training processes disagree on the config: rank 1 has resumed weights " in proc.stderr, \
        proc.stderr[-3000:]


_SLOW_RENAMES_ON_RANK0 = """
import os, sys, time
if os.environ.get("RANK") == "0":  # rank 0 renames late: rank 1 reaches the cut-off save first
    replace = os.replace
    def slow(src, dst, *a, **k):
        if ".tmp" in str(src):
            time.sleep(2)
        return replace(src, dst, *a, **k)
    os.replace = slow
from us3l.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_a_distributed_resume_finishes_a_cut_off_save_once(tiny_folder: Path, tmp_path: Path) -> None:
    """A save killed between its renames is rolled forward on --resume. Every rank did it at once: the rank that
    came second found the temporary files gone ("No such file or directory") or read a half-finished set."""
    import torch

    from us3l import checkpoint as ckpt

    out = tmp_path / "run"
    cfg = _tiny_config(tiny_folder, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    train = [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(out)]
    assert subprocess.run(train, env=env, capture_output=True, timeout=240).returncode == 0
    # the save of epoch 4 cut off after the weights' rename: state and metadata at epoch 3, their new versions
    # complete under their temporary names
    os.replace(out / ckpt.STATE_FILE, out / f".{ckpt.STATE_FILE}.cut.tmp")
    os.replace(out / ckpt.META_FILE, out / f".{ckpt.META_FILE}.cut.tmp")
    state = torch.load(out / f".{ckpt.STATE_FILE}.cut.tmp", weights_only=True)
    torch.save({**state, "epoch": 3}, out / ckpt.STATE_FILE)
    meta = json.loads((out / f".{ckpt.META_FILE}.cut.tmp").read_text())
    (out / ckpt.META_FILE).write_text(json.dumps({**meta, "epoch": 3}))
    script = tmp_path / "slow_renames.py"
    script.write_text(_SLOW_RENAMES_ON_RANK0)
    cmd = [sys.executable, "-m", "us3l.train.launch", "--standalone", "--nproc_per_node=2",
           f"--log-dir={tmp_path / 'torchrun'}", str(script), "train", "--resume", "--out", str(out), "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["epochs"] == 4
    assert ckpt.read_meta(out)["epoch"] == 4 and not list(out.glob(".*.tmp"))


_RANK0_SETTLES_LAST = """
import os, sys, time
from pathlib import Path
looked = Path(os.environ["RANK1_LOOKED"])
if os.environ.get("RANK") == "1":  # rank 1 has read the run folder by the time it joins the group: it says so
    from us3l.train import loop
    join = loop.init_distributed
    def joining(*args, **kwargs):
        looked.touch()
        return join(*args, **kwargs)
    loop.init_distributed = joining
else:  # rank 0 starts late: it settles the run folder after rank 1 has looked at it
    deadline = time.monotonic() + 180
    while not looked.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
from us3l.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_a_rank_that_looks_before_rank0_puts_a_killed_overwrites_run_back_resumes_it(tiny_folder: Path,
                                                                                    tmp_path: Path) -> None:
    """An --overwrite run killed before its first checkpoint leaves the old run in .replaced-*; rank 0 of the next
    torchrun job puts it back, but rank 1 started on its own and could look first: it took the folder for one with
    nothing to resume and resolved the command line as a new run's, so a flag a resume ignores (--epochs 3 against
    schedule A) stopped it alone."""
    from tests.train.conftest import killed_overwrite

    out = tmp_path / "run"
    cfg = _tiny_config(tiny_folder, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK1_LOOKED": str(tmp_path / "rank1-looked")}
    train = [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(out)]
    assert subprocess.run(train, env=env, capture_output=True, timeout=240).returncode == 0
    old = killed_overwrite(out)
    script = tmp_path / "rank0_settles_last.py"
    script.write_text(_RANK0_SETTLES_LAST)
    cmd = [sys.executable, "-m", "us3l.train.launch", "--standalone", "--nproc_per_node=2",
           f"--log-dir={tmp_path / 'torchrun'}", str(script), "train", "--resume", "--out", str(out), "--epochs", "3",
           "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["epochs"] == 4  # the old run, complete
    assert not list(out.glob(".replaced-*"))
    assert (out / "checkpoint.safetensors").read_bytes() == old["checkpoint.safetensors"]


_RANK0_SLOW_TO_EXIT = """
import os, sys, time
if os.environ.get("RANK") == "0":  # still on its way out after the error when rank 1 has exited: torchrun stops it
    import us3l.train.distributed as d
    shutdown = d.shutdown_distributed
    def slow():
        time.sleep(30)
        shutdown()
    d.shutdown_distributed = slow
else:
    sys.argv += ["--lr", "0.2"]
from us3l.cli import main
sys.exit(main())
"""


@pytest.mark.slow
def test_a_failure_on_every_rank_exits_1_when_torchrun_stops_the_slower_one(tiny_folder: Path,
                                                                            tmp_path: Path) -> None:
    """Both ranks refuse the run; rank 1 exits 1 first and torchrun stops rank 0 with SIGTERM (us3l's clean-up:
    exit 143) in the same second. The launcher took the lower rank as the cause and exited 143, as if terminated
    (test_ranks_that_disagree_stop_before_training failed so, 1 run in 3 on a loaded machine)."""
    script = tmp_path / "rank0_slow_to_exit.py"
    script.write_text(_RANK0_SLOW_TO_EXIT)
    cfg = _tiny_config(tiny_folder, tmp_path)
    cmd = [sys.executable, "-m", "us3l.train.launch", "--standalone", "--nproc_per_node=2",
           f"--log-dir={tmp_path / 'torchrun'}", str(script), "train", "--config", str(cfg), "--out",
           str(tmp_path / "run")]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=240)
    assert "error: the training processes disagree on the config: rank 1 has lr 0.2" in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("lacking", [1, 0])
def test_a_resume_whose_run_folder_is_not_shared_names_the_rank_without_the_checkpoint(
        lacking: int, tiny_folder: Path, tmp_path: Path) -> None:
    """Last session's notes: a multi-node resume where the ranks do not share the run folder (one node's --out
    holds the checkpoint, the other's nothing) said the ranks "disagree on the config" (resumed from epoch null,
    and every setting the new run's command line resolved differently). Now it says which rank lacks the
    checkpoint and that the run folder must be shared."""
    cfg = _tiny_config(tiny_folder, tmp_path)
    run, empty = tmp_path / "run", tmp_path / "node1-run"
    train = [sys.executable, "-m", "us3l", "train", "--config", str(cfg), "--out", str(run)]
    assert subprocess.run(train, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          timeout=240).returncode == 0
    outs = (str(run), str(empty)) if lacking == 1 else (str(empty), str(run))
    proc = _torchrun_rank1_differs(tmp_path, ["--resume", "--out", outs[0]], ["--out", outs[1]])
    assert proc.returncode == 1, proc.stderr[-3000:]
    has = 1 - lacking
    says = (f"error: --resume: the run folder of rank {lacking} ({empty}) holds no checkpoint, that of rank {has} "
            f"({run}) the checkpoint of epoch 4: every process resumes from the same run folder; give them one "
            f"that every node shares (or copy {run} to {empty} on rank {lacking}'s node)")
    assert says in proc.stderr and "disagree" not in proc.stderr, proc.stderr[-3000:]
    assert not empty.exists()
