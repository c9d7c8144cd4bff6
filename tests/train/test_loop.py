"""The training loop on tiny data: checkpoint files, metrics, per-width steps vs accumulation, resume."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.script_module import ROOT
from us3l import checkpoint as ckpt
from us3l.errors import US3LError
from us3l.train import loop as loop_mod
from us3l.train import run_training
from us3l.train.distributed import DistInfo


def _documented_metrics_keys() -> set[str]:
    """The keys docs/training.md ("Training loop") lists for a ``metrics.jsonl`` line."""
    text = " ".join((ROOT / "docs" / "training.md").read_text(encoding="utf-8").split())
    start = text.index("`RUN/metrics.jsonl` gets one JSON line per epoch:")
    sentence = text[start : text.index("(backbone features).", start)]
    items = [re.sub(r"\{[^}]*\}", "", item) for item in re.findall(r"`([^`]+)`", sentence)[1:]]
    return {key.strip() for item in items for key in item.split(",")}


def _documented_checkpoint_json() -> tuple[str, str]:
    """docs/training.md's list of ``checkpoint.json`` fields: (the top level, remarks and subfields removed; the
    subfields of ``data``)."""
    text = " ".join((ROOT / "docs" / "training.md").read_text(encoding="utf-8").split())
    start = text.index('`checkpoint.json` (kind "checkpoint", schema 1:')
    listing = text[start + len("`checkpoint.json` (") : text.index("`train_state.pt`", start)]
    data = listing[listing.index("data {") : listing.index("}", listing.index("data {"))]
    while re.search(r"\{[^{}]*\}|\([^()]*\)", listing):
        listing = re.sub(r"\{[^{}]*\}|\([^()]*\)", "", listing)
    return listing.replace("tool version", "tool_version"), data


@pytest.mark.slow  # 2.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_checkpoint_json_holds_the_fields_training_md_lists(tiny_cfg) -> None:
    cfg = tiny_cfg(epochs=4)
    run_training(cfg)
    meta = ckpt.read_meta(Path(cfg.out))
    top, data = _documented_checkpoint_json()
    assert [k for k in meta if k not in ("kind", "schema_version", "tool") and not re.search(rf"\b{k}\b", top)] == []
    assert [k for k in meta["data"] if not re.search(rf"\b{k}\b", data)] == []


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_metrics_lines_hold_exactly_the_fields_training_md_lists(tiny_cfg) -> None:
    cfg = tiny_cfg(epochs=4, knn_every=2)
    run_training(cfg)
    lines = [json.loads(x) for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    written = set().union(*lines)
    assert written == _documented_metrics_keys()
    assert set(lines[1]["knn"]) == {"k", "k_requested", "bank_size", "bank_seed"}


def test_tiny_run_writes_checkpoint_metrics_and_knn(tiny_cfg) -> None:
    cfg = tiny_cfg(epochs=4, knn_every=2)
    res = run_training(cfg)
    assert res.status == "completed" and res.epochs_done == 4
    assert set(res.final_knn) == {1.0, 0.25}
    run = Path(cfg.out)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4]
    assert "knn_top1" in lines[1] and "knn_top1" not in lines[0]
    assert [x["min_width"] for x in lines] == [1.0, 0.75, 0.5, 0.25]
    assert set(lines[0]["loss"]) == {"base"} and set(lines[3]["loss"]) == {"base", "mid1", "min"}
    meta = ckpt.read_meta(run)
    assert meta["kind"] == "checkpoint" and meta["schema_version"] == 1 and meta["epoch"] == 4
    assert meta["width_range"] == {"min": 0.25, "max": 1.0, "divisor": 8}
    assert meta["config"]["method"] == "us3l" and "environment" in meta and "tool_version" in meta
    tensors = load_file(str(run / "checkpoint.safetensors"))
    assert any(k.startswith("backbone.") for k in tensors) and any(k.startswith("train.encoder_k.") for k in tensors)
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["epoch"] == 4
    loaded = ckpt.load_backbone(run)
    assert loaded.meta["model"] == "cifar_resnet18" and len(loaded.sha256) == 64
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, tensors["backbone." + k])


@pytest.mark.slow  # 3.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_existing_checkpoint_needs_resume_or_overwrite(tiny_cfg) -> None:
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4, save_every=0)
    run_training(cfg)
    with pytest.raises(US3LError, match="--resume"):
        run_training(cfg)


@pytest.mark.parametrize(
    ("run", "saved"),
    [
        ({}, {"warmup_epochs": 1}),
        ({"method": "single", "knn_widths": [1.0]}, {"distill_lambda": 2.0}),
        ({"method": "us3l_byol"}, {"temperature": 0.3}),
        ({}, {"mocov3_tau": 0.3}),
        ({}, {"weight_decay": 5e-4}),
        ({"method": "naive_simsiam"}, {"ema_momentum": 0.9}),
        ({"method": "single", "knn_widths": [1.0]}, {"num_samples": 5}),
    ],
)
def test_a_run_saved_with_a_setting_refused_since_still_resumes(tiny_cfg, run: dict, saved: dict) -> None:
    """Red-team: settings a run would not use (warmup_epochs without lr_schedule: iter, ...) are refused for new
    runs; a run saved before that check resumes (its saved config is not re-judged by it)."""
    cfg = tiny_cfg(epochs=1, schedule="none", save_every=1, **run)
    run_training(cfg)
    meta_file = Path(cfg.out) / ckpt.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["config"].update(saved)  # what an older version saved without a word
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(US3LError, match=next(iter(saved))):  # a new run with these settings is refused
        run_training(tiny_cfg(**{**meta["config"], "out": str(Path(cfg.out).parent / "new")}))
    assert run_training(cfg, resume=True).status == "completed"


@pytest.mark.slow  # 2.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tiny_cfg, tmp_path: Path) -> None:
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4, save_every=0)
    run_training(cfg)
    run = Path(cfg.out)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.name.startswith(".")}
    bad = tiny_cfg(epochs=4, save_every=0, data=str(tmp_path / "missing"))  # fails before its first checkpoint
    with pytest.raises(US3LError):
        run_training(bad, overwrite=True)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before and not list(run.glob(".replaced-*"))
    run_training(tiny_cfg(epochs=4, save_every=0, seed=7), overwrite=True)  # a run that saves replaces it
    assert (run / "checkpoint.safetensors").read_bytes() != before["checkpoint.safetensors"]
    assert not list(run.glob(".replaced-*"))


def _failing_step(*args: object, **kwargs: object) -> None:
    raise RuntimeError("step failed")


def _folder(run: Path) -> dict[str, bytes]:
    """The files of ``run`` and their bytes, its lock file left out (it stays in a folder the run did not make)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".us3l.lock"}


