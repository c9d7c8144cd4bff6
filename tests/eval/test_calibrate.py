"""BN recalibration per width: only statistics change, they match a static network, materialize uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.eval.conftest import batches, make_run, tiny_model
from us3l.checkpoint import load_backbone
from us3l.errors import US3LError
from us3l.eval import (
    BN_STATS_FILE,
    calibrate_widths,
    load_bn_stats,
    missing_widths,
    require_calibrated,
    save_bn_stats,
)
from us3l.slim import SlimBatchNorm2d, calibrated_widths, canonical_width, materialize, width


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("track", [False, True])
def test_calibration_changes_statistics_only(track: bool) -> None:
    model = tiny_model(bn_track_stats=track)
    before = _state(model)
    done = calibrate_widths(model, [1.0, 0.5, 0.25], batches())
    assert done == tuple(sorted(canonical_width(model, w) for w in (1.0, 0.5, 0.25)))
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # bit-identical weights (and running stats, if any)
    assert set(done) <= set(calibrated_widths(model))
    assert not model.training


@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize("w", [1.0, 0.5, 0.3])
def test_statistics_equal_static_network(w: float, momentum: float | None) -> None:
    model = tiny_model()
    data = batches(n=4)
    calibrate_widths(model, [w], data, momentum=momentum)

    static = materialize(model, w, require_bn_stats=False)  # same weights, plain nn layers
    bns = {n: m for n, m in static.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for m in bns.values():
        m.track_running_stats = True
        m.register_buffer("running_mean", torch.zeros(m.num_features))
        m.register_buffer("running_var", torch.ones(m.num_features))
        m.register_buffer("num_batches_tracked", torch.tensor(0))
        m.momentum = momentum
        m.reset_running_stats()
    static.train()
    with torch.no_grad():
        for x in data:
            static(x)
    key = canonical_width(model, w)
    slim = {n: m for n, m in model.named_modules() if isinstance(m, SlimBatchNorm2d)}
    assert slim.keys() == bns.keys()
    for name, bn in bns.items():
        mean, var = slim[name].width_stats[key]
        torch.testing.assert_close(mean, bn.running_mean, rtol=1e-4, atol=1e-5, msg=name)
        torch.testing.assert_close(var, bn.running_var, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("w", [1.0, 0.6, 0.25])
def test_materialize_uses_calibrated_statistics(w: float) -> None:
    model = tiny_model()
    with pytest.raises(US3LError, match="no calibrated BN statistics"):
        materialize(model, w, require_bn_stats=True)
    calibrate_widths(model, [w], batches())
    static = materialize(model, w, require_bn_stats=True)
    x = batches(n=1, b=2, seed=7)[0]
    with torch.no_grad(), width(model, w):
        dyn = model.eval()(x)
    with torch.no_grad():
        sta = static(x)
        one = static(x[:1])  # running statistics: a batch of one gives the same row
    torch.testing.assert_close(dyn, sta, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one, sta[:1], rtol=1e-4, atol=1e-5)


def test_recalibration_resets_previous_statistics() -> None:
    model = tiny_model()
    calibrate_widths(model, [0.5], batches(seed=1))
    calibrate_widths(model, [0.5], batches(seed=2))
    fresh = tiny_model()
    calibrate_widths(fresh, [0.5], batches(seed=2))
    key = canonical_width(model, 0.5)
    for a, b in zip(model.modules(), fresh.modules(), strict=True):
        if isinstance(a, SlimBatchNorm2d):
            torch.testing.assert_close(a.width_stats[key], b.width_stats[key])


def test_save_load_and_load_backbone_picks_up(tmp_path: Path) -> None:
    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [1.0, 0.5], batches())
    save_bn_stats(model, run)
    assert (run / BN_STATS_FILE).is_file()
    other = tiny_model()
    assert load_bn_stats(other, run) == calibrated_widths(model)
    loaded = load_backbone(run)
    assert calibrated_widths(loaded.model) == calibrated_widths(model)
    x = batches(n=1, b=3, seed=3)[0]
    with torch.no_grad():
        torch.testing.assert_close(materialize(loaded.model, 0.5, require_bn_stats=True)(x),
                                   materialize(model, 0.5, require_bn_stats=True)(x))


def test_missing_width_without_data_is_a_clear_error() -> None:
    model = tiny_model()
    calibrate_widths(model, [1.0], batches())
    assert missing_widths(model, [1.0, 0.5]) == [0.5]
    require_calibrated(model, [1.0])
    with pytest.raises(US3LError, match=r"0\.5 have no calibrated BN statistics and no calibration data"):
        require_calibrated(model, [1.0, 0.5])


def test_non_finite_batches_are_not_blamed_on_the_weights() -> None:
    # NaN inputs (e.g. batches normalised by a zero std) were reported as "its weights are not finite (a diverged
    # run?) ... use an earlier checkpoint or re-train" although every weight was finite
    model = tiny_model()
    nan_batches = [torch.full((4, 3, 16, 16), float("nan"))]
    with pytest.raises(US3LError, match=r"^the network gives non-finite BN statistics \(NaN or inf\) at width 1, first "
                       r"in layer bn1: the weights are finite, so the calibration batches are not \(NaN or inf in "
                       r"the inputs, or values too large for the network\); nothing was calibrated$"):
        calibrate_widths(model, [1.0], nan_batches)
    assert calibrated_widths(model) == ()
    with torch.no_grad():
        model.conv1.weight.fill_(float("nan"))
    with pytest.raises(US3LError, match=r"first in layer bn1: its weights are not finite \(a diverged run\?\)"):
        calibrate_widths(model, [1.0], batches())


def test_corrupted_bn_stats_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / BN_STATS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(US3LError, match="cannot read BN statistics"):
        load_bn_stats(tiny_model(), tmp_path)


def test_bn_stats_of_another_model_are_rejected(tmp_path: Path) -> None:
    model = tiny_model()
    calibrate_widths(model, [1.0], batches())
    save_bn_stats(model, tmp_path)
    bigger = tiny_model(seed=0, base_channels=16)
    with pytest.raises(US3LError, match="do not fit"):
        load_bn_stats(bigger, tmp_path)


def test_bad_momentum_is_rejected() -> None:
    with pytest.raises(US3LError, match="momentum"):
        calibrate_widths(tiny_model(), [1.0], batches(), momentum=1.5)


# ------------------------------------------------------------------ bn_stats bound to their checkpoint (issue 11.1)


def test_bn_stats_record_the_checkpoint_hash(tmp_path: Path) -> None:
    from us3l.eval.calibrate import bn_stats_checkpoint_sha256

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    save_bn_stats(model, run)
    assert bn_stats_checkpoint_sha256(run) == load_backbone(run).sha256


def test_bn_stats_of_changed_weights_are_refused_or_ignored(tmp_path: Path) -> None:
    from us3l.eval import open_checkpoint
    from us3l.eval.calibrate import StaleBNStats

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    save_bn_stats(model, run)
    make_run(run, tiny_model(seed=1))  # the weights change (training continued), the statistics stay
    with pytest.raises(StaleBNStats, match=r"bn_stats\.safetensors .*stale; run `us3l calibrate --ckpt ") as exc:
        load_backbone(run)
    assert "\n" not in str(exc.value)
    loaded = open_checkpoint(run)  # commands that calibrate anyway leave them out and recompute
    assert calibrated_widths(loaded.model) == () and "stale" in (loaded.bn_stats_note or "")


def test_damaged_bn_stats_are_refused(tmp_path: Path) -> None:
    from safetensors import safe_open

    from us3l.eval.calibrate import TENSORS_SHA_KEY, tensors_sha256

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    path = save_bn_stats(model, run)
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        assert fh.metadata()[TENSORS_SHA_KEY] == tensors_sha256({k: fh.get_tensor(k) for k in fh.keys()})
    blob = bytearray(path.read_bytes())
    blob[-4:] = b"\x7f\x7f\x7f\x7f"  # the last statistic's bytes: the file still parses
    path.write_bytes(bytes(blob))
    with pytest.raises(US3LError) as exc:
        load_backbone(run)
    assert str(exc.value) == (
        f"BN statistics {path} are damaged (their content differs from the digest recorded when they were "
        f"saved); delete it and run `us3l calibrate --ckpt {run}`"
    )


def test_unbound_bn_stats_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from us3l.slim import bn_stats_state

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    save_file(bn_stats_state(model), str(run / BN_STATS_FILE), metadata={"format": "pt"})  # an older us3l
    with pytest.raises(US3LError, match="records no checkpoint hash.*us3l calibrate --ckpt"):
        load_backbone(run)


class _Killed(BaseException):
    """Stands in for SIGKILL right after a checkpoint was written."""


@pytest.mark.slow  # 1.5 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_issue_scenario_calibrate_then_resume_then_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Train, die after the epoch-2 checkpoint, calibrate width 0.5, resume: the statistics are gone (stale),
    a restored stale copy is refused by export, and eval recomputes them to exactly a fresh calibration."""
    from tests.train.conftest import TINY, write_tiny_folder
    from us3l.cli import main
    from us3l.eval import CalibrationSettings, calibrate_checkpoint, open_checkpoint
    from us3l.train import loop
    from us3l.train.config import make_config

    data = f"folder:{write_tiny_folder(tmp_path / 'data')}"
    run = tmp_path / "run"
    cfg = make_config({**TINY, "data": data, "out": str(run)})
    real_save = loop._save

    def save_then_die(*args: object) -> None:
        real_save(*args)  # type: ignore[arg-type]
        if args[-1] == 2:
            raise _Killed

    monkeypatch.setattr(loop, "_save", save_then_die)
    with pytest.raises(_Killed):
        loop.run_training(cfg)
    monkeypatch.undo()
    settings = CalibrationSettings(batches=2, batch_size=4)
    calibrate_checkpoint(open_checkpoint(run), data, [0.5], settings)
    stale = (run / BN_STATS_FILE).read_bytes()

    assert loop.run_training(cfg, resume=True).status == "completed"
    assert not (run / BN_STATS_FILE).exists()  # invalidated when the new checkpoint was written

    (run / BN_STATS_FILE).write_bytes(stale)  # e.g. copied back, or written by a tool that does not know
    code = main(["export", "--backend", "onnx", "--width", "0.5", "--ckpt", str(run), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "stale" in err and "us3l calibrate --ckpt" in err and BN_STATS_FILE in err
    assert not (tmp_path / "o" / "local").exists() or not any((tmp_path / "o" / "local").iterdir())

    loaded = open_checkpoint(run)  # eval/quickstart recompute instead of refusing
    done = calibrate_checkpoint(loaded, data, [0.5], settings, recalibrate=False)
    assert done == (canonical_width(loaded.model, 0.5),)
    fresh = load_backbone(run, stale_bn_stats="ignore").model
    assert calibrated_widths(fresh) == done  # the file now holds the recomputed statistics, bound to the weights
    from us3l.eval.calibrate import bn_stats_checkpoint_sha256

    assert bn_stats_checkpoint_sha256(run) == loaded.sha256


def test_invalidate_stale_keeps_bound_files(tmp_path: Path) -> None:
    from us3l.derived import invalidate_stale
    from us3l.io import atomic_write_json

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    save_bn_stats(model, run)
    sha = load_backbone(run).sha256
    atomic_write_json(run / "accuracy.json", {"checkpoint_sha256": sha})
    assert invalidate_stale(run) == []
    make_run(run, tiny_model(seed=2))
    removed = invalidate_stale(run)
    assert sorted(p.name for p in removed) == ["accuracy.json", BN_STATS_FILE]


def test_statistics_of_other_data_are_recalibrated_not_reused(tmp_path: Path) -> None:
    """Stored statistics estimated on another data set are never used to score this one, and a file that gets
    new widths never mixes two calibrations under one provenance."""
    from us3l.eval.calibrate import CalibrationSettings, read_bn_stats_settings
    from us3l.eval.runner import calibrate_checkpoint, open_checkpoint

    run = make_run(tmp_path / "run")
    settings = CalibrationSettings(batches=2, batch_size=16)
    calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], settings)
    assert read_bn_stats_settings(run)["data"] == "digits"
    notes: list[str] = []
    done = calibrate_checkpoint(open_checkpoint(run), "builtin", [1.0, 0.5], settings, recalibrate=False,
                                progress=notes.append)
    assert set(done) == {canonical_width(tiny_model(), w) for w in (1.0, 0.5)}  # 1.0 too, not only the new 0.5
    assert any("stored BN statistics were estimated differently (data digits -> builtin)" in n for n in notes)
    # the file is kept, so nothing is said to be dropped (the first note said "dropped", the next "kept")
    assert not any("dropped" in n for n in notes), notes
    # the run's own statistics are kept (red-team 2026-12-05: an eval on other data replaced them)
    assert any("statistics on builtin are used for this evaluation only" in n and "keeps those on digits" in n
               for n in notes)
    assert read_bn_stats_settings(run)["data"] == "digits"
    assert load_backbone(run).model is not None and calibrated_widths(load_backbone(run).model) == (1.0,)
    # same data and settings, nothing missing: the stored statistics are reused
    assert calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], settings, recalibrate=False) == ()


