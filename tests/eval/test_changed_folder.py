"""A run's own image folder without split folders, changed since it trained (red-team 2026-12-07): its 80/20 split is
drawn per class by the image count, so one image added reshuffled the class and `us3l eval` scored the run on
images it had trained on, without a word."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.eval.conftest import SIZE
from tests.train.conftest import write_tiny_config
from us3l.cli import main
from us3l.errors import US3LError
from us3l.train.data_identity import data_fingerprint, fingerprint_record


def _auto_folder(root: Path, per_class: int = 10) -> Path:
    """Two classes of ``per_class`` 16-px PNGs in ``root/{a,b}`` (no split folders: split 80/20 per class)."""
    rng = np.random.default_rng(0)
    for cls, base in (("a", 40), ("b", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            arr = np.clip(base + rng.normal(0, 30, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def _test_names(spec: str, split_rule: int = 2) -> set[str]:
    from us3l.data import load_splits

    return {f"{p.parent.name}/{p.name}" for p, _ in load_splits(spec, SIZE, split_rule)[1].samples}


def _changed(folder: Path) -> str:
    return (f"error: {folder} changed since the run was trained on it (other images or class names than its "
            "checkpoint.json's data.fingerprint): a folder without train/ and test/ subfolders is split 80/20 per "
            "class by its image count, so its test split may now hold images the run trained on; restore the folder "
            "as it was, or evaluate on a folder with explicit train/ and test/ subfolders\n")


def _as_saved_before_split_rules(run: Path, folder: Path) -> None:
    """Edit ``run``'s checkpoint.json as a run saved before split rule 2 wrote it: no ``split_rule`` (rule 1: the
    count-based 80/20 draw) and the fingerprint of that split."""
    from us3l.data import load_splits

    meta = json.loads((run / "checkpoint.json").read_text())
    meta["data"].pop("split_rule")
    meta["data"].pop("split_forced")
    meta["data"]["fingerprint"] = data_fingerprint(*load_splits(f"folder:{folder}", SIZE, split_rule=1))
    (run / "checkpoint.json").write_text(json.dumps(meta))


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_runs_own_folder_changed_since_training_is_refused(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A run saved before split rule 2 (no data.split_rule) keeps the count-based split, refused once changed."""
    folder = _auto_folder(tmp_path / "imgs")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    _as_saved_before_split_rules(run, folder)
    before = _test_names(f"folder:{folder}", split_rule=1)
    shutil.copy(folder / "a" / "0.png", folder / "a" / "10.png")  # one image more: class a is drawn again
    assert _test_names(f"folder:{folder}", split_rule=1) - before, "the split did not reshuffle: the test shows nothing"
    capsys.readouterr()
    for argv in (["eval", "--no-baselines", "--out", str(tmp_path / "out")], ["calibrate"]):
        assert main([*argv[:1], "--ckpt", str(run), "--data", f"folder:{folder}/", "--widths", "1", "--batches", "1",
                     *argv[1:]]) == 1
        assert capsys.readouterr().err == _changed(folder)
    from us3l.deploy.export import int8_calibration_for

    with pytest.raises(US3LError, match="changed since the run was trained on it"):  # its default calibration data
        int8_calibration_for(run, calib_images=32)
    (folder / "a" / "10.png").unlink()  # restored: evaluated as before, on the count-based split
    assert main(["eval", "--ckpt", str(run), "--data", str(folder), "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert doc["num_test"] == len(before) and doc["data_check"]["changed_since_training"] is False


@pytest.mark.slow  # 1.1 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_new_run_is_evaluated_on_its_folder_changed_where_no_training_image_is_tested(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Split rule 2 (new runs): an image added moves no image between the splits, so eval goes on, with a warning,
    and accuracy.json records that the test set changed (and its fingerprint); an image removed that makes the
    one-test-image-per-class guarantee move a training image into test is refused."""
    folder = _auto_folder(tmp_path / "imgs")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["data"]["split_rule"] == 2 and meta["data"]["split_forced"] == {"train": [], "test": []}
    before = _test_names(f"folder:{folder}")
    shutil.copy(folder / "a" / "0.png", folder / "a" / "10.png")
    assert _test_names(f"folder:{folder}") == before  # a/10.png hashes into train; nothing else moved
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert err.count("warning:") == 2 and f"warning: folder:{folder} changed since the run was trained on it" in err
    # a/10.png is a copy of the test image a/0.png: the overlap check names it (us3l.data.overlap)
    assert f"warning: 1 test image of {folder} is identical to a training image (first: a/0.png = a/10.png)" in err
    check = json.loads((out / "accuracy.json").read_text())["data_check"]
    assert check["changed_since_training"] is True and check["fingerprint"] != meta["data"]["fingerprint"]
    assert check["train_test_overlaps"] == 1
    assert check["fingerprint"] == data_fingerprint(*__import__("us3l.data").data.load_splits(f"folder:{folder}"))
    (folder / "b" / "0.png").unlink()  # b's only image hashed into test: its lowest-hash training image moves there
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"error: {folder} changed since the run was trained on it, and its test split now holds {folder}/b/3.png, "
        "which the run may have trained on (moved by the split rule's one-test-image-per-class guarantee); restore "
        "the folder as it was, or evaluate on a folder with explicit train/ and test/ subfolders\n")


@pytest.mark.slow  # 1.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_an_eval_on_the_runs_own_folder_computes_its_fingerprint_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's own automatically split folder: the check that it is unchanged (``check_split_unchanged``) and the
    data_check record of accuracy.json each computed the data's fingerprint, each an os.stat of every image; now
    once, passed on. The record is the same."""
    import us3l.train.data_identity as identity

    folder = _auto_folder(tmp_path / "imgs")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    calls: list[int] = []
    real = identity.data_fingerprint
    monkeypatch.setattr(identity, "data_fingerprint", lambda *a: calls.append(1) or real(*a))
    out = tmp_path / "out"
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(out)]) == 0
    assert len(calls) == 1
    check = json.loads((out / "accuracy.json").read_text())["data_check"]
    meta = json.loads((run / "checkpoint.json").read_text())
    assert check["fingerprint"] == meta["data"]["fingerprint"] and check["changed_since_training"] is False


