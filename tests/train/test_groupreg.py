"""Group regularization: per-group coefficients per epoch (method.md §3) and exclusions, by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from us3l.train.groupreg import GroupRegConfig, GroupRegularizer, group_coefficients, group_index

LAM = 5e-5


def test_coefficients_cifar_r18_schedule() -> None:
    cfg = GroupRegConfig(lam=LAM, alpha=0.05, bins=8, warmup_epochs=0)
    # E = 400: α(e) = 0.05·e/200 until epoch 200, then 0.05
    assert group_coefficients(cfg, 0, 400) == pytest.approx([LAM] * 8)
    assert group_coefficients(cfg, 100, 400) == pytest.approx([LAM * (1 - 0.025 * i) for i in range(8)])
    full = [LAM, 0.95 * LAM, 0.90 * LAM, 0.85 * LAM, 0.80 * LAM, 0.75 * LAM, 0.70 * LAM, 0.65 * LAM]
    assert group_coefficients(cfg, 200, 400) == pytest.approx(full)
    assert group_coefficients(cfg, 399, 400) == pytest.approx(full)


def test_coefficients_with_warmup() -> None:
    # ImageNet: warm-up 50 of 100 epochs: uniform, then straight to α = 0.05
    cfg = GroupRegConfig(lam=LAM, alpha=0.05, bins=8, warmup_epochs=50)
    assert group_coefficients(cfg, 49, 100) == pytest.approx([LAM] * 8)
    assert group_coefficients(cfg, 50, 100)[-1] == pytest.approx(0.65 * LAM)
    # warm-up 10 of 40 (E//2 = 20): epoch 15 is half-way through the ramp -> α = 0.025
    cfg = GroupRegConfig(lam=LAM, alpha=0.05, bins=8, warmup_epochs=10)
    assert group_coefficients(cfg, 9, 40) == pytest.approx([LAM] * 8)
    assert group_coefficients(cfg, 15, 40)[7] == pytest.approx(LAM * (1 - 0.025 * 7))


def test_group_index_remainder_and_small_dims() -> None:
    assert group_index(20, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 7, 7, 7, 7]
    assert group_index(5, 8).tolist() == [7] * 5  # dim//8 = 0: everything in the last group


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder_q = nn.Module()
        self.encoder_q.conv = nn.Conv2d(1, 16, 1, bias=False)  # 4-D: grouped over 16 out channels
        self.encoder_q.bn = nn.BatchNorm1d(5)  # 1-D: 5 < 8 -> last group
        self.encoder_q.fc = nn.Linear(3, 2)  # 2-D weight: uniform; bias (2,): last group
        self.encoder_k = nn.Linear(3, 3)
        self.predictor = nn.Linear(2, 2, bias=False)
        self.proj_conv = nn.Conv2d(2, 2, 1)
        for p in self.parameters():
            nn.init.constant_(p, 1.0)


def test_regularizer_value_and_exclusions() -> None:
    m = _Toy()
    cfg = GroupRegConfig(lam=LAM, alpha=0.05, bins=8)
    reg = GroupRegularizer(m.named_parameters(), cfg, epochs=4)
    lam = group_coefficients(cfg, 2, 4)  # epoch 2 of 4: α = 0.05 (E//2 = 2)
    conv = sum(2 * lam[i] for i in range(8))  # 16 rows of value 1, 2 rows per group
    bn = 5 * lam[7] * 2  # weight and bias, 5 channels each, all in the last group
    fc = LAM * 6 + 2 * lam[7]  # uniform on the 2x3 weight, bias (2,) in the last group
    pred = LAM * 4
    at_max = reg(1.0, 2).item()
    at_sub = reg(0.5, 2).item()
    assert at_max == pytest.approx(conv + bn + fc, rel=1e-5)  # predictor excluded at max width
    assert at_sub == pytest.approx(conv + bn + fc + pred, rel=1e-5)  # included below max
    # encoder_k and proj_conv never contribute
    m.encoder_k.weight.data.fill_(100.0)
    m.proj_conv.weight.data.fill_(100.0)
    assert reg(0.5, 2).item() == pytest.approx(at_sub, rel=1e-5)


def test_regularizer_gradient_is_2_lambda_p() -> None:
    conv = nn.Conv2d(1, 8, 1, bias=False)
    reg = GroupRegularizer([("encoder_q.c", conv.weight)], GroupRegConfig(lam=LAM), epochs=4)
    reg(1.0, 3).backward()
    lam = torch.tensor(group_coefficients(GroupRegConfig(lam=LAM), 3, 4))
    assert torch.allclose(conv.weight.grad.flatten(), 2 * lam * conv.weight.detach().flatten())


def test_value_and_add_grad_match_autograd() -> None:
    """The training loop's path (value without a graph, gradient added in place) equals ``__call__`` + backward."""
    torch.manual_seed(0)
    m = _Toy()
    for p in m.parameters():
        nn.init.normal_(p)
    cfg = GroupRegConfig(lam=LAM, alpha=0.05, bins=8)
    for width in (1.0, 0.5):
        ref = GroupRegularizer(m.named_parameters(), cfg, epochs=4)
        for p in m.parameters():
            p.grad = None
        value = ref(width, 1)
        value.backward()
        want = {n: None if p.grad is None else p.grad.clone() for n, p in m.named_parameters()}
        for p in m.parameters():
            p.grad = None
        fused = GroupRegularizer(m.named_parameters(), cfg, epochs=4)
        assert fused.value(width, 1).item() == pytest.approx(value.item(), rel=1e-6)
        fused.add_grad_(width, 1)
        for n, p in m.named_parameters():
            if want[n] is None:
                assert p.grad is None, n
            else:  # one gradient contribution per parameter: bit for bit
                assert torch.equal(p.grad, want[n]), n
