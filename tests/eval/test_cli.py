"""``us3l calibrate`` / ``us3l eval`` end to end on a tiny run folder, and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.conftest import make_run, tiny_model
from us3l.checkpoint import load_backbone
from us3l.cli import main
from us3l.errors import US3LError
from us3l.eval import load_accuracy, open_checkpoint
from us3l.eval.hits import decode_hits
from us3l.slim import calibrated_widths


def test_calibrate_then_eval(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--ckpt", str(run_dir), "--batches", "2", "--points", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["calibrated"]) == 3 and (run_dir / "bn_stats.safetensors").is_file()
    assert calibrated_widths(load_backbone(run_dir).model) == tuple(doc["stored_widths"])

    out = tmp_path / "out"
    code = main(["eval", "--ckpt", str(run_dir), "--widths", "1.0,0.25", "--protocol", "both",
                 "--linear-epochs", "3", "--batches", "2", "--out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    doc = load_accuracy(out)
    assert printed == doc
    assert [r["width"] for r in doc["widths"]] == [0.25, 1.0]
    for r in doc["widths"]:
        assert 0 <= r["knn_top1"] <= 1 and 0 <= r["linear_top1"] <= 1
        assert r["macs"] > 0 and r["params"] > 0
        for key in ("knn_top1", "linear_top1"):  # which test images each protocol got right, for select's tie test
            assert decode_hits(r[f"{key}_hits"], doc["num_test"], key).sum() == round(r[key] * doc["num_test"])
    assert doc["checkpoint_sha256"] == load_backbone(run_dir).sha256
    knn = doc["protocols"]["knn"]
    assert knn["k_requested"] == 200 and 1 <= knn["k"] <= 200  # capped at half the smallest class (test_baselines)


def test_calibrate_says_which_network_a_typed_width_builds(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from us3l.slim import canonical_width

    model = open_checkpoint(run_dir).model
    typed = next(w for w in (0.3, 0.35, 0.4, 0.45) if abs(canonical_width(model, w) - w) > 1e-9)
    c = canonical_width(model, typed)
    assert main(["calibrate", "--ckpt", str(run_dir), "--batches", "1", "--widths", f"{typed},1"]) == 0
    err = capsys.readouterr().err
    assert f"note: width {typed:g} builds the network of width {c:g}; calibrated and stored as {c:g}" in err
    assert "note: width 1 " not in err  # a width that is its own network is not mentioned


def test_calibrate_says_when_it_drops_widths_stored_with_other_settings(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Docs truth pass 2026-12-05 (docs/evaluation.md, "One provenance per file": dropped "with a note"): a
    calibrate with new settings dropped the stored widths not asked for without a word."""
    assert main(["calibrate", "--ckpt", str(run_dir), "--batches", "1", "--widths", "1,0.25"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "--ckpt", str(run_dir), "--batches", "2", "--widths", "1"]) == 0
    err = capsys.readouterr().err
    assert "note: stored BN statistics were estimated differently (batches 1 -> 2" in err
    assert "stored widths not asked for now are dropped" in err and "(1 width(s) stored)" in err
    assert calibrated_widths(load_backbone(run_dir).model) == (1.0,)


def _err(code: int, capsys: pytest.CaptureFixture[str], match: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err, err
    assert match in err, err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--widths", "2.0"], "width must be in"),
        (["--widths", "a,b"], "comma-separated"),
        (["--points", "0"], "--points must be >= 1"),
        (["--protocol", "svm"], "unknown protocol"),
        # the settings' checks named no flag ("kNN k must be >= 1"), unlike --batches
        (["--knn-k", "0"], "--knn-k must be a finite positive integer, got 0"),
        (["--knn-t", "0"], "--knn-t must be a finite positive number, got 0.0"),
        (["--knn-max-train", "0"], "--knn-max-train must be a finite positive integer, got 0"),
        (["--linear-epochs", "0"], "--linear-epochs must be a finite positive integer, got 0"),
        (["--linear-lr", "inf"], "--linear-lr must be a finite positive number, got inf"),
        (["--linear-batch-size", "-1"], "--linear-batch-size must be a finite positive integer, got -1"),
        (["--data", "nosuch:thing"], "unknown data spec"),
        (["--knn-max-train", "3"], "--knn-max-train 3 is below the number of classes ("),
    ],
)
def test_eval_bad_input(run_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str) -> None:
    _err(main(["eval", "--ckpt", str(run_dir), *args]), capsys, match)


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _err(main(["eval", "--ckpt", str(tmp_path / "nope")]), capsys, "no checkpoint found")
    _err(main(["calibrate", "--ckpt", str(tmp_path / "nope")]), capsys, "no checkpoint found")


