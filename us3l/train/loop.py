"""The US3L training recipe, top to bottom: ``run_training(config) -> RunResult``.

One iteration (method.md §1.3): draw widths (descending); the first runs the base branch (online network vs
EMA teacher, which is EMA-updated first and gives this iteration's targets), the others distil from those
targets; the group regularizer is added at every width; one SGD step per width (reference) or one step
after accumulating all widths (US-Nets, ``step_per_width=False``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from us3l import checkpoint as ckpt
from us3l.data.overlap import count_overlaps
from us3l.data.split_rule import CURRENT_SPLIT_RULE, split_rule_of
from us3l.derived import invalidate_stale
from us3l.errors import US3LError
from us3l.io import naming
from us3l.models.meta import shapes_only
from us3l.slim.layers import SWITCH_TOL
from us3l.ssl.ema import cosine_momentum
from us3l.ssl.methods import SSLMethod, create_method
from us3l.train.config import TrainConfig, fill_method_defaults, make_config, validate
from us3l.train.data_identity import (
    DataFingerprint,
    LoadedData,
    data_fingerprint,
    difference,
    fingerprint_differs,
    fingerprint_record,
    split_record,
)
from us3l.train.distributed import (
    DistInfo,
    all_ranks,
    all_reduce_mean,
    barrier,
    dist_env,
    init_distributed,
    kept_cuda_device,
    owned_process_group,
    same_checkpoint_on_all_ranks,
    same_on_all_ranks,
)
from us3l.train.groupreg import GroupRegConfig, GroupRegularizer
from us3l.train.knn import check_knn_data
from us3l.train.precision import (
    agreed_across_ranks,
    autocast_dtype,
    kept_flush_denormal,
    label,
    resolve_amp,
    set_flush_denormal,
)
from us3l.train.sampling import FixedWidth, SwitchWidths, WidthSampler
from us3l.train.state import epoch_seed, join_state, kept_rng_state, rng_state, set_rng_state, split_state
from us3l.train.threads import AUTO, auto_threads, kept_threads, local_threads

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    final_knn: dict[float, float]
    status: str = "completed"  # completed | nan | collapsed
    epochs_done: int = 0
    collapse_std: dict[float, float] = field(default_factory=dict)  # projector output, per width
    backbone_std: dict[float, float] = field(default_factory=dict)  # backbone features, per width
    seconds: float = 0.0
    message: str = ""


# ------------------------------------------------------------------------------------------ building


def build_backbone(cfg: TrainConfig) -> nn.Module:
    from us3l.models import create_model

    kw = dict(model_kwargs_for(cfg))
    return create_model(cfg.model, num_classes=0, **kw)


def check_model(cfg: TrainConfig) -> None:
    """The configured network (backbone, heads, EMA teacher) can be built and its training state fits this
    machine's memory. Built on PyTorch's meta device (shapes only, nothing allocated), so a bad model option or a
    network of terabytes is one line before the config is printed, not an allocation failure after it."""
    try:
        with shapes_only():
            method = create_method(cfg.method, build_backbone(cfg), cfg)
    except RuntimeError as exc:  # e.g. "Storage size calculation overflowed": a size beyond any machine
        raise US3LError(f"cannot build model {cfg.model!r} with model_kwargs {dict(cfg.model_kwargs)} "
                        f"({' '.join(str(exc).split())[:160]})") from None
    params = sum(p.numel() * p.element_size() for p in method.parameters())
    buffers = sum(b.numel() * b.element_size() for b in method.buffers())
    need = 3 * params + buffers  # weights, gradients and SGD momentum, plus the buffers (EMA teacher included)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not every platform reports it
        return
    if need > ram:
        raise US3LError(f"model {cfg.model!r} with these settings needs {need / 2**30:.1f} GiB for its weights, "
                        f"gradients and momentum alone; this machine has {ram / 2**30:.1f} GiB "
                        f"(model_kwargs {dict(cfg.model_kwargs)}, proj_hidden {cfg.proj_hidden}, "
                        f"proj_dim {cfg.proj_dim})")


def train_memory_format(method: nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last for convolutional networks on CPU: oneDNN's convolutions and BatchNorm run in NHWC
    without reordering (docs/training.md: 0.82-0.90x the iteration time of NCHW on the default recipe);
    contiguous elsewhere (GPUs, ViTs, whose only 4-D weight is the patch embedding)."""
    convs = sum(1 for p in method.parameters() if p.dim() == 4)
    return torch.channels_last if device.type == "cpu" and convs > 1 else torch.contiguous_format


def model_kwargs_for(cfg: TrainConfig) -> dict[str, Any]:
    """Model kwargs as recorded in the checkpoint (the single baseline tracks BN running statistics)."""
    from us3l.models.registry import model_entry, size_kwargs

    kw = dict(cfg.model_kwargs)
    if cfg.method == "single" and not cfg.model.startswith("vit"):
        kw["bn_track_stats"] = True
    if cfg.method == "snets":  # S-Nets: a private BN (affine and running statistics) per switch width
        kw["bn_switches"] = list(cfg.bn_switches)
        kw.setdefault("bn_track_stats", True)
    if cfg.method == "us3l_simsiam" and cfg.model.startswith("resnet"):
        kw.setdefault("zero_init_residual", True)  # the reference's SimSiam_Momentum builds ImageNet ResNets so
    opt = model_entry(cfg.model).size_option  # a ViT is built for its input side (position embedding)
    if opt is not None and cfg.image_size is not None:
        if opt in kw and kw[opt] != cfg.image_size:
            raise US3LError(f"image_size {cfg.image_size} and model_kwargs {opt} {kw[opt]} disagree: {cfg.model} "
                            f"is built for one input side; give one of them")
        kw.update(size_kwargs(cfg.model, cfg.image_size))
    if cfg.width_min is not None:
        kw["width_min"] = cfg.width_min
    if cfg.width_max is not None:
        kw["width_max"] = cfg.width_max
    return kw


def lr_at(cfg: TrainConfig, epoch: int, it: int, iters: int) -> float:
    """Per-epoch cosine (reference), per-iteration cosine with linear warm-up, or constant."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    length = cfg.lr_schedule_epochs or cfg.epochs  # a longer schedule, of which this run trains the start
    if cfg.lr_schedule == "epoch":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / length))
    step, total = epoch * iters + it, length * iters
    warm = cfg.warmup_epochs * iters
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _index_batches(n: int, cfg: TrainConfig, epoch: int, info: DistInfo) -> list[torch.Tensor]:
    """This rank's batches of sample indices for ``epoch`` (same permutation on every rank, sharded)."""
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0, 0))
    perm = torch.randperm(n, generator=g)
    per_rank = n // info.world_size
    shard = perm[info.rank :: info.world_size][:per_rank]
    bs = cfg.batch_size
    stop = per_rank - per_rank % bs if cfg.drop_last else per_rank
    return [shard[i : min(i + bs, stop)] for i in range(0, stop, bs) if min(i + bs, stop) - i >= 2]


