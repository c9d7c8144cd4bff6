"""Both views in one call (us3l.ssl.views): the same losses, gradients and running statistics as one call per
view, one backbone call per network pass, and a per-view fallback where a BatchNorm cannot split its batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.ssl.conftest import random_views
from us3l.models import create_model
from us3l.slim.layers import grouped_batch_norm
from us3l.ssl import create_method
from us3l.ssl.views import batch_groups, grouped_norms, run_views
from us3l.train import make_config

CFG = dict(
    model="cifar_resnet18", model_kwargs={"base_channels": 8}, proj_hidden=16, pred_hidden=16, proj_dim=8, epochs=4
)


SWITCHES = (1.0, 0.75, 0.5, 0.25)


def _pair(name: str, **kw: object):
    """The same method twice (same initial weights): views batched, and one call per view."""
    out = []
    for batched in (True, False):
        torch.manual_seed(0)
        if name == "us3l_mocov3":  # a ViT backbone (LayerNorm); the MoCo v3 heads end in BatchNorm1d
            cfg = make_config({**CFG, "method": name, "view_batching": batched, "model": "vit_tiny",
                               "model_kwargs": {"img_size": 16}, **kw})
            bb = create_model("vit_tiny", num_classes=0, img_size=16)
        else:
            cfg = make_config({**CFG, "method": name, "view_batching": batched, **kw})
            track = name in ("single", "naive_simsiam", "snets")
            switches = {"bn_switches": SWITCHES} if name == "snets" else {}
            bb = create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_track_stats=track, **switches)
        out.append(create_method(name, bb, cfg))
    return out


def _step(m: nn.Module, x1: torch.Tensor, x2: torch.Tensor, sub: bool) -> torch.Tensor:
    loss, targets = m(x1, x2, 1.0)
    if sub:
        loss = loss + m(x1, x2, 0.25, targets)[0]
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize(
    ("name", "kw", "sub"),
    [
        ("us3l", {"feature_distill": True}, True),
        ("us3l_byol", {}, True),
        ("us3l_simsiam", {}, True),
        ("us3l_mocov3", {}, True),
        ("snets", {}, True),
        ("naive_simsiam", {}, True),
        ("naive_simclr", {}, True),
        ("single", {}, False),
    ],
)
def test_batched_views_match_one_call_per_view(name: str, kw: dict, sub: bool) -> None:
    batched, separate = _pair(name, **kw)
    x1, x2 = random_views(6)
    la, lb = _step(batched, x1, x2, sub), _step(separate, x1, x2, sub)
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-6)
    ga, gb = dict(batched.named_parameters()), dict(separate.named_parameters())
    graded = [k for k in ga if ga[k].grad is not None]
    assert graded and graded == [k for k in gb if gb[k].grad is not None]
    for k in graded:  # float rounding, relative to the gradient's scale (a bias in front of a BN has ~0 gradient)
        scale = gb[k].grad.abs().max().item()
        assert (ga[k].grad - gb[k].grad).abs().max().item() <= 1e-4 * scale + 1e-6, k
    # running statistics (single, naive_simsiam) are updated once per view, in order, as by separate calls
    ba, bb = dict(batched.named_buffers()), dict(separate.named_buffers())
    assert ba.keys() == bb.keys()
    for k in ba:
        torch.testing.assert_close(ba[k], bb[k], rtol=1e-5, atol=1e-6, msg=k)
    if name in ("single", "naive_simsiam"):
        tracked = [v for k, v in ba.items() if k.endswith("num_batches_tracked") and "encoder_q" in k]
        assert tracked and all(int(t) == (4 if sub else 2) for t in tracked)


def test_one_backbone_call_per_pass_when_batched() -> None:
    batched, separate = _pair("us3l")
    x1, x2 = random_views(6)
    for m, expected in ((batched, 1), (separate, 2)):
        calls: list[int] = []

        def hook(mod: nn.Module, inp: tuple, out: object, calls: list[int] = calls) -> None:
            calls.append(inp[0].shape[0])

        h = m.encoder_q.backbone.register_forward_hook(hook)
        m(x1, x2, 0.5, m(x1, x2, 1.0)[1])
        h.remove()
        assert len(calls) == 2 * expected  # base pass and sub-network pass
        assert set(calls) == {12 // expected}


def test_batch_groups_are_reset_after_an_error() -> None:
    m = create_model("cifar_resnet18", num_classes=0, base_channels=8).train()
    norms = grouped_norms(m)
    assert norms
    with pytest.raises(ValueError, match="batch of 3 does not split"), batch_groups(norms, 2):
        m(torch.randn(3, 3, 16, 16))  # 3 images do not split into 2 views
    assert all(n.batch_groups == 1 for n in norms)


def test_a_plain_batchnorm_falls_back_to_one_call_per_view() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).train()
    assert grouped_norms(net) is None
    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return net(x)

    a, b = torch.randn(5, 4), torch.randn(5, 4)
    out = run_views(net, fn, (a, b))
    assert seen == [5, 5]
    torch.testing.assert_close(out[1], net(b))
    # views of different shapes are never concatenated either
    m = create_model("cifar_resnet18", num_classes=0, base_channels=8).train()
    seen.clear()
    run_views(m, lambda x: seen.append(x.shape[0]) or m(x), (torch.randn(2, 3, 16, 16), torch.randn(3, 3, 16, 16)))
    assert seen == [2, 3]


def test_grouped_batch_norm_refuses_an_uneven_split() -> None:
    with pytest.raises(ValueError, match="batch of 5 does not split into 2 equal groups"):
        grouped_batch_norm(torch.randn(5, 3), 2, None, None, None, None, 0.0, 1e-5)