def test_other_data_and_split_folders_are_not_compared(tmp_path: Path) -> None:
    """Evaluating a run on other data is legitimate; a folder with split folders keeps its test split whatever is
    added; a fingerprint of another version, or a relative spec recorded before 2026-12-07, is not compared."""
    from us3l.data import load_splits
    from us3l.train.data_identity import load_checked_splits

    folder = _auto_folder(tmp_path / "imgs")
    spec = f"folder:{folder}"
    trained = {"spec": spec, "fingerprint": data_fingerprint(*load_splits(spec, SIZE, split_rule=1))}  # rule 1
    load_checked_splits(spec, SIZE, trained)  # unchanged
    other = tmp_path / "copy"
    shutil.copytree(folder, other)
    shutil.copy(other / "a" / "0.png", other / "a" / "10.png")
    load_checked_splits(f"folder:{other}", SIZE, trained)  # another folder: other data
    shutil.copy(folder / "a" / "0.png", folder / "a" / "10.png")
    with pytest.raises(US3LError, match="changed since"):
        load_checked_splits(spec, SIZE, trained)
    load_checked_splits(spec, SIZE, {**trained, "fingerprint": "v0:" + trained["fingerprint"][3:]})
    load_checked_splits(spec, SIZE, {**trained, "spec": "folder:imgs"})  # relative: its directory is unknown
    split = tmp_path / "split"
    for part in ("train", "test"):
        shutil.copytree(folder, split / part)
    trained = {"spec": str(split), "fingerprint": data_fingerprint(*load_splits(str(split), SIZE))}
    shutil.copy(split / "test" / "a" / "0.png", split / "test" / "a" / "11.png")
    load_checked_splits(f"folder:{split}", SIZE, trained)  # explicit splits: no image moves between them


