"""One ``us3l eval`` ``stat``-ed every image of an image folder three times: the folder walk, the data fingerprint
(``us3l.train.data_identity``) and the train/test overlap check (``us3l.data.overlap``). The walk's ``stat`` of each
image (its size and inode) is carried in the data sets (``file_stats``) to the other two; the fingerprints it gives
are those the previous code computed, so recorded ones still match."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import pytest

from tests.eval.test_changed_folder import _auto_folder
from tests.train.conftest import write_tiny_config
from us3l.cli import main
from us3l.data import load_splits
from us3l.train.data_identity import data_fingerprint

#: The fingerprints of :func:`_fixed_folder` as us3l computed them before the walk's sizes were carried (63f1c07),
#: by split rule: (version 2, version 1).
BEFORE = {
    1: ("v2:ac838d4826ec7158d078f82d58b662781b83f644c96ccbd8ab246f04c53f1f6d",
        "v1:96cc6e73cfd33c678f3ea7db188806aaba8dc12e38e35dcfb5367c48323ef1b8"),
    2: ("v2:52d97e1c919fbd0658ca5b6fb9bf18e24b0c1a8ba84e526f9f994e739cff1187",
        "v1:ec6fcc0164b45b6b285279e11b866ba18095b06ef845270cff1bbd25c0960f82"),
}


def _fixed_folder(root: Path) -> Path:
    """Two classes of files of fixed names and sizes (the fingerprint reads no image), one in a subfolder, and a
    symbolic link to a file outside the folder (its target's size counts)."""
    folder, outside = root / "imgs", root / "outside"
    outside.mkdir(parents=True)
    (outside / "big.png").write_bytes(b"o" * 1000)
    for cls, n in (("cat", 7), ("dog", 5)):
        for i in range(n):
            path = folder / cls / ("sub" if i == 3 else "") / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([i]) * (10 * i + len(cls)))
    (folder / "cat" / "link.png").symlink_to(outside / "big.png")
    return folder


@pytest.mark.parametrize("rule", [1, 2])
def test_fingerprints_of_the_previous_code_still_match(tmp_path: Path, rule: int) -> None:
    train, test = load_splits(f"folder:{_fixed_folder(tmp_path)}", split_rule=rule)
    from us3l.data.datasets import walked_stats

    assert all(walked_stats(ds) is not None and len(walked_stats(ds).sizes) == len(ds) for ds in (train, test))
    fingerprint = data_fingerprint(train, test)
    assert (fingerprint, fingerprint.of_version("v1")) == BEFORE[rule]
    # without the walk's sizes (a data set built elsewhere) each image is stat-ed: the same fingerprint
    from dataclasses import replace

    again = data_fingerprint(replace(train, file_stats=None), replace(test, file_stats=None))
    assert (again, again.of_version("v1")) == BEFORE[rule]


def _count_stats(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Calls of os.stat and os.lstat on each image (``.png``) from now on."""
    counts: collections.Counter[str] = collections.Counter()
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def counted(path: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if str(path).endswith(".png"):
                counts[str(path)] += 1
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, counted)
    return counts


@pytest.mark.slow  # 1.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_one_eval_stats_each_image_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder walk, the fingerprint and the overlap check of one eval: one stat per image (three before)."""
    folder = _auto_folder(tmp_path / "imgs")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    counts = _count_stats(monkeypatch)
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(tmp_path / "out")]) == 0
    images = sorted(str(p) for p in folder.rglob("*.png"))
    assert sorted(counts) == images and set(counts.values()) == {1}