def _splits(cfg: TrainConfig, image_size: int, loaded: LoadedData | None,
            split_rule: int = CURRENT_SPLIT_RULE) -> tuple[Any, Any, DataFingerprint]:
    """The train and test splits of ``cfg.data`` at ``image_size`` (a folder's stored side) under ``split_rule``
    (``us3l.data.split_rule``: a resumed run keeps its own) and their fingerprint: ``loaded``'s when it holds that
    spec and rule (``LoadedData.splits_for``), else read from it."""
    from us3l.data import load_splits

    reused = loaded.splits_for(str(cfg.data), image_size, split_rule) if loaded is not None else None
    if loaded is not None and reused is not None:
        return (*reused, loaded.fingerprint)
    train, test = load_splits(cfg.data, image_size, split_rule)
    return train, test, data_fingerprint(train, test)


def check_monitor_data(cfg: TrainConfig, train_ds: Any) -> None:
    """The kNN monitor's data check (``check_knn_data``), where there is a monitor: ``knn_widths: []`` is none, and
    unlabelled images in one folder pretrain as they are (the one-class error says so)."""
    if not cfg.knn_widths:
        return
    try:
        check_knn_data(train_ds.num_classes, cfg.knn_max_train, len(train_ds), str(cfg.data), "knn_max_train")
    except US3LError as exc:
        hint = "; --set knn_widths=[] trains without the kNN monitor (unlabelled images)"
        raise US3LError(f"{exc}{hint if train_ds.num_classes < 2 else ''}") from None


def check_data(cfg: TrainConfig, world: int | None) -> LoadedData:
    """Both splits list images, the first image of every class opens, the kNN monitor has two classes and (with
    ``world``, the number of training processes) the batch size leaves every epoch a batch on every process:
    one error line before ``us3l train`` prints the resolved config or ``--nproc`` starts its workers (each of
    which would report it, and write the run folder, again), and before quickstart trains. Returns the splits it
    loaded, for the training loop."""
    from us3l.data.datasets import load_splits
    from us3l.data.folder import check_first_images

    train, test = load_splits(str(cfg.data))
    check_first_images(train)
    check_first_images(test)
    check_monitor_data(cfg, train)
    if world is not None:
        check_batches(len(train), cfg, world)
    return LoadedData(str(cfg.data), train, test)


def check_batches(n: int, cfg: TrainConfig, world_size: int) -> None:
    """Refuse (one line, before anything is written) a batch size that leaves an epoch without a batch; ``us3l
    train --nproc`` checks it before its workers start."""
    if not _index_batches(n, cfg, 0, DistInfo(rank=0, world_size=world_size)):
        raise US3LError(f"batch size {cfg.batch_size} x {world_size} process(es) exceeds the {n} training images")


def _batches(ds: Any, idx_batches: list[torch.Tensor], num_workers: int) -> Iterator[torch.Tensor]:
    from us3l.data import ImageDataset

    if isinstance(ds, ImageDataset):
        for idx in idx_batches:
            yield ds.images[idx]
        return
    from us3l.data.loader import loader_batches

    for images, _ in loader_batches(ds, [i.tolist() for i in idx_batches], num_workers):
        yield images


# ------------------------------------------------------------------------------------------ progress


