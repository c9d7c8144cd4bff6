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


def _refused_resume(folder: Path, what: str = "other images or class names") -> str:
    return (f"is not the data this run trained on (folder:{folder}): {what} (its fingerprint differs); --resume "
            "continues on the same data")


@pytest.mark.slow  # 2.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
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
    assert _refused_resume(folder, "the same image and class names, other byte sizes") in " ".join(
        capsys.readouterr().err.split())  # what changed, by the names-only fingerprint recorded beside
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


@pytest.mark.slow  # 1.7 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
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
    """The fingerprint of the splits as walked takes each image's size from the walk's stat (``file_stats``); a data
    set without them stats each image, and one gone since is one line."""
    from dataclasses import replace

    folder = _auto_folder(tmp_path / "imgs")
    splits = load_splits(f"folder:{folder}")
    before = data_fingerprint(*splits)
    (folder / "b" / "3.png").unlink()
    assert data_fingerprint(*splits) == before  # the folder as walked
    with pytest.raises(US3LError, match=rf"^cannot read image {folder}/b/3.png: No such file or directory$"):
        data_fingerprint(*(replace(ds, file_stats=None) for ds in splits))


def _resumed_rule_1_run(tmp_path: Path, folder: Path) -> Path:
    """A run saved before split rule 2 and fingerprint version 2 (no split_rule, a v1 fingerprint), resumed today:
    its checkpoint.json now records a version-2 fingerprint, and its split is still rule 1's."""
    run = _train(tmp_path, folder)
    spec = f"folder:{folder}"
    meta = json.loads((run / "checkpoint.json").read_text())
    for key in ("split_rule", "split_forced", "names_fingerprint"):
        meta["data"].pop(key)
    train, test = load_splits(spec, SIZE, split_rule=1)
    meta["data"].update(fingerprint=_v1(spec), train_size=len(train), test_size=len(test))
    (run / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    data = json.loads((run / "checkpoint.json").read_text())["data"]
    assert data["split_rule"] == 1 and data["fingerprint"].startswith("v2:")
    assert data["names_fingerprint"] == _v1(spec)
    return run


@pytest.mark.slow  # 2.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_rule_1_run_whose_images_changed_size_only_is_evaluated_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule-1 run resumed since version 2 records a version-2 fingerprint: an image replaced under its name (another
    byte size) made eval refuse the folder as one whose "80/20 split" reshuffled, which it had not (rule 1 splits by
    image counts). The names-only fingerprint recorded beside it tells: the split is the run's, the content is not,
    so eval goes on with a warning that says so and data_check.changed_since_training, as rule 2 does."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _resumed_rule_1_run(tmp_path, folder)
    _picture(folder / "a" / "0.png", seed=99)
    capsys.readouterr()
    out = tmp_path / "out"
    assert _eval(run, folder, out) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"warning: folder:{folder} changed since the run was trained on it (the same image and class names, "
                   "other byte sizes: images replaced or edited under their names): its train/test split is the run's, "
                   "but the images are not all the ones it trained and was tested on; accuracy.json records the data's "
                   "new fingerprint")
    doc = json.loads((out / "accuracy.json").read_text())
    assert doc["data_check"]["changed_since_training"] is True
    assert doc["num_test"] == len(load_splits(f"folder:{folder}", SIZE, split_rule=1)[1])  # rule 1's split
    shutil.copy(folder / "a" / "1.png", folder / "a" / "10.png")  # one image more: class a is drawn again
    assert _eval(run, folder, out) == 1
    assert capsys.readouterr().err == _changed(folder)


def _replaced_without_names_fingerprint(run: Path, folder: Path) -> None:
    """``run``'s checkpoint.json as saved before data.names_fingerprint was recorded, and an image of ``folder``
    replaced under its name by one of another byte size."""
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["data"].pop("names_fingerprint")
    (run / "checkpoint.json").write_text(json.dumps(meta))
    _picture(folder / "a" / "0.png", seed=99)


@pytest.mark.slow  # 2.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_rule_1_run_without_its_names_fingerprint_says_what_it_cannot_tell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule-1 run resumed before the names-only fingerprint was recorded: its version-2 fingerprint differs for
    other names and for other byte sizes alike, so the refusal says it cannot tell which, not that images were added."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _resumed_rule_1_run(tmp_path, folder)
    _replaced_without_names_fingerprint(run, folder)
    capsys.readouterr()
    assert _eval(run, folder, tmp_path / "out") == 1
    assert capsys.readouterr().err == (
        f"error: {folder} changed since the run was trained on it (other images, class names or image byte sizes than "
        "its checkpoint.json's data.fingerprint, which does not tell which: it records no data.names_fingerprint): a "
        "folder without train/ and test/ subfolders is split 80/20 per class by its image count, so its test split "
        "may now hold images the run trained on; restore the folder as it was, or evaluate on a folder with explicit "
        "train/ and test/ subfolders\n")


def test_a_rule_2_run_whose_images_changed_size_only_says_so(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Split rule 2, only byte sizes changed: the warning says the names are the run's (not "other images")."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _train(tmp_path, folder)
    _picture(folder / "a" / "0.png", seed=99)
    capsys.readouterr()
    assert _eval(run, folder, tmp_path / "out") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (f"warning: folder:{folder} changed since the run was trained on it (the same image and class names, other "
            "byte sizes") in err


def test_a_rule_2_run_without_its_names_fingerprint_does_not_claim_other_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule-2 run saved before the names-only fingerprint was recorded cannot tell other names from other byte
    sizes: its warning said "(other images or class names)" for an image replaced under its name, where the rule-1
    refusal says the record does not tell which (``difference``)."""
    folder = _auto_folder(tmp_path / "imgs")
    run = _train(tmp_path, folder)
    _replaced_without_names_fingerprint(run, folder)
    capsys.readouterr()
    assert _eval(run, folder, tmp_path / "out") == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err == (f"warning: folder:{folder} changed since the run was trained on it (other images, class names or "
                   "image byte sizes): no image the run trained on is in its test split (split rule 2), but the test "
                   "set is not the run's; accuracy.json records the data's new fingerprint")
