"""The budget solver on hand-made profile/accuracy tables."""

from __future__ import annotations

import statistics

import pytest

from us3l.deploy.select import Budget, LatencyRule, find_profiles, read_selection, select, write_selection
from us3l.errors import US3LError
from us3l.width_key import width_key

from .conftest import latency


def rows(*spec: tuple[float, float]) -> list[dict]:
    """(width, p90) pairs; p50 = 0.8 p90, p99 = 1.2 p90, CI upper bound = p90."""
    return [{"width": w, "latency": latency(0.8 * p, p, 1.2 * p)} for w, p in spec]


def test_exact_fit_is_feasible(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (0.75, 3.0), (1.0, 4.0)))
    acc = write_accuracy({0.25: 50.0, 0.5: 60.0, 0.75: 70.0, 1.0: 80.0})
    d = select([prof], Budget(latency_ms=3.0), acc).devices[0]
    assert d.chosen.width == 0.75 and d.chosen.accuracy == pytest.approx(0.70)
    assert d.slack == {"latency_ms": 0.0}
    assert d.runner_up.width == 0.5


def test_a_margin_does_not_push_an_exact_fit_over_by_a_rounding_error(write_profile, write_accuracy) -> None:
    """p90 3.0 ms + 10 % margin is 3.3000000000000003 in floating point: a 3.3 ms budget refused it, saying
    "latency_ms 3.3 > 3.3"."""
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (0.75, 3.0), (1.0, 4.0)))
    acc = write_accuracy({0.25: 50.0, 0.5: 60.0, 0.75: 70.0, 1.0: 80.0})
    d = select([prof], Budget(latency_ms=3.3), acc, LatencyRule(margin=0.1), strict_accuracy=True).devices[0]
    assert d.chosen.width == 0.75 and d.chosen.latency_ms == 3.3 and d.slack == {"latency_ms": 0.0}
    # a real excess too small for 4 digits is printed with the digits that show it
    over = write_profile(rows((0.25, 3.30004)), device="gpu")
    sel = select([over], Budget(latency_ms=3.3))
    assert sel.devices[0].candidates[0].violations == ("latency_ms 3.30004 > 3.3",)  # was "3.3 > 3.3"
    with pytest.raises(US3LError, match=r"smallest achievable latency is 3\.30004 ms"):  # was 3.300
        sel.raise_if_infeasible()
    with pytest.raises(US3LError, match=r"smallest achievable latency is 3\.300 ms"):  # 3 decimals otherwise
        select([over], Budget(latency_ms=3.2)).raise_if_infeasible()


def test_infeasible_by_the_combination_of_limits_says_so(write_profile) -> None:
    """Latency alone is met by width 0.25, memory alone by the others: the error named only the smallest latency
    (1.000 ms, under the 1.5 ms budget) and the smallest memory (under its limit), which read as "fits"."""
    prof = write_profile([{"width": 0.25, "latency": latency(1, 1, 1), "weight_bytes": 9_000_000},
                          *rows((0.5, 2.0), (1.0, 4.0))])
    sel = select([prof], Budget(latency_ms=1.5, memory_mb=1))
    with pytest.raises(US3LError, match=r"each limit alone is met, but by different widths \(latency_ms <= 1\.5: "
                       r"width 0\.25; memory_mb <= 1: widths 0\.5, 1\)$"):
        sel.raise_if_infeasible()
    with pytest.raises(US3LError) as info:  # one limit that no width meets: the smallest values say it
        select([prof], Budget(latency_ms=0.5, memory_mb=1)).raise_if_infeasible()
    assert "different widths" not in str(info.value)


@pytest.mark.parametrize(("profiled", "evaluated"), [(0.78125, 0.7813), (0.7813, 0.78125), (0.40625, 0.4063),
                                                     (0.34375, 0.3438), (0.78125, 0.78125)])
def test_a_width_written_to_4_decimals_in_one_file_matches_its_exact_value_in_the_other(
    write_profile, write_accuracy, profiled, evaluated
) -> None:
    """round(0.78125, 4) is 0.7812 (half to even), round(0.34375, 4) 0.3438: a profile at 25/32 and an accuracy
    file at the grid's 0.7813 did not match, so the most accurate width was excluded ("width 0.7812 has no
    accuracy") and a worse one chosen, while 11/32 against 0.3438 happened to match."""
    prof = write_profile(rows((0.25, 1.0), (profiled, 2.0)))
    d = select([prof], Budget(latency_ms=5), write_accuracy({0.25: 50.0, evaluated: 70.0})).devices[0]
    assert not any("excluded" in n for n in d.notes) and d.chosen.accuracy == pytest.approx(0.70)
    assert d.chosen.width == width_key(profiled)  # the profile's width, keyed by the one rule: 0.78125 is 0.7813


def test_a_width_with_its_own_row_is_not_shadowed_by_another_spelling(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.7812, 1.0), (0.7813, 2.0)))
    # 0.78125 keys as 0.7813 (us3l.width_key; before 2026-12-06: 0.7812, where that row replaced 0.7812's own):
    # each of 0.7812 and 0.7813 has a row of its own, and neither is replaced by the 0.78125 row
    acc = write_accuracy({0.7812: 40.0, 0.78125: 50.0, 0.7813: 60.0})
    d = select([prof], Budget(latency_ms=5), acc, strict_accuracy=True).devices[0]
    assert {c.width: c.accuracy for c in d.candidates} == pytest.approx({0.7812: 0.4, 0.7813: 0.6})


def test_one_profile_file_may_be_given_as_a_str_or_path(write_profile, write_accuracy) -> None:
    # select("profiles/x.json", ...) iterated the string: "profile not found: p"
    from pathlib import Path

    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)))
    acc = write_accuracy({0.25: 50.0, 0.5: 60.0, 1.0: 80.0})
    for one in (str(prof), Path(prof)):
        sel = select(one, Budget(latency_ms=3.0), acc)
        assert [d.chosen.width for d in sel.devices] == [0.5]
        assert [p["path"] for p in sel.inputs["profiles"]] == [str(prof)]


def test_no_fit_exits_3_naming_the_smallest_latency(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 1.5), (0.5, 1.2), (1.0, 4.0)))  # non-monotone: 0.5 is fastest
    sel = select([prof], Budget(latency_ms=1.0), write_accuracy({0.25: 1, 0.5: 2, 1.0: 3}))
    assert not sel.feasible and sel.devices[0].chosen is None
    with pytest.raises(US3LError, match=r"smallest achievable latency is 1\.200 ms") as info:
        sel.raise_if_infeasible()
    assert info.value.exit_code == 3


