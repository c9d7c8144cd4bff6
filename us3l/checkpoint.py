"""The run-folder checkpoint written by ``us3l train`` and read by every later stage.

Layout (see docs/CONTRACT.md)::

    RUN/checkpoint.safetensors   "backbone.*": the one slimmable weight copy; "train.*": heads, EMA teacher, ...;
                                 metadata: epoch, us3l.settings (BOUND_SETTINGS, checked against checkpoint.json)
    RUN/checkpoint.json          kind "checkpoint", schema 1: how to rebuild the model and what produced it
    RUN/train_state.pt           optimizer / scheduler / sampler / RNG state (torch.load(weights_only=True))

The three files are first written to temporary files in the run folder and then renamed into place one
right after the other (``checkpoint.json`` last), so a reader (or a run killed by SIGKILL) sees either the
previous or the new checkpoint; ``epoch`` is recorded in all three and checked on resume.
Loading never unpickles arbitrary objects: weights come from safetensors, the train state is loaded with
``weights_only=True`` and therefore holds only tensors and primitive containers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from us3l.derived import BN_STATS_FILE, WEIGHTS_FILE
from us3l.errors import US3LError
from us3l.io import check_schema, file_sha256, fill_temp, header, read_json, rename_into_place, signals_held, temp_for
from us3l.safetensors_io import read_header, safetensors_bytes
from us3l.validate import input_size as check_input_size
from us3l.validate import one_of

CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_SCHEMA = 1
META_FILE = "checkpoint.json"
STATE_FILE = "train_state.pt"
BACKBONE_PREFIX = "backbone."
TRAIN_PREFIX = "train."
#: ``checkpoint.json`` settings that decide what the weights mean (how the model is rebuilt, which channels each
#: width slices, the input the weights expect, the method whose ``train.*`` tensors are stored, the one width a
#: ``single`` run trained and is evaluated at). Saved also in the safetensors metadata under ``BOUND_KEY``
#: (canonical JSON) and compared on every load (``check_bound``).
BOUND_SETTINGS = ("model", "model_kwargs", "width_range", "normalization", "input_size", "method", "single_width")
#: ``BOUND_SETTINGS`` added after ``BOUND_KEY`` was first written: weights saved before record no such key, and
#: the field is then not recorded (unchecked), not "null".
BOUND_LATER = ("single_width",)
BOUND_KEY = "us3l.settings"


def _canonical(value: Any) -> str:
    """``value`` as the canonical JSON both sides are compared in (``checkpoint.json`` is written with
    ``default=str``: tuples become lists, other objects strings, on both sides alike)."""
    return json.dumps(json.loads(json.dumps(value, default=str)), sort_keys=True, separators=(",", ":"))


def bound_settings(meta: Mapping[str, Any]) -> str:
    """The ``BOUND_SETTINGS`` of ``meta`` as the canonical JSON stored in the weights' metadata."""
    return _canonical({k: meta.get(k) for k in BOUND_SETTINGS})


@dataclass
class LoadedCheckpoint:
    """A rebuilt backbone with its checkpoint metadata.

    ``model`` is the registered slimmable model (``num_classes=0``) with ``backbone.*`` loaded, in eval mode;
    ``meta`` the parsed ``checkpoint.json``; ``sha256`` the digest of ``checkpoint.safetensors``.
    """

    model: nn.Module
    meta: dict[str, Any]
    sha256: str
    path: Path
    bn_stats_note: str | None = None  # why bn_stats.safetensors was left out (stale), when it was
    bn_stats_path: Path | None = None  # the bn_stats.safetensors loaded into ``model``, when one was
    bn_stats_sha256: str | None = None  # the sha256 of the very bytes loaded from it


def run_dir_of(path: str | Path) -> Path:
    """The run folder of ``path`` (a run folder or a ``checkpoint.safetensors`` inside one)."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def checkpoint_meta(
    *,
    model: str,
    model_kwargs: Mapping[str, Any],
    width_range: Mapping[str, Any],
    method: str,
    normalization: Mapping[str, Any],
    input_size: int,
    data: Any,
    epoch: int,
    config: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Build the ``checkpoint.json`` document (kind "checkpoint", schema 1)."""
    doc = header(CHECKPOINT_KIND, CHECKPOINT_SCHEMA)
    doc.update(
        model=model,
        model_kwargs=dict(model_kwargs),
        width_range=dict(width_range),
        method=method,
        normalization=dict(normalization),
        input_size=int(input_size),
        data=data,
        epoch=int(epoch),
        config=dict(config),
    )
    doc.update(extra)
    return doc


