"""MACs and parameter counts of a static (materialized) network, counted by fvcore.

fvcore reports one "flop" per multiply-add; we call that unit what it is: MACs. Like the literature
(ResNet-50 ≈ 4.1 G, MobileNetV2 ≈ 300 M at 224²), MACs count convolutions, linear layers and matrix products.
Normalisation and pooling, which fvcore prices as one op per element, are reported separately in
``elementwise_ops``; operators fvcore has no formula for (activations, additions, max-pool, ...) are listed in
``skipped_ops`` with their call counts.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Costs:
    """Compute and size of one static network for one input shape."""

    macs: int
    params: int
    input_shape: tuple[int, ...]
    skipped_ops: dict[str, int] = field(default_factory=dict)
    elementwise_ops: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "macs": self.macs,
            "params": self.params,
            "input_shape": list(self.input_shape),
            "skipped_ops": dict(self.skipped_ops),
            "elementwise_ops": dict(self.elementwise_ops),
        }


#: fvcore operator groups that are multiply-accumulate work.
MAC_OPERATORS = frozenset({"conv", "linear", "matmul", "bmm", "einsum", "addmm", "mm", "baddbmm"})


def count_params(model: nn.Module) -> int:
    """Number of parameters (not buffers) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_costs(model: nn.Module, input_shape: tuple[int, ...], per_module: bool = False) -> Costs:
    """Count MACs (fvcore) and parameters of a static ``model`` for an input of ``input_shape`` (NCHW).

    The model must be a materialized network (``us3l.slim.materialize``): a slimmable model would be
    counted at its full weight size. ``per_module=True`` also returns MACs per named submodule.
    """
    from fvcore.nn import FlopCountAnalysis

    from us3l.slim.layers import SlimModule

    if any(isinstance(m, SlimModule) for m in model.modules()):
        raise ValueError("count_costs needs a static network: call us3l.slim.materialize(model, w) first")
    was_training = model.training
    model.eval()
    # a BatchNorm without running statistics (an uncalibrated US3L network) normalises with the batch's own,
    # which a batch of one cannot give where a map is 1x1 (a ResNet at 32 px): count it with placeholder
    # statistics instead, the same ops and MACs
    stateless = [m for m in model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None]
    # the input (and placeholders) on the model's device and in its dtype: materialize keeps a CUDA or float64
    # model's, and a CPU float32 input then failed the trace
    ref = next(model.parameters(), None)
    like: dict[str, Any] = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
    for m in stateless:
        m.running_mean, m.running_var = torch.zeros(m.num_features, **like), torch.ones(m.num_features, **like)
    x = torch.zeros(*input_shape, **like)
    logger = logging.getLogger("fvcore")
    old_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(model, x)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            by_op = {k: int(v) for k, v in fca.by_operator().items()}
            total = sum(v for k, v in by_op.items() if k in MAC_OPERATORS)
            elementwise = {k: v for k, v in by_op.items() if k not in MAC_OPERATORS}
            skipped = {str(k): int(v) for k, v in sorted(fca.unsupported_ops().items())}
            by_module = {}
            if per_module:
                for mod, ops in fca.by_module_and_operator().items():
                    by_module[mod] = sum(int(v) for k, v in ops.items() if k in MAC_OPERATORS)
    finally:
        logger.setLevel(old_level)
        model.train(was_training)
        for m in stateless:
            m.running_mean = m.running_var = None
    return Costs(total, count_params(model), tuple(input_shape), skipped, elementwise, by_module)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and persistent buffers (what a deployed artifact stores, at their dtype)."""
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    n += sum(b.numel() * b.element_size() for _, b in model.named_buffers())
    return n