def test_ties_prefer_accuracy_then_latency_then_width(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (0.75, 2.0), (1.0, 3.0)))
    acc = write_accuracy({0.25: 70.0, 0.5: 70.0, 0.75: 70.0, 1.0: 70.0})
    d = select([prof], Budget(latency_ms=5), acc).devices[0]
    assert d.chosen.width == 0.25  # equal accuracy: lowest latency
    prof2 = write_profile(rows((0.25, 2.0), (0.5, 2.0)), device="gpu")
    d2 = select([prof2], Budget(latency_ms=5), write_accuracy({0.25: 70.0, 0.5: 70.0})).devices[0]
    assert d2.chosen.width == 0.25 and d2.runner_up.width == 0.5  # equal accuracy and latency: smaller
    d3 = select([prof], Budget(latency_ms=5), write_accuracy({0.25: 1, 0.5: 3, 0.75: 2, 1.0: 3})).devices[0]
    assert d3.chosen.width == 0.5  # accuracy 3 twice: the faster of the two


def test_several_budgets_at_once(write_profile, write_accuracy) -> None:
    spec = [
        {
            "width": 0.25,
            "latency": latency(1, 1, 1),
            "macs": 100,
            "params": 10,
            "weight_bytes": 1e6,
            "activation_bytes": 0,
        },
        {
            "width": 0.5,
            "latency": latency(1, 1, 1),
            "macs": 200,
            "params": 20,
            "weight_bytes": 2e6,
            "activation_bytes": 0,
        },
        {
            "width": 0.75,
            "latency": latency(1, 1, 1),
            "macs": 300,
            "params": 15,
            "weight_bytes": 3e6,
            "activation_bytes": 0,
        },
        {
            "width": 1.0,
            "latency": latency(9, 9, 9),
            "macs": 400,
            "params": 40,
            "weight_bytes": 4e6,
            "activation_bytes": 0,
        },
    ]
    acc = write_accuracy({0.25: 1, 0.5: 2, 0.75: 3, 1.0: 4})
    prof = write_profile(spec)
    assert select([prof], Budget(latency_ms=5), acc).devices[0].chosen.width == 0.75
    assert select([prof], Budget(latency_ms=5, macs=250), acc).devices[0].chosen.width == 0.5
    assert select([prof], Budget(latency_ms=5, params=12), acc).devices[0].chosen.width == 0.25
    d = select([prof], Budget(memory_mb=2.5, macs=1000), acc).devices[0]
    assert d.chosen.width == 0.5 and d.slack["memory_mb"] == pytest.approx(0.5)
    viol = {c.width: c.violations for c in d.candidates}
    assert viol[1.0] == ("memory_mb 4 > 2.5",)


def test_non_monotone_latency_curve(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 2.0), (0.5, 5.0), (0.75, 1.8), (1.0, 6.0)))
    d = select([prof], Budget(latency_ms=2.0), write_accuracy({0.25: 50, 0.5: 60, 0.75: 70, 1.0: 80})).devices[0]
    assert d.chosen.width == 0.75  # a wider net that happens to be faster than a narrower one
    assert d.runner_up.width == 0.25


def test_macs_proxy_without_accuracy(write_profile) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)))
    sel = select([prof], Budget(latency_ms=2.5))
    assert sel.metric == "macs" and "MACs proxy" in sel.accuracy_source
    assert sel.devices[0].chosen.width == 0.5 and sel.devices[0].chosen.accuracy == 500000


def test_statistic_and_margin(write_profile) -> None:
    spec = [{"width": 0.5, "latency": latency(1.0, 2.0, 3.0, ci90_hi=2.4)}]
    lat = spec[0]["latency"]
    mean, std = statistics.mean(lat["samples_ms"]), statistics.stdev(lat["samples_ms"])
    assert lat["n"] == 100 and mean != lat["p50_ms"] and std > 0  # the mean rule below is not another statistic
    assert LatencyRule().value_ms(lat) == 2.4  # default: upper CI bound of p90
    assert LatencyRule("p90", conservative=False).value_ms(lat) == 2.0
    assert LatencyRule("p50", margin=0.5).value_ms(lat) == pytest.approx(1.5)
    assert LatencyRule("p99").value_ms(lat) == 3.0
    assert LatencyRule("mean").value_ms(lat) == pytest.approx(mean + 1.9842169515 * std / 10)  # t(0.975, 99)
    prof = write_profile(spec)
    assert select([prof], Budget(latency_ms=2.2)).devices[0].chosen is None
    assert select([prof], Budget(latency_ms=2.2), rule=LatencyRule(conservative=False)).devices[0].chosen
    assert (
        select([prof], Budget(latency_ms=2.15), rule=LatencyRule(margin=0.1, conservative=False)).devices[0].chosen
        is None
    )
    with pytest.raises(US3LError, match="unknown latency statistic"):
        LatencyRule("p95")


def test_width_without_accuracy_is_excluded_with_a_note(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (0.75, 3.0)))
    acc = write_accuracy({0.25: 50.0, 0.50001: 60.0})  # matched after rounding to 4 decimals
    d = select([prof], Budget(latency_ms=10), acc).devices[0]
    assert d.chosen.width == 0.5
    assert d.notes == [
        "width 0.75 has no accuracy: excluded",
        "the accuracy file has no 95% intervals (schema 1): plain highest accuracy decided",
    ]


def test_metric_choice(write_profile, write_accuracy) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0)))
    acc = write_accuracy({0.25: 60.0, 0.5: 50.0}, knn={0.25: 40.0, 0.5: 45.0})
    assert select([prof], Budget(latency_ms=9), acc).devices[0].chosen.width == 0.25  # linear preferred
    assert select([prof], Budget(latency_ms=9), acc, metric="knn").devices[0].chosen.width == 0.5
    knn_only = write_accuracy({0.25: None, 0.5: None}, knn={0.25: 40.0, 0.5: 45.0})
    sel = select([prof], Budget(latency_ms=9), knn_only)
    assert sel.metric == "knn_top1"