def save_checkpoint(
    run_dir: str | Path,
    *,
    backbone_state: Mapping[str, torch.Tensor],
    train_tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    train_state: Mapping[str, Any] | None,
) -> Path:
    """Write the checkpoint files of ``run_dir`` as one near-atomic commit; returns the weights path.

    ``backbone_state`` is the backbone's state dict (stored as ``backbone.*``), ``train_tensors`` everything
    else needed to resume (stored as ``train.*``), ``train_state`` a weights-only-loadable dict.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    epoch = str(int(meta["epoch"]))
    tensors = {BACKBONE_PREFIX + k: v for k, v in backbone_state.items()}
    tensors.update({TRAIN_PREFIX + k: v for k, v in train_tensors.items()})
    metadata = {"epoch": epoch, "format": "pt", BOUND_KEY: bound_settings(meta)}  # the weights carry their settings
    blob = safetensors_bytes(tensors, metadata)  # same tensors -> same bytes

    writers: dict[str, Callable[[Path], None]] = {WEIGHTS_FILE: lambda p: p.write_bytes(blob)}
    if train_state is not None:
        state = dict(train_state)
        state["epoch"] = int(meta["epoch"])
        writers[STATE_FILE] = lambda p: torch.save(state, p)
    # the digest of the weights as written: readers refuse a file whose bytes changed since (verify_weights)
    text = json.dumps({**meta, "weights_sha256": hashlib.sha256(blob).hexdigest()}, indent=2, default=str) + "\n"
    writers[META_FILE] = lambda p: p.write_text(text, encoding="utf-8")
    _commit(run_dir, writers)
    return run_dir / WEIGHTS_FILE


def _commit(run_dir: Path, writers: Mapping[str, Callable[[Path], None]]) -> None:
    """Write every file to a temporary name, fsync, then rename all into place in order."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for name, write in writers.items():
            with signals_held():  # made and listed for removal as one step (a signal between left the file)
                tmp_path = temp_for(run_dir / name, prefix=f".{name}.")  # the umask's mode, not mkstemp's 0600
                tmps.append((tmp_path, run_dir / name))
            fill_temp(tmp_path, run_dir / name, write)
        # Ctrl-C and SIGTERM held back across the renames: one landing between two renames left the new weights
        # beside the old checkpoint.json and train_state.pt, and the finally below removed their new versions, so
        # neither checkpoint could be loaded or resumed any more
        rename_into_place(tmps)
        _remove_leftovers(run_dir, writers)
    finally:
        for tmp_path, _ in tmps:
            tmp_path.unlink(missing_ok=True)


def _remove_leftovers(run_dir: Path, names: Iterable[str]) -> None:
    """Remove the temporary files of ``names`` that killed earlier commits left (SIGKILL runs no ``finally``): once
    a commit is in place they can only be older, as one process at a time saves into a run folder (its lock)."""
    for name in names:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            if tmp.is_file() or tmp.is_symlink():
                tmp.unlink(missing_ok=True)


def _file_epoch(name: str, path: Path) -> int | None:
    """The epoch a train state or metadata file (or a temporary file of ``_commit``) records, or None if
    unreadable."""
    try:
        if name == STATE_FILE:
            if _compressed_entry(path) is not None:
                return None
            state = torch.load(path, map_location="cpu", weights_only=True)
            return int(state["epoch"]) if isinstance(state, dict) else None
        return int(json.loads(path.read_text(encoding="utf-8"))["epoch"])
    except Exception:  # noqa: BLE001 - unreadable, partial or foreign: not a candidate
        return None


