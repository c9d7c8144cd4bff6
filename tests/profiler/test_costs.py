import pytest
import torch

import us3l
from us3l.profiler.costs import count_costs
from us3l.profiler.layers import layer_table
from us3l.slim import materialize


@pytest.mark.parametrize(
    ("name", "expected"),
    [("resnet50", 4.1e9), ("resnet18", 1.8e9), ("mobilenetv2", 300e6)],
)
def test_literature_anchors_at_224(name: str, expected: float) -> None:
    c = count_costs(materialize(us3l.create_model(name), 1.0), (1, 3, 224, 224))
    assert abs(c.macs - expected) / expected <= 0.03, c.macs


def test_reference_cost_table_at_quarter_width() -> None:
    # method.md §7 reference costs (backbone conv MACs, make_divisible channels): C-R18 0.25 = 0.035 G
    c = count_costs(materialize(us3l.create_model("cifar_resnet18"), 0.25), (1, 3, 32, 32))
    assert abs(c.macs - 0.035e9) / 0.035e9 <= 0.03


@pytest.mark.parametrize("name", ["cifar_resnet18", pytest.param("cifar_mobilenetv2", marks=pytest.mark.slow),
                                  pytest.param("vit_tiny", marks=pytest.mark.slow)])  # slow: the grid of the others
def test_macs_and_params_non_decreasing_in_width(name: str) -> None:
    kw = {"img_size": 32} if name.startswith("vit") else {}
    model = us3l.create_model(name, **kw)
    costs = [count_costs(materialize(model, w), (1, 3, 32, 32)) for w in model.width_grid(max_points=8)]
    macs = [c.macs for c in costs]
    params = [c.params for c in costs]
    assert macs == sorted(macs) and macs[0] < macs[-1]
    assert params == sorted(params)


def test_skipped_and_elementwise_ops_are_listed() -> None:
    c = count_costs(materialize(us3l.create_model("resnet18"), 1.0), (1, 3, 64, 64))
    assert "aten::max_pool2d" in c.skipped_ops
    assert "batch_norm" in c.elementwise_ops


def test_slimmable_model_is_refused() -> None:
    with pytest.raises(ValueError, match="materialize"):
        count_costs(us3l.create_model("cifar_resnet18"), (1, 3, 32, 32))


def test_layer_table_sums_to_total() -> None:
    rows, costs = layer_table(materialize(us3l.create_model("cifar_resnet18", base_channels=16), 0.5), (1, 3, 32, 32))
    assert sum(r.macs for r in rows) == costs.macs
    assert sum(r.params for r in rows) == costs.params


def test_layer_table_of_a_vit_sums_to_total() -> None:
    # `us3l info --model vit_tiny` listed rows summing to 3/4 of its total MACs (the attention's matrix products
    # are in no layer) and missed cls_token's parameters
    model = us3l.create_model("vit_tiny", img_size=32)
    rows, costs = layer_table(materialize(model, 0.5), (1, 3, 32, 32))
    assert sum(r.macs for r in rows) == costs.macs
    assert sum(r.params for r in rows) == costs.params
    attn = [r for r in rows if r.name == "blocks.0.attn"]
    assert len(attn) == 1 and attn[0].macs > 0 and attn[0].in_channels is None and attn[0].params == 0
    assert [r for r in rows if r.type == "Parameter"] == [layer_row("cls_token", 192)]


def layer_row(name: str, params: int) -> object:
    from us3l.profiler.layers import LayerRow

    return LayerRow(name, "Parameter", None, None, params, 0)


@pytest.mark.parametrize("name", ["cifar_resnet18", "vit_tiny"])
def test_a_float64_network_is_counted_like_a_float32_one(name: str) -> None:
    # materialize keeps the model's dtype (and device); the count traced a float32 CPU input through it
    from us3l.eval import width_costs

    kw = {"img_size": 32} if name.startswith("vit") else {"base_channels": 16}
    model = us3l.create_model(name, **kw)
    expected = width_costs(model, 0.5, 32)
    assert width_costs(model.to(torch.float64), 0.5, 32) == expected
    assert count_costs(materialize(model, 0.5), (1, 3, 32, 32)).macs == expected[0]


def test_uncalibrated_batch_norm_is_counted_at_1x1_and_left_as_it_was() -> None:
    """A US3L network's BatchNorms have no running statistics; at 32 px resnet18's last maps are 1x1, where a batch
    of one has no statistics of its own. The count uses placeholders and puts the None buffers back."""
    net = materialize(us3l.create_model("resnet18"), 0.5)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.running_mean is None for m in bns)
    assert count_costs(net, (1, 3, 32, 32)).macs > 0
    assert all(m.running_mean is None and m.running_var is None for m in bns)
    assert all("running_mean" not in dict(m.named_buffers()) for m in bns)