def test_many_devices_and_document(write_profile, write_accuracy, tmp_path) -> None:
    cpu = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)), device="cpu")
    jet = write_profile(rows((0.25, 3.0), (0.5, 5.0), (1.0, 9.0)), device="jetson")
    acc = write_accuracy({0.25: 50, 0.5: 60, 1.0: 70})
    assert find_profiles(["cpu", "jetson"], tmp_path / "profiles") == [cpu, jet]
    sel = select([cpu, jet], Budget(latency_ms=4.0), acc)
    assert [(d.device, d.chosen.width) for d in sel.devices] == [("cpu", 1.0), ("jetson", 0.25)]
    path = write_selection(tmp_path / "selection.json", sel)
    doc = read_selection(path)
    assert doc["kind"] == "selection" and doc["schema_version"] == 1 and doc["feasible"]
    assert len(doc["inputs"]["profiles"]) == 2 and len(doc["inputs"]["accuracy"]["sha256"]) == 64
    assert doc["devices"][1]["chosen"]["width"] == 0.25 and doc["budget"] == {"latency_ms": 4.0}
    # MACs and params are counts, written as whole numbers in the minimum as in every candidate (docs/deploy.md's
    # example); they were written as floats there (1058816.0)
    minimum, candidate = doc["devices"][0]["minimum"], doc["devices"][0]["candidates"][0]
    assert all(type(minimum[k]) is type(candidate[k]) is int for k in ("macs", "params")), (minimum, candidate)


def test_bad_inputs(write_profile, tmp_path) -> None:
    prof = write_profile(rows((0.25, 1.0)))
    with pytest.raises(US3LError, match="no budget given"):
        select([prof], Budget())
    with pytest.raises(US3LError, match=r"^--latency-ms must be a finite positive number, got -1$"):
        Budget(latency_ms=-1)
    with pytest.raises(US3LError, match=r"^--memory-mb must be a finite positive number, got nan$"):
        Budget(memory_mb=float("nan"))
    with pytest.raises(US3LError, match=r"^--margin must be a fraction in \[0, 10\), got -1.0$"):
        LatencyRule(margin=-1.0)
    with pytest.raises(US3LError, match="profile not found"):
        select([tmp_path / "missing.json"], Budget(latency_ms=1))
    with pytest.raises(US3LError, match="no profile for device 'tpu'"):
        find_profiles(["tpu"], tmp_path / "profiles")
    with pytest.raises(US3LError, match="is not a us3l accuracy file"):
        select([prof], Budget(latency_ms=1), accuracy=prof)


# ------------------------------------------------------------------ the tie rule (accuracy within the noise)

N_TEST = 200


def write_accuracy_v2(tmp_path, knn: dict[float, float]):
    """A schema-2 accuracy file: kNN top-1 with its 95 % Wilson interval over ``N_TEST`` images."""
    import json

    from us3l.eval.intervals import wilson_interval
    from us3l.io import header

    doc = header("accuracy", 2)
    doc.update(
        checkpoint_sha256="0" * 64, model="tiny", data="synthetic", num_test=N_TEST, protocols={}, baselines=None,
        widths=[{"width": w, "knn_top1": a, "knn_top1_ci": wilson_interval(a, N_TEST), "linear_top1": None,
                 "linear_top1_ci": None} for w, a in sorted(knn.items())],
    )
    path = tmp_path / "accuracy-v2.json"
    path.write_text(json.dumps(doc))
    return path


def test_tie_inside_the_noise_goes_to_the_faster_width(write_profile, tmp_path) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0)))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 0.5: 0.79, 1.0: 0.80})  # +-5.6 points at n=200: noise
    d = select([prof], Budget(latency_ms=5), acc).devices[0]
    assert d.chosen.width == 0.25 and d.decided_by == "tie->latency"
    assert d.tied_widths == [0.25, 0.5, 1.0]
    assert d.runner_up.width == 1.0  # the most accurate of the others
    lo, hi = d.chosen.accuracy_ci
    assert lo < 0.78 < hi


def test_a_real_accuracy_gap_is_never_traded_for_speed(write_profile, tmp_path) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0)))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.50, 0.5: 0.79, 1.0: 0.80})  # 0.25 is 30 points below: not noise
    d = select([prof], Budget(latency_ms=5), acc).devices[0]
    assert d.chosen.width == 0.5 and d.decided_by == "tie->latency" and d.tied_widths == [0.5, 1.0]
    alone = write_accuracy_v2(tmp_path, {0.25: 0.40, 0.5: 0.60, 1.0: 0.90})  # no two intervals overlap
    d = select([prof], Budget(latency_ms=5), alone).devices[0]
    assert d.chosen.width == 1.0 and d.decided_by == "accuracy" and d.tied_widths == []
    d = select([prof], Budget(latency_ms=2.5), alone).devices[0]  # 1.0 does not fit: 0.5 is alone at the top
    assert d.chosen.width == 0.5 and d.decided_by == "accuracy"


def test_strict_accuracy_takes_the_plain_maximum(write_profile, tmp_path) -> None:
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0)))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 0.5: 0.79, 1.0: 0.80})
    sel = select([prof], Budget(latency_ms=5), acc, strict_accuracy=True)
    d = sel.devices[0]
    assert d.chosen.width == 1.0 and d.decided_by == "accuracy" and d.tied_widths == []
    doc = sel.to_document()
    assert doc["accuracy"]["strict"] is True and doc["tie_rule"] is None


def test_unstable_latency_of_chosen_or_tied_width_is_warned(write_profile, tmp_path) -> None:
    spec = rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0))
    spec[0]["latency"] = {**spec[0]["latency"], "stable": False, "rel_ci_halfwidth": 0.01}
    spec[2]["latency"] = {**spec[2]["latency"], "stable": False, "rel_ci_halfwidth": 0.12}
    prof = write_profile(spec)
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 0.5: 0.79, 1.0: 0.80})
    sel = select([prof], Budget(latency_ms=5), acc)
    d = sel.devices[0]
    assert d.chosen.width == 0.25 and len(d.warnings) == 2
    # device and backend name the selection: a per-backend selection can tie the same width on each backend
    assert d.warnings == [
        "cpu/onnx: latency of the chosen width 0.25 (fp32) is not stable in the profile (relative CI half-width "
        "1.0%); re-profile before trusting the choice",
        "cpu/onnx: latency of the tied width 1 (fp32) is not stable in the profile (relative CI half-width 12.0%); "
        "re-profile before trusting the choice",
    ]
    out = write_selection(tmp_path / "selection.json", sel)
    dev = read_selection(out)["devices"][0]
    assert dev["decided_by"] == "tie->latency" and dev["tied_widths"] == [0.25, 0.5, 1.0]
    assert dev["warnings"] == d.warnings and dev["chosen"]["accuracy_ci"] == list(d.chosen.accuracy_ci)
    # stable widths only: no warning
    d2 = select([write_profile(rows((0.25, 1.0), (0.5, 2.0)), device="gpu")], Budget(latency_ms=5), acc).devices[0]
    assert d2.warnings == []



