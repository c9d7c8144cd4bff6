"""The rule that splits an image folder without ``train/`` and ``test/`` subfolders into train and test, versioned.

- **rule 1** (``COUNT_RULE``, runs saved before 2026-12-07, whose checkpoint.json records no ``data.split_rule``):
  each class puts ``round(0.2 * n)`` of its ``n`` images (at least 1 when n >= 2) into test, drawn by a seeded
  permutation (``us3l.data.datasets.stratified_split``). The draw depends on the image count: one image added or
  removed reshuffles the class.
- **rule 2** (``PATH_HASH_RULE``, every new run): an image's *key* is its path below the data folder, POSIX
  separators (``cat/sub/1.png``: class folder name included, so two classes that number their files alike are
  split independently). ``u = first 8 bytes of sha256(key, UTF-8) / 2**64``; the image is in test when
  ``u < 0.2``. Then, in a class of n >= 2 images, if no image is in test, the image of the smallest ``u`` goes
  to test; if every image is in test, the image of the largest ``u`` goes to train (ties by key); the image of a
  class of one is in train. An image keeps its side whatever else is added or removed, except for those moves
  (``forced_keys`` names them; a run records them so that evaluation can tell whether any training image is in
  the test split now: ``us3l.train.data_identity``). Adding images only ever moves a forced test image to train
  (once another image of its class hashes into test), unless every image of the class hashed into test (about
  0.2**n of classes of n images), where the forced training image goes back to test once one hashes into train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from us3l.errors import US3LError

COUNT_RULE = 1
PATH_HASH_RULE = 2
#: The rule of new runs (recorded in checkpoint.json's ``data.split_rule``).
CURRENT_SPLIT_RULE = PATH_HASH_RULE
SPLIT_RULES = (COUNT_RULE, PATH_HASH_RULE)
TEST_FRACTION = 0.2


def split_key(path: Path, root: Path) -> str:
    """The key of the image ``path`` of the folder ``root``: its path below it, POSIX separators."""
    return path.relative_to(root).as_posix()


def hash_point(key: str) -> float:
    """``key``'s point in [0, 1): the first 8 bytes of its sha256 as a fraction of 2**64."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hashed_test(key: str) -> bool:
    """Whether rule 2 puts ``key`` into test by its hash alone (before the one-image-per-side guarantee)."""
    return hash_point(key) < TEST_FRACTION


def path_hash_split(keys: Sequence[str], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule 2 on the images ``keys`` (with class ``labels``): sorted (train indices, test indices)."""
    points = np.array([hash_point(k) for k in keys], dtype=np.float64)
    test = points < TEST_FRACTION
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:  # a class of one image trains (as under rule 1): a test image of no trained class scores
            test[idx] = False  # nothing but the kNN's failure
            continue
        order = sorted(idx, key=lambda i: (points[i], keys[i]))
        if not test[idx].any():
            test[order[0]] = True
        elif test[idx].all():
            test[order[-1]] = False
    return np.flatnonzero(~test), np.flatnonzero(test)


def forced_keys(train_keys: Sequence[str], test_keys: Sequence[str]) -> dict[str, list[str]]:
    """The images of a rule-2 split that are not on their hash's side (moved by the guarantee), sorted."""
    return {"train": sorted(k for k in train_keys if hashed_test(k)),
            "test": sorted(k for k in test_keys if not hashed_test(k))}


def check_split_rule(rule: Any) -> int:
    """``rule`` where it is one of :data:`SPLIT_RULES` (an ``int``: ``True`` is not rule 1), else a one-line
    ``US3LError`` (``load_dataset``'s ``split_rule``)."""
    if not _known(rule):
        raise US3LError(f"split_rule must be one of {', '.join(map(str, SPLIT_RULES))}, got {rule!r}")
    return int(rule)


def _known(rule: Any) -> bool:
    """Whether ``rule`` is one of :data:`SPLIT_RULES`, as an ``int`` (not ``True``, not ``2.0``)."""
    return not isinstance(rule, bool) and isinstance(rule, int) and rule in SPLIT_RULES


def split_rule_of(trained: Any) -> int:
    """The split rule a run's data (checkpoint.json's ``data``) was split with: its ``split_rule``, rule 1 where it
    records none (saved before the rule was recorded); one this version does not know is a ``US3LError``."""
    rule = trained.get("split_rule") if isinstance(trained, dict) else None
    if rule is None:
        return COUNT_RULE
    if not _known(rule):
        raise US3LError(f"checkpoint.json's data.split_rule is {rule!r}, not a split rule this version of us3l knows "
                        f"({', '.join(map(str, SPLIT_RULES))}); upgrade us3l to use this run")
    return int(rule)