@pytest.mark.parametrize("stop", [RuntimeError("step failed"), KeyboardInterrupt()])
@pytest.mark.slow  # 2 cases, 0.8 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(stop: BaseException, tiny_cfg, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that failed (or was interrupted) in an epoch before its first checkpoint left config.yaml and
    metrics.jsonl in the folder it made, and the same command run again was refused: "holds the metrics of a run
    that stopped before its first checkpoint ... pass --overwrite". The folders it made are removed again, parents
    included."""
    cfg = tiny_cfg(epochs=4, save_every=0, out=str(tmp_path / "runs" / "run"))
    real_step = loop_mod._train_step

    def second_epoch_fails(*args: object, **kwargs: object) -> object:
        if args[8] == 1:  # in epoch 2: epoch 1's metrics line is written
            raise stop
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "_train_step", second_epoch_fails)
    with pytest.raises(type(stop)):
        run_training(cfg)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert run_training(cfg).epochs_done == 4  # no --overwrite needed


def test_a_full_disk_in_the_first_epoch_keeps_only_what_was_there(tiny_cfg, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first epoch's metrics line does not fit (ENOSPC): the run's config.yaml goes, the user's files and the
    folder stay."""
    import errno

    cfg = tiny_cfg(epochs=4, save_every=0)
    run = Path(cfg.out)
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    real_open, real_write, metrics = os.open, os.write, set()

    def opened(path: str, *args: int, **kwargs: object) -> int:
        fd = real_open(path, *args, **kwargs)
        if Path(path).name == "metrics.jsonl":
            metrics.add(fd)
        return fd

    def no_room(fd: int, data: bytes) -> int:
        if fd in metrics:
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() says it: no file named
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "write", no_room)
    with pytest.raises(OSError) as info:
        run_training(cfg)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(run / "metrics.jsonl"))
    assert _folder(run) == {"notes.txt": b"mine"}