def test_an_unstable_width_that_met_the_ci_target_is_warned_as_drift(write_profile, tmp_path) -> None:
    """A width stopped at `target` met the CI target; unstable, it drifted. The warning said "not stable in the
    profile (relative CI half-width 1.9%)", a half-width below the 2 % target, as if that were the reason."""
    import json

    spec = rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0))
    spec[0]["latency"] = {**spec[0]["latency"], "stable": False, "rel_ci_halfwidth": 0.019}
    spec[2]["latency"] = {**spec[2]["latency"], "stable": False, "rel_ci_halfwidth": 0.12}
    prof = write_profile(spec)
    doc = json.loads(prof.read_text())
    for rec, why in zip(doc["records"], ("target", "target", "time_cap"), strict=True):
        rec["stop_reason"] = why
    prof.write_text(json.dumps(doc))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 0.5: 0.79, 1.0: 0.80})
    sel = select([prof], Budget(latency_ms=5), acc)
    d = sel.devices[0]
    assert d.warnings == [
        "cpu/onnx: latency of the chosen width 0.25 (fp32) is not stable in the profile (drift: its median's CI met "
        "the target, relative CI half-width 1.9%, but the first and second half of its samples differ); re-profile "
        "before trusting the choice",
        "cpu/onnx: latency of the tied width 1 (fp32) is not stable in the profile (relative CI half-width 12.0%); "
        "re-profile before trusting the choice",
    ]
    assert all("stop_reason" not in c for c in sel.to_document()["devices"][0]["candidates"])  # not written


def test_a_bound_missing_from_the_profile_is_warned(write_profile, tmp_path) -> None:
    """A profile without the upper bound (edited, or written by another tool): the point value stands in for the
    bound the header promises, and the selection says so instead of comparing it silently."""
    spec = rows((0.25, 1.0), (1.0, 3.0))
    del spec[0]["latency"]["ci95_ms"]["p90"]
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 1.0: 0.80})
    d = select([write_profile(spec)], Budget(latency_ms=5), acc).devices[0]
    assert d.chosen.width == 0.25 and d.warnings == [
        "cpu/onnx: latency of the chosen width 0.25 (fp32) is compared at its point value: the profile records no "
        "upper 95% CI bound of p90 (ci95_ms); re-profile it with us3l profile"
    ]
    # the mean's bound needs samples: an interpolated width (n 0) has none
    assert LatencyRule(statistic="mean").missing_bound({"n": 0, "mean_ms": 1.0, "std_ms": 0.0}) == (
        "is compared at its point value: the profile has no samples for the mean's upper 95% CI bound; re-profile it "
        "with us3l profile"
    )
    assert LatencyRule(statistic="mean").missing_bound({"n": 50, "mean_ms": 1.0, "std_ms": 0.1}) is None


def test_a_mean_bound_from_one_sample_is_warned() -> None:
    """One sample has std 0 (by convention): mean + 1.96·std/√n is the point value itself, not an upper bound, so
    the selection must say so rather than present it as the conservative value."""
    lat = {"n": 1, "mean_ms": 1.0, "std_ms": 0.0}
    assert LatencyRule(statistic="mean").value_ms(lat) == 1.0
    assert LatencyRule(statistic="mean").missing_bound(lat) == (
        "is compared at its point value: the mean's upper 95% CI bound needs >= 2 samples, the profile has 1; "
        "re-profile with more samples"
    )
    assert LatencyRule(statistic="mean").missing_bound({"n": 2, "mean_ms": 1.0, "std_ms": 0.1}) is None
    assert LatencyRule(statistic="mean", conservative=False).missing_bound(lat) is None


def test_a_bound_resting_on_the_sample_max_is_warned(write_profile, tmp_path) -> None:
    """With 30 samples the upper 95 % CI bound of p90 does not exist (36 needed): the profile's slowest sample
    stands in, so the compared latency is one draw. The chosen width says so; with 36 samples it does not."""
    spec = rows((0.25, 1.0), (0.5, 2.0), (1.0, 3.0))
    spec[0]["latency"] = latency(0.8, 1.0, 1.2, n=30)
    spec[1]["latency"] = latency(1.6, 2.0, 2.4, n=36)
    acc = write_accuracy_v2(tmp_path, {0.25: 0.78, 0.5: 0.79, 1.0: 0.80})
    d = select([write_profile(spec)], Budget(latency_ms=5), acc).devices[0]
    assert d.chosen.width == 0.25 and d.warnings == [
        "cpu/onnx: latency of the chosen width 0.25 (fp32) is compared at its slowest sample: the upper 95% CI bound "
        "of p90 needs >= 36 samples, the profile has 30; re-profile with more samples"
    ]
    assert select([write_profile(spec)], Budget(latency_ms=5), acc, LatencyRule(conservative=False)).devices[0] \
        .warnings == []  # the point p90 is compared: no bound to miss
    d99 = select([write_profile(spec)], Budget(latency_ms=6), acc, LatencyRule(statistic="p99")).devices[0]
    # chosen first, then the tied widths most accurate first; 100 samples are still too few for p99's bound
    assert [w.split(": ", 2)[2] for w in d99.warnings] == [
        f"the upper 95% CI bound of p99 needs >= 368 samples, the profile has {n}; re-profile with more samples"
        for n in (30, 100, 36)
    ]