def test_recalibrating_some_widths_with_other_settings_never_mislabels_the_rest(tmp_path: Path) -> None:
    """Red-team 2026-12-05: ``calibrate --widths 1 --bn-momentum 0.1`` after a full calibration relabelled every
    stored width with the new settings, and eval then reported them under settings they were not made with."""
    from us3l.eval.calibrate import CalibrationSettings, read_bn_stats_settings
    from us3l.eval.runner import calibrate_checkpoint, open_checkpoint

    run = make_run(tmp_path / "run")
    calibrate_checkpoint(open_checkpoint(run), "digits", [1.0, 0.5], CalibrationSettings(batches=2, batch_size=16))
    notes: list[str] = []
    other = CalibrationSettings(batches=3, batch_size=16, momentum=0.1)
    assert calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], other, recalibrate=True,
                                progress=notes.append) == (1.0,)
    assert any("estimated differently" in n for n in notes)
    stored = read_bn_stats_settings(run)
    assert (stored["batches"], stored["momentum"]) == ("3", "0.1")
    assert calibrated_widths(load_backbone(run).model) == (1.0,)  # width 0.5 dropped, not relabelled


def test_the_batches_a_small_train_split_really_gave_are_recorded(tmp_path: Path) -> None:
    """Red-team 2026-12-05: --batches 1000 on digits (12 batches of 128) was recorded as 1000 batches."""
    from us3l.eval.calibrate import CalibrationSettings, read_bn_stats_settings
    from us3l.eval.runner import calibrate_checkpoint, open_checkpoint

    run = make_run(tmp_path / "run")
    calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], CalibrationSettings(batches=1000, batch_size=128))
    stored = read_bn_stats_settings(run)
    assert (stored["batches"], stored["batches_used"]) == ("1000", "12")  # ceil(1438 / 128)
    assert CalibrationSettings(batches=3).used_on(1438).batches_used == 3
    # a pass's last batch of one image is skipped by calibrate_widths: it was counted (batches_used 2, used 1)
    assert CalibrationSettings(batch_size=1999).used_on(2000).batches_used == 1
    assert CalibrationSettings(batch_size=1999, epochs=2, augment="linear").used_on(2000).batches_used == 2
    assert CalibrationSettings(batch_size=100, epochs=2, augment="linear").used_on(1438).batches_used == 30