class _Progress:
    """A rich progress bar on stderr (TTY only, not quiet) or one summary line per epoch."""

    def __init__(self, enabled: bool, quiet: bool) -> None:
        from us3l.cli_app import make_console

        self.console = make_console()
        self.quiet = quiet
        self.bar = None
        if enabled and not quiet and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self.bar.start()
        self.task = None

    def start_epoch(self, epoch: int, epochs: int, iters: int) -> None:
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(f"epoch {epoch + 1}/{epochs}", total=iters, info="")

    def step(self, info: str) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=1, info=info)

    def line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(f"[bold red]WARNING[/]: {text}", highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fmt_losses(role_loss: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in role_loss.items())


def _role(i: int, n: int, w: float) -> str:
    if i == 0:
        return f"w{w:.2f}"
    return "min" if i == n - 1 else f"mid{i}"


# ------------------------------------------------------------------------------------------ the run


#: What ``--overwrite`` replaces: set aside when the new run starts, deleted once it has saved its own checkpoint,
#: put back if it ends before that (an error, Ctrl-C), so a failed start never costs the old run.
_REPLACED = (ckpt.WEIGHTS_FILE, ckpt.META_FILE, ckpt.STATE_FILE, METRICS_FILE, ckpt.BN_STATS_FILE, CONFIG_FILE)
_ASIDE_PREFIX = ".replaced-"
#: This process's part of its set-aside folder's name beside its PID (``_aside``): PIDs repeat, in a container
#: restarted after a SIGKILL often exactly, and a folder named by the PID alone was taken for this process's own.
_ASIDE_TOKEN = secrets.token_hex(4)


def _aside(run_dir: Path) -> Path:
    """The folder in which this process's ``--overwrite`` sets the old run aside."""
    return run_dir / f"{_ASIDE_PREFIX}{os.getpid()}-{_ASIDE_TOKEN}"


def aside_folders(run_dir: Path) -> list[Path]:
    """The set-aside folders of ``--overwrite`` runs in ``run_dir`` (this process's included)."""
    return [p for p in run_dir.glob(f"{_ASIDE_PREFIX}*") if p.is_dir() and not p.is_symlink()]


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    metrics = run_dir / METRICS_FILE
    if metrics.is_symlink() or (metrics.exists() and not metrics.is_file()):
        # appended to, not replaced: a link (even a dangling one) would point the metrics at another file
        kind = "a symbolic link" if metrics.is_symlink() else "not a regular file"
        raise US3LError(f"cannot use {metrics}: {kind}; us3l writes the run's metrics there itself, remove it "
                        "and retry")
    has_checkpoint = (run_dir / ckpt.WEIGHTS_FILE).exists()
    if resume and (has_checkpoint or (run_dir / ckpt.META_FILE).is_file()):
        return
    if not has_checkpoint:
        if not (run_dir / METRICS_FILE).exists():
            _check_config_replaceable(run_dir)
            return
        if not overwrite:  # a run stopped before its first checkpoint: its metrics would mix with a new run's
            raise US3LError(
                f"{run_dir} holds the metrics of a run that stopped before its first checkpoint (nothing to "
                "--resume); pass --overwrite to start over, or choose another --out"
            )
    elif not overwrite:
        raise US3LError(
            f"{run_dir} already holds a checkpoint; pass --resume to continue it, --overwrite to start over, "
            "or choose another --out"
        )
    aside = _aside(run_dir)
    aside.mkdir(exist_ok=True)
    for name in _REPLACED:
        if (run_dir / name).exists():
            os.replace(run_dir / name, aside / name)


def _check_config_replaceable(run_dir: Path) -> None:
    """Refuse (one line, before any work) to start a run in a folder whose ``config.yaml`` us3l did not write: a
    recipe of the user's there (``us3l train -c exp/config.yaml --out exp``, comments and all) was replaced by the
    run's resolved settings without a word. One that a run stopped before its first epoch wrote holds every
    setting of ``TrainConfig`` (``_write_config``) and is replaced as before."""
    import yaml

    from us3l.io import check_replaceable

    def ours(head: bytes) -> bool:
        try:
            doc = yaml.safe_load(head.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError):
            return False
        return isinstance(doc, dict) and set(doc) == set(TrainConfig().to_dict())

    check_replaceable(run_dir / CONFIG_FILE, "run config that us3l train wrote", ours)


def _settle_replaced(run_dir: Path, aside: Path | None = None) -> None:
    """After an ``--overwrite`` run: drop the old files once the new run saved a checkpoint, else put them back.
    ``aside``: the folder they were set aside in (this process's by default)."""
    aside = _aside(run_dir) if aside is None else aside
    if not aside.is_dir():
        return
    if (run_dir / ckpt.WEIGHTS_FILE).exists():
        shutil.rmtree(aside, ignore_errors=True)
        return
    # the weights last: until they are back, the next run's recover_replaced (this one stopped meanwhile) reads the
    # folder as one whose new run saved nothing, and puts the rest back too (not: drops it as a replaced run's)
    for path in sorted(aside.iterdir(), key=lambda p: p.name == ckpt.WEIGHTS_FILE):
        os.replace(path, run_dir / path.name)
    aside.rmdir()


def recover_replaced(run_dir: Path) -> None:
    """Settle what an ``--overwrite`` run killed before it could (SIGKILL: the OOM killer, torchrun stopping a
    worker, a power loss) left set aside in ``run_dir/.replaced-PID-TOKEN``: put the old run back when the killed
    run saved no checkpoint, else drop it, as the run itself would have done. The old checkpoint stayed hidden
    there, and ``--resume`` answered that the folder held nothing to resume. Only with the folder's lock free (a
    run holding it owns its folder); a no-op otherwise."""
    mine = _aside(run_dir)
    stale = [p for p in aside_folders(run_dir) if p.name != mine.name]
    if not stale:
        return
    from us3l.locking import folder_lock

    try:
        with folder_lock(run_dir, "run folder"):  # re-entrant: run_training holds it already
            if not (run_dir / ckpt.WEIGHTS_FILE).exists():
                # the one holding a checkpoint (the newest), else the newest: an earlier killed --overwrite may
                # have set aside only the partial files of the run killed before it
                stale.sort(key=lambda p: ((p / ckpt.WEIGHTS_FILE).exists(), p.stat().st_mtime))
                _settle_replaced(run_dir, stale.pop())
            for aside in stale:
                shutil.rmtree(aside, ignore_errors=True)
    except US3LError:  # held by a live run, or not writable: reported by what comes next
        return


#: The settings a resumed run takes from the command line (run-local); every other one comes from its saved config.
RESUME_KEEPS = ("out", "quiet", "num_workers", "device")
#: The settings the processes of a distributed run may give differently, each process using its own (where it
#: runs and reads): ``data`` may be another path to the same data set (a node's own copy; the data itself is
#: compared once loaded), ``quiet`` matters only on rank 0, the one that prints. docs/training.md lists them.
RANK_LOCAL = (*RESUME_KEEPS, "threads", "data")
#: The settings only rank 0 acts on: the kNN monitor (it runs there alone, while the others wait), the collapse
#: check (rank 0 broadcasts the decision to stop), the checkpoint cadence (rank 0 writes). They may differ between
#: the processes; rank 0's values are used on every rank and a note names the ones that differ. Every other
#: setting changes what each process computes (or how many iterations it runs) and must agree.
RANK0_WINS = ("knn_every", "knn_widths", "knn_k", "knn_t", "knn_max_train", "collapse_warn", "collapse_stop",
              "save_every")


def _resumed_config(cfg: TrainConfig, meta: dict[str, Any], data: str | None = None) -> TrainConfig:
    """On resume the saved config (``meta``: the run's checkpoint.json) wins; only ``RESUME_KEEPS`` come from
    ``cfg``, and ``data`` (the same data set at a new place, checked by ``_check_same_data`` once it is loaded)
    replaces the saved data spec."""
    from us3l.train.config import make_config

    if not isinstance(meta.get("config"), dict):
        raise US3LError(f"{Path(cfg.out) / ckpt.META_FILE} has no 'config' mapping; it is not the checkpoint "
                        "metadata of a us3l run")
    keep: dict[str, Any] = {k: getattr(cfg, k) for k in RESUME_KEEPS}
    if data is not None:
        keep["data"] = data
    return replace(make_config(meta["config"]), **keep)


def _note_world_size(run_dir: Path, meta: dict[str, Any], batch_size: int, world_size: int) -> None:
    """Say (a note on stderr) when a run resumes on another number of processes than it last trained on:
    ``batch_size`` is per process, so the images per iteration change, at the same learning rate."""
    was = (meta.get("distributed") or {}).get("world_size") if isinstance(meta.get("distributed"), dict) else None
    if isinstance(was, int) and not isinstance(was, bool) and was >= 1 and was != world_size:
        from us3l.cli_output import note

        note(f"note: {run_dir} last trained on {was} process(es) and resumes on {world_size}: batch_size "
             f"{batch_size} is per process, so an iteration now takes {batch_size * world_size} images (it took "
             f"{batch_size * was}) at the same learning rate", markup=False)


def _check_relative_record(meta: dict[str, Any], fingerprint: DataFingerprint, run_dir: Path) -> None:
    """Refuse (one line) to resume a run that recorded its data as a relative path (before 2026-12-07), read here from
    the working directory, where no fingerprint (``checkpoint.json``'s ``data.fingerprint``, of a version computed
    here: ``us3l.train.data_identity.comparable``) can tell that folder from a lookalike; ``_check_same_data``
    compares one that is recorded."""
    from us3l.data.datasets import anchored_data_spec
    from us3l.train.data_identity import comparable

    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    recorded = config.get("data") if isinstance(config.get("data"), str) else data.get("spec")
    if not isinstance(recorded, str) or anchored_data_spec(recorded) == recorded:
        return
    if not comparable(data.get("fingerprint"), fingerprint):
        raise US3LError(f"{run_dir}/{ckpt.META_FILE} records its data as the relative path {recorded!r} (written "
                        "before 2026-12-07) and no data.fingerprint to check the folder it names from here; pass "
                        "--data with the absolute path of the run's data")


def _check_same_data(saved: dict[str, Any], normalization: dict[str, Any], train_ds: Any, test_ds: Any,
                     spec: str, fingerprint: DataFingerprint) -> None:
    """Refuse (one line) to resume on data other than the run's: ``saved`` is checkpoint.json's ``data``
    (class count, split sizes and, since it was recorded, the samples' ``fingerprint``, compared at its version:
    ``us3l.train.data_identity``), ``normalization`` its per-channel mean/std (fixed constants for folder and
    CIFAR data, so they tell data sets of one kind apart only for the built-in sets)."""
    now = {"num_classes": len(train_ds.classes), "train_size": len(train_ds), "test_size": len(test_ds)}
    for key, value in now.items():
        if key in saved and saved[key] != value:
            raise US3LError(
                f"--data {spec} is not the data this run trained on ({saved.get('spec')}): {key} {value} against "
                f"{saved[key]}; --resume continues on the same data"
            )
    for key, values in (("mean", train_ds.mean), ("std", train_ds.std)):
        old = normalization.get(key)
        if old is not None and not all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)
                                       for a, b in zip(old, values, strict=False)):
            raise US3LError(
                f"--data {spec} is not the data this run trained on ({saved.get('spec')}): its per-channel {key} "
                f"differs; --resume continues on the same data"
            )
    if fingerprint_differs(saved.get("fingerprint"), fingerprint):
        raise US3LError(
            f"--data {spec} is not the data this run trained on ({saved.get('spec')}): "
            f"{difference(saved, fingerprint)} (its fingerprint differs); --resume continues on the same data"
        )