def test_select_cli_strict_flag_and_warnings(write_profile, tmp_path, capsys) -> None:
    import json

    from us3l.cli import main

    spec = rows((0.25, 1.0), (1.0, 3.0))
    spec[0]["latency"] = {**spec[0]["latency"], "stable": False}
    prof = write_profile(spec)
    acc = write_accuracy_v2(tmp_path, {0.25: 0.79, 1.0: 0.80})
    out = tmp_path / "sel.json"
    base = ["select", "--profile", str(prof), "--accuracy", str(acc), "--latency-ms", "5", "--out", str(out)]
    assert main(base) == 0
    captured = capsys.readouterr()
    assert "tie->latency" in captured.out  # the table: stdout
    assert "warning:" in captured.err and "not stable" in captured.err
    assert json.loads(out.read_text())["devices"][0]["chosen"]["width"] == 0.25
    assert main([*base, "--strict-accuracy", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["devices"][0]["chosen"]["width"] == 1.0 and doc["devices"][0]["decided_by"] == "accuracy"


@pytest.mark.parametrize("field", ["p50_ms", "p90_ms", "p99_ms", "mean_ms"])
def test_nan_latency_is_refused_not_chosen(field: str, write_profile, write_accuracy) -> None:
    lat = latency(1.0, 1.0, 1.0)
    lat[field] = float("nan")
    prof = write_profile([{"width": 0.25, "latency": latency(1.0, 1.0, 1.0)}, {"width": 1.0, "latency": lat}])
    with pytest.raises(US3LError) as info:
        select([prof], Budget(latency_ms=2.0), write_accuracy({0.25: 0.5, 1.0: 0.9}))
    assert str(info.value) == f"{prof}: records[1].latency.{field} must be a finite positive number <= 3600000, got nan"


def test_negative_latency_and_nan_accuracy_are_refused(write_profile, write_accuracy) -> None:
    lat = latency(1.0, 1.0, 1.0)
    lat["ci95_ms"]["p90"] = [1.0, -3.0]
    prof = write_profile([{"width": 0.5, "latency": lat}])
    with pytest.raises(US3LError) as info:
        select([prof], Budget(latency_ms=2.0))
    assert str(info.value) == f"{prof}: records[0].latency.ci95_ms.p90[1] must be a finite positive number, got -3.0"
    good = write_profile([{"width": w, "latency": latency(1.0, 1.0, 1.0)} for w in (0.25, 0.5)])
    acc = write_accuracy({0.25: 0.5, 0.5: float("nan")})
    with pytest.raises(US3LError) as info:
        select([good], Budget(latency_ms=2.0), acc)
    assert str(info.value) == f"{acc}: widths[1].linear_top1 must be a fraction in [0, 1] or null, got nan"


def test_device_names_for_profile_lookup_are_safe(tmp_path) -> None:
    from us3l.deploy.select import find_profiles

    (tmp_path / "profiles").mkdir()
    with pytest.raises(US3LError, match=r"^--device must be a name \("):
        find_profiles(["../x"], tmp_path / "profiles")


def test_device_names_are_read_as_profile_reads_them(write_profile) -> None:
    """`us3l profile -d CPU` profiles device 'cpu' (names are lowercase); `us3l select -d CPU` said `no profile
    for device 'CPU'`, and `-d ' cpu'` was refused as not a name."""
    path = write_profile([{"width": 1.0, "latency": latency(1, 1, 1)}])
    for given in ("CPU", " cpu", "cpu"):
        assert find_profiles([given], path.parent) == [path]


def test_a_file_given_as_the_profiles_folder_is_named_as_such(write_profile) -> None:
    """`--profiles-dir profiles/x.json` said `profiles directory not found`, of a path that exists."""
    path = write_profile([{"width": 1.0, "latency": latency(1, 1, 1)}])
    with pytest.raises(US3LError, match=r"^--profiles-dir must be a folder of profiles, got the file .*\.json$"):
        find_profiles(["cpu"], path)


def test_quickstart_default_budget_leaves_real_slack(write_profile) -> None:
    from us3l.commands.quickstart import default_budget_ms

    onnx = write_profile(rows((0.25, 1.0), (0.5, 2.0), (0.75, 3.0), (1.0, 4.0)), backend="onnx")
    ov = write_profile(rows((0.25, 0.9), (0.5, 1.8), (0.75, 2.7), (1.0, 3.6)), backend="openvino")
    budget = default_budget_ms([onnx, ov])
    assert budget == pytest.approx(2.35)  # midway in the first >=10 % gap above the lower medians: (2.0, 2.7)
    for d in select([onnx, ov], Budget(latency_ms=budget)).devices:
        every = sorted(c.latency_ms for c in d.candidates)
        assert min(abs(budget - v) for v in every) >= 0.35 - 1e-9  # no width sits on the line
        assert d.chosen is not None and d.slack["latency_ms"] >= 0.35 - 1e-9
    # a near-duplicate latency right above the median is skipped: the budget goes into the next real gap
    crowded = write_profile(rows((0.25, 1.0), (0.4, 1.95), (0.5, 2.0), (0.75, 2.02), (1.0, 3.0)), device="x")
    budget = default_budget_ms([crowded])
    assert budget == pytest.approx(2.51)
    assert select([crowded], Budget(latency_ms=budget)).devices[0].slack["latency_ms"] == pytest.approx(0.49)


def test_quickstart_default_budget_is_not_set_by_a_hiccup(write_profile) -> None:
    """One width timed 5x slower than it should be (a stall) made the widest gap, and the budget landed midway in
    it: 3.6 ms over widths of 1.0-1.15 ms, every width but the hiccup fitting, the selection deciding nothing. The
    same with a slower second backend whose widest width hiccuped: 27 ms over widths of 8-9.5 ms."""
    from us3l.commands.quickstart import default_budget_ms

    ws = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)

    def fitting(paths, budget):
        return [sum(c.feasible for c in d.candidates) for d in select(paths, Budget(latency_ms=budget)).devices]

    top = write_profile(rows(*zip(ws, (1.0, 1.03, 1.06, 1.09, 1.12, 1.15, 6.0), strict=True)), device="a")
    budget = default_budget_ms([top])
    assert 1.09 < budget < 1.12 and fitting([top], budget) == [4]  # half the widths, not all but the hiccup
    mid = write_profile(rows(*zip(ws, (1.0, 1.1, 1.2, 6.5, 1.3, 1.4, 1.5), strict=True)), device="b")
    assert default_budget_ms([mid]) == pytest.approx(1.35)  # a narrower width 4x slower than wider ones
    fast = write_profile(rows(*zip(ws, (1, 2, 3, 4, 5, 6, 7), strict=True)), device="c", backend="onnx")
    slow = write_profile(rows(*zip(ws, (8, 8.3, 8.6, 8.9, 9.2, 9.5, 45), strict=True)), device="c", backend="openvino")
    budget = default_budget_ms([fast, slow])
    assert 8.9 < budget < 9.2 and fitting([fast, slow], budget) == [7, 4]
    # only hiccups above the lower median: 10 % above it, not midway up to them
    few = write_profile(rows(*zip(ws[:4], (1.0, 1.0, 1.0, 9.0), strict=True)), device="d")
    assert default_budget_ms([few]) == pytest.approx(1.1)
    # a real cliff (the work grows with the width) is no hiccup: the budget still goes into that gap
    cliff = write_profile(rows(*zip(ws, (1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 2.0), strict=True)), device="e")
    assert default_budget_ms([cliff]) == pytest.approx(1.55)
    # a narrower width a little slower than a wider one is no hiccup either
    wobble = write_profile(rows((0.25, 1.0), (0.5, 2.1), (0.75, 2.0), (1.0, 3.0)), device="f")
    assert default_budget_ms([wobble]) == pytest.approx(2.55)


def test_quickstart_prints_a_budget_with_the_digits_it_has(write_profile) -> None:
    """A gap narrower than 1 µs gets an unrounded budget (0.12035 between 0.1201 and 0.1206 ms); quickstart
    printed it as "0.120 ms", the same figure as the width below it."""
    from us3l.commands.quickstart import budget_text, default_budget_ms

    prof = write_profile(rows((0.25, 0.1), (0.5, 0.1201), (0.75, 0.1206), (1.0, 0.1206 * 1.00001)))
    budget = default_budget_ms([prof])
    assert 0.1201 < budget < 0.1206 and budget_text(budget) == f"{budget:.6g}" != "0.120"
    assert budget_text(0.218) == "0.218" and budget_text(2.0) == "2.000" and budget_text(0.1234) == "0.1234"


def test_latency_schedule_gives_a_width_per_budget(write_profile, tmp_path) -> None:
    from us3l.deploy.select import latency_schedule

    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.40, 0.5: 0.60, 1.0: 0.90})  # intervals apart: accuracy decides
    sel = latency_schedule([prof], [5, 0.5, 2.5, 1.5])
    assert sel.devices[0].chosen.width == 1.0  # the largest budget's answer
    steps = sel.schedule[0]["steps"]
    assert [s["latency_ms"] for s in steps] == [0.5, 1.5, 2.5, 5]  # ascending
    assert [s["width"] for s in steps] == [None, 0.25, 0.5, 1.0]  # nothing fits 0.5 ms
    assert all(s["width_index"] is None for s in steps) and sel.schedule[0]["switchable"] is None  # static profile
    doc = latency_schedule([prof], [2.5, 5], accuracy=acc).to_document()
    assert [s["width"] for s in doc["schedule"][0]["steps"]] == [0.5, 1.0]
    assert doc["schedule"][0]["steps"][1]["accuracy_ci"] is not None
    with pytest.raises(US3LError, match="^give --latency-ms or --latency-schedule, not both$"):
        latency_schedule([prof], [1.0], Budget(latency_ms=2))
    with pytest.raises(US3LError, match=r"^--latency-schedule must be a finite positive number, got -1\.0$"):
        latency_schedule([prof], [-1.0, 2.0])
    with pytest.raises(US3LError, match=r"^--latency-schedule lists 2 twice$"):  # was deduplicated silently
        latency_schedule([prof], [2.0, 1.0, 2.0])