def test_a_resumed_run_that_fails_removes_nothing(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_cfg(epochs=4)
    _stopped_after_checkpoint(cfg, 1, monkeypatch)
    before = _folder(Path(cfg.out))
    monkeypatch.setattr(loop_mod, "_train_step", _failing_step)
    with pytest.raises(RuntimeError, match="step failed"):
        run_training(cfg, resume=True)
    assert _folder(Path(cfg.out)) == before


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.slow  # 2 cases, 0.9 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_run_gives_the_process_settings_back(fails: bool, tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_training left torch's thread count at the run's `threads`, denormals flushed (`flush_denormal`) and the
    global random generator at the run's seed: a program (or the next test) calling it inherited them. Each is as
    it was after the run, whether it returns or raises."""
    from us3l.train.precision import flushing_denormals

    torch.set_num_threads(1)
    can_flush = torch.set_flush_denormal(False)  # whether this CPU has the mode at all
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    real_step, during = loop_mod._train_step, []

    def step(*args: object, **kwargs: object) -> object:
        during.append((torch.get_num_threads(), flushing_denormals()))
        if fails:
            raise RuntimeError("step failed")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_mod, "_train_step", step)
    cfg = tiny_cfg(epochs=1, schedule="none", threads=2, flush_denormal=True, seed=5)
    with pytest.raises(RuntimeError, match="step failed") if fails else contextlib.nullcontext():
        run_training(cfg)
    assert during[0] == (2, can_flush)  # the run's settings while it ran
    assert (torch.get_num_threads(), flushing_denormals()) == (1, False)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("fails", [False, True])
@pytest.mark.parametrize("initialised", [True, False])
def test_a_run_gives_the_current_cuda_device_back(fails: bool, initialised: bool, tiny_cfg,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-GPU run sets its local rank's CUDA device (``init_distributed``); the caller's current device was
    not put back as threads, denormals and the RNG were. No GPU here: torch.cuda's device calls are stand-ins, and
    the run is one that sets device 3 as rank 3's ``init_distributed`` would. Where CUDA was not initialised before
    the run nothing is read or set back (that would initialise it, and open a context on GPU 0 in every rank)."""
    current = [1]
    calls: list[str] = []

    def current_device() -> int:
        calls.append("current_device")
        return current[0]

    def set_device(device: int) -> None:
        calls.append(f"set_device({device})")
        current[0] = device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised)
    monkeypatch.setattr(torch.cuda, "current_device", current_device)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [])  # kept_rng_state, CUDA initialised
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: None)

    def rank_three(*args: object) -> object:
        torch.cuda.set_device(3)
        if fails:
            raise RuntimeError("run failed")
        return "result"

    monkeypatch.setattr(loop_mod, "_locked_run", rank_three)
    with pytest.raises(RuntimeError, match="run failed") if fails else contextlib.nullcontext():
        assert run_training(tiny_cfg(epochs=1)) == "result"
    if initialised:
        assert current == [1] and calls[-1] == "set_device(1)"
    else:
        assert current == [3] and calls == ["set_device(3)"]


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_resume_refuses_damaged_weights(tiny_cfg, tmp_path: Path) -> None:
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4, save_every=0, out=str(tmp_path / "run"))
    run_training(cfg)
    w = tmp_path / "run" / "checkpoint.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-8:] = bytes(8)  # the last tensor's last bytes: the file still parses
    w.write_bytes(bytes(blob))
    with pytest.raises(US3LError, match=r"^checkpoint .* is damaged or was replaced: its sha256 "):
        run_training(tiny_cfg(epochs=8, save_every=0, out=str(tmp_path / "run")), resume=True)


def _final_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint.safetensors"))


