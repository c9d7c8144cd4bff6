"""Universally slimmable layers, the width context, BN recalibration and ``materialize``."""

from us3l.slim.context import (
    bn_stats_state,
    bn_switches,
    calibrated_widths,
    calibrating,
    canonical_width,
    channel_config,
    check_width,
    current_width,
    has_batch_norm,
    load_bn_stats_state,
    slim_modules,
    width,
    width_grid,
    width_range_of,
)
from us3l.slim.layers import SlimBatchNorm2d, SlimConv2d, SlimLinear, SlimModule, StatsCollector, switch_error
from us3l.slim.materialize import FirstFeatures, materialize, nhwc_training_safe
from us3l.slim.rounding import WidthRange, make_divisible

__all__ = [
    "FirstFeatures",
    "SlimBatchNorm2d",
    "SlimConv2d",
    "SlimLinear",
    "SlimModule",
    "StatsCollector",
    "WidthRange",
    "bn_stats_state",
    "bn_switches",
    "calibrated_widths",
    "calibrating",
    "canonical_width",
    "channel_config",
    "check_width",
    "current_width",
    "has_batch_norm",
    "load_bn_stats_state",
    "make_divisible",
    "materialize",
    "nhwc_training_safe",
    "slim_modules",
    "switch_error",
    "width",
    "width_grid",
    "width_range_of",
]
