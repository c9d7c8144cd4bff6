"""us3l profile --adaptive: a real sweep measures a covering subset, interpolates the rest, and the selection
never commits to an interpolated width."""

from __future__ import annotations

from pathlib import Path

import pytest

from us3l.deploy.select import Budget, select_profile
from us3l.devices.registry import get_device
from us3l.errors import US3LError
from us3l.profiler.measure import MeasurementPolicy
from us3l.profiler.profile_file import load_profile, validate_profile, write_profile
from us3l.profiler.sweep import run_sweep

FAST = MeasurementPolicy(warmup=2, min_repeats=10, max_repeats=30, target_rel_ci=0.05, max_seconds=0.2, chunk=5)


@pytest.fixture(scope="module")
def adaptive_profile():
    from us3l.deploy.graph import fresh_model

    net = fresh_model("cifar_resnet18", base_channels=8)
    widths = [round(0.25 + 0.0625 * i, 4) for i in range(13)]  # 0.25 ... 1.0
    return run_sweep(net, "tiny", widths, get_device("cpu"), 16, backend="torch", threads=1, policy=FAST,
                     adaptive=True)


def test_adaptive_sweep_measures_a_subset_and_interpolates_the_rest(adaptive_profile, tmp_path: Path) -> None:
    prof = adaptive_profile
    measured = [r for r in prof.records if not r.interpolated]
    interp = [r for r in prof.records if r.interpolated]
    assert len(prof.records) == 13 and prof.adaptive is not None
    assert prof.adaptive["measured"] == len(measured) and prof.adaptive["interpolated"] == len(interp)
    assert len(measured) >= 5  # the covering subset at least
    by_macs = sorted(prof.records, key=lambda r: r.macs)
    assert not by_macs[0].interpolated and not by_macs[-1].interpolated  # both extremes are measured
    assert all(r.latency.n > 0 and r.latency.samples_ms for r in measured)
    for r in interp:
        assert r.latency.n == 0 and r.latency.samples_ms == () and not r.latency.stable
        assert r.stop_reason == "interpolated"
        lo = max((m for m in measured if m.macs <= r.macs), key=lambda m: m.macs)
        hi = min((m for m in measured if m.macs >= r.macs), key=lambda m: m.macs)
        assert min(lo.latency.p50_ms, hi.latency.p50_ms) <= r.latency.p50_ms <= max(lo.latency.p50_ms,
                                                                                    hi.latency.p50_ms)
    assert prof.time_budget["stable_widths"] + prof.time_budget["unstable_widths"] == len(measured)
    # the file round-trips and validates
    path, _ = write_profile(prof, tmp_path)
    again = load_profile(path)
    assert [r.interpolated for r in again.records] == [r.interpolated for r in prof.records]
    assert again.adaptive == prof.adaptive


def test_selection_never_commits_to_an_interpolated_width(adaptive_profile) -> None:
    doc = adaptive_profile.to_dict()
    interp = {r["width"] for r in doc["records"] if r["interpolated"]}
    if not interp:  # every width needed measuring on this run: make one interpolated by hand
        rec = doc["records"][1]
        rec["interpolated"] = True
        rec["latency"].update(n=0, samples_ms=[], stable=False)
        interp = {rec["width"]}
    sel = select_profile(doc, Budget(latency_ms=1e6), accuracy={r["width"]: r["width"] for r in doc["records"]})
    assert sel.chosen is not None and sel.chosen.width not in interp
    assert all(c.width not in interp for c in sel.candidates)
    assert any("interpolated, not measured" in n for n in sel.notes)


def test_an_interpolated_record_must_carry_no_samples(adaptive_profile) -> None:
    doc = adaptive_profile.to_dict()
    rec = doc["records"][0]
    rec["interpolated"] = True  # but it still has its samples and n > 0
    with pytest.raises(US3LError, match=r"records\[0\]\.latency: an interpolated record must have n 0"):
        validate_profile(doc, "p.json")
    rec["interpolated"] = "yes"
    with pytest.raises(US3LError, match=r"records\[0\]\.interpolated must be true or false"):
        validate_profile(doc, "p.json")


@pytest.mark.slow  # an ONNX sweep; the adaptive choice itself stays fast
def test_adaptive_onnx_sweep_exports_only_the_widths_it_times(monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.deploy.graph import fresh_model
    from us3l.profiler import sweep

    exported: list[float] = []
    real = sweep.export_item

    def counting(item, *args, **kwargs):  # type: ignore[no-untyped-def]
        exported.append(item.width)
        return real(item, *args, **kwargs)

    monkeypatch.setattr(sweep, "export_item", counting)
    net = fresh_model("cifar_resnet18", base_channels=8)
    widths = [round(0.25 + 0.0625 * i, 4) for i in range(13)]
    prof = run_sweep(net, "tiny", widths, get_device("cpu"), 16, backend="onnx", threads=1, policy=FAST,
                     adaptive=True)
    measured = [r for r in prof.records if not r.interpolated]
    assert sorted(exported) == sorted(r.width for r in measured)  # each timed width exported once, no other
    assert all(r.graph_sha256 and r.graph_structure_sha256 for r in measured)
    assert all(r.graph_sha256 is None for r in prof.records if r.interpolated)
    assert all(r.bn == "frozen-uncalibrated" for r in prof.records)


def test_adaptive_sweep_starts_no_round_once_its_budget_is_spent() -> None:
    from us3l.deploy.graph import fresh_model
    from us3l.profiler import interpolate as ip

    net = fresh_model("cifar_resnet18", base_channels=8)
    widths = [round(0.25 + 0.0625 * i, 4) for i in range(13)]
    prof = run_sweep(net, "tiny", widths, get_device("cpu"), 16, backend="torch", threads=1, policy=FAST,
                     adaptive=True, max_total_seconds=0.01)
    covering = ip.initial_keys({f"w{i:03d}": float(r.macs) for i, r in enumerate(prof.records)})
    assert prof.adaptive["stopped_by_budget"] is True and prof.adaptive["rounds"] == 1
    assert prof.adaptive["measured"] == len(covering)