def test_quickstart_trains_again_on_its_changed_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """quickstart reused the finished run and evaluated it on the reshuffled split: a folder changed since is other
    training, replaced with the warning of other settings."""
    from types import SimpleNamespace

    import us3l.commands.quickstart as qs
    import us3l.train.loop as loop
    from us3l.data import load_splits
    from us3l.io import atomic_write_json
    from us3l.train.config import resolve_config

    folder = _auto_folder(tmp_path / "imgs")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": f"folder:{folder}", "epochs": 1, "schedule": "none", "batch_size": 4,
                                      "knn_k": 3}))
    run = tmp_path / "run"
    cfg = resolve_config(config, {"out": str(run)})
    atomic_write_json(run / "checkpoint.json", {"config": cfg.to_dict(), "epoch": 1, "data": {
        "spec": cfg.data, **fingerprint_record(data_fingerprint(*load_splits(cfg.data))), "split_rule": 2}})
    calls: list = []
    monkeypatch.setattr(loop, "run_training", lambda cfg, **kw: calls.append(kw) or SimpleNamespace(status="completed"))
    options = qs.QuickstartOptions(out=tmp_path, config=config)
    assert qs._train(options, run) == ("reused", [str(run)]) and not calls
    shutil.copy(folder / "a" / "0.png", folder / "a" / "10.png")
    assert qs._train(options, run) == ("ran", [str(run)])
    assert [kw["overwrite"] for kw in calls] == [True]
    err = " ".join(capsys.readouterr().err.split())
    assert f"warning: {run} holds a run trained with other settings (data: other images or class names)" in err


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_relative_recorded_spec_is_checked_against_the_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint that recorded its data as a relative path (before 2026-12-07) was not compared at all: `--data
    imgs` typed again evaluated (or resumed on) whatever imgs/ the working directory held. The relative path, taken
    from there, must match the recorded fingerprint; without one it is refused, and an absolute --data is the
    user's word for other data."""
    folder = _auto_folder(tmp_path / "imgs")
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    meta = json.loads((run / "checkpoint.json").read_text())
    meta["data"]["spec"] = meta["config"]["data"] = "folder:imgs"  # as an earlier version saved it
    meta["config"]["epochs"] = 2
    (run / "checkpoint.json").write_text(json.dumps(meta))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere / "imgs")
    (elsewhere / "imgs" / "b" / "0.png").unlink()  # a lookalike: other images
    monkeypatch.chdir(elsewhere)
    eval_args = ["--widths", "1", "--batches", "1", "--no-baselines", "--quiet", "--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(run), "--data", "imgs", *eval_args]) == 1
    assert capsys.readouterr().err.startswith(
        f"error: {elsewhere / 'imgs'} is not the data this run recorded as the relative path 'folder:imgs' (other "
        "images or class names than its data.fingerprint)")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--ckpt", str(run), "--data", "imgs", *eval_args]) == 0  # the run's folder: it matches
    del meta["data"]["fingerprint"]  # older still: nothing to check the folder with
    (run / "checkpoint.json").write_text(json.dumps(meta))
    capsys.readouterr()
    for argv in (["eval", "--ckpt", str(run), "--data", "imgs", *eval_args],
                 ["calibrate", "--ckpt", str(run), "--data", "folder:imgs", "--widths", "1", "--batches", "1"]):
        assert main(argv) == 1
        assert capsys.readouterr().err == (
            f"error: cannot tell whether {folder} is the data this run trained on: its checkpoint.json records the "
            "relative path 'folder:imgs' (written before 2026-12-07) and no data.fingerprint to compare; pass --data "
            "with the absolute path of the folder\n")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"error: {run}/checkpoint.json records its data as the relative path 'folder:imgs' (written before 2026-12-07) "
        "and no data.fingerprint to check the folder it names from here; pass --data with the absolute path of the "
        "run's data\n")
    assert main(["eval", "--ckpt", str(run), "--data", str(folder), *eval_args]) == 0  # absolute: as the user says
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--data", f"folder:{folder}"]) == 0


