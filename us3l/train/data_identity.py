"""What identifies a training run's data set, so that ``--resume`` can refuse other data of the same shape, and
evaluation can refuse the run's own automatically split folder once it has changed (``check_split_unchanged``).

Class count, split sizes and normalisation (``checkpoint.json``'s ``data``) do not tell two image folders of
the same size apart: folder and CIFAR data are normalised with fixed constants, not statistics of their images.
The fingerprint hashes the class names and, per split, what each sample is: a folder image's label, its path
below its class folder and its size in bytes (the folder walk's ``stat`` of it, carried in the data set's
``file_stats``, so no image is stat-ed twice, opened or read; a data set moved or copied elsewhere keeps them,
whatever its absolute path and modification times), an in-memory image's pixels and
label. An image replaced under its name by one of the same byte size is not seen.

Versions (``v<N>:`` before the digest): 1 hashed a folder image's label and path only; 2 (since 2026-12-07) adds
its size. In-memory data (CIFAR, the built-in sets) is hashed as in version 1: only its prefix changed. A recorded
fingerprint of a version this code still computes (:data:`COMPUTED_VERSIONS`) is compared with the data's
fingerprint of that version (:class:`DataFingerprint`), so checkpoints and accuracy files written before keep their
checks; one of another version is not compared.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from us3l.data.split_rule import (
    CURRENT_SPLIT_RULE,
    PATH_HASH_RULE,
    forced_keys,
    hashed_test,
    split_key,
    split_rule_of,
)
from us3l.errors import US3LError

#: Bumped when what the fingerprint covers changes: 2 added a folder image's size to its label and path.
FINGERPRINT_VERSION = 2
#: The versions :func:`data_fingerprint` computes: a recorded fingerprint of one of them is compared at its version.
COMPUTED_VERSIONS = (1, 2)
#: checkpoint.json's ``data`` key of the names-only (version-1) fingerprint recorded beside the fingerprint (since
#: 2026-12-07: ``fingerprint_record``).
NAMES_FINGERPRINT = "names_fingerprint"


class DataFingerprint(str):
    """The data's fingerprint of :data:`FINGERPRINT_VERSION` (what is recorded: a plain ``str`` to JSON), which knows
    the same data's fingerprint of each of :data:`COMPUTED_VERSIONS` (``of_version``) for comparison with a record of
    an earlier version. Read back from a file it is a plain string, and compares with records of its version only."""

    by_version: dict[str, str]

    def of_version(self, prefix: str) -> str | None:
        """The data's fingerprint of the version ``prefix`` (``"v1"``), or None where this code does not compute it."""
        return getattr(self, "by_version", {}).get(prefix)


def data_fingerprint(train_ds: Any, test_ds: Any) -> DataFingerprint:
    """``v<FINGERPRINT_VERSION>:<sha256>`` of the class names and both splits' samples (with the fingerprints of the
    earlier versions: :class:`DataFingerprint`). An image the walk did not stat (a data set without ``file_stats``)
    is stat-ed here; one that cannot be is a one-line ``US3LError``."""
    splits = (train_ds, test_ds)
    if all(getattr(ds, "samples", None) is not None for ds in splits):
        keys = [_folder_keys(ds) for ds in splits]
        digests = {v: _digest(train_ds.classes, ([_joined(k, v)] for k in keys)) for v in COMPUTED_VERSIONS}
    else:  # in-memory data: hashed alike by every version (its pixels are read anyway)
        digest = _digest(train_ds.classes, (_tensor_chunks(ds) for ds in splits))
        digests = dict.fromkeys(COMPUTED_VERSIONS, digest)
    fp = DataFingerprint(f"v{FINGERPRINT_VERSION}:{digests[FINGERPRINT_VERSION]}")
    fp.by_version = {f"v{v}": f"v{v}:{d}" for v, d in digests.items()}
    return fp


