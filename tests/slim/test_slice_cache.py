"""The no-grad slice memo of slim layers (issue 14 item 3) never serves stale weights."""

from __future__ import annotations

import pytest
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
    """deepcopy used to fail on memoised no-grad views whose base had since been updated in place: the memo is
    never copied (a copy starts with an empty one)."""
    import copy

    net = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        with width(net, 0.5):
            net(x)
        for p in net.parameters():
            p.add_(0.01)
    clone = copy.deepcopy(net)
    assert any(m.__dict__.get("_us3l_infer") for m in net.modules())
    assert not any(m.__dict__.get("_us3l_infer") for m in clone.modules())
    with torch.no_grad(), width(clone, 0.5), width(net, 0.5):
        torch.testing.assert_close(clone(x), net(x))


def test_dtype_conversion_and_frozen_weights_with_grad_enabled() -> None:
    """``.double()`` changes the parameters' storage without bumping their versions: the memo must see it. With
    frozen weights and grad enabled (input gradients), the inference path runs and the input still gets one."""
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad(), width(net, 0.5):
        net(x)
    net.double()
    with torch.no_grad(), width(net, 0.5):
        out = net(x.double())
    assert out.dtype == torch.float64
    with width(net, 0.5):
        fresh = net(x.double())  # grad mode: slices taken anew
    torch.testing.assert_close(out, fresh.detach())
    for p in net.parameters():
        p.requires_grad_(False)
    xg = x.double().requires_grad_()
    with width(net, 0.5):
        net(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_wrong_input_channels_fail_in_the_inference_path() -> None:
    net = _net()
    with torch.no_grad(), width(net, 0.5):
        with pytest.raises(RuntimeError, match="expects 3 input channels, got 2"):
            net(torch.randn(1, 2, 16, 16))


def test_the_model_holds_no_module_dicts_a_deep_copy_would_copy() -> None:
    """Entering a width context caches the modules' instance dicts. Kept in the model's own cache, every deep
    copy of the model (``materialize`` makes them) copied all of them again: 7x the cost of materializing."""
    net = _net()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        for w in (1.0, 0.5, 0.25):
            with width(net, w):
                net(x)
    module_dicts = {id(m.__dict__) for m in net.modules()}
    seen: set[int] = set()
    stack: list[object] = [v for k, v in net.__dict__.items() if k.startswith("_us3l")]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert id(obj) not in module_dicts, "a module's __dict__ is reachable from the model's us3l caches"
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