def run_training(
    cfg: TrainConfig, resume: bool = False, overwrite: bool = False, data: str | None = None,
    loaded: LoadedData | None = None,
) -> RunResult:
    """Train ``cfg.method`` on ``cfg.data``; write checkpoints/metrics into ``cfg.out``; return the result.

    Under torchrun every rank calls this; only rank 0 writes files. ``resume=True`` continues from the run
    folder's checkpoint (with the config saved there) or starts fresh when there is none; ``data`` then names
    where the run's data set is now (moved since: its class count, split sizes and normalisation must match the
    checkpoint's). ``loaded``: the data, already read (used when it is of the spec the run trains on). Rank 0
    holds an exclusive lock on the run folder throughout: a second training into the same folder fails at once.
    A run that fails or is interrupted before it has committed a checkpoint removes the files it wrote, and the
    run folder when it made it (``_remove_unsaved``).

    The process-wide settings a run makes are put back when it returns or raises, so that a program (or test)
    calling it goes on as before: torch's thread count (``threads``), the calling thread's denormal mode
    (``flush_denormal``; threads of torch's intra-op pool started during the run keep it, torch sets it per
    thread), and torch's global random generators (the run seeds them with ``seed + rank`` for its own
    reproducibility; what the caller draws afterwards does not depend on the run; CUDA's only where CUDA was
    initialised before the run), and torch's current CUDA device (a multi-GPU run sets its local rank's; again only
    where CUDA was initialised before the run). A distributed run's process group is destroyed when the run made it.
    """
    with kept_threads(), kept_flush_denormal(), kept_rng_state(), kept_cuda_device():
        return _locked_run(cfg, resume, overwrite, data, loaded)


def _locked_run(cfg: TrainConfig, resume: bool, overwrite: bool, data: str | None,
                loaded: LoadedData | None) -> RunResult:
    """``_run_training`` in its process group; rank 0 under the run folder's lock, settling ``--overwrite``'s old
    files and removing what a run that failed before its first checkpoint wrote."""
    if dist_env()[0] != 0:
        with owned_process_group():
            return _run_training(cfg, resume, overwrite, data, loaded)
    from us3l.locking import folder_lock

    with folder_lock(cfg.out, "run folder"), owned_process_group():
        run_dir = Path(cfg.out)
        recover_replaced(run_dir)
        before = _run_files(run_dir)
        try:
            return _run_training(cfg, resume, overwrite, data, loaded)
        except BaseException:
            _remove_unsaved(run_dir, before)  # before an --overwrite's old files come back (_settle_replaced)
            raise
        finally:
            _settle_replaced(run_dir)


def _run_files(run_dir: Path) -> set[str]:
    """The names of the files a run writes (``_REPLACED``) that ``run_dir`` holds now (a link, even a dangling
    one, counts)."""
    return {name for name in _REPLACED if os.path.lexists(run_dir / name)}


def _remove_unsaved(run_dir: Path, before: set[str]) -> None:
    """After a run that failed or was interrupted (rank 0): when ``run_dir`` holds no checkpoint, remove the files
    the run wrote there, those of ``_REPLACED`` that were not there when it started (``before``): its
    ``config.yaml`` and ``metrics.jsonl``. They held no result, and the next ``us3l train`` into the folder was
    refused as a run stopped before its first checkpoint (pass --overwrite). Nothing that was there before the run
    is removed; a resumed run (a checkpoint there) removes nothing. The folder's lock removes the run folder on
    release when it made it and nothing else is left (``us3l.locking``). A run killed outright (SIGKILL) leaves its
    files, refused as before."""
    if os.path.lexists(run_dir / ckpt.WEIGHTS_FILE):
        return
    for name in sorted(set(_REPLACED) - before):
        with contextlib.suppress(OSError):  # the error that ended the run is the one to report
            (run_dir / name).unlink(missing_ok=True)


