"""SSL losses against hand-computed values and their invariants (symmetry, stop-gradient)."""

from __future__ import annotations

import math

import pytest
import torch

from us3l.ssl import losses


def _nt_xent_by_hand(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    x = [v / v.norm() for v in torch.cat([a, b])]
    n, bsz = len(x), a.shape[0]
    total = 0.0
    for i in range(n):
        sims = [math.exp(float(x[i] @ x[j]) / t) for j in range(n) if j != i]
        pos = math.exp(float(x[i] @ x[(i + bsz) % n]) / t)
        total += -math.log(pos / sum(sims))
    return total / n


def test_nt_xent_matches_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    # rows normalised: a = (1,0),(0,1); b = (.707,.707),(-.707,.707)
    assert losses.nt_xent(a, b, 0.5).item() == pytest.approx(_nt_xent_by_hand(a, b, 0.5), rel=1e-6)
    # fully by hand for row 0: sims to (0,1), b0, b1 = 0, .7071, -.7071; positive b0
    e = [math.exp(0 / 0.5), math.exp(0.70710678 / 0.5), math.exp(-0.70710678 / 0.5)]
    row0 = -math.log(e[1] / sum(e))
    assert _nt_xent_by_hand(a, b, 0.5) == pytest.approx(
        (row0 + _row(a, b, 1) + _row(a, b, 2) + _row(a, b, 3)) / 4, rel=1e-6
    )


def _row(a: torch.Tensor, b: torch.Tensor, i: int) -> float:
    x = [v / v.norm() for v in torch.cat([a, b])]
    sims = [math.exp(float(x[i] @ x[j]) / 0.5) for j in range(4) if j != i]
    return -math.log(math.exp(float(x[i] @ x[(i + 2) % 4]) / 0.5) / sum(sims))


def test_neg_cosine_matches_hand_computation() -> None:
    p = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    z = torch.tensor([[1.0, 1.0], [3.0, 4.0]])
    expected = -(1 / math.sqrt(2) + 1.0) / 2
    assert losses.neg_cosine(p, z).item() == pytest.approx(expected, rel=1e-6)


def test_cross_view_is_symmetric_in_views() -> None:
    g = torch.Generator().manual_seed(0)
    o1, o2, t1, t2 = (torch.randn(4, 8, generator=g) for _ in range(4))
    for fn in (losses.neg_cosine, lambda a, b: losses.nt_xent_target(a, b, 0.5)):
        l12 = losses.cross_view(fn, (o1, o2), (t1, t2))
        l21 = losses.cross_view(fn, (o2, o1), (t2, t1))
        assert l12.item() == pytest.approx(l21.item(), rel=1e-6)
    # the pairing is cross-view: (o1, t2) and (o2, t1)
    half = 0.5 * (losses.neg_cosine(o1, t2) + losses.neg_cosine(o2, t1))
    assert losses.cross_view(losses.neg_cosine, (o1, o2), (t1, t2)).item() == pytest.approx(half.item())


def test_no_gradient_through_targets() -> None:
    o = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    for loss in (
        losses.neg_cosine(o, t),
        losses.nt_xent_target(o, t, 0.5),
        losses.mocov3_contrastive(o, t, 0.2),
        losses.feature_mse((o, o), (t, t)),
    ):
        o.grad = None
        t.grad = None
        loss.backward()
        assert o.grad is not None and o.grad.abs().sum() > 0
        assert t.grad is None


def test_naive_nt_xent_is_symmetric_and_flows_to_both() -> None:
    a = torch.randn(4, 8, requires_grad=True)
    b = torch.randn(4, 8, requires_grad=True)
    loss = losses.nt_xent(a, b, 0.5)
    assert loss.item() == pytest.approx(losses.nt_xent(b, a, 0.5).item(), rel=1e-6)
    loss.backward()
    assert a.grad is not None and b.grad is not None


def test_mocov3_contrastive_hand_value() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    tau = 0.2
    # row 0: logits (1, .7071)/tau, label 0; row 1: (0, .7071)/tau, label 1
    r0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0.70710678 / tau)))
    r1 = -math.log(math.exp(0.70710678 / tau) / (1 + math.exp(0.70710678 / tau)))
    expected = (r0 + r1) / 2 * 2 * tau
    assert losses.mocov3_contrastive(q, k, tau).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        lambda a, b: losses.nt_xent(a, b, 0.2),
        lambda a, b: losses.nt_xent_target(a, b, 0.2),
        losses.neg_cosine,
        lambda a, b: losses.mocov3_contrastive(a, b, 0.2),
    ],
)
def test_losses_run_in_float32_under_autocast(loss) -> None:
    """Under mixed precision (bf16 autocast on CPU here, fp16 on CUDA) a loss computes in float32: the same
    value as without autocast, from the low-precision activations cast up, and its gradient reaches them in
    their own dtype."""
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    a16, b16 = a32.bfloat16().requires_grad_(), b32.bfloat16()
    plain = loss(a16.detach().float(), b16.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(a16, b16)
        unguarded = (a16 @ b16.t()).dtype  # what the similarity matmul would have run in
    assert unguarded == torch.bfloat16
    assert mixed.dtype == torch.float32
    assert mixed.item() == plain.item()
    mixed.backward()
    assert a16.grad is not None and a16.grad.dtype == torch.bfloat16
