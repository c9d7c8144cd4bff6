"""SSL methods: the EMA teacher gets no gradient, targets are this iteration's teacher outputs, aux heads."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.ssl.conftest import random_views
from us3l.models import create_model
from us3l.ssl import METHODS, create_method
from us3l.ssl.ema import ema_update
from us3l.train import make_config

CFG = dict(
    model="cifar_resnet18", model_kwargs={"base_channels": 8}, proj_hidden=16, pred_hidden=16, proj_dim=8, epochs=4
)


def _method(name: str, **kw: object):
    cfg = make_config({**CFG, "method": name, **kw})
    torch.manual_seed(0)
    bb = create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_track_stats=(name == "single"))
    return create_method(name, bb, cfg)


def test_registry_has_all_methods() -> None:
    assert {"us3l", "us3l_byol", "us3l_simsiam", "us3l_mocov3", "naive_simsiam", "naive_simclr", "single"} <= set(
        METHODS
    )


@pytest.mark.parametrize("name", ["us3l", "us3l_byol", "us3l_simsiam", "single"])
def test_no_gradient_into_ema_teacher(name: str) -> None:
    m = _method(name)
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    assert all(not t.requires_grad for t in targets["k"])
    if name != "single":
        sub, _ = m(x1, x2, 0.25, targets)
        loss = loss + sub
    loss.backward()
    assert all(p.grad is None for p in m.encoder_k.parameters())
    assert all(not p.requires_grad for p in m.encoder_k.parameters())
    assert any(p.grad is not None for p in m.encoder_q.parameters())


def test_ema_update_formula() -> None:
    m = _method("us3l")
    with torch.no_grad():
        for p in m.encoder_q.parameters():
            p.add_(1.0)
    before_k = [p.clone() for p in m.encoder_k.parameters()]
    q = [p.clone() for p in m.encoder_q.parameters()]
    ema_update(m.encoder_k, m.encoder_q, 0.99)
    for k0, qp, k1 in zip(before_k, q, m.encoder_k.parameters(), strict=True):
        assert torch.allclose(k1, 0.99 * k0 + 0.01 * qp)


def test_us3l_targets_are_same_iteration_teacher_outputs() -> None:
    m = _method("us3l")
    x1, x2 = random_views()
    ref = copy.deepcopy(m)
    _, targets = m(x1, x2, 1.0)
    # the base pass EMA-updates the teacher first, then computes the targets with it at width 1.0
    ema_update(ref.encoder_k, ref.encoder_q, 0.99)
    with torch.no_grad():
        k1, _ = ref.encoder_k(x1, 1.0)
    assert torch.equal(targets["k"][0], k1)


def test_us3l_heads_base_uses_no_predictor_sub_uses_aux_head() -> None:
    m = _method("us3l")
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    loss.backward()
    assert all(p.grad is None for p in m.predictor.parameters())  # base: no head
    m.zero_grad(set_to_none=True)
    sub, _ = m(x1, x2, 0.5, targets)
    sub.backward()
    assert all(p.grad is not None for p in m.predictor.parameters())


def test_byol_sub_networks_use_separate_head() -> None:
    m = _method("us3l_byol")
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    loss.backward()
    assert all(p.grad is None for p in m.predictor_new.parameters())
    assert all(p.grad is not None for p in m.predictor.parameters())
    m.zero_grad(set_to_none=True)
    m(x1, x2, 0.5, targets)[0].backward()
    assert all(p.grad is None for p in m.predictor.parameters())
    assert all(p.grad is not None for p in m.predictor_new.parameters())


def test_naive_simsiam_targets_are_online_and_stop_gradient() -> None:
    m = _method("naive_simsiam")
    assert not hasattr(m, "encoder_k")
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    with torch.no_grad():
        z1, _ = m.encoder_q(x1, 1.0)
    assert torch.allclose(targets["k"][0], z1, atol=1e-6)
    assert not targets["k"][0].requires_grad


@pytest.mark.parametrize("name", ["us3l", "us3l_byol", "naive_simsiam", "naive_simclr"])
def test_losses_symmetric_in_views(name: str) -> None:
    m = _method(name)
    x1, x2 = random_views()
    a, b = copy.deepcopy(m), copy.deepcopy(m)
    la, ta = a(x1, x2, 1.0)
    lb, tb = b(x2, x1, 1.0)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5, abs=1e-6)
    sa, _ = a(x1, x2, 0.5, ta)
    sb, _ = b(x2, x1, 0.5, tb)
    assert sa.item() == pytest.approx(sb.item(), rel=1e-5, abs=1e-6)


def test_feature_distillation_runs_and_proj_conv_gets_gradient() -> None:
    m = _method("us3l", feature_distill=True)
    assert sorted(m.proj_conv) == ["layer2_1_bn2", "layer3_1_bn2", "layer4_1_bn2"]
    x1, x2 = random_views()
    _, targets = m(x1, x2, 1.0)
    assert len(targets["feats"]) == 3
    sub, _ = m(x1, x2, 0.25, targets)
    sub.backward()
    assert all(p.grad is not None for p in m.proj_conv.parameters())


def test_mocov3_on_tiny_vit() -> None:
    cfg = make_config({**CFG, "method": "us3l_mocov3", "model": "vit_tiny", "model_kwargs": {"img_size": 32}})
    bb = create_model("vit_tiny", num_classes=0, img_size=32)
    m = create_method("us3l_mocov3", bb, cfg)
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    loss, targets = m(x1, x2, 1.0)
    sub, _ = m(x1, x2, 0.25, targets)
    (loss + sub).backward()
    assert torch.isfinite(loss) and torch.isfinite(sub)
    assert all(p.grad is None for p in m.encoder_k.parameters())


def test_naive_simsiam_projector_ends_with_affine_free_bn_and_frozen_bias() -> None:
    m = _method("naive_simsiam")
    proj = m.encoder_q.projector
    last, linear = proj[-1], proj[-2]
    assert isinstance(last, torch.nn.BatchNorm1d) and not last.affine and last.num_features == m.dim
    assert isinstance(linear, torch.nn.Linear) and linear.bias is not None and not linear.bias.requires_grad
    # the output is batch-normalised per dimension (mean 0, var 1 over the batch), as in the reference
    x1, x2 = random_views()
    z, _ = m.encoder_q(torch.cat([x1, x2]), 0.5)
    assert torch.allclose(z.mean(0), torch.zeros(m.dim), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(m.dim), atol=1e-3)
    # the frozen bias gets no gradient at any width, everything else in the projector does
    loss, targets = m(x1, x2, 1.0)
    sub, _ = m(x1, x2, 0.25, targets)
    (loss + sub).backward()
    assert linear.bias.grad is None
    assert linear.weight.grad is not None and proj[0].weight.grad is not None
    # the other methods keep the plain projector
    for name in ("us3l", "us3l_simsiam", "naive_simclr"):
        assert isinstance(_method(name).encoder_q.projector[-1], torch.nn.Linear)


def test_naive_simclr_sub_networks_go_through_the_predictor() -> None:
    m = _method("naive_simclr")
    assert not hasattr(m, "encoder_k") and not hasattr(m, "predictor_new")
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    loss.backward()
    assert all(p.grad is None for p in m.predictor.parameters())  # base: NT-Xent on z, no head
    for w in (0.75, 0.25):
        m.zero_grad(set_to_none=True)
        sub, _ = m(x1, x2, w, targets)
        sub.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.predictor.parameters())
        # the sub-network loss is −cos(predictor(z_s^w), sg z_t^max), cross-view
        with torch.no_grad():
            z1, _ = m.encoder_q(x1, w)
            z2, _ = m.encoder_q(x2, w)
            p1, p2 = m.predictor(z1), m.predictor(z2)
            k1, k2 = targets["k"]
            cos = torch.nn.functional.cosine_similarity
            want = -0.5 * (cos(p1, k2).mean() + cos(p2, k1).mean())
        assert sub.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)


def test_mocov3_heads_are_the_references_and_the_patch_embedding_is_frozen() -> None:
    """MoCo_USViT: bias-free Linears, projector (3 layers) and predictors (2) ending in BatchNorm1d(affine=False),
    predictor_new a copy of predictor, and --stop-grad-conv1 (the patch embedding gets no update)."""
    from us3l.train.distributed import DistInfo
    from us3l.train.loop import _train_step

    kw = {"img_size": 32, "stop_grad_conv1": True}
    cfg = make_config({**CFG, "method": "us3l_mocov3", "model": "vit_tiny", "model_kwargs": kw, "amp": False})
    torch.manual_seed(0)
    m = create_method("us3l_mocov3", create_model("vit_tiny", num_classes=0, **kw), cfg)
    for head, n_linear in ((m.encoder_q.projector, 3), (m.predictor, 2), (m.predictor_new, 2)):
        linears = [x for x in head if isinstance(x, torch.nn.Linear)]
        assert len(linears) == n_linear and all(x.bias is None for x in linears)
        last = list(head)[-1]
        assert isinstance(last, torch.nn.BatchNorm1d) and not last.affine
    assert all(torch.equal(a, b) for a, b in zip(m.predictor.parameters(), m.predictor_new.parameters(), strict=True))
    pe = m.encoder_q.backbone.patch_embed
    assert not pe.weight.requires_grad and not pe.bias.requires_grad
    before = pe.weight.detach().clone()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)
    x1, x2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    _train_step(m, m, opt, scaler, None, x1, x2, [1.0, 0.5], 0, cfg, None, DistInfo())
    assert torch.equal(pe.weight, before)
    assert not torch.equal(m.predictor_new[0].weight, m.predictor[0].weight)  # trained apart from then on
