import pytest
import torch
from torch import nn

import us3l
from tests.models.test_models import SMALL_INPUT, make
from us3l.errors import US3LError
from us3l.slim import SlimModule, calibrating, materialize, width

STANDARD = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm, nn.ReLU, nn.ReLU6, nn.GELU, nn.Identity,
            nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Sequential, us3l.slim.FirstFeatures)


def check_parity(name: str, widths: tuple[float, ...], device: str = "cpu", tol: float = 1e-5) -> None:
    """Eager slimming at each width equals ``materialize`` of that width within ``tol`` (also used on CUDA by
    tests/gpu)."""
    model = make(name).to(device)
    s = SMALL_INPUT[name]
    calib = torch.randn(4, 3, s, s, device=device)
    x = torch.randn(2, 3, s, s, device=device)
    with torch.no_grad():
        for w in widths:  # give every width its own BN statistics so eval mode uses stored stats
            with calibrating(model, w):
                model(calib)
        model.eval()
        for w in widths:
            with width(model, w):
                ref = model(x)
            static = materialize(model, w, require_bn_stats=name[:3] != "vit").to(device)
            out = static(x)
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() <= tol, f"{name} at width {w}"


LARGEST = {"cifar_resnet50", "resnet50", "vit_small"}  # slow here; the other five networks stay fast


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGEST else n
                                  for n in sorted(SMALL_INPUT)])
def test_parity_dynamic_vs_materialized_thinned_grid(name: str) -> None:
    model = make(name)
    check_parity(name, model.width_grid(max_points=4))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_parity_dynamic_vs_materialized_full_grid(name: str) -> None:
    check_parity(name, make(name).width_grid())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", ["cifar_resnet18", "vit_tiny"])
def test_a_model_of_another_dtype_materializes_and_runs_in_it(name: str, dtype: torch.dtype) -> None:
    # materialize built its static layers as CPU float32 whatever the model's dtype and device (a float64 ViT came
    # out half float64, half float32, and failed to run; a CUDA model's layers landed on the CPU); and the dynamic
    # model itself refused its calibrated widths in eval mode ("expected scalar type Double but found Float")
    model = make(name).to(dtype)
    s = SMALL_INPUT[name]
    x = torch.randn(2, 3, s, s, dtype=dtype)
    with torch.no_grad():
        with calibrating(model, 0.5):
            model(torch.randn(4, 3, s, s, dtype=dtype))
        model.eval()
        with width(model, 0.5):
            ref = model(x)
        static = materialize(model, 0.5, require_bn_stats=name != "vit_tiny")
        assert {p.dtype for p in static.parameters()} == {dtype}
        assert {b.dtype for b in static.buffers() if b.is_floating_point()} <= {dtype}
        out = static(x)
    assert out.dtype == dtype and torch.equal(out, ref)


def test_materialized_is_static_independent_and_smaller() -> None:
    model = make("cifar_mobilenetv2")
    static = materialize(model, 0.5)
    kinds = {type(m) for m in static.modules()} - {type(static)}
    leaf_kinds = {k for k in kinds if not issubclass(k, nn.Sequential)}
    assert not any(issubclass(k, SlimModule) for k in kinds)
    assert all(issubclass(k, STANDARD) or k.__module__.startswith("us3l.models") for k in leaf_kinds)
    assert sum(p.numel() for p in static.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        next(static.parameters()).add_(1.0)
    assert not torch.equal(next(static.parameters())[:1], next(model.parameters())[:1])
    with pytest.raises(US3LError, match="materialized"), width(static, 0.5):
        pass


def test_materialize_builds_no_random_weights() -> None:
    """The static layers are allocated without PyTorch's default init (every value is copied from the slimmable
    weights right after): that init cost 40 ms of a 60 ms materialize of cifar_resnet18 at width 1, and it drew
    from the global random stream, so materializing a width changed what a seeded run drew next."""
    model = make("cifar_resnet18")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    materialize(model, 0.5)
    materialize(model, 1.0)
    assert torch.equal(torch.rand(3), expected)


def test_running_stats_are_sliced_when_tracked() -> None:
    model = make("cifar_resnet18", base_channels=16, bn_track_stats=True)
    model.train()
    with width(model, 0.5):
        model(torch.randn(4, 3, 16, 16))
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with width(model, 0.5):
        ref = model(x)
    assert (materialize(model, 0.5, require_bn_stats=True)(x) - ref).abs().max() <= 1e-5


def test_require_bn_stats_is_a_clear_error() -> None:
    model = make("cifar_resnet18", base_channels=16)
    with pytest.raises(US3LError, match="width 0.5 has no calibrated BN statistics"):
        materialize(model, 0.5, require_bn_stats=True)


def test_require_bn_stats_must_be_a_bool() -> None:
    # "no" was truthy: a caller asking not to require statistics got the refusal, "" the opposite
    model = make("cifar_resnet18", base_channels=16)
    with pytest.raises(US3LError, match="^require_bn_stats must be True or False, got 'no'$"):
        materialize(model, 0.5, require_bn_stats="no")  # type: ignore[arg-type]