def test_a_latency_schedule_reads_each_file_once(write_profile, tmp_path, monkeypatch) -> None:
    """Each budget step ran a whole `select`: the accuracy file and every profile were read, digested and checked
    against their samples once per step, and each profile once more for its switchable grid."""
    import importlib

    select_mod = importlib.import_module("us3l.deploy.select")  # `us3l.deploy.select` is also the function
    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)))
    acc = write_accuracy_v2(tmp_path, {0.25: 0.40, 0.5: 0.60, 1.0: 0.90})
    reads: list[str] = []
    for name in ("load_profile_sha256", "load_accuracy_sha256"):
        real = getattr(select_mod, name)
        monkeypatch.setattr(select_mod, name, lambda p, real=real: reads.append(str(p)) or real(p))
    sel = select_mod.latency_schedule([prof], [1.5, 2.5, 5], accuracy=acc)
    assert [s["width"] for s in sel.schedule[0]["steps"]] == [0.25, 0.5, 1.0]
    assert sorted(reads) == sorted([str(prof), str(acc)])


def test_the_cli_refuses_a_latency_budget_twice_by_the_schedules_own_rule(write_profile, tmp_path, capsys) -> None:
    """`--latency-schedule` was checked for repeats twice: by width_list at the CLI, which compares 4-decimal width
    keys, and by latency_schedule, which compares the budgets. Budgets 0.00001 and 0.00002 ms, two steps, were
    refused at the CLI as the same one; only latency_schedule's rule (equal budgets) holds now."""
    from us3l.cli import main

    prof = write_profile(rows((0.25, 1e-5), (1.0, 2e-5)))
    args = ["select", "--profile", str(prof), "--out", str(tmp_path / "sel"), "--latency-schedule"]
    assert main([*args, "0.00001,0.00002"]) == 0, capsys.readouterr().err
    steps = read_selection(tmp_path / "sel" / "selection.json")["schedule"][0]["steps"]
    assert [(s["latency_ms"], s["width"]) for s in steps] == [(1e-5, 0.25), (2e-5, 1.0)]
    capsys.readouterr()
    assert main([*args, "0.00002,0.00001,2e-5"]) == 1
    assert capsys.readouterr().err == "error: --latency-schedule lists 2e-05 twice\n"


