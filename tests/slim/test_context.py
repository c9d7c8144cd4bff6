import pytest
import torch

import us3l
from us3l.errors import US3LError
from us3l.slim import current_width, slim_modules, width


def _tiny():
    return us3l.create_model("cifar_resnet18", base_channels=16)


def _widths(model):
    return {m.width for _, m in slim_modules(model)}


def test_width_sets_every_layer_and_restores() -> None:
    m = _tiny()
    assert _widths(m) == {None}
    with width(m, 0.5) as inner:
        assert inner is m
        assert _widths(m) == {0.5}
        assert current_width(m) == 0.5
    assert _widths(m) == {None}
    assert current_width(m) == 1.0


def test_width_restores_after_exception() -> None:
    m = _tiny()
    with pytest.raises(RuntimeError, match="boom"), width(m, 0.5):
        raise RuntimeError("boom")
    assert _widths(m) == {None}


def test_nesting_restores_outer_width() -> None:
    m = _tiny()
    with width(m, 0.75):
        with width(m, 0.25):
            assert _widths(m) == {0.25}
        assert _widths(m) == {0.75}
    assert _widths(m) == {None}


def test_two_models_do_not_share_state() -> None:
    a, b = _tiny(), _tiny()
    x = torch.randn(2, 3, 16, 16)
    with width(a, 0.25):
        assert _widths(b) == {None}
        assert a(x).shape[1] == a.feature_dim(0.25)
        assert b(x).shape[1] == b.num_features


@pytest.mark.parametrize("bad", [0.1, 1.5, float("nan"), "half", None])
def test_bad_widths_raise_value_error_naming_range(bad: object) -> None:
    m = _tiny()
    with pytest.raises(ValueError, match=r"\[0.25, 1\]"), width(m, bad):  # type: ignore[arg-type]
        pass
    assert _widths(m) == {None}


def test_custom_width_range_is_enforced() -> None:
    m = us3l.create_model("cifar_resnet18", base_channels=16, width_min=0.5)
    with pytest.raises(ValueError, match=r"\[0.5, 1\]"), width(m, 0.25):
        pass


def test_grid_is_distinct_and_sorted() -> None:
    m = _tiny()
    grid = m.width_grid()
    assert grid[0] == 0.25 and grid[-1] == 1.0
    assert list(grid) == sorted(set(grid))
    from us3l.slim import channel_config

    configs = [channel_config(m, w) for w in grid]
    assert len(set(configs)) == len(configs)
    thin = m.width_grid(max_points=4)
    assert len(thin) <= 4 and thin[0] == 0.25 and thin[-1] == 1.0 and set(thin) <= set(grid)


@pytest.mark.parametrize("momentum", [5.0, float("nan"), -1.0, 0.0, "0.1", True])
def test_calibrating_refuses_a_momentum_outside_0_1(momentum: object) -> None:
    """Red-team 2026-12-05: 5.0 gave negative variances and NaN outputs, nan stored NaN statistics, silently."""
    import torch

    import us3l

    m = us3l.create_model("cifar_resnet18", base_channels=8).eval()
    with pytest.raises(ValueError, match=r"^BN momentum must be in \(0, 1\] \(None: a cumulative average\), got "):
        with us3l.calibrating(m, 0.5, momentum=momentum):  # type: ignore[arg-type]
            m(torch.randn(4, 3, 32, 32))
    assert us3l.slim.calibrated_widths(m) == ()


@pytest.mark.parametrize("wkey", ["nan", "inf", "7.0000", "-0.5000", "0.0000"])
def test_bn_stats_of_no_width_are_malformed(wkey: str) -> None:
    # a bn_stats.safetensors entry "nan/bn1.mean" ended in "cannot convert float NaN to integer" (a ValueError
    # from the channel count), "7.0000/..." was loaded as statistics of width 7
    from us3l.errors import US3LError
    from us3l.slim import bn_stats_state, calibrating, load_bn_stats_state

    model = _tiny()
    with torch.no_grad(), calibrating(model, 1.0):
        model(torch.randn(4, 3, 16, 16))
    state = {k.replace("1.0000/", f"{wkey}/", 1): v for k, v in bn_stats_state(model).items()}
    with pytest.raises(US3LError, match=rf"^BN statistics entry '{wkey}/.*' is malformed$"):
        load_bn_stats_state(_tiny(), state)


