"""``us3l.data.overlap``: test images of an image folder identical to training images (copies, hard links), found
without opening the files whose size no file of the other split has."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from us3l.data import load_splits
from us3l.data import overlap as ov
from us3l.data.split_rule import hashed_test


def _noise(path: Path, seed: int, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def split_folder(root: Path) -> Path:
    """``root/{train,test}/{a,b}``: 3 training and 1 test image of random noise per class, all different."""
    seed = 0
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("a", "b"):
            for i in range(n):
                seed += 1
                _noise(root / split / cls / f"{i}.png", seed)
    return root


def _overlap(root: Path) -> tuple[Path, ov.Overlap]:
    found = ov.folder_overlap(f"folder:{root}", *load_splits(f"folder:{root}", 16))
    assert found is not None
    return found


def test_a_copy_and_a_hard_link_across_the_splits_are_counted(tmp_path: Path) -> None:
    root = split_folder(tmp_path / "imgs")
    shutil.copy(root / "train" / "b" / "2.png", root / "test" / "b" / "z.png")  # a copy under another name
    os.link(root / "train" / "a" / "1.png", root / "test" / "a" / "x.png")  # a hard link
    folder, found = _overlap(root)
    assert folder == root
    assert found == ov.Overlap(2, (root / "test" / "a" / "x.png", root / "train" / "a" / "1.png"))
    assert ov.overlap_warning(folder, found) == (
        f"2 test images of {root} are identical to training images (first: test/a/x.png = train/a/1.png); their "
        "accuracy counts images that the kNN bank, the linear probe and a network trained on this data have seen")


def test_a_folder_without_overlaps_counts_0_even_where_sizes_or_heads_agree(tmp_path: Path) -> None:
    """Same size, other bytes; and files over the 64 KiB head whose heads agree and tails differ: not identical."""
    root = split_folder(tmp_path / "imgs")
    folder, found = _overlap(root)
    assert found == ov.Overlap(0) and ov.overlap_warning(folder, found) is None
    same = bytes(ov.HEAD_BYTES) + b"tail"
    train = [tmp_path / "tr1", tmp_path / "tr2"]
    test = [tmp_path / "te1", tmp_path / "te2"]
    train[0].write_bytes(b"abcd")
    test[0].write_bytes(b"abce")  # the size of tr1
    train[1].write_bytes(same)
    test[1].write_bytes(same[:-1] + b"!")  # tr2's head, another tail
    assert ov.find_overlaps(train, test) == ov.Overlap(0)
    test[1].write_bytes(same)
    assert ov.find_overlaps(train, test) == ov.Overlap(1, (test[1], train[1]))


def test_a_copy_that_the_split_rule_puts_into_test_is_counted(tmp_path: Path) -> None:
    """A folder without split folders (split rule 2, by path hash): a training image copied under a new name that
    hashes into test is a test image the training split holds."""
    root = tmp_path / "imgs"
    for cls, first in (("a", 0), ("b", 100)):
        for i in range(8):
            _noise(root / cls / f"{i}.png", first + i)
    train, _ = load_splits(f"folder:{root}", 16)
    source = next(p for p, label in train.samples if label == 0)
    name = next(f"copy{i}.png" for i in range(100) if hashed_test(f"a/copy{i}.png"))
    assert _overlap(root)[1].count == 0
    shutil.copy(source, root / "a" / name)
    folder, found = _overlap(root)
    assert found == ov.Overlap(1, (root / "a" / name, source))
    assert f"(first: a/{name} = a/{source.name})" in str(ov.overlap_warning(folder, found))


def test_only_files_of_a_size_in_both_splits_are_read_and_each_at_most_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[Path, int | None]] = []
    digest = ov._digest

    def counted(path: Path, limit: int | None) -> bytes | None:
        reads.append((path, limit))
        return digest(path, limit)

    monkeypatch.setattr(ov, "_digest", counted)

    def write(name: str, data: bytes) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    big = bytes(ov.HEAD_BYTES) + b"x"
    train = [write("tr_unique", b"1"), write("tr_pair", b"ab"), write("tr_big1", big),
             write("tr_big2", big[:-1] + b"y"), write("tr_other", b"cd")]
    test = [write("te_unique", b"123"), write("te_pair", b"ab"), write("te_big", big)]
    os.link(tmp_path / "tr_pair", tmp_path / "tr_pair_link")
    test.append(tmp_path / "tr_pair_link")  # a link: identical without a read
    found = ov.find_overlaps(train, test)
    assert found.count == 3
    read = {p.name for p, _ in reads}
    assert read == {"tr_pair", "tr_other", "te_pair", "tr_big1", "tr_big2", "te_big"}  # no unique size, no link
    for name in read:
        limits = [limit for p, limit in reads if p.name == name]
        assert sorted(limits, key=str) == sorted({*limits}, key=str) and len(limits) <= 2, (name, limits)
    # the whole file only where the head agrees with a training file's (tr_big2's head is tr_big1's)
    assert {p.name for p, limit in reads if limit is None} == {"tr_big1", "tr_big2", "te_big"}
