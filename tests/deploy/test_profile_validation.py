"""A profile read from disk names its model, device, backend and precision (known values) and each width once;
``--widths`` lists are non-empty and name each width once. Every refusal is one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from us3l.errors import US3LError
from us3l.profiler.profile_file import validate_profile
from us3l.validate import width_list

from .conftest import latency


@pytest.fixture
def doc(write_profile) -> dict:
    path = write_profile([{"width": w, "latency": latency(1, 1, 1)} for w in (0.25, 0.5)])
    return json.loads(Path(path).read_text())


@pytest.mark.parametrize("key", ["model", "device", "backend", "precision"])
def test_a_profile_without_its_names_is_refused(doc: dict, key: str) -> None:
    del doc[key]
    with pytest.raises(US3LError, match=f"^p.json: '{key}' is missing$"):
        validate_profile(doc, "p.json")


@pytest.mark.parametrize(("key", "value"), [("backend", "x"), ("precision", "fp64")])
def test_unknown_backend_or_precision_is_refused(doc: dict, key: str, value: str) -> None:
    doc[key] = value
    with pytest.raises(US3LError, match=f"^p.json: {key} must be one of .*, got '{value}'$"):
        validate_profile(doc, "p.json")


def test_a_width_recorded_twice_is_refused(doc: dict) -> None:
    doc["records"].append(dict(doc["records"][0]))
    with pytest.raises(US3LError, match=r"^p.json: records\[2\].width 0.25 appears twice$"):
        validate_profile(doc, "p.json")


@pytest.mark.parametrize(("low", "high"), [("min_ms", "p50_ms"), ("p50_ms", "p90_ms"), ("p90_ms", "p99_ms"),
                                         ("p99_ms", "max_ms")])
def test_quantiles_that_decrease_are_refused(doc: dict, low: str, high: str) -> None:
    """Red-team 2026-12-06: a profile edited to a p50 of 9 ms above its p90 of 1 ms was selected from (and with
    --statistic p50 compared at 9 ms); us3l never writes one (summarize and interpolate keep the order)."""
    lat = doc["records"][1]["latency"]
    lat[low] = lat[high] * 9
    with pytest.raises(US3LError, match=rf"^p.json: records\[1\].latency: {low} [0-9.e+]+ is above {high} [0-9.e+]+; "
                                        r"the quantiles of a latency record never decrease \(min <= p50"):
        validate_profile(doc, "p.json")
    lat[low] = lat[high] * (1 + 1e-12)  # rounding between two equal quantiles is no edit
    validate_profile(doc, "p.json")


def test_width_lists() -> None:
    assert width_list("1, 0.5,0.25") == [1.0, 0.5, 0.25]
    with pytest.raises(US3LError, match="^--widths lists 1 twice$"):
        width_list("1,0.5,1.0")
    with pytest.raises(US3LError, match="^--widths must name at least one value, got ''$"):
        width_list("")
    assert width_list("5,5", "--latency-schedule", unique=False) == [5.0, 5.0]
    for text in ("1_0", "\u0967", "0x1", "0.5,1_0"):  # red-team 2026-12-07: float() read 1_0 as 10, "१" as 1
        with pytest.raises(US3LError) as info:
            width_list(text)
        assert str(info.value) == f"--widths must be comma-separated numbers like 0.25,0.5,1.0, got {text!r}"
    assert width_list(".5,1e-1,+1") == [0.5, 0.1, 1.0]
    for text in ("1,,0.5", "1,0.5,", ","):  # red-team 2026-12-05: "1,,0.5" gave a two-width switchable grid
        with pytest.raises(US3LError) as info:
            width_list(text)
        assert str(info.value) == f"--widths has an empty entry, got {text!r}"


@pytest.mark.parametrize(("key", "value"), [("p90_ms", 1.5), ("mean_ms", 1.0), ("std_ms", 0.1), ("n", 99),
                                            (("p90", 1), 2.2), (("p99", 1), 2.9)])
def test_statistics_that_disagree_with_their_samples_are_refused(write_profile, key, value) -> None:
    """Red-team 2026-12-06: a p90 (or its upper bound) lowered by hand, its samples left as measured, was
    selected from at the lowered figure; us3l writes the statistics of the samples (``summarize``), so they must
    agree, to a rounding tolerance."""
    path = write_profile([{"width": w, "latency": latency(1, 2, 3, ci90_hi=2.5)} for w in (0.25, 0.5)])
    doc = json.loads(Path(path).read_text())
    validate_profile(doc, "p.json")
    lat = doc["records"][1]["latency"]
    if isinstance(key, tuple):
        lat["ci95_ms"][key[0]][key[1]] = value
        name = rf"ci95_ms.{key[0]}\[{key[1]}\]"
    else:
        lat[key] = value
        name = key
    with pytest.raises(US3LError, match=rf"^p.json: records\[1\].latency.{name} is [0-9.e+]+ but its samples_ms "
                                        r"give [0-9.e+]+: the statistics of a measured width are those of its "
                                        r"samples \(an edited or damaged profile\)$"):
        validate_profile(doc, "p.json")


def test_a_lowered_p90_is_not_selected(write_profile, tmp_path, capsys) -> None:
    """The user-facing path: us3l select refuses the edited file in one line instead of choosing its width."""
    from us3l.cli import main

    lat = latency(2, 3, 4)
    lat.update(p90_ms=0.5, p50_ms=0.5, min_ms=0.5)
    lat["ci95_ms"]["p90"] = [0.5, 0.5]
    path = write_profile([{"width": 0.5, "latency": lat}])
    assert main(["select", "--profile", str(path), "--latency-ms", "1", "--out", str(tmp_path / "sel")]) == 1
    assert not (tmp_path / "sel").exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "but its samples_ms give" in err and "\n" not in err


@pytest.mark.parametrize(("part", "token"), [("fingerprint", "NaN"), ("policy", "Infinity"), ("extra", "-Infinity")])
def test_nan_anywhere_in_a_profile_is_refused_by_every_reader(write_profile, tmp_path, capsys, part, token) -> None:
    """Red-team 2026-12-06: a NaN in the fingerprint or policy (parts not checked field by field) was selected
    from and reported, while us3l profile show --json refused to print the same file. One rule: refused."""
    from us3l.cli import main

    path = write_profile([{"width": 0.5, "latency": latency(1, 1, 1)}])
    doc = json.loads(path.read_text())
    doc[part] = {"x": "@"}
    path.write_text(json.dumps(doc).replace('"@"', token))
    with pytest.raises(US3LError, match=rf"^{path}: {part}.x is not a finite number \(NaN or Infinity"):
        validate_profile(json.loads(path.read_text()), path)
    for argv in (["profile", "show", str(path)], ["profile", "show", "--json", str(path)],
                 ["select", "--profile", str(path), "--latency-ms", "5", "--out", str(tmp_path / "sel")]):
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1 and "is not a finite number" in captured.err


def test_a_device_name_not_in_lowercase_is_refused(write_profile, tmp_path, capsys) -> None:
    """Red-team 2026-12-06: a hand-made profile of device "CPU" beside one of "cpu" counted as two devices (two
    answers in select and the report), while --device CPU means cpu. Device names are lowercase, in files too."""
    from us3l.cli import main

    write_profile([{"width": 0.5, "latency": latency(1, 1, 1)}])
    upper = write_profile([{"width": 0.5, "latency": latency(2, 2, 2)}], device="CPU", backend="openvino")
    with pytest.raises(US3LError, match=r"device 'CPU' must be lowercase, as device files and --device name devices "
                                        r"\(us3l profile --device CPU writes 'cpu'\)$"):
        validate_profile(json.loads(upper.read_text()), upper)
    for argv in (["select", "--device", "CPU", "--profiles-dir", str(upper.parent), "--latency-ms", "5",
                  "--out", str(tmp_path / "sel")], ["profile", "show", str(upper)]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {upper}: device 'CPU' must be lowercase") and err.count("\n") == 1
    assert not (tmp_path / "sel").exists()


def _measured(write_profile, samples: list[float], stop_reason: str = "target") -> dict:
    """A two-width profile whose width 0.5 holds ``samples`` as the profiler records them, with the profile's
    measurement policy (the defaults) and ``stop_reason``."""
    from us3l.profiler.measure import MeasurementPolicy
    from us3l.profiler.stats import summarize

    path = write_profile([{"width": 0.25, "latency": latency(1, 1, 1)},
                          {"width": 0.5, "latency": summarize(samples).to_dict()}])
    doc = json.loads(Path(path).read_text())
    doc["policy"] = MeasurementPolicy().to_dict()
    doc["records"][1]["stop_reason"] = stop_reason
    return doc


STABILITY = (r"^p.json: records\[1\].latency.stable is {} but its samples_ms give {} under the profile's policy "
             r"\(median interval within ±0.02 of the median, no drift, and at least \d+ samples where the time budget "
             r"stopped it\): an edited or damaged profile$")


def test_a_stable_flag_that_disagrees_with_the_samples_is_refused(write_profile) -> None:
    """A leftover of the red-team pass: ``stable`` was trusted as written, so ``stable: true`` written over a
    drifting width hid select's and the report's warning. With the profile's policy it is re-derived."""
    drifting = [1.0 + 0.01 * i for i in range(60)]
    doc = _measured(write_profile, drifting)
    assert doc["records"][1]["latency"]["stable"] is False
    validate_profile(doc, "p.json")
    doc["records"][1]["latency"]["stable"] = True
    with pytest.raises(US3LError, match=STABILITY.format("true", "false")):
        validate_profile(doc, "p.json")
    del doc["policy"]  # a profile without its policy: the rule's target is unknown, the flag is read as written
    validate_profile(doc, "p.json")