def test_bn_stats_of_a_width_outside_the_models_range_do_not_fit(tmp_path) -> None:
    # red-team 2026-12-08: an entry "0.1000/..." in the file of a model of widths [0.25, 1] stopped `us3l export
    # --switchable` with "error: width must be in [0.25, 1], got 0.1" (a width nobody had given; a ValueError
    # traceback through the Python API) instead of saying the BN statistics do not fit
    from us3l.errors import US3LError
    from us3l.slim import bn_stats_state, calibrating, load_bn_stats_state

    model = _tiny()
    with torch.no_grad(), calibrating(model, 0.25):
        model(torch.randn(4, 3, 16, 16))
    state = {k.replace("0.2500/", "0.1000/", 1): v for k, v in bn_stats_state(model).items()}
    with pytest.raises(US3LError, match=r"^BN statistics for width 0.1 do not fit this model: width must be in "
                                        r"\[0.25, 1\], got 0.1$"):
        load_bn_stats_state(_tiny(), state)
    # read from a file (one rewritten by another tool, without the digest us3l records): the line names it
    from safetensors.torch import save_file

    from us3l.eval.calibrate import load_bn_stats

    path = tmp_path / "bn_stats.safetensors"
    save_file(state, str(path))
    with pytest.raises(US3LError) as err:
        load_bn_stats(_tiny(), path)
    assert str(err.value) == (f"{path}: BN statistics for width 0.1 do not fit this model: width must be in [0.25, 1], "
                              f"got 0.1; delete it and run `us3l calibrate --ckpt {tmp_path}`")


@pytest.mark.parametrize("model", [None, "cifar_resnet18", 3])
@pytest.mark.parametrize(
    "call",
    [
        lambda m: us3l.width(m, 0.5),
        lambda m: us3l.materialize(m, 0.5),
        lambda m: us3l.calibrating(m, 0.5).__enter__(),
        lambda m: us3l.slim.width_grid(m),
    ],
)
def test_a_model_that_is_no_module_is_one_line(model: object, call) -> None:
    with pytest.raises(US3LError) as err:  # was an AttributeError from model.modules() / named_modules()
        call(model)
    assert str(err.value) == f"model must be a slimmable us3l model, got {model!r}"


@pytest.mark.parametrize("points", [0, -1, 2.5, float("nan"), "3", True])
def test_width_grid_refuses_max_points_that_is_no_count(points: object) -> None:
    with pytest.raises(US3LError) as err:  # 2.5, nan: range()'s TypeError; True: a 1-point grid; 0: no value named
        _tiny().width_grid(max_points=points)  # type: ignore[arg-type]
    assert str(err.value) == f"max_points must be a finite positive integer, got {points!r}"


@pytest.mark.parametrize(("name", "kwargs"), [
    ("cifar_resnet18", {"base_channels": 16}),
    ("cifar_mobilenetv2", {}),
    ("vit_tiny", {}),
])
def test_canonical_width_is_the_smallest_width_of_the_same_network(name: str, kwargs: dict) -> None:
    """The grid comes from a vectorised scan of the layers' channel rules; the per-layer rules themselves
    (``channel_config``) must agree with it: every grid width is its own canonical width, and any width maps to
    the smallest grid width running the same channels (the full network to the range maximum)."""
    from us3l.slim import canonical_width, channel_config

    m = us3l.create_model(name, **kwargs)
    grid = m.width_grid()
    assert [canonical_width(m, w) for w in grid] == list(grid)
    first: dict = {}  # each configuration's smallest grid width, from the per-layer rules
    for g in grid:
        first.setdefault(channel_config(m, g), g)
    assert list(first.values()) == list(grid)  # every grid width a network of its own
    for w in [0.25 + 0.75 * i / 157 for i in range(158)] + [0.3333, 0.6667, 0.99999]:
        c = canonical_width(m, w)
        assert c == first[channel_config(m, w)]
        assert c <= w or c == grid[-1]


def test_models_built_alike_share_one_grid_scan() -> None:
    """The grid is a function of the architecture: a second model built alike (as every checkpoint load builds
    one) reuses the first one's scan instead of repeating it."""
    a, b = _tiny(), _tiny()
    assert a.width_grid() is b.width_grid()
    other = us3l.create_model("cifar_resnet18", base_channels=16, width_min=0.5)
    assert other.width_grid()[0] == 0.5 and other.width_grid() is not a.width_grid()
