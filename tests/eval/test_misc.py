"""Calibration batches, augmented linear probe, plots, width parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.eval.conftest import SIZE, tiny_model
from tests.eval.test_accuracy import _doc
from us3l.data import EvalTransform, LinearTrainAugment, load_dataset
from us3l.errors import US3LError
from us3l.eval import calibration_batches, extract_features, parse_widths, width_costs
from us3l.eval.linear import LinearProbeSettings, train_linear_probe_augmented
from us3l.eval.plot import plot_accuracy


@pytest.fixture(scope="module")
def digits_test() -> object:
    return load_dataset("builtin", "test")


def test_calibration_batches_are_fixed(digits_test: object) -> None:
    tf = EvalTransform(SIZE, (0.3,) * 3, (0.3,) * 3)
    a = calibration_batches(digits_test, tf, num_batches=3, batch_size=50)
    b = calibration_batches(digits_test, tf, num_batches=3, batch_size=50)
    assert isinstance(a, list) and len(a) == 3 and a[0].shape == (50, 3, SIZE, SIZE)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # fewer batches when the data set is smaller than num_batches * batch_size
    assert len(calibration_batches(digits_test, tf, num_batches=100, batch_size=128)) == -(-len(digits_test) // 128)
    with pytest.raises(US3LError):
        calibration_batches(digits_test, tf, num_batches=0)


def test_augmented_linear_probe_runs(digits_test: object) -> None:
    model = tiny_model()
    tf = EvalTransform(SIZE, (0.3,) * 3, (0.3,) * 3)
    fte, yte = extract_features(model, 0.5, digits_test, tf, limit=100)
    assert fte.shape == (100, model.feature_dim(0.5))
    aug = LinearTrainAugment(SIZE, (0.3,) * 3, (0.3,) * 3)
    top1, top5, hits = train_linear_probe_augmented(
        model, 0.5, digits_test, aug, fte, yte, 10, LinearProbeSettings(epochs=1, lr=1.0, batch_size=120)
    )
    assert 0 <= top1 <= top5 <= 1 and int(hits.sum()) == round(top1 * len(yte))


def test_plot_writes_pngs(tmp_path: Path) -> None:
    paths = plot_accuracy(_doc(), tmp_path)
    assert [p.name for p in paths] == ["accuracy_vs_width.png", "accuracy_vs_macs.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_parse_widths() -> None:
    model = tiny_model()
    assert parse_widths(model, None, None) == [1.0, 0.75, 0.5, 0.25]
    assert parse_widths(model, "1, 0.5", None) == [1.0, 0.5]
    with pytest.raises(US3LError, match="^--widths lists 0.5 twice$"):  # as profile and export say
        parse_widths(model, "1, 0.5,0.5", None)
    assert parse_widths(model, None, 1) == [1.0]
    assert parse_widths(model, None, 1000) == list(model.width_grid())
    assert len(parse_widths(model, None, 3)) == 3
    with pytest.raises(US3LError, match="either --widths or --points"):
        parse_widths(model, "1.0", 3)
    with pytest.raises(US3LError, match="width must be in"):
        parse_widths(model, "0.1", None)


@pytest.mark.parametrize(
    ("size", "shown"), [(0, "0"), (-32, "-32"), (32.5, "32.5"), (True, "True"), (None, "None"), (4097, "4097")]
)
def test_width_costs_refuses_an_input_size_that_is_no_size(size: object, shown: str) -> None:
    with pytest.raises(US3LError) as err:  # 0 and -32 were torch RuntimeErrors, 32.5 a TypeError, True costed 1x1
        width_costs(tiny_model(), 0.5, size)  # type: ignore[arg-type]
    assert str(err.value) == f"input_size must be a finite positive integer <= 4096, got {shown}"


def test_evaluate_checkpoint_checks_its_widths_first(tmp_path: Path) -> None:
    # a width given twice was evaluated twice and then refused as a whole ("<accuracy document>: widths[1] repeats
    # width 1 of widths[0]"); an empty list failed in the calibration step ("no widths to calibrate")
    from tests.eval.conftest import make_run
    from us3l.eval import CalibrationSettings, EvalSettings, evaluate_checkpoint, open_checkpoint

    loaded = open_checkpoint(make_run(tmp_path / "run"))
    s = EvalSettings(baselines=False, costs=False, calibration=CalibrationSettings(batches=1))
    doc = evaluate_checkpoint(loaded, None, [1.0, 1.0], s)
    assert [r["width"] for r in doc["widths"]] == [1.0]
    with pytest.raises(US3LError, match="^no widths given$"):
        evaluate_checkpoint(loaded, None, [], s)


def test_non_finite_features_are_refused(digits_test: object) -> None:
    # calibrated statistics, then NaN weights (the shape a diverged run's last checkpoint has): features of NaN were
    # scored by the kNN as if they were features
    from us3l.eval import calibrate_widths

    model = tiny_model()
    calibrate_widths(model, [1.0], [torch.randn(8, 3, SIZE, SIZE)])
    with torch.no_grad():
        model.conv1.weight.fill_(float("nan"))
    transform = EvalTransform(SIZE, (0.5,) * 3, (0.3,) * 3)
    with pytest.raises(US3LError, match=r"^the network gives non-finite features \(NaN or inf\) at width 1 for 5 of 5"):
        extract_features(model, 1.0, digits_test, transform, limit=5)


@pytest.mark.parametrize("trained", ["builtin", "digits", {"spec": "digits", "name": "builtin-digits"}])
def test_a_run_on_a_built_in_set_is_evaluated_on_it_without_data(trained: object) -> None:
    """A run trained with --data digits (no path: the same data everywhere) needed --data for eval and
    calibrate, which said 'only the built-in data set is used by default'."""
    from us3l.eval.runner import resolve_data_spec

    spec = trained["spec"] if isinstance(trained, dict) else trained
    assert resolve_data_spec({"data": trained}, None) == spec
    assert resolve_data_spec({"data": trained}, "folder:/x") == "folder:/x"


@pytest.mark.parametrize("trained", ["cifar10:/data/c10", {"spec": "folder:/data/in"}, None])
def test_a_run_on_data_with_a_path_needs_data(trained: object) -> None:
    from us3l.eval.runner import resolve_data_spec

    with pytest.raises(US3LError, match=r"^--data is required: the checkpoint was trained on .*only the built-in "
                                        r"data sets \(builtin, digits\) are used by default$"):
        resolve_data_spec({} if trained is None else {"data": trained}, None)