@dataclass(frozen=True)
class LoadedData:
    """Both splits of the data spec ``spec`` under ``split_rule``, loaded once (``us3l train`` loads them for its data
    check before the resolved config is printed, quickstart for its train step): training, quickstart's reuse check
    and its evaluation use them (``splits_for``) rather than reading the spec again, and their :attr:`fingerprint`,
    computed once for all of them."""

    spec: str
    train: Any
    test: Any
    split_rule: int = CURRENT_SPLIT_RULE

    @cached_property
    def fingerprint(self) -> DataFingerprint:
        """The splits' :func:`data_fingerprint` (of no image size: names and sizes, or in-memory pixels)."""
        return data_fingerprint(self.train, self.test)

    def splits_for(self, spec: str, image_size: int | None, split_rule: int) -> tuple[Any, Any] | None:
        """The splits with folder images decoded at ``image_size`` (the default size where None, as loaded) where
        they are those of ``spec`` (``same_data_spec``) under ``split_rule``; else None (read ``spec`` then)."""
        from us3l.data.datasets import same_data_spec
        from us3l.data.folder import is_folder

        if split_rule != self.split_rule or not same_data_spec(spec, self.spec):
            return None
        if image_size is not None and is_folder(self.train):
            return replace(self.train, image_size=image_size), replace(self.test, image_size=image_size)
        return self.train, self.test


def _digest(classes: list[str], splits: Iterable[Iterable[bytes]]) -> str:
    h = hashlib.sha256()
    h.update("\n".join(classes).encode("utf-8", "surrogateescape") + b"\0")
    for chunks in splits:
        for chunk in chunks:
            h.update(chunk)
        h.update(b"\0split\0")
    return h.hexdigest()


def _folder_keys(ds: Any) -> list[tuple[str, int]]:
    """Per image of a folder data set (``samples``: (path, label)): ``label<TAB>path below its class folder`` and its
    size in bytes: as the folder walk ``stat``-ed it (``file_stats``), else ``os.stat`` (links followed, as the walk
    follows them)."""
    from us3l.data.datasets import walked_stats

    walked = walked_stats(ds)
    sizes = walked.sizes.tolist() if walked is not None else [_size(path) for path, _ in ds.samples]
    return [(f"{label}\t{_below_class(path, ds.classes[label])}", size)
            for (path, label), size in zip(ds.samples, sizes, strict=True)]


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:  # removed or made unreadable since the folder was read
        raise US3LError(f"cannot read image {path}: {exc.strerror or exc}") from None


def _joined(keys: list[tuple[str, int]], version: int) -> bytes:
    """The folder keys as version ``version`` hashes them, sorted: label and path (1), and size (2)."""
    lines = [name if version == 1 else f"{name}\t{size}" for name, size in keys]
    return "\n".join(sorted(lines)).encode("utf-8", "surrogateescape")


def _tensor_chunks(ds: Any) -> list[bytes]:
    return [ds.labels.contiguous().numpy().tobytes(), ds.images.contiguous().numpy().tobytes()]