def finish_interrupted_commit(run_dir: str | Path) -> bool:
    """Roll an interrupted checkpoint commit forward; True if it did.

    ``_commit`` writes and fsyncs every file under a temporary name before it renames any, in the order weights,
    train state, metadata. A process killed between two renames (SIGKILL, power loss) leaves the weights at the
    new epoch and the later files at the old one, with their new versions, complete, still under their temporary
    names (no ``finally`` runs on SIGKILL). For each file behind the weights' epoch, a temporary file of the same
    name that records the weights' epoch is renamed into place, as the commit would have done.
    """
    run = Path(run_dir)
    if not (run / WEIGHTS_FILE).is_file():
        return False
    try:
        target = read_weights_epoch(run)
    except US3LError:  # damaged weights: resume reports them itself
        return False
    if target is None:
        return False
    done = False
    for name in (STATE_FILE, META_FILE):
        final = run / name
        if final.is_file() and _file_epoch(name, final) == target:
            continue
        tmp = _pending_file(run, name, target)
        if tmp is not None:
            os.replace(tmp, final)
            done = True
    return done


def _pending_file(run: Path, name: str, epoch: int) -> Path | None:
    """A temporary file ``_commit`` left for ``name`` that records ``epoch`` (the first in name order), or None.
    Only regular files are read (``_commit`` makes nothing else): a FIFO blocked the reader forever, a link to
    ``/dev/zero`` filled the memory."""
    candidates = (tmp for tmp in sorted(run.glob(f".{name}.*")) if tmp.is_file() and not tmp.is_symlink())
    return next((tmp for tmp in candidates if _file_epoch(name, tmp) == epoch), None)


