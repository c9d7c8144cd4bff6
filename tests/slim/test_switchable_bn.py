"""Switchable BN (S-Nets): a private affine and private statistics per switch width; shared, sliced convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from us3l.errors import US3LError
from us3l.models import create_model
from us3l.slim import (
    SlimBatchNorm2d,
    SlimConv2d,
    bn_stats_state,
    bn_switches,
    calibrated_widths,
    calibrating,
    canonical_width,
    check_width,
    load_bn_stats_state,
    materialize,
    slim_modules,
    width,
    width_grid,
)

SWITCHES = [1.0, 0.75, 0.5, 0.25]
MESSAGE = "S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got 0.6)"


def _snet(track: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_switches=SWITCHES,
                        bn_track_stats=track)


def _x(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _bns(model: nn.Module) -> list[SlimBatchNorm2d]:
    return [m for _, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)]


def test_private_affine_per_switch_sized_to_its_channels() -> None:
    model = _snet(track=True)
    assert bn_switches(model) == (1.0, 0.75, 0.5, 0.25)
    for bn in _bns(model):
        assert bn.weight is None and bn.bias is None
        sizes = [bn.active_channels(s) for s in bn.switches]
        assert [p.shape[0] for p in bn.switch_weight] == sizes == [p.shape[0] for p in bn.switch_bias]
        assert [getattr(bn, f"switch_running_mean_{i}").shape[0] for i in range(4)] == sizes
        # distinct tensors, not views of one buffer
        ptrs = {p.data_ptr() for p in (*bn.switch_weight, *bn.switch_bias)}
        assert len(ptrs) == 8
    names = set(dict(model.named_parameters()))
    assert "bn1.switch_weight.2" in names and "bn1.weight" not in names


def test_gradient_step_at_half_changes_only_that_switch_and_the_shared_conv_slices() -> None:
    model = _snet(track=True).train()
    with torch.no_grad():  # private affines start different from 1/0, so a stray update would be visible
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with width(model, 0.5):
        model(_x()).pow(2).mean().backward()
    idx = 2  # switches are kept largest first: 1.0, 0.75, 0.5, 0.25
    for name, bn in slim_modules(model):
        if isinstance(bn, SlimBatchNorm2d):
            for i in range(4):
                got = bn.switch_weight[i].grad is not None
                assert got == (i == idx), f"{name} switch {i}"
    opt.step()
    changed = 0
    for name, p in model.named_parameters():
        if ".switch_weight." in name or ".switch_bias." in name:
            i = int(name.rsplit(".", 1)[1])
            if i != idx:
                assert torch.equal(p, before[name]), name
            else:
                changed += int(not torch.equal(p, before[name]))
    assert changed > 0
    for name, m in slim_modules(model):
        if isinstance(m, SlimConv2d):
            cin, cout, _ = m.active_channels(0.5)
            w0 = before[f"{name}.weight"]
            outside = torch.ones_like(w0, dtype=torch.bool)
            outside[:cout, :cin] = False
            assert torch.equal(m.weight[outside], w0[outside]), name  # only the shared slice moved
            assert not torch.equal(m.weight[:cout, :cin], w0[:cout, :cin]), name
    for name, b in model.named_buffers():  # running statistics: only the 0.5 switch's own
        if "switch_running" in name:
            assert torch.equal(b, buffers[name]) == (not name.endswith(f"_{idx}")), name


@pytest.mark.parametrize("bad", [0.6, 0.26, 0.9])
def test_a_width_that_is_not_a_switch_raises_one_line(bad: float) -> None:
    model = _snet()
    msg = f"S-Nets run only at widths 1, 0.75, 0.5, 0.25 (got {bad:g})"
    with pytest.raises(US3LError) as err, width(model, bad):
        pass
    assert str(err.value) == msg
    for call in (lambda: canonical_width(model, bad), lambda: materialize(model, bad), lambda: check_width(model, bad)):
        with pytest.raises(US3LError) as err:
            call()
        assert str(err.value) == msg
    bn = _bns(model)[0]  # the layer itself refuses too, even outside the width context
    bn.width = bad
    with pytest.raises(US3LError, match="S-Nets run only"):
        bn(torch.randn(2, bn.active_channels(bad), 4, 4))
    assert str(pytest.raises(US3LError, check_width, model, 0.6).value) == MESSAGE


def test_grid_and_canonical_widths_are_the_switches() -> None:
    model = _snet()
    assert width_grid(model) == (0.25, 0.5, 0.75, 1.0) == model.width_grid()
    assert model.width_grid(max_points=2) == (0.25, 1.0)
    assert [canonical_width(model, s) for s in SWITCHES] == SWITCHES
    assert check_width(model, 0.50001) == 0.5  # within half a 1e-4 step: that switch


def test_switches_with_equal_channel_counts_stay_separate() -> None:
    """1.0 and 0.75 of an 8-channel layer both have 8 channels: still two BNs, two statistics keys."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = SlimConv2d(3, 8, 3, padding=1, slim_in=False)
            self.bn = SlimBatchNorm2d(8, switches=(1.0, 0.75))
            self.width_range = self.conv.slim_range

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x))

    net = Tiny()
    assert net.bn.active_channels(1.0) == net.bn.active_channels(0.75) == 8
    with torch.no_grad():
        net.bn.switch_weight[1].fill_(2.0)
        for w, k in ((1.0, 1), (0.75, 3)):
            with calibrating(net, w):
                net(_x(seed=k) * k)
    assert calibrated_widths(net) == (0.75, 1.0)
    m1, m75 = net.bn.width_stats[1.0][0], net.bn.width_stats[0.75][0]
    assert not torch.allclose(m1, m75)
    net.eval()
    x = _x()
    with torch.no_grad():
        with width(net, 1.0):
            a = net(x)
        with width(net, 0.75):
            b = net(x)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("track", [False, True])
