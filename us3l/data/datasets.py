"""Datasets: an in-memory uint8 image tensor type, a lazy ImageFolder type and the ``load_dataset`` specs.

Specs (see ``docs/data.md``):

- ``builtin``: ten procedurally generated shape classes (us3l/data/shapes.py; seeded, no download), 32x32 RGB.
- ``digits``: scikit-learn's bundled ``load_digits`` (no download), upsampled to 32x32 RGB.
- ``cifar10:PATH`` / ``cifar100:PATH``: the python-pickle CIFAR folders, read with a restricted unpickler.
- ``folder:PATH`` (or a bare existing directory): an ImageFolder tree, loaded lazily with PIL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from us3l.data.loader import loader_batches
from us3l.data.safe_pickle import safe_unpickle
from us3l.data.shapes import CLASSES as SHAPE_CLASSES
from us3l.data.shapes import generate_shapes
from us3l.data.split_rule import (
    COUNT_RULE,
    CURRENT_SPLIT_RULE,
    TEST_FRACTION,
    check_split_rule,
    path_hash_split,
    split_key,
)
from us3l.data.tree import IMAGE_EXTENSIONS, ClassFolders, FileStat, FileStats, holds_files, image_files, skipped
from us3l.errors import US3LError

Stats = tuple[float, float, float]

CIFAR_MEAN: Stats = (0.4914, 0.4822, 0.4465)
CIFAR_STD: Stats = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN: Stats = (0.485, 0.456, 0.406)
IMAGENET_STD: Stats = (0.229, 0.224, 0.225)
# Computed once from the train splits (32x32, values / 255); tests/data checks them.
BUILTIN_MEAN: Stats = (0.5415, 0.5415, 0.5415)
BUILTIN_STD: Stats = (0.3059, 0.306, 0.3059)
DIGITS_MEAN: Stats = (0.3055, 0.3055, 0.3055)
DIGITS_STD: Stats = (0.3237, 0.3237, 0.3237)
BUILTIN_TRAIN = 2000
BUILTIN_TEST = 1000

BUILTIN_SIZE = 32
BUILTIN_SEED = 0
FOLDER_SEED = 0
DEFAULT_FOLDER_SIZE = 224
SPLITS = ("train", "test")
SPEC_FORMS = "builtin, digits, cifar10:PATH, cifar100:PATH, folder:PATH, or an existing ImageFolder directory"


@dataclass
class ImageDataset:
    """A dataset held in memory: ``images`` uint8 (N,3,H,W), ``labels`` int64 (N,).

    ``mean``/``std`` are the per-channel normalisation (on [0,1] pixel values) to use with this data.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    mean: Stats
    std: Stats

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        """The stored image side (images are square for every builtin spec)."""
        return int(self.images.shape[-1])


@dataclass(frozen=True, eq=False)
class SampleStats:
    """The size in bytes and ``(st_dev, st_ino)`` of each image of ``samples`` (a folder data set's list, in its
    order), from the folder walk's one ``stat`` of it (links followed): 24 bytes an image, where a dict by path
    would take about 200. Only that list's: a data set with another one (a subset) does not use them."""

    samples: list[tuple[Path, int]]
    sizes: np.ndarray  # uint64 (N,)
    inodes: np.ndarray  # uint64 (N, 2)

    @classmethod
    def of(cls, samples: list[tuple[Path, int]], walked: FileStats) -> SampleStats:
        """Those of ``samples`` by what the walk recorded of each path (``us3l.data.tree.image_files``)."""
        sizes = np.fromiter((walked[p][0] for p, _ in samples), dtype=np.uint64, count=len(samples))
        inodes = np.array([walked[p][1] for p, _ in samples], dtype=np.uint64).reshape(len(samples), 2)
        return cls(samples, sizes, inodes)

    def files(self) -> list[FileStat]:
        """Each sample's (size, (st_dev, st_ino)), as Python ints."""
        return list(zip(self.sizes.tolist(), map(tuple, self.inodes.tolist()), strict=True))


