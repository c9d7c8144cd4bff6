"""``us3l train``: self-supervised training of a universally slimmable network (US3L and baselines)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import deprecated, note, result, set_quiet, warn
from us3l.errors import LAUNCHED_BY_ENV, US3LError
from us3l.validate import MAX_THREADS, number
from us3l.validate import batch_size as check_batch_size


def _nproc_args(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the torchrun children must not spawn again)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


@app.command("train")
def train_cmd(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML or TOML config (default: packaged default.yaml)."
    ),
    method: str | None = typer.Option(
        None,
        help="us3l | us3l_byol | us3l_simsiam | us3l_mocov3 | naive_simsiam | naive_simclr | single | snets "
        "(S-Nets: switchable BN, every width of bn_switches each iteration)",
    ),
    model: str | None = typer.Option(None, help="Registered model name (see `us3l models`)."),
    data: str | None = typer.Option(None, help="builtin | digits | cifar10:PATH | cifar100:PATH | folder:PATH"),
    epochs: int | None = typer.Option(
        None, help="Number of epochs (a multiple of 4 for schedule A's four equal stages)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size per process."),
    lr: float | None = typer.Option(None, help="Base learning rate."),
    seed: int | None = typer.Option(None, help="Random seed (identical widths on every rank)."),
    out: str | None = typer.Option(None, help="Run folder (checkpoints, metrics.jsonl, config.yaml)."),
    schedule: str | None = typer.Option(None, help="Width schedule: A | none."),
    sampling: str | None = typer.Option(None, help="Width sampling: sandwich | uniform."),
    width_min: float | None = typer.Option(None, "--width-min", help="Smallest width (default: the model's)."),
    single_width: float | None = typer.Option(None, "--single-width", help="Width of the `single` baseline."),
    knn_every: int | None = typer.Option(None, "--knn-every", help="kNN monitor every K epochs (0: end only)."),
    save_every: int | None = typer.Option(None, "--save-every", help="Checkpoint every N epochs (and at the end)."),
    torch_device: str | None = typer.Option(
        None, "--torch-device", help="Where PyTorch trains: auto | cpu | cuda | cuda:N."
    ),
    device_old: str | None = typer.Option(None, "--device", hidden=True),  # deprecated: --device is a target
    threads: int | None = typer.Option(
        None, min=1, max=MAX_THREADS,
        help="CPU threads per process (default config: `auto`, the cores idle when training starts).",
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Any config key: --set key=value (YAML value); mapping entries: --set model_kwargs.k=v."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing checkpoint in --out."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Spawn N local processes with torchrun (DDP)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or per-epoch lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
) -> None:
    """Train a universally slimmable network with self-supervision; report kNN accuracy per width."""
    set_quiet(quiet)
    if resume and overwrite:
        raise US3LError("give --resume (continue the run in --out) or --overwrite (start it over), not both")
    # the flags named, as other commands word them (a config file's values: the config check, by key)
    for value, flag, rule in ((epochs, "--epochs", {"positive": True, "integer": True}),
                              (lr, "--lr", {"positive": True}),
                              (knn_every, "--knn-every", {"nonnegative": True, "integer": True}),
                              (save_every, "--save-every", {"nonnegative": True, "integer": True})):
        if value is not None:
            number(value, flag, **rule)
    if batch_size is not None:  # the flag named, as calibrate --batch-size words it (a config's: the config check)
        check_batch_size(batch_size, least=2)
    if device_old is not None:
        deprecated(f"--device {device_old}", f"--torch-device {device_old} (--device names a deployment target "
                   "in profile, select and export)", "train")
        torch_device = torch_device or device_old
    from us3l.train.distributed import dist_env

    env_rank, world, _local = dist_env()  # a stray or malformed RANK / WORLD_SIZE: one line before anything else
    if nproc > 1 and "WORLD_SIZE" in os.environ and world != nproc:  # --nproc was silently ignored
        raise US3LError(f"--nproc {nproc}: this process is already one of a distributed job of {world} "
                        f"process(es) (WORLD_SIZE={world} in the environment, as torchrun sets it); drop --nproc "
                        "under torchrun, or unset WORLD_SIZE and RANK to let --nproc start its own processes")
    launch = nproc > 1 and "WORLD_SIZE" not in os.environ

    import yaml

    from us3l.train import format_knn_table, resolve_config, run_training
    from us3l.train.config import plain_yaml

    overrides = {
        "method": method,
        "model": model,
        "data": data,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "out": out,
        "schedule": schedule,
        "sampling": sampling,
        "width_min": width_min,
        "single_width": single_width,
        "knn_every": knn_every,
        "save_every": save_every,
        "device": torch_device,
        "threads": threads,
        "quiet": (quiet or json_out) or None,  # --json: no per-epoch progress on stderr either
    }
    sets: dict[str, Any] = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():  # `--set =1` named the key "" among the unknown keys
            raise US3LError(f"--set expects key=value, got {item!r}")
        if not value.strip():  # `--set lr=$LR`, LR unset: YAML reads it as null, the method's default lr, silently
            from us3l.cli_app import click_exceptions

            raise click_exceptions.UsageError(f"--set {key.strip()}= is given an empty value (--set {key.strip()}=null "
                                              "resets the key to its default)")
        try:
            parsed = plain_yaml(value, f"--set {key.strip()}")
        except yaml.YAMLError as exc:  # e.g. a !!python/... tag: safe_load refuses it; say so in one line
            why = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise US3LError(f"--set {key.strip()}=...: not a plain YAML value ({why}); quote it as a string "
                            "or give a number, list or mapping") from None
        key = key.strip()
        if overrides.get(key) is not None and overrides[key] != parsed:  # a flag and --set disagree
            raise US3LError(f"--set {key}={value} contradicts the flag that set {key} to {overrides[key]!r}; give one")
        if key in sets and sets[key] != parsed:
            raise US3LError(f"--set {key} is given twice with different values; give one")
        sets[key] = parsed  # applied even when null (--set lr=null), unlike a flag not given
    given = {**{k: v for k, v in overrides.items() if v is not None}, **sets}
    says = not launch and os.environ.get("RANK", "0") == "0"  # the notes below: once, by the process that trains
    run_out = (given.get("out") or resolve_config(config, {}).out) if resume else None
    if run_out is not None and env_rank == 0:  # an --overwrite run killed before its first checkpoint: old run back
        from us3l.train.loop import recover_replaced

        recover_replaced(Path(run_out))
    # rank 0 has settled the folder (above); another rank may look while rank 0 still puts files back
    resuming = run_out is not None and (_holds_run(run_out) if env_rank == 0 else _will_hold_run(run_out))
    if resuming:  # the saved config wins: only what a resume keeps from the command line is used
        from us3l.train.config import make_config
        from us3l.train.loop import RESUME_KEEPS

        # what it ignores is still read: `--set lr=abc` is a typo the user should hear about, not an ignored note
        make_config({k: v for k, v in given.items() if "." not in k})
        cfg = resolve_config(None, explicit={k: v for k, v in given.items() if k in (*RESUME_KEEPS, "data")})
    else:
        cfg = resolve_config(config, explicit=given)  # values checked here (--set weight_decay with the regularizer)
    _check_paths(cfg, resume, overwrite)  # data path and run folder: before anything is printed or built
    # the data itself, before any note or the resolved config (a folder of empty class folders was one error line
    # after the whole config); a resume's batch size is the saved one (the loop checks it), its data when moved
    from us3l.train.loop import check_data

    loaded = None  # what the check loads, the loop trains on
    if not resuming and not os.environ.get(LAUNCHED_BY_ENV):  # --nproc's workers: their launcher checked it
        loaded = check_data(cfg, nproc if launch else world)
    elif given.get("data") is not None:
        loaded = check_data(cfg, None)
    if resume and not resuming and says:  # once: the launcher's rank 0 says it; after the checks (a refused
        # folder, e.g. metrics of a run killed before its first checkpoint, is one error line, not this note too)
        note(f"note: {run_out} holds no checkpoint to --resume: starting a new run", markup=False)
    if says and cfg.num_samples == 1 and cfg.method not in ("single", "snets"):
        note(f"note: num_samples 1: every iteration trains width {cfg.width_max or 1:g} only, so the other widths "
             "are not trained (a non-slimmable control run, as in benchmarks/naive_seeds.py)", markup=False)
    if says and not resuming and cfg.sync_bn and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        # a note, not a refusal: the same config (configs/cifar10_vit_tiny_us3l_mocov3.yaml) runs on 1 or N processes
        note("note: sync_bn has no effect on one process: it synchronizes every BatchNorm's statistics across the "
             "processes of a distributed run (--nproc N or torchrun)", markup=False)
    if not resume:  # a resumed run's model is the saved one, checked against its weights when it loads
        from us3l.train.loop import check_model

        check_model(cfg)
    if launch:  # bad input is one line from here, not the same line from every worker and torchrun's report
        from us3l.train.distributed import check_gpus_for, run_launcher, torchrun_command

        loaded = None  # the workers read the data themselves: not held here while they train

        check_gpus_for(nproc, str(cfg.device))
        if "train" not in sys.argv:
            raise US3LError("--nproc re-launches the `us3l train` command line; use torchrun from Python code")
        from us3l.io import owned_temporary_directory

        with owned_temporary_directory("us3l-torchrun-") as log_dir:  # torchrun's logs: removed however it ends
            cmd = torchrun_command(nproc, ["train", *_nproc_args(sys.argv[sys.argv.index("train") + 1 :])],
                                   str(log_dir))
            code = run_launcher(cmd)
        raise typer.Exit(code)
    is_main = int(os.environ.get("RANK", "0")) == 0
    moved_data = str(cfg.data) if resume and given.get("data") is not None else None  # checked by the loop
    shown = _resumed_view(cfg, config, given, moved_data) if resume and is_main else cfg  # rank 0 prints it
    if is_main and not cfg.quiet and not json_out:
        note("[bold]resolved config[/]" + (" (the run's saved config: --resume continues it)" if shown is not cfg
                                           else ""))
        # line by line: one note of the whole YAML showed its newlines as `\n` (plain notes are one line each);
        # yaml quotes a value's own newline or control character, so each line is a line of the YAML
        for line in yaml.safe_dump(shown.to_dict(), sort_keys=False).rstrip().splitlines():
            note(line, markup=False)
    run = run_training(cfg, resume=resume, overwrite=overwrite, data=moved_data, loaded=loaded)
    if not is_main:
        return
    if run.status == "nan":
        raise US3LError(run.message)
    if json_out:
        emit_json(
            {
                "run_dir": str(run.run_dir),
                "status": run.status,
                "epochs": run.epochs_done,
                "seconds": round(run.seconds, 1),
                "knn_top1": {f"{w:g}": a for w, a in sorted(run.final_knn.items(), reverse=True)},
                "collapse_std": {f"{w:g}": s for w, s in sorted(run.collapse_std.items(), reverse=True)},
                "backbone_std": {f"{w:g}": s for w, s in sorted(run.backbone_std.items(), reverse=True)},
            }
        )
        return
    if run.message:
        warn(run.message, markup=False)
    epochs = f"{run.epochs_done} epoch{'' if run.epochs_done == 1 else 's'}"
    result(f"run folder: {run.run_dir}  ({epochs}, {run.seconds:.0f}s)")
    # the run's own settings: a resumed run's saved config (`cfg` holds only what a resume keeps from the command
    # line, the defaults elsewhere: the header said k 20 of a run monitored with k 3)
    if not shown.knn_widths:  # the monitor is off: no empty table
        note(f"note: knn_widths is empty: no kNN monitor; measure the accuracy with us3l eval --ckpt {run.run_dir}",
             markup=False)
        return
    result(f"kNN accuracy on the held-out split (k asked {shown.knn_k}, capped at half a class; T={shown.knn_t}):")
    result(format_knn_table(run))


def _resumed_view(cfg: Any, config: Path | None, given: dict[str, Any], moved_data: str | None) -> Any:
    """The config a ``--resume`` will really use (the run's saved one, ``moved_data`` replacing its data spec),
    with a note naming every given setting it ignores (rank 0 of a distributed job alone computes the view:
    another rank may read the run folder while rank 0 settles it); ``cfg`` itself when the run folder has no
    checkpoint to resume. What it keeps from the command line: ``us3l.train.loop.RESUME_KEEPS`` and ``data``
    (the same data set moved elsewhere, checked against the checkpoint before training goes on)."""
    from us3l.checkpoint import META_FILE, read_meta
    from us3l.train.loop import RESUME_KEEPS, _resumed_config

    if not (Path(cfg.out) / META_FILE).is_file():
        return cfg
    saved = _resumed_config(cfg, read_meta(cfg.out), moved_data)
    keeps = (*RESUME_KEEPS, "data")

    def saved_value(key: str) -> Any:
        head, _, sub = key.partition(".")
        value = getattr(saved, head, None)
        return (value or {}).get(sub) if sub and isinstance(value, dict) else value

    ignored = [f"{k}={v!r}" for k, v in given.items() if k not in keeps and saved_value(k) != v]
    if config is not None:
        ignored.insert(0, f"--config {config}")
    if ignored:
        note(f"note: --resume continues the run with its saved config; ignored: {', '.join(ignored)}", markup=False)
    return saved


def _holds_run(out: str | Path) -> bool:
    """Whether the run folder ``out`` holds a checkpoint (or its metadata) that ``--resume`` continues."""
    from us3l.checkpoint import META_FILE, WEIGHTS_FILE

    return (Path(out) / META_FILE).is_file() or (Path(out) / WEIGHTS_FILE).exists()


def _will_hold_run(out: str) -> bool:
    """``_holds_run(out)`` as it will be once rank 0 has settled the folder, for the other ranks of a torchrun job,
    which start on their own and may look before or while rank 0 puts back what an ``--overwrite`` killed before
    its first checkpoint set aside (``recover_replaced``). Such a rank took a folder that rank 0 then resumed for
    an empty one and resolved the command line as a new run's: a flag a resume ignores (``--epochs 3`` against
    schedule A) stopped it alone. The set-aside folders are looked at first: rank 0 moves files from there into
    ``out``, never back, so a checkpoint moving meanwhile is found in one place or the other."""
    from us3l.train.loop import aside_folders

    return any(_holds_run(aside) for aside in aside_folders(Path(out))) or _holds_run(out)


def _check_paths(cfg: Any, resume: bool, overwrite: bool) -> None:
    """The data path exists and the run folder may be written (no checkpoint there unless --resume or
    --overwrite): one-line errors before the resolved config is printed or any model is built."""
    from us3l.data.datasets import parse_data_spec
    from us3l.locking import check_lockable
    from us3l.train.distributed import dist_env
    from us3l.train.loop import _check_run_dir, recover_replaced

    parse_data_spec(str(cfg.data))
    check_lockable(cfg.out, "run folder")  # what the run folder's lock says, but before the config is printed
    if dist_env()[0] != 0:  # rank 0 checks (and settles) the run folder: the other ranks read it as it changes
        return
    recover_replaced(Path(cfg.out))  # an --overwrite run killed before its first checkpoint: the old run is back
    if not overwrite:  # with --overwrite the loop deletes the old checkpoint itself
        _check_run_dir(Path(cfg.out), resume, overwrite=False)
