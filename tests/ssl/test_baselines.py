"""The paper's comparison baselines as methods: S-Nets (``snets``) and the individually trained ``single``."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.ssl.conftest import random_views
from us3l.errors import US3LError
from us3l.models import create_model
from us3l.ssl import METHODS, create_method, losses
from us3l.ssl.ema import ema_update
from us3l.train import make_config
from us3l.train.config import fill_method_defaults

CFG = dict(
    model="cifar_resnet18", model_kwargs={"base_channels": 8}, proj_hidden=16, pred_hidden=16, proj_dim=8, epochs=4
)
SWITCHES = [1.0, 0.75, 0.5, 0.25]


def _snets(**kw: object):
    cfg = make_config({**CFG, "method": "snets", "schedule": "none", **kw})
    torch.manual_seed(0)
    bb = create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_switches=SWITCHES, bn_track_stats=True)
    return create_method("snets", bb, cfg)


def test_snets_is_registered_and_needs_switchable_bn() -> None:
    assert "snets" in METHODS
    cfg = make_config({**CFG, "method": "snets", "schedule": "none"})
    with pytest.raises(US3LError, match="switchable BN"):
        create_method("snets", create_model("cifar_resnet18", num_classes=0, base_channels=8), cfg)
    m = _snets()
    assert m.switches == (1.0, 0.75, 0.5, 0.25) and m.w_max == 1.0


def test_snets_uses_the_us3l_losses() -> None:
    """Base: NT-Xent(z, sg k) vs the EMA teacher (updated first), no head; sub-networks: −cos through predictor."""
    m = _snets()
    ref = copy.deepcopy(m)
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    ema_update(ref.encoder_k, ref.encoder_q, 0.99)
    with torch.no_grad():
        k = (ref.encoder_k(x1, 1.0)[0], ref.encoder_k(x2, 1.0)[0])
    z = (ref.encoder_q(x1, 1.0)[0], ref.encoder_q(x2, 1.0)[0])
    assert torch.allclose(targets["k"][0], k[0])
    want = losses.cross_view(lambda a, b: losses.nt_xent_target(a, b, 0.5), z, k)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in m.predictor.parameters())  # base: no head
    assert not hasattr(m, "predictor_new")
    m.zero_grad(set_to_none=True)
    sub, _ = m(x1, x2, 0.5, targets)
    zs = (ref.encoder_q(x1, 0.5)[0], ref.encoder_q(x2, 0.5)[0])
    want_sub = losses.cross_view(losses.neg_cosine, (ref.predictor(zs[0]), ref.predictor(zs[1])), targets["k"])
    assert sub.item() == pytest.approx(want_sub.item(), rel=1e-5)
    sub.backward()
    assert all(p.grad is not None for p in m.predictor.parameters())
    with pytest.raises(US3LError, match=r"S-Nets run only at widths 1, 0.75, 0.5, 0.25 \(got 0.6\)"):
        m(x1, x2, 0.6, targets)


def test_snets_byol_base_and_the_reference_momentum_update() -> None:
    m = _snets(snets_base="byol")
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 1.0)
    loss.backward()
    assert all(p.grad is not None for p in m.predictor.parameters())
    assert all(p.grad is None for p in m.predictor_new.parameters())
    m.zero_grad(set_to_none=True)
    teacher = [p.clone() for p in m.encoder_k.parameters()]
    m(x1, x2, 0.25, targets)[0].backward()
    assert all(p.grad is not None for p in m.predictor_new.parameters())
    assert all(p.grad is None for p in m.predictor.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher, m.encoder_k.parameters(), strict=True))  # once per iter

    r = _snets(snets_base="byol", snets_momentum_update=True)  # the reference s_* recipe
    assert r.aux_head == "predictor"
    loss, targets = r(x1, x2, 1.0)
    with torch.no_grad():
        for p in r.encoder_q.parameters():
            p.add_(0.5)  # as if the max-width SGD step had moved the weights
    before = [p.clone() for p in r.encoder_k.parameters()]
    q = [p.clone() for p in r.encoder_q.parameters()]
    r(x1, x2, 0.5, targets)[0].backward()
    for k0, qp, k1 in zip(before, q, r.encoder_k.parameters(), strict=True):
        assert torch.allclose(k1, 0.99 * k0 + 0.01 * qp)
    assert all(p.grad is not None for p in r.predictor.parameters())


def test_single_with_byol_base_is_the_reference_individual_baseline() -> None:
    """``single_base: byol``: the predictor head on the online output and ½Σ −cos(h(z_s), sg k_t), where k is
    the EMA teacher at the same fixed width; no auxiliary head. Recipe: lr 0.05, D 2048 (BYOL)."""
    cfg = make_config({**CFG, "method": "single", "single_base": "byol", "single_width": 0.5})
    torch.manual_seed(0)
    bb = create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_track_stats=True)
    m = create_method("single", bb, cfg)
    assert m.base_head == "predictor" and m.aux_head is None and not hasattr(m, "predictor_new")
    assert m.w_max == 0.5
    ref = copy.deepcopy(m)
    x1, x2 = random_views()
    loss, targets = m(x1, x2, 0.5)
    ema_update(ref.encoder_k, ref.encoder_q, 0.99)
    with torch.no_grad():
        k = (ref.encoder_k(x1, 0.5)[0], ref.encoder_k(x2, 0.5)[0])
    p = (ref.predictor(ref.encoder_q(x1, 0.5)[0]), ref.predictor(ref.encoder_q(x2, 0.5)[0]))
    assert torch.allclose(targets["k"][1], k[1])
    want = 0.5 * (-torch.nn.functional.cosine_similarity(p[0], k[1]).mean()
                  - torch.nn.functional.cosine_similarity(p[1], k[0]).mean())
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert all(q.grad is not None for q in m.predictor.parameters())
    resolved = fill_method_defaults(make_config({"method": "single", "single_base": "byol"}))
    assert (resolved.lr, resolved.proj_dim) == (0.05, 2048)
    simclr = create_method("single", create_model("cifar_resnet18", num_classes=0, base_channels=8,
                                                  bn_track_stats=True), make_config({**CFG, "method": "single"}))
    assert simclr.base_head is None and not hasattr(simclr, "predictor")
