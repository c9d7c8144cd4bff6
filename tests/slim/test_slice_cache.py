"""The no-grad slice memo of slim layers (issue 14 item 3) never serves stale weights."""

from __future__ import annotations

import torch

from us3l.models import create_model
from us3l.slim import materialize, width


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("cifar_resnet18", num_classes=0, base_channels=8).eval()


def test_no_grad_forward_follows_in_place_updates_and_matches_grad_mode() -> None:
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), width(net, 0.5):
        first = net(x)
    with torch.no_grad():  # in-place updates (optimizer, EMA, load_state_dict) bump version counters
        for p in net.parameters():
            p.mul_(0.9).add_(0.01)
    with torch.no_grad(), width(net, 0.5):
        cached = net(x)
    with width(net, 0.5):
        fresh = net(x)  # grad mode: slices taken anew
    assert not torch.equal(first, cached)
    torch.testing.assert_close(cached, fresh.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached, materialize(net, 0.5)(x), rtol=1e-5, atol=1e-6)


def test_replaced_parameters_and_other_widths_are_new_entries() -> None:
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for w in (0.25, 0.5, 0.75, 0.3, 0.6, 0.25):  # more widths than the memo holds
            with width(net, w):
                out = net(x)
            torch.testing.assert_close(out, materialize(net, w)(x), rtol=1e-5, atol=1e-6)
    src = _net()
    with torch.no_grad():
        for p in src.parameters():
            p.mul_(1.5)
    net.load_state_dict(src.state_dict())  # copies into the same parameters
    with torch.no_grad(), width(net, 0.5):
        torch.testing.assert_close(net(x), materialize(src, 0.5)(x), rtol=1e-5, atol=1e-6)


def test_deepcopy_after_no_grad_calls_and_in_place_updates() -> None:
    """The memo lives outside the modules: deepcopy used to fail on memoised no-grad views whose base had since
    been updated in place."""
    import copy

    net = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        with width(net, 0.5):
            net(x)
        for p in net.parameters():
            p.add_(0.01)
    clone = copy.deepcopy(net)
    with torch.no_grad(), width(clone, 0.5), width(net, 0.5):
        torch.testing.assert_close(clone(x), net(x))