def _unfinished_commit(run: Path, meta: Mapping[str, Any]) -> bool:
    """Whether ``run`` holds a checkpoint commit cut off between its renames (what ``finish_interrupted_commit``
    rolls forward): weights at a later epoch than ``meta``, and a complete metadata file of that epoch under a
    temporary name."""
    try:
        target = read_weights_epoch(run)
    except US3LError:
        return False
    if target is None or target == meta.get("epoch"):
        return False
    return _pending_file(run, META_FILE, target) is not None


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read and schema-check ``checkpoint.json`` of a run folder or weights file."""
    meta_path = run_dir_of(path) / META_FILE
    doc = read_json(meta_path, "checkpoint metadata")
    check_schema(doc, CHECKPOINT_KIND, CHECKPOINT_SCHEMA, meta_path)
    fix = "it was not written by us3l train or was edited; re-train or restore the original"
    for key, kinds in _META_TYPES.items():
        if key not in doc:
            if key in _META_REQUIRED:
                raise US3LError(f"{meta_path} has no {key!r} key ({fix})")
            continue
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in kinds)
            raise US3LError(f"{meta_path}: {key!r} must be {names}, got {value!r:.80} ({fix})")
    _check_values(doc, meta_path, fix)
    return doc


def _check_values(doc: Mapping[str, Any], meta_path: Path, fix: str) -> None:
    """The input size and normalization every reader builds tensors from: a positive size, and mean/std lists of
    one finite number per input channel (3), std > 0."""
    import math

    size = doc.get("input_size")
    if size is not None:
        check_input_size(size, f"{meta_path}: 'input_size'", fix)
    norm = doc.get("normalization")
    if not norm:
        return
    for key in ("mean", "std"):
        v = norm.get(key)
        ok = isinstance(v, list) and len(v) == 3 and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )
        if ok and key == "std":
            ok = all(x > 0 for x in v)
        if not ok:
            what = "3 positive finite numbers" if key == "std" else "3 finite numbers"
            raise US3LError(f"{meta_path}: normalization.{key} must be {what}, got {v!r:.80} ({fix})")


#: ``checkpoint.json`` entries every reader relies on, and their JSON types.
_META_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "epoch": (int,),
    "model_kwargs": (dict, type(None)),
    "width_range": (dict, type(None)),
    "normalization": (dict, type(None)),
    "input_size": (int, type(None)),
    "config": (dict,),
    "weights_sha256": (str,),  # since 2026-12-03; older checkpoints have none and are read unchecked
}
_META_REQUIRED = ("model", "epoch")


def weights_path(path: str | Path) -> Path:
    """``checkpoint.safetensors`` of a run folder (or the file itself); one-line error when missing."""
    if not isinstance(path, str | os.PathLike):  # None reached Path() and its TypeError
        raise US3LError(f"checkpoint path must be a run folder or its {WEIGHTS_FILE}, got {path!r:.60}")
    p = Path(path)
    w = p / WEIGHTS_FILE if p.is_dir() else p
    if not w.is_file():
        raise US3LError(f"no checkpoint found at {path} (expected a run folder or {WEIGHTS_FILE})")
    if not p.is_dir() and p.name in (META_FILE, STATE_FILE, BN_STATS_FILE, "config.yaml", "metrics.jsonl"):
        raise US3LError(f"{path} is the run's {p.name}, not its weights: pass the run folder or its {WEIGHTS_FILE}")
    if not p.is_dir() and p.suffix != ".safetensors":
        raise US3LError(f"{path} is not a checkpoint (expected a run folder or its {WEIGHTS_FILE})")
    return w


def read_weights_bytes(path: str | Path) -> bytes:
    """The bytes of ``checkpoint.safetensors``, read once. Loaders hash and parse these same bytes
    (``verify_weights``, ``read_tensors``, ``read_weights_epoch`` with ``data``): hashing the file and then opening
    it again checked one file and loaded another when it was replaced in between."""
    wpath = weights_path(path)
    try:
        return wpath.read_bytes()
    except OSError as exc:
        raise US3LError(f"cannot read checkpoint {wpath}: {exc.strerror or exc}") from None


def verify_weights(path: str | Path, meta: Mapping[str, Any], data: bytes | None = None) -> str:
    """The sha256 of ``checkpoint.safetensors``; a one-line error when ``checkpoint.json`` recorded another
    digest at save time (the weights were damaged, e.g. by a partial copy or bad storage, or replaced).
    Checkpoints written before the digest was recorded are returned unchecked. ``data``: the bytes the caller
    loaded the tensors from (``read_weights_bytes``), hashed instead of the file, so the digest checked is that of
    what was loaded."""
    wpath = weights_path(path)
    sha = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(wpath)
    recorded = meta.get("weights_sha256")
    if recorded is not None and recorded != sha:
        if _unfinished_commit(wpath.parent, meta):
            raise US3LError(
                f"checkpoint in {wpath.parent} was cut off while it was being saved (its weights are from a later "
                f"epoch than {META_FILE}, whose new version waits under a temporary name): run us3l train --resume "
                f"{wpath.parent} to finish the save, or wait if that run is still training"
            )
        raise US3LError(
            f"checkpoint {wpath} is damaged or was replaced: its sha256 {sha[:12]}... differs from the "
            f"{str(recorded)[:12]}... recorded in {META_FILE} when it was saved; re-train or restore it"
        )
    return sha


def check_bound(meta: Mapping[str, Any], data: bytes, wpath: Path) -> None:
    """Refuse (one line naming the first field) a ``checkpoint.json`` whose ``BOUND_SETTINGS`` differ from those
    saved in the weights' metadata (``data``: the weights' bytes): a hand edit of ``width_range`` (or the model,
    its kwargs, the normalization, input size, method or a ``single`` run's ``single_width``) changes what the
    same weights mean, and ``weights_sha256`` covers the weights only. Weights saved before the settings were
    recorded (no ``BOUND_KEY``) are read as before, unchecked, and so is a ``BOUND_LATER`` field their
    ``BOUND_KEY`` lacks. Both files edited consistently (and ``weights_sha256`` with
    them) are not detected: nothing here is signed."""
    try:
        stored_text = (read_header(data).get("__metadata__") or {}).get(BOUND_KEY)
        if stored_text is None:
            return
        stored = json.loads(stored_text)
        if not isinstance(stored, dict):
            raise ValueError("not an object")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise US3LError(f"checkpoint {wpath} is damaged (its {BOUND_KEY} metadata: {exc}); re-train or "
                        "restore it") from None
    # a BOUND_LATER field the weights lack was saved before it was bound: not recorded, read as before
    differs = first_bound_difference(stored, meta, skip=[k for k in BOUND_LATER if k not in stored])
    if differs is not None:
        key, saved, now = differs
        raise US3LError(
            f"checkpoint {wpath}: {META_FILE} records {key} {now:.100}, the weights were saved with {saved:.100} "
            f"({META_FILE} was edited); restore the original {META_FILE} or re-train"
        )


def check_resumed_bound(saved: Mapping[str, Any], now: Mapping[str, Any], meta_path: Path) -> None:
    """Refuse (one line) a resume whose saved ``config`` resolves to other ``BOUND_SETTINGS`` than the checkpoint
    records (``saved``: its ``checkpoint.json``; ``now``: the metadata the resumed run would save). ``check_bound``
    ties the top-level fields to the weights, but a resume trains with ``config``: an edited ``config.single_width``
    or ``config.method`` would go on training another width or method on these weights, and the next checkpoint
    would bind it. A field the checkpoint does not record (saved before it was) is not compared; the
    normalization is the data's, compared with a tolerance where the data are loaded."""
    differs = first_bound_difference(saved, now, skip=["normalization", *(k for k in BOUND_SETTINGS if k not in saved)])
    if differs is not None:
        key, was, will = differs
        raise US3LError(
            f"{meta_path}: its config resolves to {key} {will:.100}, but the checkpoint was saved with "
            f"{was:.100} ({META_FILE} was edited); restore the original {META_FILE}"
        )


def first_bound_difference(
    before: Mapping[str, Any], after: Mapping[str, Any], skip: Iterable[str] = ()
) -> tuple[str, str, str] | None:
    """The first ``BOUND_SETTINGS`` field (not in ``skip``) whose canonical JSON differs between ``before`` and
    ``after``, as (field, before's JSON, after's JSON); ``None`` when all agree."""
    skipped = set(skip)
    for key in BOUND_SETTINGS:
        if key in skipped:
            continue
        was, will = _canonical(before.get(key)), _canonical(after.get(key))
        if was != will:
            return key, was, will
    return None


def read_tensors(path: str | Path, prefix: str = "", data: bytes | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``checkpoint.safetensors`` whose name starts with ``prefix``, with the prefix removed;
    parsed from ``data`` (the file's bytes, ``read_weights_bytes``) when given."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    wpath = weights_path(path)
    try:
        if data is not None:
            from safetensors.torch import load

            return {k[len(prefix) :]: t for k, t in load(data).items() if k.startswith(prefix)}
        with safe_open(str(wpath), framework="pt", device="cpu") as fh:
            for key in fh.keys():
                if key.startswith(prefix):
                    out[key[len(prefix) :]] = fh.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        why = " ".join(str(exc).split())[:160]
        raise US3LError(f"checkpoint {wpath} is damaged ({why}); re-train or restore it") from None
    return out


def check_dtypes(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse tensors whose kind differs from the model's (int64 weights are not silently cast to float)."""
    for key, tensor in state.items():
        ref = reference.get(key)
        if ref is None:
            continue  # reported as unexpected by load_state_dict
        if tensor.is_floating_point() != ref.is_floating_point() or tensor.is_complex() != ref.is_complex():
            raise US3LError(
                f"checkpoint {path}: tensor {key!r} is {str(tensor.dtype).removeprefix('torch.')}, the model "
                f"expects {str(ref.dtype).removeprefix('torch.')} (not a us3l checkpoint, or edited); "
                "re-train or restore the original"
            )


def read_weights_epoch(path: str | Path, data: bytes | None = None) -> int | None:
    """The epoch recorded in the safetensors metadata (``None`` if absent); of ``data`` (the file's bytes) when
    given."""
    from safetensors import safe_open

    wpath = weights_path(path)
    try:
        if data is not None:
            md = read_header(data).get("__metadata__") or {}
        else:
            with safe_open(str(wpath), framework="pt", device="cpu") as fh:
                md = fh.metadata() or {}
        return int(md["epoch"]) if "epoch" in md else None
    except Exception as exc:  # noqa: BLE001 - a damaged header or a non-integer epoch
        why = " ".join(str(exc).split())[:160]
        raise US3LError(f"checkpoint {wpath} is damaged ({why}); re-train or restore it") from None


#: Entries every ``train_state.pt`` has (``save_checkpoint`` adds the epoch), with their types.
TRAIN_STATE_KEYS: dict[str, type] = {"epoch": int}


def not_a_train_state(path: Path, why: str) -> US3LError:
    """The one-line refusal of a ``train_state.pt`` that us3l cannot trust or use, with what to do."""
    run = path.parent
    return US3LError(
        f"{path} is not a safe us3l training state ({why}); delete it and start over with "
        f"`us3l train --out {run} --overwrite`, or put back the {STATE_FILE} that us3l wrote"
    )


def _unpickle_reason(exc: Exception) -> str:
    """Why torch's weights-only loader refused a file, as one short phrase (not torch's paragraphs)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it refers to {found.group(1).rstrip('.')}, which a weights-only file may not"
    first = next((" ".join(line.split()) for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first if len(first) <= 160 else first[:157] + "..."


def _compressed_entry(path: Path) -> str | None:
    """Why ``path`` (a ``torch.save`` zip) must not be unpacked: an entry stored compressed, which torch.load
    inflates (a few MB can unpack to many GB of tensors); None when every entry is stored as is, as torch.save
    writes them, or when the file is no zip at all (torch.load then gives its own reason)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED:
            return (f"its entry {e.filename!r:.60} is compressed ({e.compress_size} bytes unpacking to "
                    f"{e.file_size}); torch.save stores every entry uncompressed")
    return None


def load_train_state(run_dir: str | Path, required: Mapping[str, type] | None = None) -> dict[str, Any]:
    """Load ``train_state.pt`` with ``weights_only=True`` (no arbitrary unpickling).

    A file holding anything but tensors and plain containers (a pickled object, a foreign or damaged file),
    or one without the entries ``TRAIN_STATE_KEYS`` and ``required`` (name -> type), is refused with one line.
    """
    p = run_dir_of(run_dir) / STATE_FILE
    if not p.is_file():
        raise US3LError(f"cannot resume: {p} not found")
    packed = _compressed_entry(p)
    if packed is not None:
        raise not_a_train_state(p, packed)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a corrupt/foreign file
        raise not_a_train_state(p, _unpickle_reason(exc)) from None
    if not isinstance(state, dict):
        raise not_a_train_state(p, f"it holds a {type(state).__name__}, not a dict")
    for key, kind in {**TRAIN_STATE_KEYS, **(required or {})}.items():
        if key not in state:
            raise not_a_train_state(p, f"no {key!r} entry")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise not_a_train_state(p, f"{key!r} is a {type(state[key]).__name__}, not a {kind.__name__}")
    return state


def model_kwargs_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``create_model`` keyword arguments a checkpoint's metadata records (its model_kwargs and width range)."""
    kwargs = dict(meta.get("model_kwargs") or {})
    wr = meta.get("width_range") or {}
    for key, name in (("min", "width_min"), ("max", "width_max"), ("divisor", "divisor")):
        if key in wr and name not in kwargs:
            kwargs[name] = wr[key]
    return kwargs


MODEL_SIZE_SLACK = 256 * 2**20  # bytes a model may hold beyond twice its stored weights (e.g. a ViT's position
# embedding, which is computed, not stored: 50 MB for vit_small at 4096 px)


def _check_against_file(probe: nn.Module, wpath: Path, name: str, data: bytes) -> None:
    """Compare a model built on the meta device with the tensors ``data`` (the bytes of ``wpath``) stores (read
    from its header): every stored tensor's shape, and the model's whole size (a model_kwargs edited to ask for a
    huge network must not allocate it before the shapes are found not to match)."""
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    try:
        for k, entry in read_header(data).items():
            if k.startswith(BACKBONE_PREFIX):
                shapes[k[len(BACKBONE_PREFIX):]] = [int(d) for d in entry["shape"]]
                dtypes[k[len(BACKBONE_PREFIX):]] = str(entry["dtype"])
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        why = " ".join(str(exc).split())[:160]
        raise US3LError(f"checkpoint {wpath} is damaged ({why}); re-train or restore it") from None
    for key, t in probe.state_dict().items():
        if key in shapes and shapes[key] != list(t.shape):
            raise US3LError(f"checkpoint {wpath} does not match model {name!r}: {key!r} has shape {shapes[key]} in "
                            f"the file, the model built from checkpoint.json expects {list(t.shape)}")
    sizes = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2}
    stored = sum(math.prod(s) * sizes.get(dtypes[k], 1) for k, s in shapes.items())
    tensors = [*probe.parameters(), *probe.buffers()]
    needed = sum(t.numel() * t.element_size() for t in tensors)
    if needed > 2 * stored + MODEL_SIZE_SLACK:
        raise US3LError(f"checkpoint {wpath}: checkpoint.json describes a {name!r} of {needed / 2**30:.1f} GiB for "
                        f"{stored / 2**20:.1f} MiB of stored weights (its model_kwargs were edited?); re-train or "
                        "restore the original")


def torch_device(device: object) -> torch.device:
    """``device`` as a ``torch.device`` this machine has; one line otherwise, before any weights are read (a
    misspelt or absent device reached torch's RuntimeError only after the whole checkpoint was loaded)."""
    try:
        dev = torch.device(device)  # type: ignore[call-overload]
        torch.empty(0, device=dev)  # "cuda" where torch sees no GPU
        if dev.type == "meta":  # holds shapes only: the loaded weights were dropped without a word
            raise RuntimeError("meta")
    except (RuntimeError, TypeError, AssertionError):
        raise US3LError(
            f"device must be a torch device available here (cpu, cuda, cuda:N), got {device!r:.40}"
        ) from None
    return dev


def load_backbone(
    path: str | Path, device: str | torch.device = "cpu", stale_bn_stats: str = "refuse"
) -> LoadedCheckpoint:
    """Rebuild the registered slimmable model of a checkpoint and load its ``backbone.*`` weights.

    ``path`` is a run folder or its ``checkpoint.safetensors``. Calibrated per-width BN statistics from
    ``bn_stats.safetensors`` are loaded too when that file exists and records the sha256 of these weights.
    Statistics computed for other weights (stale) raise ``StaleBNStats`` (``stale_bn_stats="refuse"``) or
    are left out with ``bn_stats_note`` saying so (``"ignore"``: for callers that recalibrate anyway).
    The model is returned in eval mode.
    """
    from us3l.models import create_model
    from us3l.models.meta import shapes_only

    wpath = weights_path(path)
    device = torch_device(device)
    one_of(stale_bn_stats, ("refuse", "ignore"), "stale_bn_stats")  # "ignroe" was read as "refuse"
    meta = read_meta(wpath)
    kwargs = model_kwargs_of(meta)
    try:
        with shapes_only():  # shapes and sizes only: checked against the file before anything is allocated
            probe = create_model(meta["model"], num_classes=0, **kwargs)
    except KeyError as exc:
        raise US3LError(f"checkpoint {wpath} names an unknown model: {exc}") from None
    except (TypeError, ValueError, RuntimeError, US3LError) as exc:  # model_kwargs / width_range the model does
        # not take, or sizes beyond any machine (RuntimeError: "Storage size calculation overflowed")
        raise US3LError(f"checkpoint {wpath}: cannot build model {meta['model']!r} from checkpoint.json "
                        f"({' '.join(str(exc).split())})") from None
    blob = read_weights_bytes(wpath)  # read once: hashed and loaded from these bytes, never from a second open
    _check_against_file(probe, wpath, str(meta["model"]), blob)
    check_bound(meta, blob, wpath)  # width_range & co. as saved with the weights (an edit the shapes do not show)
    model = create_model(meta["model"], num_classes=0, **kwargs)
    state = read_tensors(wpath, BACKBONE_PREFIX, data=blob)
    check_dtypes(state, model.state_dict(), wpath)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).strip().splitlines()[-1].strip()
        raise US3LError(f"checkpoint {wpath} does not match model {meta['model']!r}: {first}") from None
    if missing or unexpected:
        raise US3LError(
            f"checkpoint {wpath} does not match model {meta['model']!r}: "
            f"missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}"
        )
    sha = verify_weights(wpath, meta, data=blob)
    bn_path = wpath.parent / BN_STATS_FILE
    bn_note = bn_sha = None
    if bn_path.is_file():
        from us3l.eval.calibrate import StaleBNStats, load_bn_stats

        try:
            bn_bytes = bn_path.read_bytes()  # read once: loaded and hashed from the same bytes
        except OSError as exc:
            raise US3LError(f"cannot read BN statistics {bn_path} ({exc.strerror or exc}); delete it and run "
                            f"`us3l calibrate --ckpt {bn_path.parent}`") from None
        try:
            load_bn_stats(model, bn_path, checkpoint_sha256=sha, data=bn_bytes)
            bn_sha = hashlib.sha256(bn_bytes).hexdigest()
        except StaleBNStats as exc:
            if stale_bn_stats != "ignore":
                raise
            bn_note = str(exc)
    model.to(device).eval()
    return LoadedCheckpoint(model=model, meta=meta, sha256=sha, path=wpath, bn_stats_note=bn_note,
                            bn_stats_path=bn_path if bn_sha else None, bn_stats_sha256=bn_sha)
