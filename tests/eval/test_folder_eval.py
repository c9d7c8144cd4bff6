"""``us3l eval`` on folder data: per-image Resize+CenterCrop features, per-image crops in the augmented probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.eval.conftest import make_run
from tests.train.conftest import write_junk_folder
from us3l.cli import main
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
    import us3l.data
    import us3l.data.folder

    data = f"folder:{_folder(tmp_path / 'data')}"
    run = make_run(tmp_path / "run", data=data)
    loads: list[str] = []
    checks: list[object] = []
    load, check = us3l.data.load_dataset, us3l.data.folder.check_first_images

    def counted_load(spec: str, split: str, **kwargs: object) -> object:
        loads.append(split)
        return load(spec, split, **kwargs)

    def counted_check(ds: object) -> None:
        checks.append(ds)
        check(ds)

    monkeypatch.setattr(us3l.data, "load_dataset", counted_load)
    monkeypatch.setattr(us3l.data.folder, "check_first_images", counted_check)
    settings = EvalSettings(calibration=CalibrationSettings(batches=2, batch_size=4), costs=False, baselines=False)
    evaluate_checkpoint(open_checkpoint(run), data, [1.0, 0.5], settings)
    assert sorted(loads) == ["test", "train"] and len(checks) == 2