def _below_class(path: Any, class_name: str) -> str:
    """``path`` from its class folder on (``cat/sub/1.png``), whatever the data set's own location."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == class_name:
            return "/".join(parts[i:])
    return path.name


def fingerprint_version(fingerprint: str) -> str:
    """The version prefix of a fingerprint (``"v2"`` of ``"v2:<sha256>"``)."""
    return fingerprint.split(":")[0]


def _counterpart(recorded: Any, now: str) -> str | None:
    """The data's fingerprint to compare ``recorded`` with: ``now`` where of the same version, the data's fingerprint
    of ``recorded``'s version where ``now`` is a :class:`DataFingerprint` that computes it; else None (not compared:
    no fingerprint recorded, saved before fingerprints were, or of a version this code does not compute)."""
    if not isinstance(recorded, str):
        return None
    version = fingerprint_version(recorded)
    if version == fingerprint_version(now):
        return now
    return now.of_version(version) if isinstance(now, DataFingerprint) else None


def fingerprint_differs(recorded: Any, now: str) -> bool:
    """Whether ``recorded`` (a checkpoint's ``data.fingerprint``) differs from the data's fingerprint of its version
    (``now``: :func:`data_fingerprint`'s, or a plain string of the same version); one of a version not computed
    here, or none (saved before fingerprints were), is not compared."""
    other = _counterpart(recorded, now)
    return other is not None and recorded != other


def comparable(recorded: Any, now: str) -> bool:
    """Whether ``recorded`` (a checkpoint's ``data.fingerprint``) is compared with ``now`` (``fingerprint_differs``):
    a fingerprint of ``now``'s version, or of an earlier one that ``now`` (a :class:`DataFingerprint`) computes."""
    return _counterpart(recorded, now) is not None


def split_record(spec: str, train_ds: Any, test_ds: Any, rule: int) -> dict[str, Any]:
    """What a run records of how its data was split (checkpoint.json's ``data``): the split rule (``split_rule``) and,
    for an image folder without split folders under rule 2, the images the rule's one-image-per-side guarantee
    moved off their hash's side (``split_forced``: at most one per class), which ``check_split_unchanged`` needs to
    tell whether a training image is in the test split of the folder changed since."""
    record: dict[str, Any] = {"split_rule": rule}
    folder = _auto_split_folder(spec)
    if folder is not None and rule == PATH_HASH_RULE and getattr(train_ds, "samples", None) is not None:
        record["split_forced"] = forced_keys([split_key(p, folder) for p, _ in train_ds.samples],
                                             [split_key(p, folder) for p, _ in test_ds.samples])
    return record


@dataclass(frozen=True)
class DataChange:
    """How the run's own automatically split folder changed since it trained, where evaluating it is allowed
    (``check_split_unchanged``): ``names_same``, the same image and class names with other byte sizes (images
    replaced or edited under their names: the split is the run's under either rule, but not every image is); else
    (False: other images or class names; None: the record does not tell which, ``_names_unchanged``) under split
    rule 2 with no training image in the test split."""

    names_same: bool | None

    def warning(self, spec: str, tail: str = "") -> str:
        """The one-line warning (without ``warning:``) for ``spec`` changed so, ``tail`` (what the command does
        about it) after a semicolon: eval's and calibration's alike (:func:`warn_changed`)."""
        if self.names_same:
            text = (f"{spec} changed since the run was trained on it (the same image and class names, other byte "
                    "sizes: images replaced or edited under their names): its train/test split is the run's, but "
                    "the images are not all the ones it trained and was tested on")
        else:
            text = (f"{spec} changed since the run was trained on it ({_difference_text(self.names_same)}): no image "
                    "the run trained on is in its test split (split rule 2), but the test set is not the run's")
        return f"{text}; {tail}" if tail else text


def warn_changed(spec: str, change: DataChange | None, tail: str = "") -> None:
    """One ``warning:`` line on stderr where ``change`` (``check_split_unchanged``'s answer) says the run's own
    folder changed since training; nothing where it is None."""
    if change is not None:
        from us3l.cli_output import warn

        warn(change.warning(spec, tail), markup=False)


def check_split_unchanged(trained: Any, spec: str, train_ds: Any, test_ds: Any,
                          now: str | None = None) -> DataChange | None:
    """Refuse (one line) the splits ``train_ds``/``test_ds`` of ``spec`` where ``spec`` is the folder a run trained
    on (``trained``: its checkpoint.json's ``data``), split automatically (no ``train/`` folder), and changed since
    (its fingerprint differs), unless no image the run trained on can be in the test split now; returns how it
    changed where it is allowed (:class:`DataChange`), None where it is unchanged or not compared. Where the image
    and class names are unchanged (``data.names_fingerprint``, the names-only fingerprint a run records since
    2026-12-07, or the recorded fingerprint itself where it is of version 1, still matches) only byte sizes
    changed: the split, by names under rule 2 and by image counts under rule 1, is the run's, so it is allowed
    under either rule. Under split rule 1 (runs that record no ``split_rule``) the 80/20 draw of each class depends
    on its image count, so other names (an image added or removed reshuffles the class), or a change the record
    cannot tell from that (a version-2 fingerprint without ``names_fingerprint``), is refused. Under rule 2 an
    image keeps its side unless the rule's one-image-per-side guarantee moved it; with the moved images the run
    recorded (``split_forced``), a test image now is one the run trained on exactly when its hash puts it into
    training and the run did not move it to test, or its hash puts it into test and the run moved it to training:
    refused then, allowed otherwise. Other data (another folder, a folder with split folders, CIFAR, the built-in
    sets) is not compared (None): evaluating on it is legitimate. A run that recorded its folder as a relative path
    (before 2026-12-07) is compared where that path, taken from the working directory, is ``spec``
    (``with_anchored_record``); without a fingerprint to compare it is refused. ``now``: the splits'
    ``data_fingerprint`` where the caller has it already (each computation stats every image); else computed here,
    where compared."""
    folder = _trained_auto_split(trained, spec)
    if folder is None:
        return None
    recorded = trained.get("fingerprint")
    if now is None:
        now = data_fingerprint(train_ds, test_ds)
    relative = trained.get(_RELATIVE)
    if relative is not None and not comparable(recorded, now):
        raise US3LError(f"cannot tell whether {folder} is the data this run trained on: its checkpoint.json records "
                        f"the relative path {relative!r} (written before 2026-12-07) and no data.fingerprint to "
                        "compare; pass --data with the absolute path of the folder")
    if not fingerprint_differs(recorded, now):
        return None
    names_same = _names_unchanged(trained, now)
    if relative is not None:
        maybe = ("with images replaced since" if names_same else "changed since, whose 80/20 split may have "
                 "reshuffled")
        raise US3LError(f"{folder} is not the data this run recorded as the relative path {relative!r} "
                        f"({_difference_text(names_same)} than its data.fingerprint): it may be the run's folder "
                        f"{maybe}, or another folder; pass --data with the absolute path of the folder to evaluate it "
                        "as other data")
    if names_same:
        return DataChange(names_same=True)
    if split_rule_of(trained) == PATH_HASH_RULE:
        leak = _trained_test_image(trained.get("split_forced"), folder, test_ds)
        if leak is None:
            return DataChange(names_same=names_same)
        raise US3LError(f"{folder} changed since the run was trained on it, and its test split now holds {leak}, "
                        "which the run may have trained on (moved by the split rule's one-test-image-per-class "
                        "guarantee); restore the folder as it was, or evaluate on a folder with explicit train/ and "
                        "test/ subfolders")
    what = f"{_difference_text(names_same)} than its checkpoint.json's data.fingerprint"
    if names_same is None:
        what += ", which does not tell which: it records no data.names_fingerprint"
    raise US3LError(f"{folder} changed since the run was trained on it ({what}): a folder without train/ and test/ "
                    "subfolders is split 80/20 per class by its image count, so its test split may now hold images "
                    "the run trained on; restore the folder as it was, or evaluate on a folder with explicit train/ "
                    "and test/ subfolders")


def _names_unchanged(trained: dict[str, Any], now: str) -> bool | None:
    """Whether the image and class names of the data ``now`` (its fingerprint, which differs from the recorded one)
    are the run's: by ``names_fingerprint`` (recorded beside a version-2 fingerprint since 2026-12-07), or the
    recorded fingerprint itself where it is of version 1 (names only: it differs, so names changed). None where
    the record cannot tell (a version-2 fingerprint without ``names_fingerprint``)."""
    if fingerprint_version(trained.get("fingerprint") or "") == "v1":
        return False
    names = trained.get(NAMES_FINGERPRINT)
    if not (isinstance(names, str) and fingerprint_version(names) == "v1" and comparable(names, now)):
        return None
    return not fingerprint_differs(names, now)


def difference(trained: dict[str, Any], now: str) -> str:
    """What differs between the data a run recorded (``trained``: checkpoint.json's ``data``) and the data of the
    fingerprint ``now``, which differs from the recorded one, as far as the record tells (``_names_unchanged``)."""
    return _difference_text(_names_unchanged(trained, now))


def _difference_text(names_same: bool | None) -> str:
    """What differs, in words, by ``_names_unchanged``'s answer (None: the record does not tell)."""
    if names_same is None:
        return "other images, class names or image byte sizes"
    return "the same image and class names, other byte sizes" if names_same else "other images or class names"


def fingerprint_record(fingerprint: DataFingerprint) -> dict[str, str]:
    """What checkpoint.json's ``data`` records of the data's fingerprint: ``fingerprint`` (the current version's)
    and, where it differs from it (image folders), ``names_fingerprint``: the names-only fingerprint (version 1),
    so that a changed folder's check can tell other names (a rule-1 split reshuffled) from other byte sizes."""
    record = {"fingerprint": str(fingerprint)}
    names = fingerprint.of_version("v1")
    if names is not None and names.split(":")[1] != fingerprint.split(":")[1]:
        record[NAMES_FINGERPRINT] = names
    return record


def _trained_test_image(forced: Any, folder: Path, test_ds: Any) -> str | None:
    """The first image of ``test_ds`` (a rule-2 split of ``folder``) that may have been in the run's training split,
    given the images the run's split moved (``forced``: its ``split_forced``); all of them where it records none."""
    if not (isinstance(forced, dict) and all(isinstance(forced.get(k), list) for k in ("train", "test"))):
        return "images the run may have trained on (its checkpoint.json records no data.split_forced)"
    was_train, was_test = set(forced["train"]), set(forced["test"])
    for path, _ in test_ds.samples:
        key = split_key(path, folder)
        if (key in was_train) if hashed_test(key) else (key not in was_test):
            return str(path)
    return None


def load_checked_splits(spec: str, image_size: int | None, trained: Any) -> tuple[Any, Any]:
    """``us3l.data.load_splits(spec, image_size)`` with the run's split rule, refused where ``check_split_unchanged``
    refuses them."""
    spec, train_ds, test_ds, fingerprint = _run_splits(spec, image_size, trained)
    check_split_unchanged(trained, spec, train_ds, test_ds, fingerprint)
    return train_ds, test_ds


def checked_splits(spec: str, image_size: int | None,
                   trained: Any) -> tuple[Any, Any, DataChange | None, DataFingerprint]:
    """:func:`load_checked_splits`, how they are the run's own folder changed since, where allowed (None: unchanged or
    not compared), and their ``data_fingerprint``: computed once, for the check and the caller's record (``us3l
    eval``'s ``data_check``), or the one of the data read already (``reusing``)."""
    spec, train_ds, test_ds, fingerprint = _run_splits(spec, image_size, trained)
    if fingerprint is None:
        fingerprint = data_fingerprint(train_ds, test_ds)
    return train_ds, test_ds, check_split_unchanged(trained, spec, train_ds, test_ds, fingerprint), fingerprint


def _run_splits(spec: str, image_size: int | None, trained: Any) -> tuple[str, Any, Any, DataFingerprint | None]:
    """``spec`` anchored (its images' paths below the folder are what rule 2 and its check key on) and its splits
    under the run's split rule, with their fingerprint where they are data read already (``reusing``); else read
    (fingerprint None)."""
    from us3l.data.datasets import anchored_data_spec, load_splits

    spec = anchored_data_spec(spec)
    rule = split_rule_of(trained)
    reused = _reused(spec, image_size, rule)
    if reused is not None:
        (train_ds, test_ds), loaded = reused
        return spec, train_ds, test_ds, loaded.fingerprint
    return spec, *load_splits(spec, image_size, rule), None


def _reused(spec: str, image_size: int | None, rule: int) -> tuple[tuple[Any, Any], LoadedData] | None:
    """The splits of ``spec`` under ``rule`` at ``image_size`` (``LoadedData.splits_for``) of the data read already
    in this scope (``reusing``), and that data (its fingerprint, computed once); None where there is none."""
    for loaded in _REUSED.get() or ():
        splits = loaded.splits_for(spec, image_size, rule)
        if splits is not None:
            return splits, loaded
    return None


#: The data read once in this scope (``reusing``).
_REUSED: ContextVar[list[LoadedData] | None] = ContextVar("us3l_reused_data", default=None)


@contextmanager
def reusing() -> Iterator[list[LoadedData]]:
    """A scope (a quickstart run) whose data, read once (``LoadedData``, appended to the list it yields: the train
    step's), the checks of the run's data (``checked_splits``, ``load_checked_splits``, ``load_checked_train_split``:
    evaluation, BN and INT8 calibration) take with its fingerprint where it is the data they ask for (the same spec,
    split rule), rather than walk the folder and fingerprint it again."""
    held: list[LoadedData] = []
    token = _REUSED.set(held)
    try:
        yield held
    finally:
        _REUSED.reset(token)


def load_checked_train_split(spec: str, image_size: int | None, trained: Any) -> Any:
    """The train split of ``spec`` (BN and INT8 calibration), refused as ``check_split_unchanged`` refuses it: a
    changed folder's train split holds images of the run's test split, whose statistics would be stored and
    scored on it. Where it allows the run's folder changed since, one warning line says so, eval's
    (``warn_changed``). Both splits of such a folder are read (one walk, as for one split); other data reads one; in a
    ``reusing`` scope, the data read already where it is ``spec``, whatever its layout."""
    from us3l.data.datasets import load_dataset

    if _trained_auto_split(trained, spec) is None:  # not compared: the data read already, else its train split
        reused = _reused(spec, image_size, split_rule_of(trained))
        return reused[0][0] if reused is not None else load_dataset(spec, "train", image_size, split_rule_of(trained))
    anchored, train_ds, test_ds, fingerprint = _run_splits(spec, image_size, trained)
    warn_changed(spec, check_split_unchanged(trained, anchored, train_ds, test_ds, fingerprint), CALIBRATING_CHANGED)
    return train_ds


#: What calibration does on the run's own folder changed since, where allowed (``warn_changed``'s ``tail``).
CALIBRATING_CHANGED = "calibrating on its train split as it is now"


#: The key ``with_anchored_record`` adds to a run's ``data``: the relative spec it recorded.
_RELATIVE = "relative_spec"


def with_anchored_record(trained: Any, typed: str | None) -> Any:
    """A run's ``data`` (checkpoint.json) for comparison with the data ``typed`` on a command line: a relative spec it
    recorded (written before 2026-12-07: the directory it was typed in is unknown) is taken from the working
    directory when ``typed`` is relative too (the same relative path typed again names the run's folder, or a
    lookalike that only its fingerprint tells apart); ``typed`` absolute names other data, as the user says."""
    from us3l.data.datasets import anchored_data_spec

    recorded = trained.get("spec") if isinstance(trained, dict) else None
    if not isinstance(recorded, str) or typed is None or anchored_data_spec(recorded) == recorded:
        return trained
    if anchored_data_spec(typed) == typed:
        return trained
    return {**trained, "spec": anchored_data_spec(recorded), _RELATIVE: recorded}


def _auto_split_folder(spec: str) -> Path | None:
    """The image folder ``spec`` names where it has no split folders (split by a rule); else None."""
    from us3l.data.datasets import has_split_folders, parse_data_spec

    try:
        kind, path = parse_data_spec(spec)
    except US3LError:
        return None
    return path if kind == "folder" and path is not None and not has_split_folders(path) else None


def _trained_auto_split(trained: Any, spec: str) -> Path | None:
    """The folder ``spec`` names where it is the one ``trained`` (checkpoint.json's ``data``) records, as resolved
    paths (a relative ``spec`` is taken from the working directory; a relative recorded spec, written before
    2026-12-07, names no known folder and is not compared unless ``with_anchored_record`` anchored it), laid out
    without split folders; else None."""
    from us3l.data.datasets import anchored_data_spec, parse_data_spec, same_data_spec

    recorded = trained.get("spec") if isinstance(trained, dict) else None
    if not isinstance(recorded, str):
        return None
    spec = anchored_data_spec(spec)
    try:
        _, trained_path = parse_data_spec(recorded)
    except US3LError:
        return None
    if trained_path is None or not trained_path.is_absolute() or not same_data_spec(recorded, spec):
        return None
    return _auto_split_folder(spec)
