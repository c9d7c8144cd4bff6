"""US3L training: config, width sampling, group regularization, the loop, DDP and monitors.

``run_training(config) -> RunResult`` is the one entry point used by ``us3l train`` and ``us3l quickstart``.
"""

from us3l.train.config import TrainConfig, load_config_file, make_config, resolve_config, validate
from us3l.train.loop import RunResult, format_knn_table, run_training

__all__ = [
    "RunResult",
    "TrainConfig",
    "format_knn_table",
    "load_config_file",
    "make_config",
    "resolve_config",
    "run_training",
    "validate",
]