def walked_stats(ds: Any) -> SampleStats | None:
    """The folder walk's sizes and inodes of ``ds``'s samples (``FolderDataset.file_stats``), None where it has none
    or they are of another list of samples."""
    stats = getattr(ds, "file_stats", None)
    return stats if isinstance(stats, SampleStats) and stats.samples is getattr(ds, "samples", None) else None


@dataclass
class FolderDataset(Dataset):
    """A lazily loaded image dataset: ``samples`` is a list of (path, label).

    ``__getitem__`` decodes the original file with PIL (RGB) and returns its evaluation view, torchvision's
    Resize(``round(S*256/224)``) + CenterCrop(S) with an antialiased bilinear resize (Resize(256) +
    CenterCrop(224) at S = ``image_size`` = 224), as (uint8 (3,S,S) tensor, int label). Training crops are
    taken per image from the original by ``us3l.data.folder.FolderViews``. It is a ``torch.utils.data.Dataset``
    and works with a ``DataLoader`` (and its workers) directly.
    """

    samples: list[tuple[Path, int]]
    classes: list[str]
    name: str
    mean: Stats
    std: Stats
    image_size: int = DEFAULT_FOLDER_SIZE
    #: Each sample's size and inode as the folder walk ``stat``-ed it, for the data fingerprint and the overlap check
    #: (``walked_stats``); None: not walked here (they ``stat`` each file).
    file_stats: SampleStats | None = field(default=None, repr=False, compare=False)
    _labels: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return load_image(path, self.image_size), label

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> torch.Tensor:
        """All labels as an int64 (N,) tensor (no image is opened)."""
        if self._labels is None:
            self._labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)
        return self._labels


AnyDataset = ImageDataset | FolderDataset