@pytest.mark.slow  # 2.2 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_calibration_on_the_runs_changed_folder_warns_as_eval_does(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A rule-2 run's own folder changed since training, where no training image is in its test split: eval warned
    (data_check.changed_since_training), but `us3l calibrate` and INT8 calibration (export, profile) estimated on
    it without a word. They give eval's warning line (one, on stderr), with what they do about it."""
    from us3l.data.split_rule import hashed_test
    from us3l.deploy.export import int8_calibration_for

    folder = _auto_folder(tmp_path / "imgs", per_class=24)  # INT8 calibration takes 32 training images at least
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # unchanged: nothing to say
    added = next(f"new{i}.png" for i in range(100) if not hashed_test(f"a/new{i}.png"))
    shutil.copy(folder / "a" / "0.png", folder / "a" / added)  # hashes into train: allowed (see above)
    assert main(["eval", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--no-baselines", "--quiet", "--out", str(tmp_path / "out")]) == 0
    eval_warning = next(line for line in capsys.readouterr().err.splitlines() if "changed since" in line)
    said = eval_warning.split("; ")[0]
    assert said == (f"warning: folder:{folder} changed since the run was trained on it (other images or class "
                    "names): no image the run trained on is in its test split (split rule 2), but the test set is not "
                    "the run's")
    assert main(["calibrate", "--ckpt", str(run), "--data", f"folder:{folder}", "--widths", "1", "--batches", "1",
                 "--quiet"]) == 0
    assert capsys.readouterr().err == f"{said}; calibrating on its train split as it is now\n"
    int8_calibration_for(run, calib_images=32)  # its default calibration data: the run's folder
    assert capsys.readouterr().err == f"{said}; calibrating on its train split as it is now\n"


@pytest.mark.parametrize("again", [False, True])
@pytest.mark.slow  # 2 cases, 3.4 s each on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_quickstart_run_fingerprints_its_data_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     again: bool) -> None:
    """quickstart computed the data fingerprint in its train step (the reuse check, and training) and again in the
    evaluate step, which read the folder again: now its train step's data (read once) and their fingerprint serve
    all three. ``again``: a second quickstart, which reuses the finished run (the reuse check compares the data)."""
    import us3l.commands.quickstart as qs
    import us3l.train.data_identity as identity

    folder = _auto_folder(tmp_path / "imgs")
    config = tmp_path / "c.yaml"
    # the tiny network of the training tests: the fingerprints are counted, not the run's quality
    config.write_text(yaml.safe_dump({"data": f"folder:{folder}", "epochs": 1, "schedule": "none", "batch_size": 4,
                                      "knn_k": 3, "knn_widths": [1.0], "model_kwargs": {"base_channels": 8},
                                      "proj_hidden": 16, "pred_hidden": 16, "proj_dim": 8}))

    class Stop(Exception):
        pass

    def stop(*args: object) -> None:
        raise Stop

    monkeypatch.setattr(qs, "_profile", stop)  # the INT8 step's reuse: the next test
    options = qs.QuickstartOptions(out=tmp_path / "qs", config=config, points=2)
    if again:
        with pytest.raises(Stop):
            qs.run_quickstart(options)
        (tmp_path / "qs" / "accuracy.json").unlink()  # evaluated again
    walks: list[int] = []
    real_keys = identity._folder_keys
    monkeypatch.setattr(identity, "_folder_keys", lambda ds: walks.append(1) or real_keys(ds))
    with pytest.raises(Stop):
        qs.run_quickstart(options)
    assert len(walks) == 2  # one fingerprint: its two splits
    check = json.loads((tmp_path / "qs" / "accuracy.json").read_text())["data_check"]
    meta = json.loads((tmp_path / "qs" / "run" / "checkpoint.json").read_text())
    assert check["fingerprint"] == meta["data"]["fingerprint"] and check["changed_since_training"] is False


@pytest.mark.slow  # 1.6 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_the_data_read_once_serves_calibration_and_eval_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a ``reusing`` scope (a quickstart run) the data its train step read serves the checks of the run's data
    with its fingerprint, computed once: evaluation (``checked_splits``), BN and INT8 calibration
    (``load_checked_train_split``: quickstart's INT8 export); other data, or the same folder under another split
    rule (whose rule-2 fingerprint it then does not match), is read and fingerprinted as before."""
    import us3l.train.data_identity as identity
    from us3l.data import load_splits
    from us3l.deploy.export import int8_calibration_for

    folder = _auto_folder(tmp_path / "imgs", per_class=24)
    config = write_tiny_config(tmp_path / "tiny.yaml", folder, epochs=1, schedule="none", knn_widths=[1.0])
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    trained = json.loads((run / "checkpoint.json").read_text())["data"]
    walks: list[int] = []
    real_keys = identity._folder_keys
    monkeypatch.setattr(identity, "_folder_keys", lambda ds: walks.append(1) or real_keys(ds))
    spec = f"folder:{folder}"
    with identity.reusing() as held:
        held.append(identity.LoadedData(spec, *load_splits(spec)))
        train, _, change, fingerprint = identity.checked_splits(spec, SIZE, trained)
        assert change is None and fingerprint == trained["fingerprint"] and train.image_size == SIZE
        identity.load_checked_train_split(spec, SIZE, trained)
        int8_calibration_for(run, calib_images=32)
        assert len(walks) == 2  # one fingerprint (its two splits), for all three
        shutil.copytree(folder, tmp_path / "copy")
        identity.checked_splits(f"folder:{tmp_path / 'copy'}", SIZE, trained)  # other data: read again
        assert len(walks) == 4
        with pytest.raises(US3LError, match="changed since"):  # the same folder under another split rule: read
            identity.checked_splits(spec, SIZE, {**trained, "split_rule": 1})
        assert len(walks) == 6
    identity.checked_splits(spec, SIZE, trained)  # out of the scope: read again
    assert len(walks) == 8


def test_the_data_read_once_serves_calibration_of_a_folder_with_split_folders(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder with train/ and test/ subfolders is not compared (``_trained_auto_split``): its calibration split
    was read with ``load_dataset`` again inside a ``reusing`` scope, a second walk of the quickstart's data, while
    evaluation (``checked_splits``) reused the train step's."""
    import us3l.data.datasets as datasets
    import us3l.train.data_identity as identity
    from us3l.data import load_splits

    folder = tmp_path / "imgs"
    _auto_folder(folder / "train")
    _auto_folder(folder / "test", per_class=3)
    spec = f"folder:{folder}"
    trained = {"spec": spec, "split_rule": 2}
    walks: list[int] = []
    real = datasets._load_folder
    monkeypatch.setattr(datasets, "_load_folder", lambda *a, **k: walks.append(1) or real(*a, **k))
    with identity.reusing() as held:
        held.append(identity.LoadedData(spec, *load_splits(spec)))
        assert len(walks) == 1
        identity.checked_splits(spec, SIZE, trained)
        train = identity.load_checked_train_split(spec, SIZE, trained)
        assert len(walks) == 1 and train.image_size == SIZE and len(train) == 20
    identity.load_checked_train_split(spec, SIZE, trained)  # out of the scope: read again
    assert len(walks) == 2