def _run_training(cfg: TrainConfig, resume: bool, overwrite: bool, data: str | None = None,
                  loaded: LoadedData | None = None) -> RunResult:
    t_start = time.perf_counter()
    run_dir = Path(cfg.out)
    info = init_distributed(cfg.device)
    resume_asked = resume
    moved_from: dict[str, Any] | None = None  # checkpoint.json of a run resumed on relocated data
    resumed_meta: dict[str, Any] | None = None  # checkpoint.json of a resumed run: its data is checked
    if resume and (run_dir / ckpt.META_FILE).is_file():
        meta = resumed_meta = ckpt.read_meta(run_dir)
        if data is not None and data != meta["config"].get("data"):
            moved_from = meta
        cfg = _resumed_config(cfg, meta, data if moved_from is not None else None)
    else:
        if resume and not overwrite and (run_dir / ckpt.WEIGHTS_FILE).exists():
            # said as such: the refusal below would tell a user who gave --resume to pass --resume
            raise US3LError(f"{run_dir} holds {ckpt.WEIGHTS_FILE} but not its {ckpt.META_FILE}, without which it "
                            f"cannot be resumed: restore {ckpt.META_FILE}, or pass --overwrite to start over")
        resume = False
    # a rank without the checkpoint that another resumes (run folders not shared between nodes): said as such,
    # before the config comparison below lists every setting its new run resolved differently
    same_checkpoint_on_all_ranks(resume_asked, resumed_meta["epoch"] if resumed_meta else None, str(run_dir), info)
    cfg = fill_method_defaults(cfg)
    if resumed_meta is not None and info.is_main:
        _note_world_size(run_dir, resumed_meta, cfg.batch_size, info.world_size)
    validate(cfg, new_run=resumed_meta is None)  # a saved run resumes with settings checked since it started
    # every rank must train the same run: compared before any other collective (amp: auto agrees over ranks)
    rank0, differing = same_on_all_ranks(
        "the config", {**{k: v for k, v in cfg.to_dict().items() if k not in RANK_LOCAL},
                       "resumed from epoch": resumed_meta["epoch"] if resumed_meta else None,
                       # the checkpoint itself: each rank reads its own --out (a node's own copy of the folder)
                       "resumed weights": resumed_meta.get("weights_sha256") if resumed_meta else None},
        info, "give every process the same config file and flags (and the same run folder to --resume)", RANK0_WINS)
    if differing:
        cfg = make_config(rank0, base=cfg)  # every rank goes on with rank 0's monitor and checkpoint settings
        if info.is_main:
            from us3l.cli_output import note

            note(f"note: the training processes differ on {'; '.join(differing)}: only rank 0 acts on "
                 f"{'this setting' if len(differing) == 1 else 'these settings'}, so rank 0's "
                 f"{'value is' if len(differing) == 1 else 'values are'} used", markup=False)
    if cfg.threads == AUTO:  # resolved once and recorded in the saved config (a resume keeps the count)
        n = auto_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        cfg = replace(cfg, threads=n)
        if info.is_main and not cfg.quiet:
            print(f"threads: auto -> {n} (cores idle now)", file=sys.stderr)
    if cfg.amp == AUTO:  # resolved once and recorded, like threads (float results depend on it)
        amp, why = resolve_amp(cfg.amp, info.device.type)
        if info.enabled and info.device.type == "cpu":  # one precision for every rank (CUDA: float16 on all)
            amp, why = agreed_across_ranks(amp, why, lambda flag: all_ranks(flag, info))
        cfg = replace(cfg, amp=amp)
        if info.is_main and not cfg.quiet:
            print(f"amp: auto -> {label(autocast_dtype(amp, info.device.type))} ({why})", file=sys.stderr)
    if info.is_main:
        _check_run_dir(run_dir, resume, overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(info)
    device = info.device
    if cfg.threads:
        torch.set_num_threads(local_threads(cfg.threads, "threads"))
    flushed = set_flush_denormal(bool(cfg.flush_denormal))
    torch.manual_seed(cfg.seed + info.rank)

    from us3l.data import byol_augment_pair, ssl_augment_for, two_views
    from us3l.data.folder import augmented_views, eval_transform_for, finish_views, is_folder

    backbone = build_backbone(cfg)
    image_size = int(cfg.image_size or backbone.input_size)
    split_rule = split_rule_of(resumed_meta.get("data")) if resumed_meta is not None else CURRENT_SPLIT_RULE
    train_ds, test_ds, fingerprint = _splits(cfg, image_size, loaded, split_rule)
    check_monitor_data(cfg, train_ds)
    check_batches(len(train_ds), cfg, info.world_size)
    same_on_all_ranks("the data", {"num_classes": len(train_ds.classes), "train_size": len(train_ds),
                                   "test_size": len(test_ds), "fingerprint": fingerprint},
                      info, "every process must read the same data set (--data)")
    if resumed_meta is not None:
        if moved_from is None:
            _check_relative_record(resumed_meta, fingerprint, run_dir)
        _check_same_data(resumed_meta.get("data") or {}, resumed_meta.get("normalization") or {}, train_ds,
                         test_ds, str(cfg.data), fingerprint)
    # the warning us3l eval gives, once (rank 0): the kNN monitor scores the test split
    overlaps = count_overlaps(str(cfg.data), train_ds, test_ds) if info.is_main else None
    aug: Any
    if cfg.augment == "byol":
        aug = byol_augment_pair(image_size, train_ds.mean, train_ds.std, cfg.crop_min)
    else:
        aug = ssl_augment_for(train_ds.name, image_size, train_ds.mean, train_ds.std)
        if cfg.crop_min is not None:
            aug.crop_scale = (float(cfg.crop_min), 1.0)
    eval_tf = eval_transform_for(train_ds, image_size, train_ds.mean, train_ds.std)
    per_image_crops = is_folder(train_ds)  # folder data: crops of the original, per image in the workers
    method = create_method(cfg.method, backbone, cfg).to(device)
    memory_format = train_memory_format(method, device)
    method.to(memory_format=memory_format)
    wr = backbone.width_range
    w_min = float(cfg.width_min if cfg.width_min is not None else wr.min)
    w_max = float(cfg.width_max if cfg.width_max is not None else wr.max)
    asked = tuple(cfg.knn_widths) != TrainConfig().knn_widths  # widths one asked for are never dropped silently
    if cfg.method == "single":
        sampler: WidthSampler | FixedWidth | SwitchWidths = FixedWidth(wr.check(cfg.single_width))
        other = [w for w in cfg.knn_widths if abs(w - cfg.single_width) > 1e-9]
        if asked and other and resumed_meta is None:  # a run saved before this check still resumes
            raise US3LError(f"knn_widths {', '.join(f'{w:g}' for w in other)}: method single trains only width "
                            f"{cfg.single_width:g} (single_width); the monitor runs there ([] turns it off)")
        knn_widths = [float(cfg.single_width)] if cfg.knn_widths else []  # []: no monitor, as for every method
    elif cfg.method == "snets":  # every switch, every iteration; the monitor too only runs at switches
        switches = method.switches  # type: ignore[attr-defined]
        sampler = SwitchWidths(switches)
        # the listed widths that are switches (all switches when none is); `knn_widths: []` is no monitor, as for
        # every other method
        knn_widths = ([s for s in switches if any(abs(s - w) <= SWITCH_TOL for w in cfg.knn_widths)] or list(switches)
                      if cfg.knn_widths else [])
    else:
        sampler = WidthSampler(
            w_min, w_max, cfg.epochs, cfg.num_samples, cfg.sampling, cfg.schedule, cfg.faithful_sandwich_bug, cfg.seed,
            cfg.schedule_stage1,
        )
        knn_widths = [w for w in cfg.knn_widths if w_min - 1e-9 <= w <= w_max + 1e-9]
        outside = [w for w in cfg.knn_widths if w not in knn_widths]
        if outside and (asked or not knn_widths):
            # the default widths below a raised width_min are left out; widths one asked for are never dropped
            raise US3LError(f"knn_widths {', '.join(f'{w:g}' for w in outside)} outside the trained range "
                            f"[{w_min:g}, {w_max:g}]")

    params = [p for p in method.parameters() if p.requires_grad]
    wd = 0.0 if cfg.regularizer else cfg.weight_decay  # the group regularizer replaces weight decay
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=wd)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    reg = None
    if cfg.regularizer:
        reg = GroupRegularizer(
            method.named_parameters(),
            GroupRegConfig(
                cfg.reg_lambda,
                cfg.reg_alpha,
                cfg.reg_bins,
                cfg.reg_warmup_epochs,
                cfg.reg_decay,
                vit=cfg.model.startswith("vit"),
            ),
            cfg.epochs,
            max_width=w_max,
        )
    amp_dtype = autocast_dtype(cfg.amp, device.type)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bfloat16 needs no loss scaling

    start_epoch = 0
    if resume:
        if info.is_main:  # killed between the renames of a checkpoint commit: rank 0 alone finishes it
            ckpt.finish_interrupted_commit(run_dir)
        barrier(info)  # the other ranks read the files once they are whole (they renamed the same files at once)
        start_epoch = _restore(run_dir, method, opt, scaler, sampler, cfg.epochs)
    model: nn.Module = method
    if info.enabled:
        if cfg.sync_bn:  # every BatchNorm, backbone and heads, on CPU (gloo) and GPU: us3l.slim.syncbn
            from us3l.slim.syncbn import enable_sync_bn

            enable_sync_bn(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )

    meta_base = _meta_base(cfg, backbone, train_ds, test_ds, image_size, w_min, w_max, info, device)
    meta_base["flush_denormal"] = flushed
    meta_base["data"].update(fingerprint_record(fingerprint))  # the current version's, and the names-only one
    meta_base["data"].update(split_record(str(cfg.data), train_ds, test_ds, split_rule))
    if overlaps is not None:  # rank 0's record (the one that saves)
        meta_base["data"]["train_test_overlaps"] = overlaps
    if resumed_meta is not None:
        ckpt.check_resumed_bound(resumed_meta, meta_base, run_dir / ckpt.META_FILE)
    if info.is_main:
        _write_config(run_dir, cfg)
        if resume:
            _trim_metrics(run_dir, start_epoch)
            invalidate_stale(run_dir)  # a run killed right after a checkpoint may have left stale derived files
    progress = _Progress(info.is_main, cfg.quiet)
    n_iters = len(_index_batches(len(train_ds), cfg, 0, info))
    result = RunResult(run_dir=run_dir, final_knn={}, epochs_done=start_epoch)
    last_reports: list[Any] = []
    try:
        for epoch in range(start_epoch, cfg.epochs):
            method.train()
            t0 = time.perf_counter()
            c0 = time.process_time()  # CPU seconds of this process: robust to other load with 1 thread
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            images_seen = 0
            idx_batches = _index_batches(len(train_ds), cfg, epoch, info)
            gen = torch.Generator(device=device).manual_seed(epoch_seed(cfg.seed, epoch, info.rank, 1))
            progress.start_epoch(epoch, cfg.epochs, len(idx_batches))
            source = train_ds
            if per_image_crops:  # two RandomResizedCrop+flip views per image, seeded per (epoch, rank, index)
                source = augmented_views(train_ds, aug, 2, epoch_seed(cfg.seed, epoch, info.rank, 2))
            for it, images in enumerate(_batches(source, idx_batches, cfg.num_workers)):
                lr = lr_at(cfg, epoch, it, len(idx_batches))
                for g in opt.param_groups:
                    g["lr"] = lr
                if cfg.method == "us3l_mocov3":
                    method.momentum_now = cosine_momentum(
                        cfg.ema_momentum, (epoch * n_iters + it) / (cfg.epochs * n_iters)
                    )
                images = images.to(device, non_blocking=True)
                if per_image_crops:
                    x1, x2 = finish_views(images, aug, gen)  # (B,2,3,S,S) crops: jitter, blur, ..., normalise
                else:
                    x1, x2 = two_views(images, aug, gen)
                x1, x2 = x1.contiguous(memory_format=memory_format), x2.contiguous(memory_format=memory_format)
                widths = sampler.widths(epoch)
                losses = _train_step(model, method, opt, scaler, reg, x1, x2, widths, epoch, cfg, amp_dtype, info)
                for i, (w, lv) in enumerate(zip(widths, losses, strict=True)):
                    if not math.isfinite(lv):
                        raise _NonFinite(epoch, it, w, lv)
                    r = _role(i, len(widths), w) if i else "base"
                    sums[r] = sums.get(r, 0.0) + lv
                    counts[r] = counts.get(r, 0) + 1
                images_seen += images.shape[0] * info.world_size
                dt = time.perf_counter() - t0
                progress.step(
                    f"{_fmt_losses({k: sums[k] / counts[k] for k in sums})} {images_seen / max(dt, 1e-9):.0f} img/s"
                )
            epoch_time = time.perf_counter() - t0
            epoch_cpu = time.process_time() - c0
            done = epoch + 1
            record: dict[str, Any] = {
                "epoch": done,
                "lr": lr_at(cfg, epoch, 0, len(idx_batches)),
                "min_width": sampler.min_width(epoch),
                "loss": {k: sums[k] / counts[k] for k in sums},
                "seconds": round(epoch_time, 3),
                "cpu_seconds": round(epoch_cpu, 3),
                "img_per_s": round(images_seen / max(epoch_time, 1e-9), 1),
            }
            is_last = done == cfg.epochs
            if info.is_main and knn_widths and (is_last or (cfg.knn_every and done % cfg.knn_every == 0)):
                try:
                    last_reports = _run_monitor(method, train_ds, test_ds, knn_widths, eval_tf, device, cfg)
                except US3LError as exc:  # e.g. an unreadable test image, first read here: keep the epoch's work
                    _append_metrics(run_dir, record)
                    # with the names-only fingerprint (v1): the image repaired under its name, as the error asks, is
                    # of another byte size, and the version-2 fingerprint refused the --resume it asks for
                    names_only = {**meta_base["data"], "fingerprint": fingerprint.of_version("v1")}
                    _save(run_dir, method, opt, scaler, sampler, {**meta_base, "data": names_only}, cfg, done)
                    _settle_replaced(run_dir)
                    raise US3LError(f"{exc} (the checkpoint of epoch {done} is saved in {run_dir}: fix this and "
                                    "run again with --resume)", exc.exit_code) from None
                record["knn_top1"] = {f"{r.width:g}": r.knn_top1 for r in last_reports}
                record["collapse_std"] = {f"{r.width:g}": r.collapse_std for r in last_reports}
                record["backbone_std"] = {f"{r.width:g}": r.backbone_std for r in last_reports}
                if last_reports:  # how the kNN was taken (us3l.train.knn: capped k, stratified bank)
                    r0 = last_reports[0]
                    record["knn"] = {"k": r0.k, "k_requested": r0.k_requested, "bank_size": r0.bank_size,
                                     "bank_seed": r0.bank_seed}
                collapsed = [r for r in last_reports if r.lowest_std < cfg.collapse_warn]
                if collapsed:
                    progress.warn(
                        "representation collapse suspected at width(s) "
                        + ", ".join(f"{r.width:g} (std·√D={r.lowest_std:.3f})" for r in collapsed)
                    )
                    if cfg.collapse_stop:
                        result.status = "collapsed"
            if info.is_main:
                _append_metrics(run_dir, record)
                progress.line(_epoch_line(record))
                if is_last or (cfg.save_every and done % cfg.save_every == 0) or result.status == "collapsed":
                    _save(run_dir, method, opt, scaler, sampler, meta_base, cfg, done)
                    _settle_replaced(run_dir)  # an --overwrite's old files go once the new run has a checkpoint
            result.epochs_done = done
            stop = torch.tensor([1.0 if result.status == "collapsed" else 0.0], device=device)
            if info.enabled:
                torch.distributed.broadcast(stop, 0)
            if stop.item() > 0:
                result.status = "collapsed"
                result.message = "stopped: representation collapse (collapse_stop is on)"
                break
            barrier(info)
    except _NonFinite as exc:
        result.status = "nan"
        saved = _saved_epoch(run_dir)
        result.message = (
            f"loss became {exc.value} at epoch {exc.epoch + 1}, iteration {exc.it}, width "
            f"{exc.width:.3f}; "
            + (f"the last good checkpoint (epoch {saved}) is kept in {run_dir}" if saved != "none" else
               f"no checkpoint was saved before it: start {run_dir} over with --overwrite")
        )
        if info.is_main:
            _append_metrics(run_dir, {"epoch": exc.epoch + 1, "status": "nan", "message": result.message})
    finally:
        progress.close()
    if result.status == "completed" and start_epoch >= cfg.epochs and info.is_main:
        last_reports = _run_monitor(method, train_ds, test_ds, knn_widths, eval_tf, device, cfg)
    _check_replicas(method, info)
    result.final_knn = {r.width: r.knn_top1 for r in last_reports}
    result.collapse_std = {r.width: r.collapse_std for r in last_reports}
    result.backbone_std = {r.width: r.backbone_std for r in last_reports if r.backbone_std is not None}
    result.seconds = time.perf_counter() - t_start
    barrier(info)
    return result