def _stopped_after_checkpoint(cfg, epoch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``cfg`` and stop it by an exception right after its checkpoint of ``epoch`` is saved (a kill)."""
    real_save = loop_mod._save

    class Killed(Exception):
        pass

    def save_then_die(*args, **kw):
        real_save(*args, **kw)
        if args[-1] == epoch:
            raise Killed()

    monkeypatch.setattr(loop_mod, "_save", save_then_die)
    with pytest.raises(Killed):
        run_training(cfg)
    monkeypatch.setattr(loop_mod, "_save", real_save)


def test_resume_in_process_is_bit_identical(tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = tiny_cfg(epochs=4, out=str(tmp_path / "full"))
    run_training(full)
    part = tiny_cfg(epochs=4, out=str(tmp_path / "part"))
    _stopped_after_checkpoint(part, 2, monkeypatch)
    assert ckpt.read_meta(tmp_path / "part")["epoch"] == 2
    res = run_training(part, resume=True)
    assert res.epochs_done == 4
    a, b = _final_tensors(tmp_path / "full"), _final_tensors(tmp_path / "part")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def _setup_step(tiny_cfg, **kw):
    from us3l.ssl import create_method

    cfg = tiny_cfg(momentum=0.0, regularizer=False, weight_decay=0.0, **kw)
    torch.manual_seed(0)
    method = create_method(cfg.method, loop_mod.build_backbone(cfg), cfg)
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(4, 3, 16, 16, generator=g), torch.randn(4, 3, 16, 16, generator=g)
    return cfg, method, x1, x2


def _step(cfg, method, x1, x2, widths):
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=cfg.lr, momentum=0.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return loop_mod._train_step(method, method, opt, scaler, None, x1, x2, widths, 0, cfg, None, DistInfo())


def test_step_per_width_vs_accumulation(tiny_cfg) -> None:
    widths = [1.0, 0.25]
    cfg_s, m_step, x1, x2 = _setup_step(tiny_cfg, step_per_width=True)
    cfg_a, m_acc, _, _ = _setup_step(tiny_cfg, step_per_width=False)
    ref = copy.deepcopy(m_acc)
    _step(cfg_s, m_step, x1, x2, widths)
    _step(cfg_a, m_acc, x1, x2, widths)

    # accumulation: one SGD step with the sum of the base and sub-network gradients, both at θ0
    base, targets = ref(x1, x2, 1.0)
    sub, _ = ref(x1, x2, 0.25, targets)
    params = [p for p in ref.parameters() if p.requires_grad]
    grads = torch.autograd.grad(base + sub, params, allow_unused=True)
    expected = [p - cfg_a.lr * (g if g is not None else 0) for p, g in zip(params, grads, strict=True)]
    got = [p for p in m_acc.parameters() if p.requires_grad]
    assert all(torch.allclose(e, g, atol=1e-6) for e, g in zip(expected, got, strict=True))

    # one step per width: the sub-network step runs on already-updated weights, so the results differ
    stepped = [p for p in m_step.parameters() if p.requires_grad]
    assert any(not torch.allclose(a, b, atol=1e-7) for a, b in zip(stepped, got, strict=True))
    # ... and the EMA teacher was updated exactly once per iteration in both
    assert all(
        torch.equal(a, b) for a, b in zip(m_step.encoder_k.parameters(), m_acc.encoder_k.parameters(), strict=True)
    )


def test_nan_loss_stops_and_keeps_last_checkpoint(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny_cfg(epochs=4)
    real = loop_mod._train_step
    calls = {"n": 0}

    def sometimes_nan(*args, **kw):
        calls["n"] += 1
        out = real(*args, **kw)
        return [float("nan")] + out[1:] if calls["n"] > 3 else out  # epoch 2 (2 iterations per epoch)

    monkeypatch.setattr(loop_mod, "_train_step", sometimes_nan)
    res = run_training(cfg)
    assert res.status == "nan" and "epoch 2" in res.message
    assert ckpt.read_meta(cfg.out)["epoch"] == 1


def test_nan_loss_before_any_checkpoint_says_none_was_saved(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docs truth pass 2026-12-05: a NaN in epoch 1 said "the last good checkpoint (epoch none) is kept"."""
    cfg = tiny_cfg(epochs=4)
    real = loop_mod._train_step
    monkeypatch.setattr(loop_mod, "_train_step", lambda *a, **kw: [float("nan")] + real(*a, **kw)[1:])
    res = run_training(cfg)
    assert res.status == "nan" and "epoch 1" in res.message and "checkpoint (epoch" not in res.message
    assert res.message.endswith(f"no checkpoint was saved before it: start {cfg.out} over with --overwrite")


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_asymmetric_byol_views_train(tiny_cfg) -> None:
    """The MoCo v3 recipe's asymmetric views (augment: byol) run through the loop and are recorded."""
    cfg = tiny_cfg(epochs=4, augment="byol", crop_min=0.5)
    res = run_training(cfg)
    assert res.status == "completed"
    assert ckpt.read_meta(Path(cfg.out))["config"]["augment"] == "byol"


@pytest.mark.parametrize(
    "line", ["[1, 2]", '"str"', '{"epoch": null}', '{"epoch": [1]}', '{"epoch": 1e400}', "garbage{", "[" * 100_000]
)
def test_resume_drops_damaged_metric_lines(line: str, tmp_path: Path) -> None:
    from us3l.train.loop import _trim_metrics

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n' + line + '\n{"epoch": 5}\n')
    _trim_metrics(tmp_path, 4)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_run_stopped_before_its_first_checkpoint_is_not_mixed_into_a_new_one(tiny_cfg, tmp_path: Path) -> None:
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4, save_every=0)
    run = Path(cfg.out)
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"epoch": 1, "loss": 9.0}\n')  # what a run killed in epoch 2 leaves
    for resume in (False, True):
        with pytest.raises(US3LError, match="stopped before its first checkpoint .*pass --overwrite to start over"):
            run_training(cfg, resume=resume)
    run_training(cfg, overwrite=True)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and '"loss": 9.0' not in lines[0]


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_resume_takes_the_same_data_moved_elsewhere(tiny_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--resume --data NEW: the run's data set at a new path goes on (and is recorded); other data is refused."""
    import shutil

    from tests.train.conftest import write_tiny_folder
    from us3l.cli import main

    first = write_tiny_folder(tmp_path / "first")
    run = tmp_path / "run"
    _stopped_after_checkpoint(tiny_cfg(epochs=4, out=str(run), data=f"folder:{first}"), 1, monkeypatch)
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    other = write_tiny_folder(tmp_path / "other", per_class_train=5)
    with pytest.raises(US3LError, match=rf"^--data folder:{other} is not the data this run trained on "
                       rf"\(folder:{first}\): train_size 10 against 8; --resume continues on the same data$"):
        run_training(tiny_cfg(out=str(run)), resume=True, data=f"folder:{other}")
    # red-team 2026-12-05: a data set of the same size and class count (other classes, other files) went on
    same_size = tmp_path / "same_size"
    for split in ("train", "test"):
        for old_name, new_name in (("a", "cats"), ("b", "dogs")):
            shutil.copytree(moved / split / old_name, same_size / split / new_name)
    with pytest.raises(US3LError, match=rf"^--data folder:{same_size} is not the data this run trained on "
                       rf"\(folder:{first}\): other images or class names \(its fingerprint differs\)"):
        run_training(tiny_cfg(out=str(run)), resume=True, data=f"folder:{same_size}")
    assert main(["train", "--out", str(run), "--resume", "--data", f"folder:{moved}", "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert "ignored" not in captured.err, captured.err
    assert json.loads(captured.out)["epochs"] == 4
    meta = ckpt.read_meta(run)
    assert meta["epoch"] == 4 and meta["config"]["data"] == f"folder:{moved}"  # later commands find it there


def test_an_unreadable_test_image_keeps_the_last_epoch(tiny_cfg, tmp_path: Path) -> None:
    """Red-team 2026-12-05: folder test images are first read by the kNN monitor, after the last epoch and before
    its checkpoint: a bad one lost the run's last epochs (every one, with save_every above the epochs), and
    --resume then refused a run "stopped before its first checkpoint"."""
    import shutil

    from tests.train.conftest import write_tiny_folder
    from us3l.errors import US3LError

    data = write_tiny_folder(tmp_path / "data")
    (data / "test" / "b" / "bad.png").write_bytes(b"not an image")
    cfg = tiny_cfg(epochs=1, schedule="none", save_every=10, data=f"folder:{data}")
    with pytest.raises(US3LError, match=r"cannot read image .*bad\.png.* \(the checkpoint of epoch 1 is saved in "
                                        r".*: fix this and run again with --resume\)$"):
        run_training(cfg)
    assert ckpt.read_meta(cfg.out)["epoch"] == 1
    assert [json.loads(x)["epoch"] for x in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()] == [1]
    # names only: the repaired image has another byte size, which a version-2 fingerprint took for other data
    assert ckpt.read_meta(cfg.out)["data"]["fingerprint"].startswith("v1:")
    shutil.copy(data / "test" / "b" / "0.png", data / "test" / "b" / "bad.png")  # the image repaired
    result = run_training(cfg, resume=True)
    assert result.epochs_done == 1 and set(result.final_knn) == {1.0, 0.25}


def test_resume_of_metadata_without_its_config_is_one_line(tiny_cfg) -> None:
    """Red-team 2026-12-05: a checkpoint.json without its `config` ended in `KeyError: 'config'`."""
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=1, schedule="none")
    run_training(cfg)
    meta_path = Path(cfg.out) / ckpt.META_FILE
    meta = json.loads(meta_path.read_text())
    del meta["config"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(US3LError, match=r"checkpoint\.json has no 'config' mapping; it is not the checkpoint "
                                        r"metadata of a us3l run$"):
        run_training(cfg, resume=True)


@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("target", ["dangling", "fifo"])
def test_metrics_are_never_written_through_a_link_or_into_a_fifo(tiny_cfg, tmp_path: Path, target: str,
                                                                 resume: bool) -> None:
    """metrics.jsonl is appended to, not replaced: a link there (a run folder from elsewhere; a dangling one
    passed `exists()`) pointed the metrics at another file, which was created; a FIFO blocked the run forever
    (red-team)."""
    import os

    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4)
    run = Path(cfg.out)
    run.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    if target == "dangling":
        (run / "metrics.jsonl").symlink_to(victim)
        match = "metrics.jsonl: a symbolic link; .*remove it and retry"
    else:
        os.mkfifo(run / "metrics.jsonl")
        match = "metrics.jsonl: not a regular file; .*remove it and retry"
    with pytest.raises(US3LError, match=match):
        run_training(cfg, resume=resume)
    assert not victim.exists()


@pytest.mark.parametrize("moved", range(6))
def test_an_overwrite_stopped_while_it_puts_the_old_run_back_loses_none_of_it(tmp_path: Path, moved: int,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An --overwrite run that ends before its first checkpoint moves the old run's files back one by one; stopped
    after ``moved`` of them (a second signal, a SIGKILL), the next us3l train settles the rest. Whether the new run
    saved is read from the weights file in the run folder: put back before the others, it made the rest look like
    the files of a replaced run, and they were deleted (the old checkpoint without its metadata and state)."""
    from us3l.train import loop

    run = tmp_path / "run"
    run.mkdir()
    old = {name: f"old {name}".encode() for name in loop._REPLACED}
    for name, data in old.items():
        (run / name).write_bytes(data)
    loop._check_run_dir(run, resume=False, overwrite=True)  # the old run set aside
    (run / "config.yaml").write_text("epochs: 4\n")  # the new run's first files
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    replace, calls = os.replace, []

    def stopped(src: object, dst: object) -> None:
        if len(calls) == moved:
            raise KeyboardInterrupt
        calls.append(src)
        replace(src, dst)

    monkeypatch.setattr(loop.os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        loop._settle_replaced(run)
    monkeypatch.setattr(loop.os, "replace", replace)
    loop._aside(run).rename(run / ".replaced-1-stopped")  # left by a process that is gone
    loop.recover_replaced(run)
    assert {name: (run / name).read_bytes() for name in old} == old
    assert not list(run.glob(".replaced-*"))


@pytest.mark.parametrize("name", ["backbone.conv1.weight", "train.encoder_k.backbone.conv1.weight"])
@pytest.mark.slow  # 2 cases, 1.0 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_resume_refuses_weights_of_another_dtype(name: str, tiny_cfg, tmp_path: Path) -> None:
    """Red-team 2026-12-06: a checkpoint whose float tensor was relabelled int32 (weights_sha256 updated with it) was
    refused by eval, calibrate, profile and export (checkpoint.check_dtypes), but `train --resume` cast the integers
    to float without a word and went on training from them."""
    from tests.checkpoint_header import rewrite_header
    from us3l.errors import US3LError

    cfg = tiny_cfg(epochs=4, save_every=0, out=str(tmp_path / "run"))
    run_training(cfg)
    run = tmp_path / "run"

    def relabel(header: dict) -> None:
        assert header[name]["dtype"] == "F32"
        header[name]["dtype"] = "I32"  # same size: the file still parses

    crafted = rewrite_header(run, relabel)
    with pytest.raises(US3LError, match=r"tensor .*conv1\.weight' is int32, the model expects float32"):
        run_training(tiny_cfg(epochs=8, save_every=0, out=str(run)), resume=True)
    assert (run / "checkpoint.safetensors").read_bytes() == crafted
