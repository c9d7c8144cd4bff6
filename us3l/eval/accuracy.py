"""``accuracy.json`` (kind "accuracy", schema 2): accuracy with 95 % intervals, baselines, cost and collapse
indicator per width.

Document::

    {kind, schema_version, tool, tool_version, environment,        # us3l.io.header
     checkpoint: {path, sha256, method, epoch},
     checkpoint_sha256, model, model_kwargs, data, num_classes, input_size,
     num_test,                                                      # test images behind every accuracy
     calibration: {batches, batch_size, momentum, mode, data, seed},
     protocols: {knn: {k, k_requested, temperature, max_train, bank_size, bank_seed} | null,
                 linear: {epochs, lr, ...} | null, feature_transform},
     baselines: {raw_pixels: {knn_top1, knn_top1_ci, k} | null, chance, random_init_seed} | null,
     widths: [{width, canonical_width, feature_dim, knn_top1, knn_top1_ci, knn_top5,
               linear_top1, linear_top1_ci, linear_top5, macs, params, embedding_std,
               baseline_random_init: {knn_top1, knn_top1_ci} | null}]}

Accuracies are fractions in [0, 1]; ``*_ci`` are 95 % Wilson score intervals ``[lo, hi]`` over the
``num_test`` test images (``us3l.eval.intervals``). ``protocols.knn.k`` is the k actually used (capped by
the smallest class of the feature bank, see ``us3l.train.knn.effective_k``), ``k_requested`` the one asked
for. A protocol that was not run gives ``null`` for its fields (and its intervals), and so do
``macs``/``params`` when the profiler is unavailable; ``baselines`` and ``baseline_random_init`` are ``null``
when baselines were skipped (``us3l eval --no-baselines``). Widths are sorted ascending.

Schema 1 files (no intervals, baselines or ``num_test``) still load: :func:`load_accuracy` fills those
fields with ``null`` and keeps ``schema_version: 1``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.io import atomic_write_json, check_schema, header, read_json

ACCURACY_KIND = "accuracy"
ACCURACY_SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
ACCURACY_FILE = "accuracy.json"

WIDTH_FIELDS = (
    "width",
    "canonical_width",
    "feature_dim",
    "knn_top1",
    "knn_top1_ci",
    "knn_top5",
    "linear_top1",
    "linear_top1_ci",
    "linear_top5",
    "macs",
    "params",
    "embedding_std",
    "baseline_random_init",
)
_FRACTIONS = ("knn_top1", "knn_top5", "linear_top1", "linear_top5")
_INTERVALS = ("knn_top1_ci", "linear_top1_ci")
_REQUIRED = ("checkpoint_sha256", "model", "data", "protocols", "widths")
_SCHEMA2_ROW = ("knn_top1_ci", "linear_top1_ci", "baseline_random_init")  # null in an upgraded schema-1 file
_SCHEMA2_TOP = ("num_test", "baselines")


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
    num_test: int | None = None,
    baselines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and validate an accuracy document (schema 2)."""
    doc = header(ACCURACY_KIND, ACCURACY_SCHEMA)
    doc.update(
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint.get("sha256"),
        model=model,
        model_kwargs=dict(model_kwargs),
        data=data,
        num_classes=int(num_classes),
        input_size=int(input_size),
        num_test=None if num_test is None else int(num_test),
        calibration=calibration,
        protocols=protocols,
        baselines=baselines,
        widths=sorted(({k: row.get(k) for k in WIDTH_FIELDS} for row in widths), key=lambda r: r["width"]),
    )
    validate_accuracy(doc, "<accuracy document>")
    return doc


def _check_fraction(v: Any, where: str, path: str | Path) -> None:
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1
    ):
        raise US3LError(f"{path}: {where} must be a fraction in [0, 1] or null, got {v!r}")