def _check_replicas(method: nn.Module, info: DistInfo) -> None:
    """DDP sanity check at the end: every rank must hold the same weights (same widths, synced gradients)."""
    if not info.enabled:
        return
    with torch.no_grad():
        sig = torch.stack([p.double().sum() for p in method.parameters()]).sum().reshape(1)
    sigs = [torch.zeros_like(sig) for _ in range(info.world_size)]
    torch.distributed.all_gather(sigs, sig)
    if any(not torch.equal(s, sigs[0]) for s in sigs):
        raise US3LError(f"DDP replicas diverged (weight checksums {[float(s) for s in sigs]})")


class _NonFinite(Exception):
    def __init__(self, epoch: int, it: int, width: float, value: float) -> None:
        super().__init__(f"non-finite loss {value}")
        self.epoch, self.it, self.width, self.value = epoch, it, width, value


def _train_step(
    model: nn.Module,
    method: SSLMethod,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    reg: GroupRegularizer | None,
    x1: torch.Tensor,
    x2: torch.Tensor,
    widths: list[float],
    epoch: int,
    cfg: TrainConfig,
    amp_dtype: torch.dtype | None,
    info: DistInfo,
) -> list[float]:
    """One iteration over ``widths`` (descending); returns the loss per width (mean over ranks)."""
    targets = None
    out: list[float] = []
    # idle_heads_zero_grad: torch 1.10's zero_grad() (the reference's) zeroed gradients instead of dropping
    # them, so a head unused at this width (the auxiliary head at max width, BYOL's predictor at sub-widths)
    # still gets its momentum (and weight-decay) update once it has had a gradient
    set_to_none = not cfg.idle_heads_zero_grad
    if not cfg.step_per_width:
        opt.zero_grad(set_to_none=set_to_none)
    for w in widths:
        if cfg.step_per_width:
            opt.zero_grad(set_to_none=set_to_none)
        on = amp_dtype is not None
        with torch.autocast(device_type=x1.device.type, dtype=amp_dtype or torch.float16, enabled=on):
            loss, new_targets = model(x1, x2, w, targets)
        if targets is None:
            targets = new_targets
        loss = loss.float()
        # The group regularizer stays out of the autograd graph: its value is added to the reported loss and
        # its gradient 2·λ_i·p straight into .grad after backward (GroupRegularizer.add_grad_; measured in
        # docs/training.md), instead of a few small autograd ops per parameter per width step.
        reported = loss.detach() if reg is None else loss.detach() + reg.value(w, epoch)
        lv = float(all_reduce_mean(reported, info).item())
        out.append(lv)
        if not math.isfinite(lv):
            return out + [lv] * (len(widths) - len(out))
        scaler.scale(loss).backward()
        if reg is not None:
            reg.add_grad_(w, epoch, float(scaler.get_scale()) if scaler.is_enabled() else 1.0)
        if cfg.step_per_width:
            scaler.step(opt)
            scaler.update()
    if not cfg.step_per_width:
        scaler.step(opt)
        scaler.update()
    return out