@pytest.mark.slow  # 1.4 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_a_batch_size_over_the_train_split_is_noted(tmp_path: Path) -> None:
    # calibrate --batch-size 100000 on digits said "calibrated ... over 1 batch(es) of 100000": the batch held 1438
    from us3l.eval.calibrate import CalibrationSettings
    from us3l.eval.runner import calibrate_checkpoint, open_checkpoint

    run = make_run(tmp_path / "run")
    notes: list[str] = []
    calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], CalibrationSettings(batches=2, batch_size=100000),
                         progress=notes.append)
    assert ("the digits train split has 1438 images, fewer than the batch size 100000: each calibration batch holds "
            "all 1438") in notes
    notes.clear()
    calibrate_checkpoint(open_checkpoint(run), "digits", [1.0], CalibrationSettings(batches=2, batch_size=1438),
                         progress=notes.append)
    assert not [n for n in notes if "train split has" in n]


def test_bn_stats_file_bytes_are_reproducible(tmp_path: Path) -> None:
    """The same statistics for the same weights give the same bytes (the safetensors header is sorted)."""
    from safetensors import safe_open

    from us3l.eval.calibrate import CHECKPOINT_SHA_KEY
    from us3l.io import file_sha256
    from us3l.safetensors_io import canonical_header

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [1.0, 0.5], batches())
    first = save_bn_stats(model, run).read_bytes()
    assert canonical_header(first) == first
    for _ in range(5):
        assert save_bn_stats(model, run).read_bytes() == first
    with safe_open(str(run / BN_STATS_FILE), framework="pt", device="cpu") as fh:
        assert fh.metadata()[CHECKPOINT_SHA_KEY] == file_sha256(run / "checkpoint.safetensors")
    assert calibrated_widths(load_backbone(run).model) == calibrated_widths(model)