def test_schedule_steps_nothing_fits_are_a_note_when_other_steps_fit(write_profile, tmp_path, capsys) -> None:
    """Steps of `--latency-schedule` at which no width fits gave no stderr line at all (exit 0): the rows said
    "none fits" on stdout only. One note per answer and run of such steps now names their budgets, worded as plain
    select's infeasible error; it is a note (`-q` drops it, `--json` keeps it), and the schedule still succeeds."""
    import json

    from us3l.cli import main

    slow = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)), device="a")
    fast = write_profile(rows((0.25, 0.1), (1.0, 0.2)), device="b")  # fits every step: no note
    acc = write_accuracy_v2(tmp_path, {0.25: 0.40, 0.5: 0.60, 1.0: 0.90})
    args = ["select", "--profile", str(slow), "--profile", str(fast), "--accuracy", str(acc),
            "--out", str(tmp_path / "sel"), "--latency-schedule", "5,0.3,1.5,0.5"]
    gap = ("note: infeasible schedule steps: a (tiny, onnx): no width fits latency_ms <= 0.3 or 0.5; smallest "
           "achievable latency is 1.000 ms (upper 95% CI bound of p90)")
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if "fits" in line] == [gap]
    assert "none fits" in out and "none fits" not in err  # results on stdout, the note on stderr
    assert main([*args, "-q"]) == 0
    out, err = capsys.readouterr()
    assert "fits" not in err and "none fits" in out
    assert main([*args, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if "fits" in line] == [gap]
    steps = json.loads(out)["schedule"][0]["steps"]
    assert [(s["latency_ms"], s["width"]) for s in steps] == [(0.3, None), (0.5, None), (1.5, 0.25), (5, 1.0)]


def test_a_schedule_that_no_step_fits_fails_as_plain_select(write_profile, tmp_path, capsys) -> None:
    """An answer that fits no step of `--latency-schedule` ends as plain `select --latency-ms` does when nothing
    fits: exit 3 and the infeasible error (naming every step), whatever the other answers; no note besides."""
    from us3l.cli import main

    slow = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)), device="a")
    fast = write_profile(rows((0.25, 0.1), (1.0, 0.2)), device="b")
    base = ["select", "--profile", str(slow), "--out", str(tmp_path / "sel"), "-q"]
    assert main([*base, "--latency-ms", "0.5"]) == 3
    assert capsys.readouterr().err == ("error: infeasible budget: a (tiny, onnx): no width fits latency_ms <= 0.5; "
                                       "smallest achievable latency is 1.000 ms (upper 95% CI bound of p90)\n")
    assert main([*base, "--latency-schedule", "0.5,0.3"]) == 3
    assert capsys.readouterr().err == ("error: infeasible budget: a (tiny, onnx): no width fits latency_ms <= 0.3 or "
                                       "0.5; smallest achievable latency is 1.000 ms (upper 95% CI bound of p90)\n")
    assert main([*base, "--profile", str(fast), "--latency-schedule", "0.15,0.5"]) == 3
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "fits" in line] == [
        "error: infeasible budget: a (tiny, onnx): no width fits latency_ms <= 0.15 or 0.5; smallest achievable "
        "latency is 1.000 ms (upper 95% CI bound of p90)"]  # b fits every step, a none


def test_a_profile_width_finds_the_accuracy_of_its_canonical_width(write_profile, tmp_path) -> None:
    """The switchable export's grid holds calibrated (canonical) widths such as 0.4688; accuracy.json holds the
    evaluated 0.5 with canonical_width 0.4688: the same network, so the same accuracy and interval."""
    import json

    acc = write_accuracy_v2(tmp_path, {0.5: 0.60, 1.0: 0.90})
    doc = json.loads(acc.read_text())
    for r in doc["widths"]:
        r["canonical_width"] = {0.5: 0.4688, 1.0: 1.0}[r["width"]]
    acc.write_text(json.dumps(doc))
    d = select([write_profile(rows((0.4688, 1.0), (1.0, 2.0)))], Budget(latency_ms=1.5), acc).devices[0]
    assert d.chosen.width == 0.4688 and d.chosen.accuracy == 0.60 and d.chosen.accuracy_ci is not None
    assert not any("no accuracy" in n for n in d.notes)
    # an exact row wins over an alias
    doc["widths"].append({**doc["widths"][0], "width": 0.4688, "knn_top1": 0.55, "canonical_width": 0.4688})
    acc.write_text(json.dumps(doc))
    d = select([write_profile(rows((0.4688, 1.0), (1.0, 2.0)))], Budget(latency_ms=1.5), acc).devices[0]
    assert d.chosen.accuracy == 0.55


def test_a_selection_whose_chosen_graph_is_not_an_object_is_refused(tmp_path) -> None:
    """Red-team 2026-12-05: ``chosen.graph = "x"`` reached us3l export as an AttributeError."""
    import json

    from us3l.errors import US3LError

    doc = {"kind": "selection", "schema_version": 1,
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32",
                        "chosen": {"width": 0.5, "latency_ms": 1.0, "graph": "x"}}]}
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        read_selection(path)
    assert str(info.value) == f"{path}: devices[0].chosen.graph must be an object or null, got 'x'"


@pytest.mark.parametrize("sha", [5, ["ab" * 32], "abc", "AB" * 32])
def test_a_selection_whose_checkpoint_sha256_is_no_digest_is_refused(tmp_path, sha: object) -> None:
    """Red-team 2026-12-05: export compares chosen.graph.checkpoint_sha256 with the checkpoint it exports from only
    when it is a string, so a number there exported the widths of any checkpoint without a word."""
    import json

    from us3l.errors import US3LError

    doc = {"kind": "selection", "schema_version": 1,
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32",
                        "chosen": {"width": 0.5, "latency_ms": 1.0, "graph": {"checkpoint_sha256": sha}}}]}
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        read_selection(path)
    assert str(info.value) == (f"{path}: devices[0].chosen.graph.checkpoint_sha256 must be a sha256 (64 hex digits) "
                               f"or null, got {sha!r}")