class _TensorImageDataset(Dataset):
    """``torch.utils.data.Dataset`` view of an :class:`ImageDataset`."""

    def __init__(self, ds: ImageDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.ds.images[index], int(self.ds.labels[index])


def as_torch_dataset(ds: AnyDataset) -> Dataset:
    """A ``torch.utils.data.Dataset`` yielding (uint8 (3,H,W) image, int label) for either dataset type."""
    if isinstance(ds, FolderDataset):
        return ds
    if isinstance(ds, ImageDataset):
        return _TensorImageDataset(ds)
    raise TypeError(f"expected ImageDataset or FolderDataset, got {type(ds).__name__}")


def iterate_batches(
    ds: AnyDataset,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images (B,3,H,W), int64 labels (B,)) batches from either dataset type.

    The order is ``torch.randperm(len(ds), generator=generator)`` when ``shuffle``, else sequential. For an
    :class:`ImageDataset` a batch is plain index slicing; a :class:`FolderDataset` is read through a
    ``DataLoader`` with ``num_workers`` worker processes (the batch order is the same either way).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(ds)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    index_batches = [order[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]
    if isinstance(ds, ImageDataset):
        for idx in index_batches:
            yield ds.images[idx], ds.labels[idx]
        return
    for images, labels in loader_batches(ds, [idx.tolist() for idx in index_batches], num_workers):
        yield images, labels.to(torch.int64)


# ----------------------------------------------------------------------------------------------- load


def load_dataset(spec: str, split: str, image_size: int | None = None,
                 split_rule: int = CURRENT_SPLIT_RULE) -> AnyDataset:
    """Load a dataset from a spec string (``builtin``, ``cifar10:PATH``, ``cifar100:PATH``, ``folder:PATH``).

    ``split`` is ``train`` or ``test`` (``val`` is accepted as an alias of ``test``). ``image_size`` is the
    stored image side of folder datasets (default 224); in-memory datasets keep their native size (32) and
    the augmentations resample to the model's input size. ``split_rule``: how an image folder without split
    folders is split (``us3l.data.split_rule``; a run's own rule is in its checkpoint.json). Bad input raises a
    one-line ``US3LError``.
    """
    return _load(spec, (_check_split(split),), image_size, split_rule)[0]


def load_splits(spec: str, image_size: int | None = None,
                split_rule: int = CURRENT_SPLIT_RULE) -> tuple[AnyDataset, AnyDataset]:
    """The train and test splits of ``spec``, as two :func:`load_dataset` calls give them; an image folder without
    split folders is walked once for both (on a large tree the walk, not the split, is what takes time)."""
    train, test = _load(spec, ("train", "test"), image_size, split_rule)
    return train, test


def _load(spec: str, splits: tuple[str, ...], image_size: int | None,
          split_rule: int = CURRENT_SPLIT_RULE) -> list[AnyDataset]:
    """:func:`load_dataset` of each of ``splits`` (checked split names), the spec parsed once."""
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise US3LError(f"image_size must be a positive integer, got {image_size!r}")
    check_split_rule(split_rule)  # of any data: a bad one is refused, not ignored where nothing is split by it
    kind, path = parse_data_spec(spec)
    if kind == "builtin":
        return [load_builtin(split) for split in splits]
    if kind == "digits":
        return [load_digits_builtin(split) for split in splits]
    assert path is not None
    if kind in ("cifar10", "cifar100"):
        return [load_cifar(kind, path, split) for split in splits]
    return _load_folder(path, splits, image_size or DEFAULT_FOLDER_SIZE, split_rule)


def data_spec_kind(spec: str) -> str | None:
    """The kind of a data spec (``builtin``, ``digits``, ``cifar10``, ``cifar100``, ``folder``) as
    :func:`parse_data_spec` reads it, the path after a ``kind:`` prefix unchecked; None for a spec it refuses.
    A bare existing directory is a folder, colons in its path included; an empty spec is none (``Path("")`` is the
    working directory)."""
    spec = spec.strip()
    if not spec:
        return None
    if spec in ("builtin", "digits"):
        return spec
    kind, sep, _ = spec.partition(":")
    if sep and kind in ("cifar10", "cifar100", "folder"):
        return kind
    return "folder" if Path(spec).expanduser().is_dir() else None


def parse_data_spec(spec: str) -> tuple[str, Path | None]:
    """The kind of a data spec (:func:`data_spec_kind`) and its path, checked to exist, without loading anything;
    bad input raises a one-line ``US3LError``."""
    spec = spec.strip()
    if not spec:  # `data: ""` in a config read the working directory as an image folder
        raise US3LError(f"empty data spec (valid: {SPEC_FORMS})")
    kind = data_spec_kind(spec)
    if kind is None:
        raise US3LError(f"unknown data spec {spec!r} (valid: {SPEC_FORMS})")
    if kind in ("builtin", "digits"):
        return kind, None
    if spec.startswith(f"{kind}:"):
        return kind, _existing_path(spec.partition(":")[2], spec)
    return kind, Path(spec).expanduser()


def anchored_data_spec(spec: str) -> str:
    """``spec`` with a relative path made absolute against the working directory, in the form it was typed
    (``folder:data`` -> ``folder:/cwd/data``, ``data`` -> ``/cwd/data``); built-in specs, absolute and ``~`` paths,
    and specs that name no data (left to their own error) are returned as they are. A spec that is recorded (BN
    statistics, accuracy.json) and compared again later must name its data from any directory: ``folder:data``
    typed in another one is another folder."""
    try:
        kind, path = parse_data_spec(spec)
    except US3LError:
        return spec
    if path is None or path.is_absolute():
        return spec
    absolute = str(path.absolute())
    return f"{kind}:{absolute}" if spec.strip().startswith(f"{kind}:") else absolute


def same_data_spec(a: str, b: str) -> bool:
    """Whether two data specs name the same data: equal text, or the same kind at the same resolved path
    (``folder:/x``, ``/x`` and ``/x/``; ``~`` expanded). A spec whose path is gone compares by its text, and so
    does a relative one (recorded by an earlier version: the directory it was typed in is unknown)."""
    if a == b:
        return True
    try:
        (kind_a, path_a), (kind_b, path_b) = parse_data_spec(a), parse_data_spec(b)
    except US3LError:
        return False
    if path_a is None or path_b is None:
        return kind_a == kind_b and path_a is path_b
    if not (path_a.is_absolute() and path_b.is_absolute()):
        return False
    return kind_a == kind_b and path_a.resolve() == path_b.resolve()


def _check_split(split: str) -> str:
    split = {"val": "test"}.get(split, split)
    if split not in SPLITS:
        raise US3LError(f"unknown split {split!r} (valid: train, test; 'val' is an alias of 'test')")
    return split


def _existing_path(text: str, spec: str) -> Path:
    if not text:
        raise US3LError(f"data spec {spec!r} has no path after ':'")
    path = Path(text).expanduser()
    if not path.exists():
        raise US3LError(f"data path not found: {path}")
    return path


# -------------------------------------------------------------------------------------------- builtin


def load_builtin(split: str) -> ImageDataset:
    """The built-in shapes set (us3l/data/shapes.py): ``BUILTIN_TRAIN`` train and ``BUILTIN_TEST`` test images,
    32x32 RGB uint8, generated from two independent seeds (cached in memory after the first call)."""
    split = _check_split(split)
    images, labels = _shapes(split)
    return ImageDataset(
        images=images.clone(),
        labels=labels.clone(),
        classes=list(SHAPE_CLASSES),
        name="builtin-shapes",
        mean=BUILTIN_MEAN,
        std=BUILTIN_STD,
    )


@lru_cache(maxsize=2)
def _shapes(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, seed = (BUILTIN_TRAIN, BUILTIN_SEED) if split == "train" else (BUILTIN_TEST, BUILTIN_SEED + 1)
    return generate_shapes(n, BUILTIN_SIZE, seed)


def load_digits_builtin(split: str) -> ImageDataset:
    """scikit-learn's digits as 32x32 RGB uint8 with a fixed stratified 80/20 train/test split."""
    split = _check_split(split)
    images, labels = _digits_all()
    train_idx, test_idx = _digits_split_indices()
    idx = torch.from_numpy(train_idx if split == "train" else test_idx)
    return ImageDataset(
        images=images[idx].clone(),
        labels=labels[idx].clone(),
        classes=[str(d) for d in range(10)],
        name="builtin-digits",
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
    )


@lru_cache(maxsize=1)
def _digits_all() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = torch.from_numpy(digits.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)  # (N,1,8,8)
    big = F.interpolate(grey, size=(BUILTIN_SIZE, BUILTIN_SIZE), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return images, labels


@lru_cache(maxsize=1)
def _digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    _, labels = _digits_all()
    return stratified_split(labels.numpy(), TEST_FRACTION, BUILTIN_SEED)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: sorted (train indices, test indices).

    Each class puts ``round(test_fraction * n)`` of its ``n`` samples (at least 1 when n >= 2) into test,
    chosen by a ``numpy.random.default_rng(seed)`` permutation, classes visited in sorted order.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# ---------------------------------------------------------------------------------------------- CIFAR


_CIFAR_LAYOUT = {
    # kind: (folder name, train files, test files, meta file, label key, label-names key)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", b"fine_labels", b"fine_label_names"),
}


def load_cifar(kind: str, path: Path, split: str) -> ImageDataset:
    """Load CIFAR-10/100 from the python-pickle folder ``path`` (or its parent)."""
    split = _check_split(split)
    folder_name, train_files, test_files, meta_file, label_key, names_key = _CIFAR_LAYOUT[kind]
    root = _cifar_root(path, folder_name, meta_file, kind)
    classes = _cifar_classes(root / meta_file, names_key)
    files = train_files if split == "train" else test_files
    parts = [_cifar_batch(root / f, label_key, len(classes)) for f in files]
    if not sum(len(p[1]) for p in parts):  # an empty split stopped training at torch.cat, naming no file
        raise US3LError(f"no images for split '{split}' in {', '.join(str(root / f) for f in files)} (0 rows)")
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageDataset(
        images=images, labels=labels, classes=classes, name=kind, mean=CIFAR_MEAN, std=CIFAR_STD
    )


def _cifar_root(path: Path, folder_name: str, meta_file: str, kind: str) -> Path:
    for candidate in (path, path / folder_name):
        if (candidate / meta_file).is_file():
            return candidate
    raise US3LError(
        f"no {kind} data at {path}: expected the '{folder_name}' folder (with '{meta_file}') or its parent"
    )


def _cifar_classes(meta_path: Path, names_key: bytes) -> list[str]:
    meta = safe_unpickle(meta_path)
    names = meta.get(names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise US3LError(f"{meta_path}: malformed CIFAR meta file (no {names_key.decode()} list)")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise US3LError(f"missing CIFAR file: {path}")
    batch = safe_unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise US3LError(f"{path}: malformed CIFAR batch (needs keys 'data' and '{label_key.decode()}')")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise US3LError(
            f"{path}: malformed CIFAR batch ('data' must be a uint8 (N, 3072) array, got {shape})"
        )
    labels = _cifar_labels(batch[label_key], path, label_key.decode())
    if labels.shape[0] != data.shape[0]:
        raise US3LError(
            f"{path}: malformed CIFAR batch ({data.shape[0]} images but {labels.shape[0]} labels)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise US3LError(f"{path}: malformed CIFAR batch (labels outside 0..{num_classes - 1})")
    return data, labels


def _cifar_labels(raw: Any, path: Path, key: str) -> np.ndarray:
    """The labels of a batch as int64 (N,): a flat list (or array) of integers, nothing else. A cast to int64
    would truncate 1.9 to class 1, flatten a nested list and read '7' as 7: wrong labels, trained on silently."""
    try:
        values = np.asarray(raw)
    except (TypeError, ValueError, OverflowError):
        values = None
    if values is not None and values.size == 0 and values.ndim == 1:
        return np.zeros(0, dtype=np.int64)
    if values is None or values.ndim != 1 or values.dtype.kind not in "iu":
        if values is None or values.ndim == 0:
            got = type(raw).__name__
        else:
            got = "a nested list" if values.ndim > 1 else f"{values.dtype} values"
        raise US3LError(f"{path}: malformed CIFAR batch ('{key}' must be a flat list of integers, got {got})")
    return values.astype(np.int64)


# --------------------------------------------------------------------------------------------- folder


def load_folder(path: Path, split: str, image_size: int = DEFAULT_FOLDER_SIZE,
                split_rule: int = CURRENT_SPLIT_RULE) -> FolderDataset:
    """An ImageFolder tree: ``path/<split>/<class>/*`` if ``path/train`` exists, else ``path/<class>/*``.

    Without split folders, each class is split about 80/20 (train/test) by ``split_rule``
    (``us3l.data.split_rule``). With split folders, ``test`` falls back to ``val`` (and ``val`` to ``test``); the
    class list comes from ``path/train``.
    """
    splits = (_check_split(split),)
    check_split_rule(split_rule)  # here, not in _load_folder: load_dataset's _load checks it before it calls that
    return _load_folder(Path(path), splits, image_size, split_rule)[0]


def _load_folder(path: Path, splits: tuple[str, ...], image_size: int,
                 split_rule: int = CURRENT_SPLIT_RULE) -> list[FolderDataset]:
    """:func:`load_folder` of each of ``splits`` (a checked ``split_rule``: its callers check it); a folder without
    split folders is walked once for all of them."""
    if not path.is_dir():
        raise US3LError(f"not a directory: {path}")
    _check_not_cifar(path)
    name = f"folder:{path.resolve().name}"
    per_split: dict[str, list[tuple[Path, int]]] = {}
    stats: FileStats = {}
    if has_split_folders(path):
        _check_train_split(path / "train")
        classes = _class_dirs(path / "train")
        split_dirs = [path / s for s in ("train", "test", "val") if (path / s).is_dir()]
        fences = _class_folders(split_dirs)
        for split in splits:
            split_dir = path / "train" if split == "train" else _first_dir(path, ["test", "val"])
            per_split[split] = _scan(split_dir, classes, every_class=split == "train", fences=fences, stats=stats)
    else:
        classes = _class_dirs(path)
        _check_no_split_folders(path, classes)
        everything = _scan(path, classes, every_class=True, fences=_class_folders([path]), stats=stats)
        labels = np.array([label for _, label in everything], dtype=np.int64)
        if split_rule == COUNT_RULE:
            train_idx, test_idx = stratified_split(labels, TEST_FRACTION, FOLDER_SEED)
        else:
            train_idx, test_idx = path_hash_split([split_key(p, path) for p, _ in everything], labels)
        for split in splits:
            per_split[split] = [everything[i] for i in (train_idx if split == "train" else test_idx)]
    for split in splits:
        if not per_split[split]:
            raise US3LError(f"no images for split '{split}' under {path}")
    return [FolderDataset(per_split[s], classes, name, IMAGENET_MEAN, IMAGENET_STD, image_size,
                          SampleStats.of(per_split[s], stats)) for s in splits]


def has_split_folders(path: Path) -> bool:
    """Whether the image folder ``path`` is laid out in split folders (``PATH/train/<class>/...``); without them
    each class is split about 80/20 by a split rule (``us3l.data.split_rule``)."""
    return (path / "train").is_dir()


def _check_not_cifar(path: Path) -> None:
    """Refuse a folder that holds CIFAR's python batches (itself, or in the folder CIFAR's archive unpacks to) as an
    image folder: the error names the ``cifar10:PATH`` / ``cifar100:PATH`` spec that reads it."""
    for kind, (folder_name, _, test_files, meta_file, _, _) in _CIFAR_LAYOUT.items():
        for root in (path, path / folder_name):
            if (root / meta_file).is_file() and (root / test_files[0]).is_file():
                raise US3LError(f"{path} holds {kind} python batches, not an image folder: use --data {kind}:{path}")


def _check_train_split(train_dir: Path) -> None:
    """A folder named ``train`` is the training split (``PATH/train/<class>/...``): one that holds images and no
    class folder is a class named "train" (vehicles: bus, car, train), which the split layout cannot tell apart."""
    if _holds_folders(train_dir) or not image_files(train_dir):
        return
    raise US3LError(f"{train_dir} holds images, not class folders: a folder named 'train' is read as the training "
                    "split (PATH/train/<class>/<image>); rename a class folder named 'train' (e.g. to 'train_')")


#: Folder names (any case) that data sets use for their splits: in the layout without ``PATH/train``, one that holds
#: class folders of its own is a split folder under another name (Fruits-360's Training/ + Test/, or Train/ + Val/).
SPLIT_LIKE_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation"})


def _check_no_split_folders(path: Path, classes: list[str]) -> None:
    """Without ``PATH/train``, refuse folders named ``val`` or ``test`` (split folders missing their training split:
    an ImageNet ``val/`` alone, or ``train/`` misspelt), and folders with another split name
    (:data:`SPLIT_LIKE_NAMES`, any case) that hold folders rather than images: read as classes, each would become
    one class made of the images of every class it holds."""
    splits = [name for name in ("test", "val") if name in classes]
    if splits:
        found = " and ".join(f"'{name}'" for name in splits)
        raise US3LError(f"{path} has a {found} folder but no 'train' folder: split folders need "
                        f"{path}/train/<class>/<image> (the classes come from it); rename a class folder named "
                        f"{found} (e.g. to '{splits[0]}_')")
    named = [name for name in classes if name.lower() in SPLIT_LIKE_NAMES and _holds_folders(path / name)]
    if named:
        found = " and ".join(f"'{name}'" for name in named)
        raise US3LError(f"{path}: {found} hold class folders, so they look like split folders, which must be named "
                        f"'train' and 'test' or 'val' ({path}/train/<class>/<image>); without a 'train' folder each "
                        "would be read as one class")


def _holds_folders(folder: Path) -> bool:
    """Whether ``folder`` holds a folder (not a skipped one)."""
    return any(p.is_dir() and not skipped(p.name) for p in folder.iterdir())


def _first_dir(path: Path, names: list[str]) -> Path:
    for n in names:
        if (path / n).is_dir():
            return path / n
    raise US3LError(f"{path} has a 'train' folder but no {' or '.join(repr(n) for n in names)} folder")


def _class_dirs(path: Path) -> list[str]:
    entries = [p for p in path.iterdir() if not skipped(p.name)]
    broken = sorted(p.name for p in entries if p.is_symlink() and not p.exists())
    if broken:  # a class (or a split folder) linked from a place that is gone: it vanished, and the labels shifted
        raise US3LError(f"{path}: broken symbolic link(s) {', '.join(broken[:5])}: the folder each points to is "
                        "gone; restore it or remove the link")
    classes = sorted(p.name for p in entries if p.is_dir())
    if not classes:
        raise US3LError(
            f"{path} has no class subfolders (expected ImageFolder layout: {path}/<class>/<image>)"
        )
    return classes


def _class_folders(split_dirs: Sequence[Path]) -> ClassFolders:
    """Every class folder of ``split_dirs`` by real path; two class folders that are one folder (``b -> a``, a
    symbolic link) are a ``US3LError``: every image of it would carry both labels."""
    real: dict[Path, Path] = {}
    for split_dir in split_dirs:
        for cls in _class_dirs(split_dir):
            folder = split_dir / cls
            target = Path(os.path.realpath(folder))
            if target in real:
                raise US3LError(f"{folder} and {real[target]} are the same folder ({target}; a symbolic link): its "
                                "images would be read with two labels; remove the link")
            real[target] = folder
    return ClassFolders(real)


def _scan(split_dir: Path, classes: list[str], every_class: bool = False,
          fences: ClassFolders | None = None, stats: FileStats | None = None) -> list[tuple[Path, int]]:
    """The (image, label) pairs of ``split_dir``. ``every_class``: the folder that defines the classes (the
    train split, or the only folder), where a class folder without an image is refused: it would count as a
    class that no image has (chance 1/3 for two real classes, or a one-class set passing as two). In the test
    split a class may be absent or its folder empty, but a class folder of other files (.heic, .jfif) is refused
    too: its images would be left out of the accuracy without a word. ``fences``: the
    data set's class folders by real path (``_class_folders``); a link from one class folder into another is
    refused (``us3l.data.tree``). ``stats``: filled with each image's size and inode (``image_files``)."""
    extra = sorted(set(_class_dirs(split_dir)) - set(classes))
    if extra:
        raise US3LError(f"{split_dir} has class folders not in the train split: {', '.join(extra[:5])}")
    samples: list[tuple[Path, int]] = []
    empty: list[str] = []
    for label, cls in enumerate(classes):
        cdir = split_dir / cls
        found = image_files(cdir, fences, stats) if cdir.is_dir() else []
        samples.extend((p, label) for p in found)
        if not found and (every_class or (cdir.is_dir() and holds_files(cdir))):
            empty.append(cls)
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    if not samples:
        raise US3LError(f"no images found under {split_dir} (extensions: {exts})")
    if empty:
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise US3LError(f"{split_dir}: class folder(s) without images: {', '.join(empty[:5])}{more} "
                        f"(extensions: {exts}); add images or move the folder(s) out")
    return samples


def load_image(path: Path, image_size: int) -> torch.Tensor:
    """The evaluation view of an image file: the original decoded as RGB, then Resize(round(S*256/224)) +
    CenterCrop(S) (``us3l.data.folder.eval_crop``); uint8 (3,S,S)."""
    from us3l.data.folder import check_eval_resize, eval_crop, open_rgb, to_tensor

    im = open_rgb(path)
    check_eval_resize(im, image_size, path)
    return to_tensor(eval_crop(im, image_size))
