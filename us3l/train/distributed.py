"""DDP set-up from torchrun's environment (gloo on CPU, NCCL on GPU) and the small collectives the loop uses.

``torchrun --nproc_per_node N -m us3l train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*``;
:func:`init_distributed` reads them. ``us3l train --nproc N`` re-launches itself through
``python -m torch.distributed.run`` (:func:`torchrun_command`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from us3l.errors import US3LError, debug_enabled
from us3l.train.held_stderr import held_stderr


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        dev = torch.device(f"cuda:{local_rank}")
    else:
        dev = torch.device(requested)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        # more processes on this machine than GPUs (--nproc 2 on one GPU): a bare "invalid device ordinal"
        count = torch.cuda.device_count()
        raise US3LError(f"the training process with LOCAL_RANK {local_rank} would train on {dev}, but torch sees "
                        f"{count} CUDA GPU(s) here: start at most {count} process(es) per machine (--nproc, "
                        "--nproc_per_node), or train on the CPU (--torch-device cpu)")
    return dev


def check_gpus_for(nproc: int, requested: str) -> None:
    """``us3l train --nproc N`` before it launches: one GPU per process where the processes train on CUDA."""
    if requested == "cpu" or requested.startswith("cuda:") or not torch.cuda.is_available():
        return  # an explicit cuda:N is checked by the config (every process on that GPU is the user's choice)
    count = torch.cuda.device_count()
    if nproc > count:
        raise US3LError(f"--nproc {nproc}: each process trains on its own GPU (device {requested}) and torch sees "
                        f"{count} here; use --nproc {count} or fewer, or --torch-device cpu")


def dist_env() -> tuple[int, int, int]:
    """(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) from the environment (0, 1, 0 where unset), checked: integers,
    ``0 <= RANK, LOCAL_RANK < WORLD_SIZE``. A ``RANK`` left over from another job (``RANK=1`` without
    ``WORLD_SIZE``) made a lone process train as a rank that writes nothing, on a shard it computed wrongly."""
    hint = ("torchrun sets them; unset RANK, WORLD_SIZE and LOCAL_RANK to train in one process, or start a "
            "distributed run with torchrun or us3l train --nproc N")

    def read(name: str, default: int) -> int:
        raw = os.environ.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise US3LError(f"environment variable {name}={raw!r} is not an integer ({hint})") from None

    rank, world, local = read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise US3LError(f"environment variables RANK={rank} and WORLD_SIZE={world}: a rank is one of 0..WORLD_SIZE-1 "
                        f"({hint})")
    if not 0 <= local < world:
        raise US3LError(f"environment variable LOCAL_RANK={local} with WORLD_SIZE={world}: the local rank is one of "
                        f"0..WORLD_SIZE-1 ({hint})")
    return rank, world, local


#: Seconds a process of a distributed job waits for the others to join (environment variable; default
#: ``DEFAULT_JOIN_TIMEOUT_S``, torchrun's own rendezvous ``join_timeout``). Only the joining: the collectives of
#: training keep torch's default timeout (30 minutes on gloo), which a slow epoch or the kNN monitor never hits.
JOIN_TIMEOUT_ENV = "US3L_DIST_JOIN_TIMEOUT"
DEFAULT_JOIN_TIMEOUT_S = 600.0


def join_timeout() -> float:
    """``US3L_DIST_JOIN_TIMEOUT`` in seconds (``DEFAULT_JOIN_TIMEOUT_S`` when unset), checked: a positive number."""
    raw = os.environ.get(JOIN_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_JOIN_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 10**7:  # nan and inf too
        raise US3LError(f"environment variable {JOIN_TIMEOUT_ENV}={raw!r}: the seconds a training process waits for "
                        "the others of its job to join, a positive number (unset: "
                        f"{DEFAULT_JOIN_TIMEOUT_S:g})")
    return value


def init_distributed(requested_device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE > 1``); a no-op otherwise.

    Returns once every process of the job has joined (a barrier: on return, every rank has done what it does
    before joining, e.g. rank 0 settling the run folder), or fails in one line after ``join_timeout()`` seconds.
    torch's own wait was the collectives' timeout, 30 minutes: ``WORLD_SIZE=2 RANK=0 us3l train`` without a
    second process sat silent that long before a rendezvous error."""
    rank, world, local = dist_env()
    device = pick_device(requested_device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        wait = join_timeout()
        from torch.distributed import distributed_c10d as c10d

        bounded = hasattr(c10d, "_set_pg_timeout")  # torch >= 2.3 (older: torch's timeout for the joining too)
        # torch's C++ store logs every failed connection try (with a C++ backtrace) on stderr: a rank started
        # alone printed them before the one line below. Held while joining and written out unless the join
        # failed (US3L_DEBUG=1: written out then too); later C++ errors of training reach stderr as before.
        with held_stderr() as held:
            try:
                dist.init_process_group(backend=backend, timeout=timedelta(seconds=wait) if bounded else None)
                dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)
            except RuntimeError as exc:  # torch's DistError (a store or socket timeout), or gloo's own
                if not debug_enabled():
                    held.drop()
                why = " ".join(str(exc).split())[:200]
                raise US3LError(f"training process rank {rank} of {world}: the job's processes did not all join "
                                f"within {wait:g} s ({why}); start all {world} (torchrun does), check MASTER_ADDR "
                                f"and MASTER_PORT, or wait longer with {JOIN_TIMEOUT_ENV}=SECONDS") from None
        if bounded:
            _training_timeout(backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def _training_timeout(backend: str) -> None:
    """Give the joined group (and its store) torch's default timeout back for the collectives of training."""
    from torch.distributed import distributed_c10d as c10d
    from torch.distributed.constants import default_pg_nccl_timeout, default_pg_timeout

    timeout = default_pg_nccl_timeout if backend == "nccl" and default_pg_nccl_timeout else default_pg_timeout
    c10d._set_pg_timeout(timeout)
    c10d._get_default_store().set_timeout(timeout)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def kept_cuda_device() -> Iterator[None]:
    """Put torch's current CUDA device back as it was once the body returns or raises: a multi-GPU run sets its
    local rank's (``init_distributed``), and a program (or test) calling ``run_training`` went on allocating
    ``"cuda"`` tensors there. Only where CUDA was initialised before the body, as ``kept_rng_state`` does: reading
    the device would initialise CUDA, and setting device 0 back after a run that was the first to use CUDA would
    open a context on GPU 0 in every rank's process (memory taken from rank 0's GPU)."""
    before = torch.cuda.current_device() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        if before is not None and torch.cuda.current_device() != before:
            torch.cuda.set_device(before)


@contextmanager
def owned_process_group() -> Iterator[None]:
    """Destroy, on the way out, the process group that the body joins (``init_distributed``); one that was there
    before (a caller's own) is left alone. A process that exits with its gloo group alive can die in the
    interpreter's finalisation: gloo's threads still hold tensors, and releasing them there ends in
    ``terminate called without an active exception`` and SIGABRT, which fails the run after its work is done."""
    existed = dist.is_available() and dist.is_initialized()
    try:
        yield
    finally:
        if not existed:
            shutdown_distributed()


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks (identity in a single process)."""
    if not info.enabled:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / info.world_size


def all_ranks(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is true on every rank (``flag`` itself in a single process). A collective: every rank
    calls it at the same point. CPU (gloo) process groups only: the flag travels in a CPU tensor."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def same_on_all_ranks(what: str, values: dict[str, Any], info: DistInfo, hint: str,
                      rank0_wins: Collection[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Refuse (one line, on every rank) to go on when the ranks disagree on ``values`` (JSON-able, compared
    key by key with rank 0's), except on the keys in ``rank0_wins`` (settings only rank 0 acts on): returns
    rank 0's value of each of those (JSON round-tripped: lists for tuples), for every rank to use, and, for the
    ones that differ, ``"KEY VALUE on rank R (rank 0: VALUE)"`` (the first rank that differs; every rank gets the
    same list). A collective: every rank calls it at the same point; in a single process ``values``' own and [].

    Each process of a torchrun job reads its own command line, config file and data (on several nodes: its own
    copies); a rank training another learning rate, epoch count or data set went unnoticed until the replicas
    were found to differ after the whole run, and ranks that disagree on the number of iterations wait on each
    other until the collective times out."""
    import json

    if not info.enabled:
        return {k: values[k] for k in rank0_wins if k in values}, []
    mine = {k: json.dumps(v, sort_keys=True, default=str) for k, v in values.items()}
    everyone: list[Any] = [None] * info.world_size
    dist.all_gather_object(everyone, mine)
    ref = everyone[0]
    won = {k: json.loads(ref[k]) for k in rank0_wins if k in ref}
    differing = []
    for key in sorted(won):
        other = next((r for r in range(1, info.world_size) if everyone[r].get(key) != ref[key]), None)
        if other is not None:
            differing.append(f"{key} {_shown(everyone[other].get(key))} on rank {other} (rank 0: {_shown(ref[key])})")
    must = [{k: v for k, v in e.items() if k not in rank0_wins} for e in everyone]
    differ = [r for r in range(1, info.world_size) if must[r] != must[0]]
    if not differ:
        return won, differing
    rank = info.rank if info.rank in differ else differ[0]  # every rank stops; each names its own difference
    theirs, ref = must[rank], must[0]
    keys = [k for k in sorted(set(ref) | set(theirs)) if ref.get(k) != theirs.get(k)]
    shown = ", ".join(f"{k} {_shown(theirs.get(k))} (rank 0: {_shown(ref.get(k))})" for k in keys[:3])
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    raise US3LError(f"the training processes disagree on {what}: rank {rank} has {shown}{more}; {hint}")


def same_checkpoint_on_all_ranks(asked: bool, epoch: int | None, out: str, info: DistInfo) -> None:
    """Refuse (one line, on every rank) a ``--resume`` where some ranks found a checkpoint in their run folder
    ``out`` (``epoch``: its epoch) and others, also asked to resume, found none: on several nodes whose run
    folders are not shared, rank 0's node holds the run and the others start new runs, whose command-line
    config then "disagreed" with the saved one key by key. A collective (every rank calls it at the same point);
    nothing in a single process. Ranks not asked to resume are left to the config comparison."""
    if not info.enabled:
        return
    everyone: list[Any] = [None] * info.world_size
    dist.all_gather_object(everyone, (bool(asked), epoch, str(out)))
    holders = [r for r, (a, e, _) in enumerate(everyone) if a and e is not None]
    lacking = [r for r, (a, e, _) in enumerate(everyone) if a and e is None]
    if not holders or not lacking:
        return
    miss = info.rank if info.rank in lacking else lacking[0]
    has = 0 if 0 in holders else holders[0]
    miss_out, (_, has_epoch, has_out) = everyone[miss][2], everyone[has]
    raise US3LError(f"--resume: the run folder of rank {miss} ({miss_out}) holds no checkpoint, that of rank {has} "
                    f"({has_out}) the checkpoint of epoch {has_epoch}: every process resumes from the same run "
                    f"folder; give them one that every node shares (or copy {has_out} to {miss_out} on rank "
                    f"{miss}'s node)")


def _shown(encoded: str | None) -> str:
    """A value of ``same_on_all_ranks`` for its message: strings bare, long ones cut."""
    import json

    if encoded is None:
        return "unset"
    value = json.loads(encoded)
    text = value if isinstance(value, str) else encoded
    return text if len(text) <= 40 else text[:37] + "..."


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def run_launcher(cmd: list[str], grace_s: float = 60.0) -> int:
    """Run the torchrun ``cmd`` (``us3l train --nproc``) and return its exit status.

    torchrun starts in its own process group. When this process is interrupted (Ctrl-C, or SIGTERM, which the
    CLI turns into the same ``KeyboardInterrupt``), the group gets SIGTERM: torchrun stops its workers and
    exits; whatever is still alive after ``grace_s`` seconds (or at a second interrupt) is SIGKILLed. Without
    this, a SIGTERM to ``us3l`` alone left the worker processes training on as orphans."""
    import subprocess

    from us3l.errors import LAUNCHED_BY_ENV

    proc = subprocess.Popen(cmd, start_new_session=True, env={**os.environ, LAUNCHED_BY_ENV: str(os.getpid())})
    try:
        return proc.wait()
    except BaseException:
        stop_process_group(proc, grace_s)
        raise


def stop_process_group(proc: Any, grace_s: float) -> None:
    """SIGTERM the process group led by ``proc``, wait up to ``grace_s`` s, then SIGKILL what is left of it."""
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except ProcessLookupError:
        return
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher if it hung, and any worker it left behind
    except ProcessLookupError:
        pass
    proc.wait()


def torchrun_command(nproc: int, args: list[str], log_dir: str | None = None) -> list[str]:
    """The command that runs ``us3l <args>`` under torchrun on this machine with ``nproc`` processes; ``log_dir``:
    torchrun's own folder (by default it makes ``$TMPDIR/torchelastic_*`` and leaves it behind)."""
    return [
        sys.executable,
        "-m",
        "us3l.train.launch",  # torch.distributed.run, with failures reported in one line (its docstring)
        "--standalone",
        f"--nproc_per_node={nproc}",
        *([f"--log-dir={log_dir}"] if log_dir else []),
        "-m",
        "us3l",
        *args,
    ]
