"""The cached static network that a slimmable model runs under no_grad in eval mode (us3l.slim.inference):
used only where it computes exactly what the slimmable layers compute, and never stale."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.models.test_models import SMALL_INPUT, make
from us3l.slim import calibrating, inference, width
from us3l.slim.inference import cached_static, eager_layers


def _calibrated(name: str, widths: tuple[float, ...]) -> torch.nn.Module:
    model = make(name)
    s = SMALL_INPUT[name]
    calib = torch.randn(4, 3, s, s)
    with torch.no_grad():
        for w in widths:
            with calibrating(model, w):
                model(calib)
    return model.eval()


def _layers(model: torch.nn.Module, w: float, x: torch.Tensor, features: bool = False) -> torch.Tensor:
    with torch.no_grad(), eager_layers(), width(model, w):
        return model.forward_features(x) if features else model(x)


@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_fast_path_equals_the_slimmable_layers(name: str) -> None:
    model = _calibrated(name, (1.0, 0.5, 0.25))
    s = SMALL_INPUT[name]
    x = torch.randn(2, 3, s, s)
    for w in (1.0, 0.5, 0.25, 0.4):  # 0.4: no calibrated statistics (batch-statistics BN on both paths)
        with torch.no_grad(), width(model, w):
            assert cached_static(model) is not None
            out, feats = model(x), model.forward_features(x)
        torch.testing.assert_close(out, _layers(model, w, x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(feats, _layers(model, w, x, features=True), rtol=1e-5, atol=1e-6)


def test_used_only_where_equivalent() -> None:
    model = _calibrated("cifar_resnet18", (0.5,))
    x = torch.randn(2, 3, 32, 32)
    with width(model, 0.5):
        assert cached_static(model) is None  # autograd on
    with torch.no_grad():
        assert cached_static(model) is None  # no width context: the layers' own default
        with width(model, 0.5):
            assert cached_static(model) is not None
            with eager_layers():
                assert cached_static(model) is None
            model.layer1[0].bn1.train()  # one module in train mode
            assert cached_static(model) is None
            model.eval()
            hook = model.layer2.register_forward_hook(lambda *a: None)
            assert cached_static(model) is None  # hooks must fire on the model's own modules
            hook.remove()
            assert cached_static(model) is not None
            model(x)
    model.train()
    with torch.no_grad(), width(model, 0.5):
        assert cached_static(model) is None


def test_never_stale() -> None:
    model = _calibrated("cifar_resnet18", (0.5,))
    x = torch.randn(2, 3, 32, 32)

    def fast() -> torch.Tensor:
        with torch.no_grad(), width(model, 0.5):
            assert cached_static(model) is not None
            return model(x)

    before = fast()
    with torch.no_grad():  # in-place update (optimizer, EMA)
        for p in model.parameters():
            p.mul_(0.9)
    after = fast()
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, _layers(model, 0.5, x), rtol=1e-5, atol=1e-6)
    with torch.no_grad(), calibrating(model, 0.5):  # new statistics for the width
        model(torch.randn(4, 3, 32, 32) * 3)
    model.eval()
    recal = fast()
    assert not torch.equal(after, recal)
    torch.testing.assert_close(recal, _layers(model, 0.5, x), rtol=1e-5, atol=1e-6)
    src = _calibrated("cifar_resnet18", (0.5,))
    model.load_state_dict(src.state_dict())
    torch.testing.assert_close(fast(), _layers(model, 0.5, x), rtol=1e-5, atol=1e-6)
    fast()
    model.float()  # conversions (.to/.float/...) may replace tensors without bumping versions: cache dropped
    assert model not in inference._STATES
    torch.testing.assert_close(fast(), _layers(model, 0.5, x), rtol=1e-5, atol=1e-6)


def test_deepcopy_after_no_grad_calls_and_in_place_updates() -> None:
    model = _calibrated("cifar_resnet18", (0.5,))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        with width(model, 0.5):
            model(x)
        for p in model.parameters():
            p.add_(0.01)
    clone = copy.deepcopy(model)  # the caches live outside the modules
    with torch.no_grad(), width(clone, 0.5), width(model, 0.5):
        torch.testing.assert_close(clone(x), model(x))