def _run_monitor(
    method: SSLMethod, train_ds: Any, test_ds: Any, widths: list[float], tf: Any, device: torch.device, cfg: TrainConfig
) -> list[Any]:
    from us3l.train.monitor import monitor

    return monitor(
        method, train_ds, test_ds, widths, tf, device, len(train_ds.classes), cfg.knn_k, cfg.knn_t, cfg.knn_max_train
    )


def _epoch_line(rec: dict[str, Any]) -> str:
    parts = [
        f"epoch {rec['epoch']}",
        f"lr {rec['lr']:.4g}",
        f"min_w {rec['min_width']:.2f}",
        _fmt_losses(rec["loss"]),
        f"{rec['img_per_s']:.0f} img/s",
        f"{rec['seconds']:.1f}s",
    ]
    if "knn_top1" in rec:
        parts.append("knn " + " ".join(f"{w}:{a * 100:.1f}" for w, a in rec["knn_top1"].items()))
        parts.append("std " + " ".join(f"{w}:{s:.2f}" for w, s in rec["collapse_std"].items()))
        if rec.get("backbone_std"):
            parts.append("backbone std " + " ".join(f"{w}:{s:.2f}" for w, s in rec["backbone_std"].items()))
    return " | ".join(parts)


# ------------------------------------------------------------------------------------------ files


def _meta_base(
    cfg: TrainConfig,
    backbone: Any,
    train_ds: Any,
    test_ds: Any,
    image_size: int,
    w_min: float,
    w_max: float,
    info: DistInfo,
    device: torch.device,
) -> dict[str, Any]:
    kw = model_kwargs_for(cfg)
    kw.pop("width_min", None)
    kw.pop("width_max", None)
    return {
        "model": cfg.model,
        "model_kwargs": kw,
        "width_range": {"min": w_min, "max": w_max, "divisor": backbone.width_range.divisor},
        "method": cfg.method,
        "normalization": {"mean": list(train_ds.mean), "std": list(train_ds.std)},
        "input_size": image_size,
        "data": {
            "spec": cfg.data,
            "name": train_ds.name,
            "num_classes": len(train_ds.classes),
            "train_size": len(train_ds),
            "test_size": len(test_ds),
        },
        "config": cfg.to_dict(),
        "bn": _bn_kind(cfg, kw),
        "single_width": cfg.single_width if cfg.method == "single" else None,
        "bn_switches": kw.get("bn_switches"),
        "distributed": {"world_size": info.world_size, "device": str(device)},
        "torch_threads": torch.get_num_threads(),
        "precision": label(autocast_dtype(cfg.amp, device.type)),  # of the training step (evaluation is fp32)
        "accelerator": _accelerator(cfg, device),
    }


def _accelerator(cfg: TrainConfig, device: torch.device) -> dict[str, Any] | None:
    """The GPU a CUDA run trained on, for ``checkpoint.json`` (None on CPU): its name, compute capability, the
    CUDA and cuDNN versions torch was built with, and whether AMP (fp16 autocast) was on (``precision`` beside
    it names the autocast dtype on any device)."""
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return {
        "name": torch.cuda.get_device_name(device),
        "capability": f"{major}.{minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "amp": autocast_dtype(cfg.amp, device.type) is not None,
    }


