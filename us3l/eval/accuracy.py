"""``accuracy.json`` (kind "accuracy", schema 1): accuracy, cost and collapse indicator per width.

Document::

    {kind, schema_version, tool, tool_version, environment,        # us3l.io.header
     checkpoint: {path, sha256, method, epoch},
     checkpoint_sha256, model, model_kwargs, data, num_classes, input_size,
     calibration: {batches, batch_size, momentum, mode, data, seed},
     protocols: {knn: {k, temperature, max_train} | null, linear: {epochs, lr, ...} | null},
     widths: [{width, canonical_width, feature_dim, knn_top1, knn_top5, linear_top1, linear_top5,
               macs, params, embedding_std}]}

Accuracies are fractions in [0, 1]; a protocol that was not run gives ``null`` for its fields, and so do
``macs``/``params`` when the profiler is unavailable. Widths are sorted ascending.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.io import atomic_write_json, check_schema, header, read_json

ACCURACY_KIND = "accuracy"
ACCURACY_SCHEMA = 1
ACCURACY_FILE = "accuracy.json"

WIDTH_FIELDS = (
    "width",
    "canonical_width",
    "feature_dim",
    "knn_top1",
    "knn_top5",
    "linear_top1",
    "linear_top5",
    "macs",
    "params",
    "embedding_std",
)
_FRACTIONS = ("knn_top1", "knn_top5", "linear_top1", "linear_top5")
_REQUIRED = ("checkpoint_sha256", "model", "data", "protocols", "widths")


def accuracy_doc(
    *,
    checkpoint: dict[str, Any],
    model: str,
    model_kwargs: dict[str, Any],
    data: str,
    num_classes: int,
    input_size: int,
    calibration: dict[str, Any] | None,
    protocols: dict[str, Any],
    widths: list[dict[str, Any]],
) -> dict[str, Any]:
    """Build and validate an accuracy document."""
    doc = header(ACCURACY_KIND, ACCURACY_SCHEMA)
    doc.update(
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint.get("sha256"),
        model=model,
        model_kwargs=dict(model_kwargs),
        data=data,
        num_classes=int(num_classes),
        input_size=int(input_size),
        calibration=calibration,
        protocols=protocols,
        widths=sorted(({k: row.get(k) for k in WIDTH_FIELDS} for row in widths), key=lambda r: r["width"]),
    )
    validate_accuracy(doc, "<accuracy document>")
    return doc


def validate_accuracy(doc: Any, path: str | Path) -> None:
    """Schema check plus per-width field checks; one-line ``US3LError`` on the first problem."""
    check_schema(doc, ACCURACY_KIND, ACCURACY_SCHEMA, path)
    for key in _REQUIRED:
        if key not in doc:
            raise US3LError(f"{path}: accuracy file has no {key!r}")
    rows = doc["widths"]
    if not isinstance(rows, list) or not rows:
        raise US3LError(f"{path}: 'widths' must be a non-empty list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise US3LError(f"{path}: widths[{i}] is not an object")
        w = row.get("width")
        if not isinstance(w, int | float) or not 0 < w <= 1:
            raise US3LError(f"{path}: widths[{i}].width must be in (0, 1], got {w!r}")
        for key in _FRACTIONS:
            v = row.get(key)
            if v is not None and (not isinstance(v, int | float) or math.isnan(v) or not 0 <= v <= 1):
                raise US3LError(f"{path}: widths[{i}].{key} must be a fraction in [0, 1] or null, got {v!r}")
        for key in ("macs", "params"):
            v = row.get(key)
            if v is not None and (not isinstance(v, int | float) or v < 0):
                raise US3LError(f"{path}: widths[{i}].{key} must be a non-negative number or null, got {v!r}")


def save_accuracy(doc: dict[str, Any], path: str | Path) -> Path:
    """Validate and write ``doc`` atomically; ``path`` may be a directory (then ``accuracy.json`` in it)."""
    p = Path(path)
    if p.suffix != ".json":
        p = p / ACCURACY_FILE
    validate_accuracy(doc, p)
    return atomic_write_json(p, doc)


def load_accuracy(path: str | Path) -> dict[str, Any]:
    """Read and validate an ``accuracy.json`` (or the folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / ACCURACY_FILE
    doc = read_json(p, "accuracy file")
    validate_accuracy(doc, p)
    return doc


def best_top1(row: dict[str, Any]) -> float | None:
    """The headline accuracy of a width row: linear top-1 when present, else kNN top-1."""
    for key in ("linear_top1", "knn_top1"):
        if row.get(key) is not None:
            return float(row[key])
    return None
