"""Per-width evaluation: BN recalibration, kNN and linear probe, ``accuracy.json`` and plots."""

from us3l.eval.accuracy import (
    ACCURACY_KIND,
    ACCURACY_SCHEMA,
    accuracy_doc,
    best_top1,
    load_accuracy,
    save_accuracy,
    validate_accuracy,
)
from us3l.eval.calibrate import (
    BN_STATS_FILE,
    CalibrationSettings,
    calibrate_widths,
    calibration_batches,
    load_bn_stats,
    missing_widths,
    require_calibrated,
    save_bn_stats,
)
from us3l.eval.features import embedding_std, extract_features
from us3l.eval.linear import LinearProbeSettings, train_linear_probe
from us3l.eval.runner import (
    DEFAULT_WIDTHS,
    EvalSettings,
    KnnSettings,
    calibrate_checkpoint,
    evaluate_checkpoint,
    open_checkpoint,
    parse_widths,
    resolve_data_spec,
    width_costs,
)
from us3l.train.knn import topk_accuracy

__all__ = [
    "ACCURACY_KIND",
    "ACCURACY_SCHEMA",
    "BN_STATS_FILE",
    "DEFAULT_WIDTHS",
    "CalibrationSettings",
    "EvalSettings",
    "KnnSettings",
    "LinearProbeSettings",
    "accuracy_doc",
    "best_top1",
    "calibrate_checkpoint",
    "calibrate_widths",
    "calibration_batches",
    "embedding_std",
    "evaluate_checkpoint",
    "extract_features",
    "load_accuracy",
    "load_bn_stats",
    "missing_widths",
    "open_checkpoint",
    "parse_widths",
    "require_calibrated",
    "resolve_data_spec",
    "save_accuracy",
    "save_bn_stats",
    "topk_accuracy",
    "train_linear_probe",
    "validate_accuracy",
    "width_costs",
]
