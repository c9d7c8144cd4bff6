"""Width sampling: sandwich rule, schedule "A", uniform, the faithful N>3 bug, determinism, state."""

from __future__ import annotations

import pytest

from us3l.errors import US3LError
from us3l.train.sampling import WidthSampler, schedule_a_min_width


def test_schedule_a_min_width_per_stage() -> None:
    # E = 8: 2 epochs per stage: {1.0} -> min 0.75 -> 0.5 -> 0.25
    assert [schedule_a_min_width(e, 8, 0.25, 1.0) for e in range(8)] == pytest.approx(
        [1.0, 1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25]
    )
    # E = 400 as in the reference: epochs 0-99, 100-199, 200-299, 300-399
    assert [schedule_a_min_width(e, 400, 0.25, 1.0) for e in (0, 99, 100, 199, 200, 299, 300, 399)] == (
        pytest.approx([1.0, 1.0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25])
    )


def test_schedule_a_stage1_share_matches_reference_and_moves_the_first_stage() -> None:
    # the reference's share reproduces its four equal stages epoch for epoch, for every multiple of 4
    for epochs in (4, 8, 12, 52, 400):
        interval = epochs // 4
        ref = [1.0 if e // interval == 0 else 0.25 + (3 - e // interval) * 0.25 for e in range(epochs)]
        assert [schedule_a_min_width(e, epochs, 0.25, 1.0, 0.25) for e in range(epochs)] == pytest.approx(ref)
    # 0.7 of 20 epochs: 14 full-width-only epochs, then 6 split 2/2/2 over the minimum widths 0.75/0.5/0.25
    got = [schedule_a_min_width(e, 20, 0.25, 1.0, 0.7) for e in range(20)]
    assert got == pytest.approx([1.0] * 14 + [0.75] * 2 + [0.5] * 2 + [0.25] * 2)
    # share 0: no full-width-only stage; 7 epochs split 3/2/2 over stages 2-4, each non-empty
    got = [schedule_a_min_width(e, 7, 0.25, 1.0, 0.0) for e in range(7)]
    assert got == pytest.approx([0.75, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25])


def test_schedule_a_stage1_share_bad_values() -> None:
    with pytest.raises(US3LError, match=r"schedule_stage1 must be in \[0, 1\), got 1.0"):
        WidthSampler(0.25, 1.0, epochs=8, schedule="A", stage1=1.0)
    with pytest.raises(US3LError, match="leaves 2 of 10 epochs for stages 2-4"):
        WidthSampler(0.25, 1.0, epochs=10, schedule="A", stage1=0.8)
    WidthSampler(0.25, 1.0, epochs=10, schedule="A", stage1=0.7)  # not a multiple of 4: fine off the reference


def test_schedule_a_sampler_widths() -> None:
    s = WidthSampler(0.25, 1.0, epochs=8, num_samples=3, schedule="A", seed=1)
    for epoch, lo in [(0, None), (1, None), (2, 0.75), (3, 0.75), (4, 0.5), (5, 0.5), (6, 0.25), (7, 0.25)]:
        for _ in range(20):
            ws = s.widths(epoch)
            if lo is None:
                assert ws == [1.0]  # stage 1: only the full network
            else:
                assert len(ws) == 3 and ws[0] == 1.0 and ws[2] == pytest.approx(lo)
                assert lo <= ws[1] <= 1.0 and ws == sorted(ws, reverse=True)


def test_schedule_a_rejects_epochs_not_divisible_by_4() -> None:
    with pytest.raises(US3LError, match="multiple of 4"):
        WidthSampler(0.25, 1.0, epochs=10, schedule="A")
    WidthSampler(0.25, 1.0, epochs=10, schedule="none")  # fine without the schedule


def test_sandwich_without_schedule_and_identical_across_ranks() -> None:
    a = WidthSampler(0.25, 1.0, epochs=3, schedule="none", seed=100)
    b = WidthSampler(0.25, 1.0, epochs=3, schedule="none", seed=100)  # another "rank", same seed
    seq_a = [a.widths(0) for _ in range(50)]
    assert seq_a == [b.widths(0) for _ in range(50)]
    assert all(w[0] == 1.0 and w[-1] == 0.25 and len(w) == 3 for w in seq_a)
    assert len({w[1] for w in seq_a}) == 50  # continuous draws


def test_sandwich_n4_fixed_and_faithful_bug() -> None:
    fixed = WidthSampler(0.25, 1.0, epochs=4, num_samples=4, schedule="none", seed=0).widths(0)
    assert len(fixed) == 4 and fixed[0] == 1.0 and fixed[-1] == 0.25
    buggy = WidthSampler(
        0.25, 1.0, epochs=4, num_samples=4, schedule="none", seed=0, faithful_sandwich_bug=True
    ).widths(0)
    # the reference concatenates [max, min] inside the loop: max and min appear twice for N = 4
    assert len(buggy) == 6 and buggy.count(1.0) == 2 and buggy.count(0.25) == 2
    n3 = dict(w_min=0.25, w_max=1.0, epochs=4, num_samples=3, schedule="none", seed=3)
    assert WidthSampler(**n3).widths(0) == WidthSampler(**n3, faithful_sandwich_bug=True).widths(0)


def test_uniform_sampling() -> None:
    ws = WidthSampler(0.25, 1.0, epochs=4, num_samples=3, sampling="uniform", schedule="none", seed=0).widths(0)
    assert len(ws) == 3 and ws == sorted(ws, reverse=True) and all(0.25 <= w <= 1.0 for w in ws)


def test_state_round_trip_is_weights_only_safe(tmp_path) -> None:
    import torch

    s = WidthSampler(0.25, 1.0, epochs=4, schedule="none", seed=5)
    s.widths(0)
    torch.save(s.state_dict(), tmp_path / "s.pt")
    expected = [s.widths(0) for _ in range(5)]
    t = WidthSampler(0.25, 1.0, epochs=4, schedule="none", seed=999)
    t.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert [t.widths(0) for _ in range(5)] == expected