def _bn_kind(cfg: TrainConfig, model_kwargs: dict[str, Any]) -> str:
    """How the backbone's BN is built, for ``checkpoint.json`` (the structure itself is rebuilt from
    ``model_kwargs``, which carries ``bn_switches`` for S-Nets)."""
    if model_kwargs.get("bn_switches"):
        return "switchable_running_stats" if model_kwargs.get("bn_track_stats") else "switchable_batch_stats"
    return "running_stats" if cfg.method == "single" else "batch_stats"


def _save(
    run_dir: Path,
    method: SSLMethod,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    sampler: Any,
    meta_base: dict[str, Any],
    cfg: TrainConfig,
    epoch: int,
) -> None:
    backbone, rest = split_state(method)
    state = {
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": rng_state(),
        "momentum_now": float(method.momentum_now),
    }
    meta = ckpt.checkpoint_meta(**{**meta_base, "epoch": epoch})
    ckpt.save_checkpoint(run_dir, backbone_state=backbone, train_tensors=rest, meta=meta, train_state=state)
    invalidate_stale(run_dir)  # bn_stats / accuracy.json of the previous weights no longer apply


#: What ``_save`` puts into ``train_state.pt`` besides the epoch.
_STATE_KEYS = {"optimizer": dict, "scaler": dict, "sampler": dict, "rng": dict}


def _restore(
    run_dir: Path, method: SSLMethod, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, sampler: Any,
    total_epochs: int,
) -> int:
    """Load the run's saved state; the caller has finished a checkpoint commit cut off between its renames (rank 0
    alone, before a barrier)."""
    meta = ckpt.read_meta(run_dir)
    state = ckpt.load_train_state(run_dir, _STATE_KEYS)
    blob = ckpt.read_weights_bytes(run_dir)  # read once: hashed and loaded from these bytes (verify_weights)
    ckpt.check_bound(meta, blob, ckpt.weights_path(run_dir))  # width_range & co. as saved with the weights
    epochs = {int(meta["epoch"]), int(state["epoch"]), ckpt.read_weights_epoch(run_dir, data=blob)}
    if len(epochs) != 1:
        raise US3LError(
            f"checkpoint files in {run_dir} disagree on the epoch ({sorted(epochs, key=str)}); "
            "the run was interrupted while saving"
        )
    epoch = int(meta["epoch"])
    if not 1 <= epoch <= total_epochs:  # -2 trained epochs -2 and -1 on; 9 of 4 was reported as completed
        raise US3LError(f"checkpoint in {run_dir} records epoch {epoch}, outside the 1..{total_epochs} epochs of its "
                        "config (edited?); restore the original files or start over with --overwrite")
    sd = join_state(ckpt.read_tensors(run_dir, ckpt.BACKBONE_PREFIX, data=blob),
                    ckpt.read_tensors(run_dir, ckpt.TRAIN_PREFIX, data=blob))
    ckpt.verify_weights(run_dir, meta, data=blob)
    # as every reader of a checkpoint: int weights are refused, not cast to float by load_state_dict
    ckpt.check_dtypes(sd, method.state_dict(), ckpt.weights_path(run_dir))
    try:
        method.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise US3LError(f"checkpoint in {run_dir} does not match this run's model ({first}); resume with the "
                        "config it was trained with, or start over with --overwrite") from None
    try:
        built = _optimizer_settings(opt)
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        method.momentum_now = float(state.get("momentum_now", method.momentum_now))
        _check_optimizer_shapes(opt)
        _check_optimizer_settings(opt, built)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:  # foreign or edited
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise ckpt.not_a_train_state(run_dir / ckpt.STATE_FILE, why) from None
    return int(meta["epoch"])


def _check_optimizer_shapes(opt: torch.optim.Optimizer) -> None:
    """Every per-parameter optimizer tensor (SGD momentum, Adam moments) has its parameter's shape. The optimizer
    checks only the parameter count: the state of another model's run (same layers, other widths) loaded, and
    failed at the first step with a bare size mismatch (red-team 2026-12-05)."""
    for i, p in enumerate(q for group in opt.param_groups for q in group["params"]):
        for key, value in opt.state.get(p, {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise ValueError(f"optimizer {key} of parameter {i} has shape {tuple(value.shape)}, the parameter "
                                 f"{tuple(p.shape)}: the state of another model")


#: The optimizer settings that shape the update (the learning rate is set every iteration from the config).
_OPTIMIZER_SETTINGS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "betas", "eps", "amsgrad")


def _optimizer_settings(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: g[k] for k in _OPTIMIZER_SETTINGS if k in g} for g in opt.param_groups]


def _check_optimizer_settings(opt: torch.optim.Optimizer, built: list[dict[str, Any]]) -> None:
    """The loaded param groups keep the settings the optimizer was built with from the run's config: torch's
    ``load_state_dict`` takes them from the file, so an edited state (momentum 0, a string) silently trained
    otherwise than the config says, or failed at the first step with a bare TypeError (red-team 2026-12-05)."""
    for i, (want, group) in enumerate(zip(built, opt.param_groups, strict=True)):
        for key, value in want.items():
            got = group.get(key)
            if isinstance(value, tuple) and isinstance(got, list | tuple):  # AdamW's betas
                got, value = list(got), list(value)
            same = got == value and isinstance(got, bool) == isinstance(value, bool)
            if not same:
                raise ValueError(f"optimizer {key} of parameter group {i} is {got!r:.40}, the config gives {value!r}")


def _saved_epoch(run_dir: Path) -> str:
    try:
        return str(ckpt.read_meta(run_dir)["epoch"])
    except US3LError:
        return "none"


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    import yaml

    from us3l.io import atomic_write_text

    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one line. Never through a link placed there since the start (_check_run_dir refuses one
    up front). A write that fails (a full disk) names the file and leaves no part of the line: the file is cut
    back to where it ended, so that a resumed run or the report reads whole records only."""
    path = run_dir / METRICS_FILE
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    data = (json.dumps(record) + "\n").encode("utf-8")
    with naming(path):
        fd = os.open(path, flags, 0o666)
        try:
            end = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)


def _trim_metrics(run_dir: Path, start_epoch: int) -> None:
    """Drop metric lines of epochs after the checkpoint we resume from (they will be re-run)."""
    p = run_dir / METRICS_FILE
    if not p.is_file():
        return
    keep = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            epoch = rec.get("epoch", 0) if isinstance(rec, dict) else None
            if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch <= start_epoch:
                keep.append(line)
        except (ValueError, RecursionError):  # a damaged line (JSONDecodeError; nested too deep): dropped, re-run
            continue
    from us3l.io import atomic_write_text

    atomic_write_text(p, "".join(k + "\n" for k in keep))


def format_knn_table(result: RunResult) -> str:
    """A plain-text table of the final kNN accuracy per width."""
    lines = ["width  knn_top1  collapse_std  backbone_std"]
    for w in sorted(result.final_knn, reverse=True):
        lines.append(f"{w:5.2f}  {result.final_knn[w] * 100:7.2f}%  {result.collapse_std.get(w, float('nan')):12.3f}"
                     f"  {result.backbone_std.get(w, float('nan')):12.3f}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: us3l train")
