import pytest
import torch

import us3l
from us3l.errors import US3LError
from us3l.slim import width

SMALL_INPUT = {
    "cifar_resnet18": 32,
    "cifar_resnet50": 32,
    "cifar_mobilenetv2": 32,
    "resnet18": 64,
    "resnet50": 64,
    "mobilenetv2": 64,
    "vit_tiny": 32,
    "vit_small": 32,
}


def make(name: str, **kw: object) -> us3l.SlimNet:
    if name.startswith("vit"):
        kw.setdefault("img_size", 32)
    return us3l.create_model(name, **kw)


def test_registry_lists_required_models() -> None:
    names = set(us3l.list_models())
    assert {"cifar_resnet18", "cifar_resnet50", "resnet18", "resnet50", "cifar_mobilenetv2", "mobilenetv2",
            "vit_tiny"} <= names


def test_unknown_model_and_option_are_clear_errors() -> None:
    with pytest.raises(US3LError, match="unknown model 'resnet19'; choose one of: .*cifar_resnet18"):
        us3l.create_model("resnet19")
    with pytest.raises(US3LError, match="has no option 'bogus'"):
        us3l.create_model("resnet18", bogus=1)
    with pytest.raises(US3LError, match="width range"):
        us3l.create_model("resnet18", width_min=0.0)
    with pytest.raises(US3LError, match="^model 'vit_tiny': input size 30 is not a multiple of the patch size 16$"):
        us3l.create_model("vit_tiny", img_size=30)  # a value the architecture refuses: a US3LError too


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"img_size": 0}, "img_size must be a finite positive integer, got 0"),  # was built
        ({"img_size": -32}, "img_size must be a finite positive integer, got -32"),  # was a RuntimeError
        ({"img_size": 32.5}, "img_size must be a finite positive integer, got 32.5"),
        ({"img_size": True, "patch_size": 1}, "img_size must be a finite positive integer, got True"),
        ({"patch_size": 0}, "patch_size must be a finite positive integer, got 0"),  # was a ZeroDivisionError
        ({"patch_size": -16}, "patch_size must be a finite positive integer, got -16"),  # was a RuntimeError
        ({"mlp_ratio": 0}, "mlp_ratio must be a finite positive number, got 0"),  # was built without MLP units
        ({"mlp_ratio": -1}, "mlp_ratio must be a finite positive number, got -1"),  # was a RuntimeError
    ],
)
def test_vit_sizes_must_be_positive(kw: dict, message: str) -> None:
    with pytest.raises(US3LError) as err, torch.device("meta"):
        us3l.create_model("vit_tiny", **kw)
    assert str(err.value) == f"model 'vit_tiny': {message}"


@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("cifar_resnet18", {"base_channels": 16.0}, "base_channels must be an integer, got 16.0"),  # torch's text
        ("cifar_resnet18", {"base_channels": True}, "base_channels must be an integer, got True"),
        ("cifar_resnet18", {"bn_track_stats": "no"}, "bn_track_stats must be True or False, got 'no'"),  # was True
        ("cifar_resnet18", {"zero_init_residual": 1}, "zero_init_residual must be True or False, got 1"),
        ("cifar_mobilenetv2", {"bn_track_stats": "yes"}, "bn_track_stats must be True or False, got 'yes'"),
        ("cifar_mobilenetv2", {"last_channels": 0}, "last_channels must be a finite positive integer, got 0"),
        ("vit_tiny", {"stop_grad_conv1": "no"}, "stop_grad_conv1 must be True or False, got 'no'"),
    ],
)
def test_model_options_of_the_wrong_type_are_one_line(name: str, kw: dict, message: str) -> None:
    # a string flag was read by its truth value ("no" tracked statistics), a float channel count reached torch
    with pytest.raises(US3LError) as err, torch.device("meta"):
        us3l.create_model(name, **kw)
    assert str(err.value) == f"model {name!r}: {message}"


@pytest.mark.parametrize("classes", [-1, 2.0, True, "10"])
def test_num_classes_must_be_a_count(classes: object) -> None:
    # num_classes=-1 built a model without a head (as 0 does) without a word
    with pytest.raises(US3LError, match=r"^model 'cifar_resnet18': num_classes must be an integer >= 0 \(0: no head\)"):
        us3l.create_model("cifar_resnet18", num_classes=classes)


def test_size_kwargs_names_the_option_of_models_built_for_one_size() -> None:
    from us3l.models.registry import size_kwargs

    assert size_kwargs("vit_tiny", 32) == {"img_size": 32}
    assert size_kwargs("vit_tiny", 224) == size_kwargs("vit_tiny", None) == {}
    assert size_kwargs("cifar_resnet18", 16) == {}  # runs at any size


@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_forward_backward_min_and_max(name: str) -> None:
    model = make(name)
    s = SMALL_INPUT[name]
    x = torch.randn(2, 3, s, s)
    lo, hi = model.width_range.min, model.width_range.max
    for w in (lo, hi):
        model.zero_grad(set_to_none=True)
        with width(model, w):
            y = model.forward_features(x)
            assert y.shape == (2, model.feature_dim(w))
            y.pow(2).mean().backward()
        if w == hi:
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f"parameters without gradient at full width: {missing[:5]}"


def test_narrow_width_leaves_inactive_channels_without_gradient() -> None:
    model = make("cifar_resnet18", base_channels=16)
    with width(model, 0.25):
        model(torch.randn(2, 3, 16, 16)).sum().backward()
    g = model.layer1[0].conv1.weight.grad
    active = model.layer1[0].conv1.active_channels(0.25)[1]
    assert g[:active].abs().sum() > 0
    assert torch.count_nonzero(g[active:]) == 0


def test_classifier_head_output_is_never_slimmed() -> None:
    for name in ("cifar_resnet18", "cifar_mobilenetv2", "vit_tiny"):
        model = make(name, num_classes=7)
        with width(model, 0.25):
            assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_designated_non_slim_parts_stay_full() -> None:
    r = make("resnet18")
    assert r.conv1.active_channels(0.25)[0] == 3  # RGB input side of the stem
    mb = make("mobilenetv2")
    last_conv = mb.features[-1][0]
    assert last_conv.active_channels(0.25)[1] == 1280
    assert mb.feature_dim(0.25) == 1280
    vit = make("vit_tiny")
    assert vit.feature_dim(0.25) == 192
    assert vit.blocks[0].attn.qkv.active_features(0.25) == (48, 576)  # only the input side is sliced


def test_mobilenet_expansion_follows_slimmed_input() -> None:
    mb = make("mobilenetv2")
    block = mb.features[2]  # t=6, 16 -> 24
    expand = block.body[0]
    cin, cout, _ = expand.active_channels(0.5)
    assert cout == 6 * cin