def test_bad_momentum(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _err(main(["calibrate", "--ckpt", str(run_dir), "--bn-momentum", "2"]), capsys, "momentum")


@pytest.mark.parametrize(
    ("command", "args", "match"),
    [
        ("calibrate", ["--batch-size", "0"], "--batch-size must be 2 to 4096, got 0"),
        ("calibrate", ["--batch-size", "1"], "--batch-size must be 2 to 4096, got 1"),
        ("calibrate", ["--batches", "0"], "--batches must be a finite positive integer, got 0"),
    ],
)
def test_bad_calibration_batches_are_refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], command: str, args: list[str], match: str
) -> None:
    # `calibrate --batch-size 0` ended in "error: ZeroDivisionError: division by zero"
    _err(main([command, "--ckpt", str(run_dir), "--widths", "1", *args]), capsys, match)
    assert not (run_dir / "bn_stats.safetensors").exists()


def test_eval_refuses_bad_calibration_batches_before_any_work(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # it was refused only once the data had loaded and the notes about the stored statistics had been printed
    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--quiet"]) == 0
    capsys.readouterr()
    code = main(["eval", "--ckpt", str(run_dir), "--widths", "1", "--data", "digits", "--batches", "-1",
                 "--out", str(tmp_path / "out")])
    _err(code, capsys, "--batches must be a finite positive integer, got -1")


def test_a_diverged_checkpoint_gets_no_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # NaN weights gave NaN features, and the kNN over them still "scored" (50 % on two classes, ties broken by
    # index): accuracy.json was written with that number and with "embedding_std": NaN (not JSON)
    import torch

    model = tiny_model()
    with torch.no_grad():
        model.conv1.weight.fill_(float("nan"))
    run = make_run(tmp_path / "run", model)
    out = tmp_path / "out"
    code = main(["eval", "--ckpt", str(run), "--widths", "1", "--batches", "1", "--no-baselines", "--out", str(out),
                 "--quiet"])
    _err(code, capsys, "the network gives non-finite BN statistics (NaN or inf) at width 1, first in layer bn1")
    assert not (out / "accuracy.json").exists()
    # `us3l calibrate` stored such statistics (bn_stats.safetensors of NaN means and variances) with exit 0
    code = main(["calibrate", "--ckpt", str(run), "--widths", "1", "--batches", "1", "--quiet"])
    _err(code, capsys, "the network gives non-finite BN statistics (NaN or inf) at width 1, first in layer bn1")
    assert not (run / "bn_stats.safetensors").exists()


def test_calibrate_on_other_data_than_the_stored_statistics(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `calibrate --data digits` over statistics on builtin computed them, dropped them (the run's statistics of
    # another data set are never replaced) and still said "wrote RUN/bn_stats.safetensors"; --json said data null
    stats = run_dir / "bn_stats.safetensors"
    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["data"] == "builtin"
    before = stats.read_bytes()
    code = main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--data", "digits"])
    _err(code, capsys, f"{stats} holds the BN statistics on builtin, and a run keeps those of one data set: delete "
                       "it to store statistics on digits")
    assert stats.read_bytes() == before
    stats.unlink()
    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--data", "digits"]) == 0
    from us3l.eval.calibrate import read_bn_stats_settings

    assert (read_bn_stats_settings(run_dir) or {})["data"] == "digits"


def test_calibrate_checks_the_data_spec_before_the_stored_statistics(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `calibrate --data <typo>` over statistics on builtin said to delete bn_stats.safetensors "to store statistics
    # on <typo>"; deleting them only led to "unknown data spec"
    stats = run_dir / "bn_stats.safetensors"
    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--quiet"]) == 0
    before = stats.read_bytes()
    code = main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--data", "bultin"])
    _err(code, capsys, "error: unknown data spec 'bultin' (valid: builtin, digits, ")
    missing = tmp_path / "nowhere"
    code = main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--data",
                 f"cifar10:{missing}"])
    _err(code, capsys, f"error: data path not found: {missing}")
    assert stats.read_bytes() == before


def test_calibrate_replaces_stale_statistics_of_other_data(run_dir: Path) -> None:
    # statistics of other weights (stale) on another data set were never replaced: calibrate said "wrote" and the
    # file kept the stale ones
    from us3l.eval.calibrate import read_bn_stats_settings

    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--quiet"]) == 0
    make_run(run_dir, tiny_model(seed=1))  # new weights: the stored statistics are stale
    assert main(["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--data", "digits"]) == 0
    assert (read_bn_stats_settings(run_dir) or {})["data"] == "digits"
    assert load_backbone(run_dir).bn_stats_note is None


def test_non_builtin_checkpoint_needs_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", data="cifar10:/somewhere")
    _err(main(["eval", "--ckpt", str(run)]), capsys, "--data is required")
    _err(main(["calibrate", "--ckpt", str(run)]), capsys, "--data is required")  # it told one to run calibrate


def test_corrupted_checkpoint_rejected(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = run_dir / "checkpoint.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(US3LError, match=r"^checkpoint .* is damaged \(.*\); re-train or restore it$"):
        open_checkpoint(run_dir)
    _err(main(["eval", "--ckpt", str(run_dir)]), capsys, "is damaged")


def test_checkpoint_of_another_model_rejected(tmp_path: Path) -> None:
    run = make_run(tmp_path / "a", tiny_model(), model_name="cifar_resnet50")
    with pytest.raises(US3LError, match="does not match model"):
        open_checkpoint(run)
    run = make_run(tmp_path / "b", tiny_model(), model_kwargs={"base_channels": 16})
    with pytest.raises(US3LError, match="does not match model .cifar_resnet18."):
        open_checkpoint(run)


@pytest.mark.slow  # a whole evaluation for one path case
def test_eval_out_folder_named_like_a_json_file(run_dir: Path, tmp_path: Path) -> None:
    # an existing folder is a folder, whatever its name: accuracy.json goes inside it (it once became a rename onto
    # the folder)
    out = tmp_path / "acc.json"
    out.mkdir()
    assert main(["eval", "--ckpt", str(run_dir), "--widths", "1.0", "--batches", "2", "--out", str(out)]) == 0
    assert out.is_dir() and load_accuracy(out / "accuracy.json")["widths"][0]["width"] == 1.0


@pytest.mark.parametrize("name", ["accuracy.json", "results.JSON"])
def test_eval_out_given_a_new_json_file_name_is_refused(run_dir: Path, tmp_path: Path, name: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """2026-12-08: ``--out results/accuracy.json`` (a file name where the folder goes) silently made the folder
    ``results/accuracy.json`` and wrote ``results/accuracy.json/accuracy.json`` in it."""
    out = tmp_path / "results" / name
    _err(main(["eval", "--ckpt", str(run_dir), "--widths", "1.0", "--out", str(out)]), capsys,
         f"--out must be a folder (the command writes accuracy.json in it), got the file name {out}: give --out "
         f"{out.parent}")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_a_path_that_is_not_a_checkpoint_gets_nothing_written_beside_it(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ckpt /etc/passwd`` or ``--ckpt /tmp`` used to leave a ``.us3l.lock`` in /etc or /tmp: the checkpoint is
    checked before its folder is locked."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    _err(main([command, "--ckpt", str(notes)]), capsys,
         f"{notes} is not a checkpoint (expected a run folder or its checkpoint.safetensors)")
    _err(main([command, "--ckpt", str(tmp_path)]), capsys, f"no checkpoint found at {tmp_path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_flags_the_evaluation_will_not_use_are_named(run_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: --knn-* with --protocol linear, and the flags --preset reference replaces, were
    ignored without a word."""
    code = main(["eval", "--ckpt", str(run_dir), "--widths", "1.0", "--protocol", "linear", "--linear-epochs", "1",
                 "--knn-k", "5", "--batches", "2", "--no-baselines", "--out", str(tmp_path / "o")])
    assert code == 0
    assert "note: --knn-k do nothing with --protocol linear" in capsys.readouterr().err


@pytest.mark.slow  # a whole evaluation for one permission case
def test_eval_reads_a_run_folder_it_cannot_write(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: `eval --ckpt RUN` on a read-only run (a shared or mounted checkpoint) failed with
    `run folder RUN is not writable`, though --out was writable and the run is only an input. Root passes every
    permission check, so the read-only folder is simulated through os.access."""
    import os

    real_access = os.access

    def access(path: object, mode: int, **kw: object) -> bool:
        if mode & os.W_OK and Path(str(path)).resolve() == run_dir.resolve():
            return False
        return real_access(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    before = sorted(p.name for p in run_dir.iterdir())
    code = main(["eval", "--ckpt", str(run_dir), "--widths", "1.0,0.5", "--batches", "2",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "is not writable: the statistics calibrated now are used for this command only" in err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no lock file, no bn_stats written
    assert (tmp_path / "out" / "accuracy.json").is_file()


@pytest.mark.slow  # a whole evaluation for one refusal
def test_eval_plot_never_replaces_a_png_of_the_users(run_dir: Path, tmp_path: Path, monkeypatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-05: --plot silently replaced any file at accuracy_vs_width.png / accuracy_vs_macs.png."""
    import us3l.eval.runner

    out = tmp_path / "out"
    out.mkdir()
    argv = ["eval", "--ckpt", str(run_dir), "--widths", "1.0", "--batches", "1", "--no-baselines", "--out", str(out),
            "--plot", "--quiet"]
    for name, mine in (("accuracy_vs_width.png", b"\x89PNG\r\n\x1a\nnot ours"), ("accuracy_vs_macs.png", b"notes")):
        png = out / name
        png.write_bytes(mine)
        with monkeypatch.context() as m:  # refused before anything is evaluated
            m.setattr(us3l.eval.runner, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
            assert main(argv) == 1
        assert capsys.readouterr().err == (f"error: refusing to replace {png}: it is not a us3l plot; "
                                           "choose another --out\n")
        assert png.read_bytes() == mine and [p.name for p in out.iterdir()] == [name]
        png.unlink()
    from us3l.io import is_us3l_png

    assert main(argv) == 0
    first = (out / "accuracy_vs_width.png").read_bytes()
    assert is_us3l_png(first) and main(argv) == 0  # its own PNGs are replaced
    assert (out / "accuracy_vs_width.png").read_bytes() == first


def test_eval_never_replaces_an_accuracy_json_of_the_users(run_dir: Path, tmp_path: Path, monkeypatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team: a file of the user's at OUT/accuracy.json was silently replaced (us3l select and profile refuse to
    replace theirs); a us3l accuracy file, damaged or not, still is."""
    import us3l.eval.runner

    out = tmp_path / "out"
    out.mkdir()
    mine = out / "accuracy.json"
    mine.write_text('{"my": "results"}\n')
    argv = ["eval", "--ckpt", str(run_dir), "--widths", "1.0", "--batches", "1", "--no-baselines", "--out", str(out),
            "--quiet"]
    with monkeypatch.context() as m:  # refused before anything is evaluated
        m.setattr(us3l.eval.runner, "evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
        assert main(argv) == 1
    assert capsys.readouterr().err == (f"error: refusing to replace {mine}: it is not a us3l accuracy file; "
                                       "choose another --out\n")
    assert mine.read_text() == '{"my": "results"}\n'
    mine.write_text('{\n  "kind": "accuracy",\n  "schema_version": 2,\n  "widths": "damaged"\n}\n')
    assert main(argv) == 0
    assert load_accuracy(mine)["widths"][0]["width"] == 1.0


def test_calibrate_on_the_same_folder_spelled_otherwise_reuses_the_statistics(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Red-team 2026-12-06: `--data folder:/x` then `--data /x/` was 'other data': delete the statistics."""
    from tests.train.conftest import write_tiny_folder

    folder = write_tiny_folder(tmp_path / "data")
    stats = run_dir / "bn_stats.safetensors"
    base = ["calibrate", "--ckpt", str(run_dir), "--widths", "1", "--batches", "1", "--quiet"]
    assert main([*base, "--data", f"folder:{folder}"]) == 0
    capsys.readouterr()
    assert main([*base, "--data", f"{folder}/"]) == 0, capsys.readouterr().err
    assert stats.is_file()


@pytest.mark.slow  # 3.0 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_single_run_is_evaluated_and_calibrated_at_its_width(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: a `single` run (one fixed width) was evaluated at 1/0.75/0.5/0.25 like a slimmable one,
    a table of widths it never trained, without a word; calibrate filled the whole grid."""
    from tests.eval.conftest import SIZE, TINY
    from tests.run_folders import save_run

    run_dir = save_run(tmp_path / "run", tiny_model(), "cifar_resnet18", TINY, input_size=SIZE, method="single",
                       data={"spec": "builtin", "name": "test"}, single_width=0.5)
    assert main(["calibrate", "--ckpt", str(run_dir), "--batches", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    from us3l.slim import canonical_width

    assert json.loads(out)["calibrated"] == [canonical_width(tiny_model(), 0.5)]  # 0.5 builds the 0.4167 network
    assert "note: this `single` run trained width 0.5 only: calibrated there (--widths adds others" in err
    args = ["eval", "--ckpt", str(run_dir), "--batches", "2", "--no-baselines", "--json"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert [r["width"] for r in json.loads(out)["widths"]] == [0.5]
    assert ("note: this `single` run trained width 0.5 only: evaluated there (--widths adds others, which it never "
            "trained)") in " ".join(err.split())
    assert main([*args, "--widths", "1,0.5,0.25", "--out", str(tmp_path / "b")]) == 0
    out, err = capsys.readouterr()
    assert [r["width"] for r in json.loads(out)["widths"]] == [0.25, 0.5, 1.0]
    assert "note: this `single` run trained width 0.5 only; 1, 0.25 were never trained" in " ".join(err.split())


def test_a_single_run_with_an_edited_single_width_is_refused(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Review 2026-12-08: checkpoint.json's single_width edited from 0.5 to 1 made eval and calibrate run the
    `single` run at width 1, which it never trained, as its own width; it is bound to the weights now."""
    from tests.eval.conftest import SIZE, TINY
    from tests.run_folders import save_run

    run_dir = save_run(tmp_path / "run", tiny_model(), "cifar_resnet18", TINY, input_size=SIZE, method="single",
                       data={"spec": "builtin", "name": "test"}, single_width=0.5)
    meta_path = run_dir / "checkpoint.json"
    meta_path.write_text(meta_path.read_text().replace('"single_width": 0.5', '"single_width": 1.0'))
    said = (f"error: checkpoint {run_dir / 'checkpoint.safetensors'}: checkpoint.json records single_width 1.0, the "
            "weights were saved with 0.5 (checkpoint.json was edited); restore the original checkpoint.json or "
            "re-train")
    for cmd in (["calibrate"], ["eval", "--no-baselines", "--out", str(tmp_path / "out")]):
        assert main([*cmd, "--ckpt", str(run_dir), "--batches", "2"]) == 1
        assert capsys.readouterr().err.strip() == said
    assert not (run_dir / "bn_stats.safetensors").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow  # 2.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_checkpoint_of_a_run_stopped_early_is_named_as_such(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Red-team 2026-12-07: a checkpoint saved at epoch 2 of 8 (an interrupted run) was evaluated like a finished
    one, and accuracy.json did not record the run's length."""
    from tests.eval.conftest import SIZE, TINY
    from tests.run_folders import save_run

    for epoch, planned in ((2, 8), (8, 8)):
        run = save_run(tmp_path / f"run{epoch}", tiny_model(), "cifar_resnet18", TINY, input_size=SIZE,
                       data={"spec": "builtin", "name": "test"}, config={"epochs": planned}, epoch=epoch)
        assert main(["eval", "--ckpt", str(run), "--widths", "1", "--batches", "2", "--no-baselines", "--json",
                     "--out", str(tmp_path / f"out{epoch}")]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["checkpoint"] | {"path": None, "sha256": None} == {
            "path": None, "sha256": None, "method": "us3l", "epoch": epoch, "epochs": planned}
        said = f"note: {run} holds epoch 2 of 8: the run stopped before its end (interrupted, or still training)"
        assert (said in " ".join(err.split())) == (epoch < planned)