def _check_interval(v: Any, where: str, path: str | Path) -> None:
    if v is None:
        return
    ok = isinstance(v, list | tuple) and len(v) == 2
    if ok:
        for x in v:
            _check_fraction(x, where, path)
        ok = v[0] is not None and v[1] is not None and v[0] <= v[1]
    if not ok:
        raise US3LError(f"{path}: {where} must be [lo, hi] with 0 <= lo <= hi <= 1, or null; got {v!r}")


def _check_baseline(v: Any, where: str, path: str | Path) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise US3LError(f"{path}: {where} must be an object or null, got {v!r}")
    _check_fraction(v.get("knn_top1"), f"{where}.knn_top1", path)
    _check_interval(v.get("knn_top1_ci"), f"{where}.knn_top1_ci", path)


def validate_accuracy(doc: Any, path: str | Path) -> None:
    """Schema check (version 1 or 2) plus per-width field checks; one-line ``US3LError`` on the first problem."""
    found = doc.get("schema_version") if isinstance(doc, dict) else None
    check_schema(doc, ACCURACY_KIND, found if found in READABLE_SCHEMAS else ACCURACY_SCHEMA, path)
    for key in _REQUIRED:
        if key not in doc:
            raise US3LError(f"{path}: accuracy file has no {key!r}")
    rows = doc["widths"]
    if not isinstance(rows, list) or not rows:
        raise US3LError(f"{path}: 'widths' must be a non-empty list")
    num_test = doc.get("num_test")
    if num_test is not None and (isinstance(num_test, bool) or not isinstance(num_test, int) or num_test < 1):
        raise US3LError(f"{path}: num_test must be a positive integer or null, got {num_test!r}")
    baselines = doc.get("baselines")
    if baselines is not None:
        if not isinstance(baselines, dict):
            raise US3LError(f"{path}: 'baselines' must be an object or null")
        _check_baseline(baselines.get("raw_pixels"), "baselines.raw_pixels", path)
        _check_fraction(baselines.get("chance"), "baselines.chance", path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise US3LError(f"{path}: widths[{i}] is not an object")
        w = row.get("width")
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1:
            raise US3LError(f"{path}: widths[{i}].width must be in (0, 1], got {w!r}")
        for key in _FRACTIONS:
            _check_fraction(row.get(key), f"widths[{i}].{key}", path)
        for key in _INTERVALS:
            _check_interval(row.get(key), f"widths[{i}].{key}", path)
        _check_baseline(row.get("baseline_random_init"), f"widths[{i}].baseline_random_init", path)
        for key in ("macs", "params"):
            v = row.get(key)
            if v is not None and (not isinstance(v, int | float) or not math.isfinite(v) or v < 0):
                raise US3LError(f"{path}: widths[{i}].{key} must be a non-negative number or null, got {v!r}")


def save_accuracy(doc: dict[str, Any], path: str | Path) -> Path:
    """Validate and write ``doc`` atomically; ``path`` may be a directory (then ``accuracy.json`` in it)."""
    p = Path(path)
    if p.suffix != ".json":
        p = p / ACCURACY_FILE
    validate_accuracy(doc, p)
    return atomic_write_json(p, doc)


def load_accuracy(path: str | Path) -> dict[str, Any]:
    """Read and validate an ``accuracy.json`` (or the folder holding one).

    A schema-1 file gets the schema-2 fields it lacks as ``null`` (``num_test``, ``baselines``, per width
    ``knn_top1_ci``, ``linear_top1_ci``, ``baseline_random_init``); its ``schema_version`` stays 1.
    """
    p = Path(path)
    if p.is_dir():
        p = p / ACCURACY_FILE
    doc = read_json(p, "accuracy file")
    validate_accuracy(doc, p)
    if doc["schema_version"] == 1:
        for key in _SCHEMA2_TOP:
            doc.setdefault(key, None)
        for row in doc["widths"]:
            for key in _SCHEMA2_ROW:
                row.setdefault(key, None)
    return doc


def best_top1(row: dict[str, Any]) -> float | None:
    """The headline accuracy of a width row: linear top-1 when present, else kNN top-1."""
    for key in ("linear_top1", "knn_top1"):
        if row.get(key) is not None:
            return float(row[key])
    return None
