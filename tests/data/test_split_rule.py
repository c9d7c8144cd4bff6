"""Split rule 2 (``us3l.data.split_rule``): an image folder without split folders is split by a hash of each image's
path, so an image added to a class moves no image of the class between train and test (rule 1, the count-based
draw of runs saved before, reshuffled the class); runs that record no rule keep rule 1 exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from us3l.data import load_dataset, load_splits
from us3l.data.datasets import FOLDER_SEED, load_folder, stratified_split
from us3l.data.split_rule import forced_keys, hash_point, path_hash_split, split_rule_of
from us3l.errors import US3LError


def _sides(keys: list[str]) -> dict[str, str]:
    labels = np.array([0 if k.startswith("a/") else 1 for k in keys])
    train, test = path_hash_split(keys, labels)
    return {**{keys[i]: "train" for i in train}, **{keys[i]: "test" for i in test}}


def test_the_rule_is_sha256_of_the_path_below_a_threshold() -> None:
    key = "a/sub/0.png"
    assert hash_point(key) == int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    keys = [f"a/{i}.png" for i in range(40)]
    sides = _sides(keys)
    assert all((sides[k] == "test") == (hash_point(k) < 0.2) for k in keys)  # no guarantee needed at 40
    # c/0..5 all hash at or above 0.2: the lowest (c/4.png, 0.243) goes to test; one image alone stays in train
    c = [f"c/{i}.png" for i in range(6)]
    assert [k for k, side in _sides(c).items() if side == "test"] == ["c/4.png"]
    assert forced_keys([k for k in c if k != "c/4.png"], ["c/4.png"]) == {"train": [], "test": ["c/4.png"]}
    assert _sides(["c/0.png"]) == {"c/0.png": "train"}
    low = ["a/0.png", "b/0.png"]  # 0.139 and 0.055: both hash into test
    assert _sides(["a/0.png", "a/8.png"]) == {"a/0.png": "test", "a/8.png": "train"}  # 0.194 > 0.139: a/8 trains
    assert set(_sides(low).values()) == {"train"}  # one image per class: each trains
    assert forced_keys(low, []) == {"train": low, "test": []}  # recorded: it goes to test once its class grows


def test_an_added_image_moves_no_image_from_train_to_test() -> None:
    """Images added one by one: none already there ever moves from train to test, and only those the guarantee
    placed (at most one per class) move at all (from test to train, once an image hashes into test)."""
    for start in (2, 3, 6):
        keys = [f"c/{i}.png" for i in range(start)]
        sides = _sides(keys)
        for added in range(start, 60):
            keys.append(f"c/{added}.png")
            now = _sides(keys)
            old = keys[:-1]
            forced = forced_keys([k for k in old if sides[k] == "train"], [k for k in old if sides[k] == "test"])
            for k, side in sides.items():
                assert not (side == "train" and now[k] == "test"), (start, added, k)
                if k not in forced["test"]:
                    assert now[k] == side, (start, added, k)
            sides = now


def _folder(root: Path, per_class: int) -> Path:
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(root / cls / f"{i}.png")
    return root


def test_an_added_image_keeps_every_other_image_on_its_side(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "imgs", 10)

    def sides() -> dict[str, str]:
        train, test = load_splits(str(folder), 16)
        return {**{p.relative_to(folder).as_posix(): "train" for p, _ in train.samples},
                **{p.relative_to(folder).as_posix(): "test" for p, _ in test.samples}}

    before = sides()
    for i in range(10, 30):
        Image.new("RGB", (4, 4)).save(folder / "a" / f"{i}.png")
    after = sides()
    assert {k: after[k] for k in before} == before


def test_runs_without_a_recorded_rule_keep_the_count_based_split(tmp_path: Path) -> None:
    """checkpoint.json without data.split_rule (saved before rule 2): the split is exactly the count-based draw."""
    from us3l.train.data_identity import load_checked_splits

    folder = _folder(tmp_path / "imgs", 10)
    spec = f"folder:{folder}"
    train, test = load_checked_splits(spec, 16, {"spec": spec})
    everything = sorted([*train.samples, *test.samples])
    want_train, want_test = stratified_split(np.array([label for _, label in everything]), 0.2, FOLDER_SEED)
    assert test.samples == [everything[i] for i in want_test] and train.samples == [everything[i] for i in want_train]
    assert split_rule_of({"spec": spec}) == 1 and split_rule_of({"split_rule": 2}) == 2
    assert load_splits(spec, 16, 1)[1].samples == test.samples != load_splits(spec, 16)[1].samples
    with pytest.raises(US3LError, match="data.split_rule is 3, not a split rule this version of us3l knows"):
        load_checked_splits(spec, 16, {"spec": spec, "split_rule": 3})


def test_the_split_rule_is_checked_once_per_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder spec's rule was checked twice, by load_dataset's _load and again by _load_folder under it; a direct
    load_folder call still checks it (the test below), once."""
    import us3l.data.datasets as datasets

    folder, calls = _folder(tmp_path / "imgs", 3), []
    real = datasets.check_split_rule
    monkeypatch.setattr(datasets, "check_split_rule", lambda rule: calls.append(rule) or real(rule))
    for load in (lambda: load_dataset(f"folder:{folder}", "train", 16), lambda: load_splits(f"folder:{folder}", 16),
                 lambda: load_folder(folder, "test", 16, 1)):
        calls.clear()
        load()
        assert len(calls) == 1


@pytest.mark.parametrize("rule", [3, 0, True, 2.0, "2", None])
def test_a_split_rule_that_is_no_rule_is_refused_in_one_line(tmp_path: Path, rule: object) -> None:
    """``load_dataset``'s ``split_rule`` is bad input like any other: one ``US3LError`` (it was a ``ValueError``
    traceback for a folder without split folders, and ignored for the built-in sets; ``True`` read as rule 1)."""
    folder = _folder(tmp_path / "imgs", 3)
    for load in (lambda: load_dataset(f"folder:{folder}", "train", 16, rule),  # type: ignore[arg-type]
                 lambda: load_splits("builtin", None, rule),  # type: ignore[arg-type]
                 lambda: load_folder(folder, "test", 16, rule)):  # type: ignore[arg-type]
        with pytest.raises(US3LError, match=f"^split_rule must be one of 1, 2, got {rule!r}$"):
            load()
    if rule is not None:  # and so is such a record in checkpoint.json (None there: rule 1, saved before the record)
        with pytest.raises(US3LError, match="not a split rule this version of us3l knows"):
            split_rule_of({"split_rule": rule})