def test_materialize_parity_at_every_switch(track: bool) -> None:
    model = _snet(track=track, seed=3)
    with torch.no_grad():
        for bn in _bns(model):
            for p in (*bn.switch_weight, *bn.switch_bias):
                p.uniform_(-0.5, 1.5)
        if track:  # a few training-mode batches fill each switch's own running statistics
            model.train()
            for s in SWITCHES:
                with width(model, s):
                    model(_x(8, seed=int(s * 100)))
        else:
            for s in SWITCHES:
                with calibrating(model, s):
                    model(_x(8, seed=int(s * 100)))
    model.eval()
    x = _x(2, seed=7)
    for s in SWITCHES:
        with torch.no_grad(), width(model, s):
            ref = model(x)
        static = materialize(model, s, require_bn_stats=True)
        bn = next(m for m in static.modules() if isinstance(m, nn.BatchNorm2d))
        i = SWITCHES.index(s)
        assert torch.equal(bn.weight, model.bn1.switch_weight[i])
        with torch.no_grad():
            out = static(x)
        assert (out - ref).abs().max().item() <= 1e-5, s


def test_bn_stats_state_round_trip_and_foreign_widths_refused() -> None:
    model = _snet()
    with torch.no_grad():
        for s in (0.5, 0.25):
            with calibrating(model, s):
                model(_x(6))
    state = bn_stats_state(model)
    other = _snet()
    load_bn_stats_state(other, state)
    assert calibrated_widths(other) == (0.25, 0.5)
    bad = {k.replace("0.5000/", "0.6000/", 1): v for k, v in state.items() if k.startswith("0.5000/")}
    with pytest.raises(US3LError, match="S-Nets run only at widths"):
        load_bn_stats_state(_snet(), bad)


def test_bad_switches_are_one_line_errors() -> None:
    with pytest.raises(US3LError, match="twice"):
        SlimBatchNorm2d(8, switches=(1.0, 0.5, 0.5))
    with pytest.raises(US3LError, match=r"bn_switches: width must be in \[0.25, 1\]"):
        SlimBatchNorm2d(8, switches=(1.0, 0.1))
    with pytest.raises(US3LError, match="non-empty"):
        SlimBatchNorm2d(8, switches=())
