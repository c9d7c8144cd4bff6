"""Per-layer breakdown of a static network: channels, parameters and MACs of every leaf layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from us3l.profiler.costs import Costs, count_costs


@dataclass(frozen=True)
class LayerRow:
    name: str
    type: str
    in_channels: int | None
    out_channels: int | None
    params: int
    macs: int


def _channels(m: nn.Module) -> tuple[int | None, int | None]:
    if isinstance(m, nn.Conv2d):
        return m.in_channels, m.out_channels
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    if isinstance(m, nn.BatchNorm2d):
        return m.num_features, m.num_features
    if isinstance(m, nn.LayerNorm):
        n = int(m.normalized_shape[0])
        return n, n
    return None, None


def layer_table(static: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[LayerRow], Costs]:
    """Rows for every conv/linear/norm layer of ``static`` plus the network totals. The rows sum to the totals:
    a parameter held outside those layers (a ViT's ``cls_token``) is a row of type ``Parameter``, and the MACs a
    module computes itself rather than in a layer below it (a ViT attention's matrix products, a quarter of its
    MACs) are a row named after that module, with no channels (``None``)."""
    costs = count_costs(static, input_shape, per_module=True)
    rows = []
    for name, m in static.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d | nn.LayerNorm):
            cin, cout = _channels(m)
            params = sum(p.numel() for p in m.parameters(recurse=False))
            rows.append(LayerRow(name, type(m).__name__, cin, cout, params, costs.by_module.get(name, 0)))
            continue
        for pname, p in m.named_parameters(recurse=False):
            rows.append(LayerRow(f"{name}.{pname}" if name else pname, "Parameter", None, None, p.numel(), 0))
        below = sum(costs.by_module.get(f"{name}.{child}" if name else child, 0) for child, _ in m.named_children())
        own = costs.by_module.get(name, 0) - below
        if own > 0:
            rows.append(LayerRow(name or type(m).__name__, type(m).__name__, None, None, 0, own))
    return rows, costs


def rows_as_dicts(rows: list[LayerRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
