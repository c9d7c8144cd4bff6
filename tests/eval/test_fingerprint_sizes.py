"""An image folder's data fingerprint covered its images' names only: an image replaced under its name (re-encoded,
resized, another picture) was the same data to ``--resume``, ``us3l eval`` and an accuracy file merge. Version 2 adds
each image's byte size (``os.stat``: no image is read; a copy elsewhere keeps it), and a record of version 1 (an
older checkpoint or accuracy file) is still compared, with the data's version-1 fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.eval.conftest import SIZE
from tests.eval.test_changed_folder import _auto_folder, _changed
from tests.train.conftest import write_tiny_config
from us3l.cli import main
from us3l.data import load_splits
from us3l.errors import US3LError
from us3l.train.data_identity import data_fingerprint


def _picture(path: Path, seed: int, compress_level: int = 6) -> None:
    """A SIZE-px noise PNG at ``path`` (``compress_level`` 0: stored, its byte size fixed by its pixel size)."""
    arr = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, compress_level=compress_level)


def _v1(spec: str) -> str:
    """Version 1 of the fingerprint, as us3l computed it before version 2 (class names, then per split the sorted
    ``label<TAB>class/name`` of its images), for forging an older record."""
    h = hashlib.sha256()
    train, test = load_splits(spec, SIZE, split_rule=1)
    h.update("\n".join(train.classes).encode() + b"\0")
    for ds in (train, test):
        keys = sorted(f"{label}\t{ds.classes[label]}/{p.name}" for p, label in ds.samples)
        h.update("\n".join(keys).encode() + b"\0split\0")
    return f"v1:{h.hexdigest()}"


def _train(tmp_path: Path, folder: Path) -> Path:
    """A 1-epoch run on ``folder``, its checkpoint.json set to 2 epochs (so that ``--resume`` has one to train)."""
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["config"]["epochs"] = 2
    (run / "checkpoint.json").write_text(json.dumps(meta))
    return run


def _eval(run: Path, folder: Path, out: Path) -> int:
    return main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(out)])


def _refused_resume(folder: Path) -> str:
    return (f"is not the data this run trained on (folder:{folder}): other images or class names (its fingerprint "
            "differs); --resume continues on the same data")


def test_an_image_replaced_under_its_name_is_other_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another picture of another byte size under an image's name: eval says the run's folder changed (split rule 2:
    with a warning, data_check.changed_since_training), --resume refuses it; a `cp -r` copy made before goes on."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _train(tmp_path, folder)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)  # other mtimes, same names and sizes
    image = folder / "a" / "0.png"
    size = image.stat().st_size
    _picture(image, seed=99)
    assert image.stat().st_size != size
    capsys.readouterr()
    assert _eval(run, folder, tmp_path / "out") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"warning: folder:{folder} changed since the run was trained on it" in err
    assert json.loads((tmp_path / "out" / "accuracy.json").read_text())["data_check"]["changed_since_training"]
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 1
    assert _refused_resume(folder) in " ".join(capsys.readouterr().err.split())
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--data", f"folder:{copy}"]) == 0


def test_a_copy_elsewhere_keeps_the_fingerprint(tmp_path: Path) -> None:
    """Data moved or copied (`cp -r`: other absolute paths, other modification times) is the same data."""
    folder = _auto_folder(tmp_path / "imgs")
    copy = tmp_path / "elsewhere" / "data"
    copy.parent.mkdir()
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    for path in copy.rglob("*.png"):
        os.utime(path, (1_000_000, 1_000_000))
    assert (copy / "a" / "0.png").stat().st_mtime != (folder / "a" / "0.png").stat().st_mtime
    assert data_fingerprint(*load_splits(f"folder:{folder}")) == data_fingerprint(*load_splits(f"folder:{copy}"))


def test_a_checkpoint_of_the_previous_version_is_still_compared(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint saved with a version-1 fingerprint (names only) is compared with the data's version-1 fingerprint:
    an image renamed is refused by eval (the count-based split of a run saved before split rule 2) and by --resume,
    where "another version: not compared" let both go on. Version 1 does not see an image replaced under its name."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _train(tmp_path, folder)
    spec = f"folder:{folder}"
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["data"].pop("split_rule")
    meta["data"].pop("split_forced")
    train, test = load_splits(spec, SIZE, split_rule=1)
    meta["data"].update(fingerprint=_v1(spec), train_size=len(train), test_size=len(test))  # as saved then
    (run / "checkpoint.json").write_text(json.dumps(meta))
    assert data_fingerprint(train, test).of_version("v1") == _v1(spec)
    out = tmp_path / "out"
    assert _eval(run, folder, out) == 0  # unchanged: the same data
    (folder / "a" / "0.png").rename(folder / "a" / "0b.png")  # same split sizes, another name
    capsys.readouterr()
    assert _eval(run, folder, out) == 1
    assert capsys.readouterr().err == _changed(folder)
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 1
    assert _refused_resume(folder) in " ".join(capsys.readouterr().err.split())
    (folder / "a" / "0b.png").rename(folder / "a" / "0.png")
    _picture(folder / "a" / "0.png", seed=99)  # version 1 covers names: a replaced image is not seen
    assert _eval(run, folder, out) == 0


def test_an_accuracy_file_of_the_previous_version_is_still_compared(tmp_path: Path) -> None:
    """accuracy.json's data_check.fingerprint of version 1 against the data now (eval --artifact's merge, eval's
    carry-over of artifact accuracies): compared at version 1; a version not computed here is not compared."""
    from us3l.eval.accuracy import data_mismatch

    folder = _auto_folder(tmp_path / "imgs")
    spec = f"folder:{folder}"
    doc = {"data": spec, "data_check": {"fingerprint": _v1(spec)}}
    assert data_mismatch(doc, {"fingerprint": data_fingerprint(*load_splits(spec, SIZE, split_rule=1))}) is None
    shutil.copy(folder / "a" / "0.png", folder / "a" / "10.png")
    now = data_fingerprint(*load_splits(spec, SIZE, split_rule=1))
    assert data_mismatch(doc, {"fingerprint": now}) == (
        f"it was measured on {spec} as it was before it changed (another data fingerprint)")
    assert data_mismatch({**doc, "data_check": {"fingerprint": "v0:" + "0" * 64}}, {"fingerprint": now}) is None
    assert json.loads(json.dumps({"fingerprint": now})) == {"fingerprint": str(now)}  # recorded as a plain string


def test_an_image_replaced_by_one_of_the_same_byte_size_is_not_seen(tmp_path: Path) -> None:
    """The documented limit: the fingerprint reads no image, so another picture of the same byte size (here stored
    PNGs of one pixel size) under the same name keeps it."""
    folder = _auto_folder(tmp_path / "imgs")
    image = folder / "a" / "0.png"
    _picture(image, seed=1, compress_level=0)
    before, data = data_fingerprint(*load_splits(f"folder:{folder}")), image.read_bytes()
    _picture(image, seed=2, compress_level=0)
    assert image.stat().st_size == len(data) and image.read_bytes() != data
    assert data_fingerprint(*load_splits(f"folder:{folder}")) == before


def test_an_image_gone_after_the_walk_is_one_line(tmp_path: Path) -> None:
    folder = _auto_folder(tmp_path / "imgs")
    splits = load_splits(f"folder:{folder}")
    (folder / "b" / "3.png").unlink()
    with pytest.raises(US3LError, match=rf"^cannot read image {folder}/b/3.png: No such file or directory$"):
        data_fingerprint(*splits)