def test_a_width_the_budget_cut_short_is_not_stable_whatever_its_spread(write_profile) -> None:
    """The profiler does not call a width stable when the time budget stopped it before its sample minimum, even
    if its few samples agree (us3l.profiler.measure): ``stable: true`` there is an edit; the same samples stopped
    by the target rule are stable."""
    steady = [2.0] * 10
    doc = _measured(write_profile, steady, stop_reason="budget")
    doc["records"][1]["latency"]["stable"] = False
    validate_profile(doc, "p.json")
    doc["records"][1]["latency"]["stable"] = True
    with pytest.raises(US3LError, match=STABILITY.format("true", "false")):
        validate_profile(doc, "p.json")
    doc["records"][1]["stop_reason"] = "target"
    validate_profile(doc, "p.json")
    doc["records"][1]["latency"]["stable"] = False
    with pytest.raises(US3LError, match=STABILITY.format("false", "true")):
        validate_profile(doc, "p.json")


def test_a_relative_interval_that_disagrees_with_the_samples_is_refused(write_profile) -> None:
    doc = _measured(write_profile, [1.0 + 0.001 * (i % 7) for i in range(60)])
    validate_profile(doc, "p.json")
    doc["records"][1]["latency"]["rel_ci_halfwidth"] = 0.0001
    with pytest.raises(US3LError, match=r"^p.json: records\[1\].latency.rel_ci_halfwidth is 0.0001 but its "
                                        r"samples_ms give [0-9.e-]+: the statistics"):
        validate_profile(doc, "p.json")


def test_a_policy_the_profiler_could_not_have_used_is_one_line(write_profile) -> None:
    doc = _measured(write_profile, [2.0] * 40)
    doc["policy"]["target_rel_ci"] = 2.0
    with pytest.raises(US3LError, match=r"^p.json: policy: target_rel_ci must be in \(0, 1\), got 2.0$"):
        validate_profile(doc, "p.json")