def test_a_selection_without_its_chosen_entry_is_refused_not_read_as_nothing_fits(tmp_path) -> None:
    """A hand-edited selection.json that lost `chosen` made `export --selection` exit 3, "no width fits"."""
    import json

    from us3l.errors import US3LError

    doc = {"kind": "selection", "schema_version": 1,
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32"}]}
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        read_selection(path)
    assert str(info.value) == (f"{path}: devices[0] has no 'chosen' entry (us3l select writes null there when "
                               "nothing fits)")


@pytest.mark.parametrize(("edit", "message"), [
    ({"budget": [1]}, "'budget' must be an object, got [1]"),
    ({"inputs": "x"}, "'inputs' must be an object, got 'x'"),
    ({"inputs": {"accuracy": -1}}, "'inputs.accuracy' must be an object or null, got -1"),
    ({"inputs": {"profiles": 7}}, "'inputs.profiles' must be a list of objects, got 7"),
    ({"inputs": {"profiles": ["p.json"]}}, "'inputs.profiles' must be a list of objects, got ['p.json']"),
])
def test_a_selection_whose_inputs_or_budget_are_not_objects_is_refused(edit, message, tmp_path) -> None:
    """Red-team: read_selection accepted them, and us3l report (and quickstart's reuse check) ended in
    'error: AttributeError' / 'error: TypeError'."""
    import json

    from us3l.errors import US3LError

    doc = {"kind": "selection", "schema_version": 1, **edit,
           "devices": [{"device": "cpu", "model": "m", "backend": "onnx", "precision": "fp32", "chosen": None}]}
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(US3LError) as info:
        read_selection(path)
    assert str(info.value) == f"{path}: {message}"


def test_recorded_input_digests_are_of_the_bytes_ranked(write_profile, write_accuracy, monkeypatch) -> None:
    """The selection recorded each input's sha256 from a second read of the file: one swapped after it was parsed
    got its digest recorded against the numbers of the first. Now the digest is of the bytes parsed."""
    import hashlib
    import importlib
    import json

    sel_mod = importlib.import_module("us3l.deploy.select")  # the module (us3l.deploy.select is also the function)

    prof = write_profile(rows((0.25, 1.0), (0.5, 2.0), (1.0, 4.0)))
    acc = write_accuracy({0.25: 50, 0.5: 60, 1.0: 70})
    ranked = {p: p.read_bytes() for p in (prof, acc)}

    def swapped(path):  # the same document with other bytes: re-indented
        path.write_text(json.dumps(json.loads(ranked[path]), indent=7))

    real_table, real_same = sel_mod.accuracy_table, sel_mod.check_same_checkpoint
    monkeypatch.setattr(sel_mod, "accuracy_table", lambda *a, **k: (swapped(acc), real_table(*a, **k))[1])
    monkeypatch.setattr(sel_mod, "check_same_checkpoint", lambda *a, **k: (swapped(prof), real_same(*a, **k))[1])
    sel = select([prof], Budget(latency_ms=4.0), acc)
    assert sel.inputs["accuracy"]["sha256"] == hashlib.sha256(ranked[acc]).hexdigest()
    assert sel.inputs["profiles"][0]["sha256"] == hashlib.sha256(ranked[prof]).hexdigest()
    assert hashlib.sha256(acc.read_bytes()).hexdigest() != sel.inputs["accuracy"]["sha256"]  # the swap happened


def test_a_profile_of_batched_calls_says_the_budget_is_per_call(write_profile) -> None:
    """Red-team 2026-12-07: a profile made with --batch-size 4 was compared with --latency-ms per call without a
    word, while the quickstart's help speaks of a budget per image."""
    import json

    prof = write_profile([{"width": w, "latency": latency(w, w, w)} for w in (0.5, 1.0)])
    doc = json.loads(prof.read_text())
    assert not any("images" in n for n in select([prof], Budget(latency_ms=2.0)).devices[0].notes)
    doc["input_shape"] = [4, 3, 32, 32]
    prof.write_text(json.dumps(doc))
    (d,) = select([prof], Budget(latency_ms=2.0)).devices
    assert "the profile times calls of 4 images (batch 4): the latency budget applies per call, i.e. to 4 images" \
        in d.notes
    assert not any("images" in n for n in select([prof], Budget(macs=1e9)).devices[0].notes)  # no latency budget


def test_every_statistics_bound_is_the_upper_end_of_a_two_sided_95_percent_interval() -> None:
    """The p90 bound was worded "upper 95 % bound" (a one-sided 95 % bound, read plainly) while it is, as the
    mean's, the upper end of a two-sided 95 % interval: a one-sided 97.5 % bound. Both are computed so (p90: the
    smallest order statistic x_(u) with P(B <= u - 1) >= 0.975, B ~ Binomial(n, 0.9); mean: Student's t(0.975)),
    and every message and the --point help word them alike."""
    import inspect
    import math

    import numpy as np
    from scipy.stats import binom, t

    from us3l.commands.select import select_cmd
    from us3l.profiler.stats import summarize

    for n in (36, 70, 200):
        x = np.random.default_rng(n).lognormal(0.0, 0.3, size=n)
        lat = summarize(x).to_dict()
        assert LatencyRule().value_ms(lat) == np.sort(x)[int(binom.ppf(0.975, n, 0.9))]  # 0-based u - 1
        mean = LatencyRule(statistic="mean").value_ms(lat)
        assert mean == pytest.approx(x.mean() + t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    assert LatencyRule().describe() == "upper 95% CI bound of p90"
    for statistic, lat in (("p90", {"n": 30, "p90_ms": 1.0, "ci95_ms": {"p90": [0.9, 1.2]}}),
                           ("p90", {"n": 50, "p90_ms": 1.0, "ci95_ms": {}}), ("mean", {"n": 1, "std_ms": 0.0})):
        assert "upper 95% CI bound" in (LatencyRule(statistic=statistic).missing_bound(lat) or "")
    help_text = inspect.signature(select_cmd).parameters["point"].default.help
    assert "upper 95% CI bound (the upper end of its two-sided 95% interval: a one-sided 97.5% bound" in help_text


def test_the_mean_bound_is_students_and_covers_95_percent_with_few_samples() -> None:
    """Red-team 2026-12-07: the mean's upper bound used the normal quantile 1.96, which covers less than 95 % with
    few samples. Student's quantile (scipy.stats.t) is what a two-sided 95 % interval of a mean needs; checked by
    simulation: the mean of normal samples is above the bound in about 2.5 % of draws at n = 5."""
    import numpy as np
    from scipy.stats import t

    from us3l.deploy.select import mean_upper_bound

    assert mean_upper_bound(2.0, 0.5, 10) == pytest.approx(2.0 + 2.2621571628 * 0.5 / 10 ** 0.5)
    assert mean_upper_bound(2.0, 0.5, 1) == 2.0  # one sample: no interval (missing_bound says so)
    for n in (2, 5, 30, 1000):
        assert mean_upper_bound(0.0, 1.0, n) == pytest.approx(t.ppf(0.975, n - 1) / n ** 0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200_000, 5))
    k = mean_upper_bound(0.0, 1.0, 5) * 5 ** 0.5  # the bound is linear in the standard deviation
    missed = float((x.mean(1) + k * x.std(1, ddof=1) / 5 ** 0.5 < 0.0).mean())  # true mean 0 above the bound
    assert 0.022 < missed < 0.028, missed  # one-sided 2.5 %
    z_missed = float((x.mean(1) + 1.96 * x.std(1, ddof=1) / 5 ** 0.5 < 0.0).mean())
    assert z_missed > 0.04  # the normal quantile's bound misses about twice as often at n = 5