def test_invalidate_stale_counts_an_accuracy_file_nested_too_deep_as_stale(tmp_path: Path) -> None:
    """An accuracy.json of arrays nested 10^5 deep raised RecursionError out of ``invalidate_stale``, so
    ``us3l train --resume`` of that run failed; like any other unreadable file it is stale (red-team)."""
    from us3l.derived import invalidate_stale

    run = make_run(tmp_path / "run", tiny_model())
    (run / "accuracy.json").write_text("[" * 100_000)
    assert [p.name for p in invalidate_stale(run)] == ["accuracy.json"]


def test_bn_stats_swapped_after_the_binding_check_are_not_loaded(tmp_path: Path, monkeypatch) -> None:
    """The binding to the checkpoint was checked with one open and the statistics loaded with another: a stale file
    (statistics of other weights) swapped in between was loaded as if bound. Now both come from one read."""
    from us3l.eval import calibrate as cal

    model = tiny_model()
    run = make_run(tmp_path / "run", model)
    calibrate_widths(model, [0.5], batches())
    save_bn_stats(model, run)
    sha = load_backbone(run).sha256
    stale = tiny_model(seed=5)
    calibrate_widths(stale, [0.5], batches(seed=7))
    save_bn_stats(stale, tmp_path / "other", checkpoint_sha256="0" * 64)
    real = cal.check_bn_stats_binding

    def check_then_swap(*args, **kwargs):
        real(*args, **kwargs)
        (run / BN_STATS_FILE).write_bytes((tmp_path / "other" / BN_STATS_FILE).read_bytes())

    monkeypatch.setattr(cal, "check_bn_stats_binding", check_then_swap)
    fresh = tiny_model()
    load_bn_stats(fresh, run, checkpoint_sha256=sha)  # loads exactly the bytes whose binding was checked
    key = canonical_width(model, 0.5)
    pairs = [(a, b, c) for a, b, c in zip(fresh.modules(), model.modules(), stale.modules(), strict=True)
             if isinstance(a, SlimBatchNorm2d)]
    assert pairs and not all(torch.equal(b.width_stats[key][0], c.width_stats[key][0]) for _, b, c in pairs)
    for a, b, _ in pairs:
        torch.testing.assert_close(a.width_stats[key], b.width_stats[key])
