"""``us3l eval`` on folder data: per-image Resize+CenterCrop features, per-image crops in the augmented probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.eval.conftest import make_run
from tests.train.conftest import write_junk_folder
from us3l.cli import main
from us3l.errors import US3LError
from us3l.eval import CalibrationSettings, open_checkpoint
from us3l.eval.linear import LinearProbeSettings
from us3l.eval.runner import EvalSettings, evaluate_checkpoint


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c, base in (("a", 50), ("b", 200)):
            for i in range(n):
                (root / split / c).mkdir(parents=True, exist_ok=True)
                arr = np.clip(base + rng.normal(0, 30, (18, 26, 3)), 0, 255).astype(np.uint8)  # non-square
                Image.fromarray(arr).save(root / split / c / f"{i}.png")
    return root


def test_folder_eval_with_the_augmented_probe(tmp_path: Path) -> None:
    data = f"folder:{_folder(tmp_path / 'data')}"
    run = make_run(tmp_path / "run", data=data)
    settings = EvalSettings(
        protocol="both",
        linear=LinearProbeSettings(epochs=2, lr=0.1, batch_size=4, augment=True),
        calibration=CalibrationSettings(batches=2, batch_size=4),
        costs=False,
        baselines=False,
    )
    doc = evaluate_checkpoint(open_checkpoint(run), data, [1.0, 0.5], settings)
    assert "FolderEvalTransform" in doc["protocols"]["feature_transform"]
    assert "Resize(18," in doc["protocols"]["feature_transform"]  # round(16 * 256 / 224)
    for row in doc["widths"]:
        assert 0.0 <= row["knn_top1"] <= 1.0 and 0.0 <= row["linear_top1"] <= 1.0


def test_a_test_split_of_one_image_gets_no_embedding_std(tmp_path: Path) -> None:
    # the std over one sample is NaN: accuracy.json got "embedding_std": NaN (not JSON) and torch's UserWarning
    # reached stderr
    import json
    import warnings

    from us3l.cli import main

    root = _folder(tmp_path / "data")
    (root / "test" / "a" / "1.png").unlink()
    for f in (root / "test" / "b").iterdir():
        f.unlink()
    data = f"folder:{root}"
    run = make_run(tmp_path / "run", data=data)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["eval", "--ckpt", str(run), "--data", data, "--widths", "1", "--batches", "1", "--no-baselines",
                     "--quiet", "--out", str(out)])
    assert code == 0
    assert not [w for w in caught if "degrees of freedom" in str(w.message)]
    doc = json.loads((out / "accuracy.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert doc["num_test"] == 1 and doc["widths"][0]["embedding_std"] is None


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_eval_and_calibrate_on_data_without_readable_images_is_one_line(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same for ``--data``: a note on the split's size came before the error."""
    run = make_run(tmp_path / "run")
    junk = write_junk_folder(tmp_path / "junk")
    assert main([command, "--ckpt", str(run), "--data", f"folder:{junk}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read image {junk / 'a' / '0.png'}: ") and err.count("\n") == 1, err


def test_eval_lists_and_checks_the_train_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate_checkpoint loaded the train split for the kNN bank and again to calibrate: a folder was listed
    twice and its first image per class opened twice in one ``us3l eval``."""
    import us3l.data.datasets
    import us3l.data.folder

    data = f"folder:{_folder(tmp_path / 'data')}"
    run = make_run(tmp_path / "run", data=data)
    scans: list[str] = []
    checks: list[object] = []
    scan, check = us3l.data.datasets._scan, us3l.data.folder.check_first_images

    def counted_scan(split_dir: Path, *args: object, **kwargs: object) -> object:
        scans.append(split_dir.name)
        return scan(split_dir, *args, **kwargs)

    def counted_check(ds: object) -> None:
        checks.append(ds)
        check(ds)

    monkeypatch.setattr(us3l.data.datasets, "_scan", counted_scan)
    monkeypatch.setattr(us3l.data.folder, "check_first_images", counted_check)
    settings = EvalSettings(calibration=CalibrationSettings(batches=2, batch_size=4), costs=False, baselines=False)
    evaluate_checkpoint(open_checkpoint(run), data, [1.0, 0.5], settings)
    assert sorted(scans) == ["test", "train"] and len(checks) == 2


def test_a_folder_without_split_folders_is_walked_once_for_both_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leftover: an image folder without train/ and test/ was walked once per split (train, then test, each time
    listing every class), by us3l train's data check, its loop and us3l eval. ``load_splits`` walks it once and
    gives the same two splits as two ``load_dataset`` calls."""
    import us3l.data.datasets
    from us3l.data import load_dataset, load_splits

    root = _folder(tmp_path / "data") / "train"  # class folders a/ and b/, no split folders
    for i in range(4, 10):
        (root / "a" / f"{i}.png").write_bytes((root / "a" / "0.png").read_bytes())
    walks: list[Path] = []
    scan = us3l.data.datasets._scan
    monkeypatch.setattr(us3l.data.datasets, "_scan", lambda d, *a, **k: walks.append(d) or scan(d, *a, **k))
    train, test = load_splits(f"folder:{root}", image_size=24)
    assert walks == [root]
    one_by_one = [load_dataset(f"folder:{root}", split, image_size=24) for split in ("train", "test")]
    for got, want in zip((train, test), one_by_one, strict=True):
        assert got.samples == want.samples and got.classes == want.classes and got.image_size == 24
    assert len(train) + len(test) == 14 and len(test) >= 2
    with pytest.raises(US3LError, match="image_size must be a positive integer, got 0"):
        load_splits(f"folder:{root}", image_size=0)


def test_a_relative_data_path_is_recorded_where_it_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red-team 2026-12-07: bn_stats.safetensors and accuracy.json recorded `--data folder:data` as typed, and a
    spec was the same data as another of equal text: from another directory, `folder:data` (another folder) reused
    the statistics calibrated on the first one, without a note, and its numbers joined the first one's file."""
    import json

    for place in ("one", "two"):
        _folder(tmp_path / place / "data")
    run = make_run(tmp_path / "run", data="folder:data")
    monkeypatch.chdir(tmp_path / "one")
    assert main(["calibrate", "--ckpt", str(run), "--data", "folder:data", "--widths", "1", "--batches", "1",
                 "--quiet"]) == 0
    monkeypatch.chdir(tmp_path / "two")
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(run), "--data", "folder:data", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    first, second = f"folder:{tmp_path / 'one' / 'data'}", f"folder:{tmp_path / 'two' / 'data'}"
    assert f"stored BN statistics were estimated differently (data {first} -> {second})" in err, err
    assert json.loads((tmp_path / "out" / "accuracy.json").read_text())["data"] == second
