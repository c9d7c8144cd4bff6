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
     data_check: {fingerprint, changed_since_training, train_test_overlaps},  # optional (eval, eval --artifact)
     widths: [{width, canonical_width, feature_dim, knn_top1, knn_top1_ci, knn_top1_hits, knn_top5,
               linear_top1, linear_top1_ci, linear_top1_hits, linear_top5, macs, params, embedding_std,
               baseline_random_init: {knn_top1, knn_top1_ci} | null,
               precisions: {<precision>: {<backend>: {knn_top1, knn_top1_ci, knn_top1_hits, knn_top5,
                            linear_top1, linear_top1_ci, linear_top1_hits, linear_top5, fp32_knn_top1,
                            fp32_linear_top1, knn_top1_drop, linear_top1_drop, prediction_agreement,
                            embedding_std, artifact: {...}}}}}]}
                                                                    # precisions: optional (us3l eval --artifact)

Accuracies are fractions in [0, 1]; ``*_ci`` are 95 % Wilson score intervals ``[lo, hi]`` over the
``num_test`` test images (``us3l.eval.intervals``). ``knn_top1_hits`` / ``linear_top1_hits`` (optional, still
schema 2) say which of those images the kNN / the linear probe got right, base64 of packed bits in test order
(``us3l.eval.hits``): ``us3l select`` compares two widths image by image with them (``us3l.deploy.tie_test``);
each must hold exactly ``top1 * num_test`` hits. ``protocols.knn.k`` is the k actually used (capped by
the smallest class of the feature bank, see ``us3l.train.knn.effective_k``), ``k_requested`` the one asked
for. A protocol that was not run gives ``null`` for its fields (and its intervals), and so do
``macs``/``params`` when the profiler is unavailable; ``baselines`` and ``baseline_random_init`` are ``null``
when baselines were skipped (``us3l eval --no-baselines``). Widths are sorted ascending.

Schema 1 files (no intervals, baselines or ``num_test``) still load: :func:`load_accuracy` fills those
fields with ``null`` and keeps ``schema_version: 1``.

``precisions`` (optional, still schema 2: readers that do not know it ignore it) holds the accuracy of exported
artifacts at the width, measured with their own runtime's embeddings (``us3l.deploy.accuracy``), keyed by
precision then backend: the same fields and intervals as the row, the FP32 PyTorch accuracy measured in the
same run beside it (``fp32_*``; ``*_drop`` = FP32 - artifact, in fractions), the share of test images whose kNN
prediction is the same (``prediction_agreement``), and which artifact (path, manifest sha256, runtime,
quantizer, calibration sha256). The width's own fields stay the PyTorch FP32 ones. ``us3l eval`` carries the
entries over when it rewrites the file for the same checkpoint, data and kNN protocol (:func:`carry_precisions`);
``us3l eval --artifact`` adds to a file of the same ones only. The same data is the same path, test count and
``data_check.fingerprint`` (:func:`data_mismatch`): numbers measured on a folder before and after it changed are not
comparable, and are never stored side by side; ``us3l eval`` carries none from a file that records no fingerprint
comparable with the data's (the rewritten file records the data's).

``data_check`` (optional, still schema 2) says what the test split was: ``fingerprint``, the data's fingerprint
(``us3l.train.data_identity``: class names and both splits' samples); ``changed_since_training``, true where the
data is the run's own automatically split folder changed since it trained (allowed under split rule 2, where no
image the run trained on can be in the test split, and under either rule where only byte sizes changed, the split
the run's: but the test set is not the run's), false otherwise;
``train_test_overlaps`` (image folders only, since 2026-12-07; absent for other data and in older files), how many
of the ``num_test`` test images are byte-identical to a training image (``us3l.data.overlap``: copies under another
name, links), 0 when none. ``us3l eval`` writes it; ``us3l eval --artifact`` writes it into a file it creates and,
adding to a file, keeps the file's record, filling in only the fields it lacks where the file records the data's
fingerprint (of the data's version, or of version 1 compared at it); a file that records none, or one of a version
not computed here, keeps its record as it was (:func:`add_data_check`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.eval.hits import check_hits
from us3l.io import atomic_write_json, check_schema, header, read_json_sha256

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
    "knn_top1_hits",
    "knn_top5",
    "linear_top1",
    "linear_top1_ci",
    "linear_top1_hits",
    "linear_top5",
    "macs",
    "params",
    "embedding_std",
    "baseline_random_init",
)
_FRACTIONS = ("knn_top1", "knn_top5", "linear_top1", "linear_top5")
_INTERVALS = ("knn_top1_ci", "linear_top1_ci")
_HITS = ("knn_top1_hits", "linear_top1_hits")  # per-test-image top-1 hits (us3l.eval.hits), optional
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
    data_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and validate an accuracy document (schema 2); ``data_check`` is written where given."""
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
        widths=sorted((_row_fields(row) for row in widths), key=lambda r: r["width"]),
    )
    if data_check is not None:
        doc["data_check"] = dict(data_check)
    validate_accuracy(doc, "<accuracy document>")
    return doc


def _row_fields(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in WIDTH_FIELDS}
    if row.get("precisions"):
        out["precisions"] = row["precisions"]
    return out


def _check_fraction(v: Any, where: str, path: str | Path) -> None:
    if v is not None and (
        isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1
    ):
        raise US3LError(f"{path}: {where} must be a fraction in [0, 1] or null, got {v!r}")


def _check_interval(v: Any, where: str, path: str | Path, value: Any = None) -> None:
    """``v`` is null or ``[lo, hi]`` with 0 <= lo <= hi <= 1, and contains ``value`` (the accuracy it belongs to, a
    fraction already checked) when that is not null: a Wilson interval always contains its estimate."""
    if v is None:
        return
    ok = isinstance(v, list | tuple) and len(v) == 2
    if ok:
        for x in v:
            _check_fraction(x, where, path)
        ok = v[0] is not None and v[1] is not None and v[0] <= v[1]
    if not ok:
        raise US3LError(f"{path}: {where} must be [lo, hi] with 0 <= lo <= hi <= 1, or null; got {v!r}")
    if value is not None and not v[0] - 1e-9 <= value <= v[1] + 1e-9:
        raise US3LError(f"{path}: {where} {list(v)!r} does not contain the accuracy {value!r} it belongs to")


def _check_baseline(v: Any, where: str, path: str | Path) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise US3LError(f"{path}: {where} must be an object or null, got {v!r}")
    _check_fraction(v.get("knn_top1"), f"{where}.knn_top1", path)
    _check_interval(v.get("knn_top1_ci"), f"{where}.knn_top1_ci", path, v.get("knn_top1"))


def _check_data_check(v: Any, path: str | Path, num_test: Any = None) -> None:
    """The optional ``data_check`` object (absent: written before it was, or by ``us3l eval --artifact`` before
    2026-12-07); ``train_test_overlaps`` counts test images, at most ``num_test``."""
    if not isinstance(v, dict):
        raise US3LError(f"{path}: 'data_check' must be an object")
    if v.get("fingerprint") is not None and not isinstance(v["fingerprint"], str):
        raise US3LError(f"{path}: data_check.fingerprint must be a string or null, got {v['fingerprint']!r}")
    if v.get("changed_since_training") not in (None, True, False):
        raise US3LError(f"{path}: data_check.changed_since_training must be true, false or null")
    n = v.get("train_test_overlaps")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0
                          or (isinstance(num_test, int) and n > num_test)):
        raise US3LError(f"{path}: data_check.train_test_overlaps must be a count of test images (0 to num_test) or "
                        f"null, got {n!r}")


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
    _check_data_check(doc.get("data_check", {}), path, num_test)
    seen: dict[float, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise US3LError(f"{path}: widths[{i}] is not an object")
        w = row.get("width")
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1:
            raise US3LError(f"{path}: widths[{i}].width must be in (0, 1], got {w!r}")
        if float(w) in seen:  # two accuracies for one width: which one a selection used would be arbitrary
            raise US3LError(f"{path}: widths[{i}] repeats width {w:g} of widths[{seen[float(w)]}]")
        seen[float(w)] = i
        for key in _FRACTIONS:
            _check_fraction(row.get(key), f"widths[{i}].{key}", path)
        for key in _INTERVALS:
            _check_interval(row.get(key), f"widths[{i}].{key}", path, row.get(key.removesuffix("_ci")))
        for key in _HITS:
            if row.get(key) is not None:
                check_hits(row[key], num_test, row.get(key.removesuffix("_hits")), f"{path}: widths[{i}].{key}")
        _check_baseline(row.get("baseline_random_init"), f"widths[{i}].baseline_random_init", path)
        _check_precisions(row.get("precisions"), f"widths[{i}].precisions", path, num_test)
        for key in ("macs", "params"):
            v = row.get(key)
            if v is not None and (not isinstance(v, int | float) or not math.isfinite(v) or v < 0):
                raise US3LError(f"{path}: widths[{i}].{key} must be a non-negative number or null, got {v!r}")


def _check_precisions(v: Any, where: str, path: str | Path, num_test: Any) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise US3LError(f"{path}: {where} must be an object or null, got {v!r}")
    for prec, by_backend in v.items():
        if not isinstance(by_backend, dict) or not by_backend:
            raise US3LError(f"{path}: {where}.{prec} must map backend names to results")
        for backend, entry in by_backend.items():
            at = f"{where}.{prec}.{backend}"
            if not isinstance(entry, dict):
                raise US3LError(f"{path}: {at} must be an object")
            for key in (*_FRACTIONS, "fp32_knn_top1", "fp32_linear_top1", "prediction_agreement"):
                _check_fraction(entry.get(key), f"{at}.{key}", path)
            for key in _INTERVALS:
                _check_interval(entry.get(key), f"{at}.{key}", path, entry.get(key.removesuffix("_ci")))
            for key in _HITS:
                if entry.get(key) is not None:
                    check_hits(entry[key], num_test, entry.get(key.removesuffix("_hits")), f"{path}: {at}.{key}")


#: What must agree between an accuracy file and a new measurement for both to stand in one file.
_SAME_PROTOCOL = ("k", "k_requested", "temperature", "bank_size", "bank_seed")


def protocol_mismatch(doc: dict[str, Any], checkpoint_sha256: str | None, data: str, num_test: int | None,
                      protocols: dict[str, Any]) -> str | None:
    """Why the measurement (``checkpoint_sha256``, ``data``, ``num_test``, ``protocols``) cannot be stored in
    ``doc``, or None: another checkpoint, data, test split or kNN protocol gives incomparable numbers."""
    from us3l.data.datasets import same_data_spec

    if doc.get("checkpoint_sha256") != checkpoint_sha256:
        return "it is for another checkpoint"
    stored = doc.get("data")
    if not (isinstance(stored, str) and same_data_spec(stored, data)) or doc.get("num_test") not in (None, num_test):
        return f"it was measured on {doc.get('data')} ({doc.get('num_test')} test images)"
    old = (doc.get("protocols") or {}).get("knn") or {}
    new = protocols.get("knn") or {}
    if old and new:
        differ = [k for k in _SAME_PROTOCOL if old.get(k) != new.get(k)]
        if differ:
            return "its kNN protocol differs (" + ", ".join(f"{k} {old.get(k)} vs {new.get(k)}" for k in differ) + ")"
    old_linear = (doc.get("protocols") or {}).get("linear")
    new_linear = protocols.get("linear")
    if new_linear and old_linear != new_linear:  # a probe the file does not record, or another one's settings
        if not old_linear:
            return "it records no linear probe (add --protocol both to the eval that wrote it)"
        differ = sorted(k for k in {*old_linear, *new_linear} if old_linear.get(k) != new_linear.get(k))
        return "its linear probe differs (" + ", ".join(
            f"{k} {old_linear.get(k)} vs {new_linear.get(k)}" for k in differ) + ")"
    return None


def data_mismatch(doc: dict[str, Any], data_check: dict[str, Any] | None) -> str | None:
    """Why a measurement of the data whose record is ``data_check`` (``us3l.eval.runner.knn_data``) cannot stand
    beside ``doc``'s numbers, or None: the same path and test count, but another data fingerprint (a folder changed
    since ``doc`` was measured: other images, or other classes). ``data_check``'s fingerprint, as ``knn_data``
    computes it, compares with one of an earlier version at that version (``us3l.train.data_identity``); a file
    without a fingerprint, or with one of a version not computed here, is not compared."""
    from us3l.train.data_identity import fingerprint_differs

    old = (doc.get("data_check") or {}).get("fingerprint")
    new = (data_check or {}).get("fingerprint")
    if isinstance(new, str) and fingerprint_differs(old, new):
        return f"it was measured on {doc.get('data')} as it was before it changed (another data fingerprint)"
    return None


def add_data_check(doc: dict[str, Any], data_check: dict[str, Any] | None) -> str | None:
    """Complete the ``data_check`` of ``doc`` (an accuracy.json that ``us3l eval --artifact`` adds to, already past
    ``data_mismatch``) with the fields it lacks from ``data_check``, the record of the data measured now; returns a
    note, or None.

    Only a file that records a fingerprint comparable with the data's now (the same, as ``data_mismatch`` passed)
    was measured on this data, and gains what it lacks (a field written before it was). A file that records none
    (written before fingerprints were), or one of a version this code does not compute, was measured on data that
    cannot be told from this: its ``data_check`` stays as it was, absent included, and the note says so, rather than the
    data's fingerprint now being stamped on its earlier numbers."""
    old = doc.get("data_check")
    what = _untied(doc, data_check)
    if what is None:
        if isinstance((data_check or {}).get("fingerprint"), str):  # (none now: nothing to add)
            doc["data_check"] = {**(data_check or {}), **(old or {})}
        return None
    return (f"{what}: its earlier numbers cannot be tied to {doc.get('data')} as it is now; its data_check is left "
            "as it was")


def _untied(doc: dict[str, Any], data_check: dict[str, Any] | None) -> str | None:
    """Why ``doc``'s numbers cannot be tied to the data whose record is ``data_check`` (the data measured now), or
    None: ``doc`` records no fingerprint (written before us3l recorded one), or one of a version not computed here,
    while the data's now has one. (None also when the data's now has none: nothing to tell them apart by.)"""
    from us3l.train.data_identity import comparable, fingerprint_version

    recorded = (doc.get("data_check") or {}).get("fingerprint")
    now = (data_check or {}).get("fingerprint")
    if not isinstance(now, str) or comparable(recorded, now):
        return None
    if recorded is None:
        return "records no data fingerprint (written before us3l recorded one)"
    return (f"records a data fingerprint of another version ({fingerprint_version(str(recorded))}, this us3l writes "
            f"{fingerprint_version(now)})")


def _row_of(rows: list[dict[str, Any]], width: float) -> dict[str, Any] | None:
    """The row of ``rows`` for ``width``, matched as ``us3l select`` matches widths (``width_keys``: 0.78125 is the
    row 0.7813, a grid width; plain rounding halves to even, 0.7812, and missed it)."""
    from us3l.width_key import width_keys

    return next((r for key in width_keys(width) for r in rows if key in width_keys(r["width"])), None)


def add_precision_entry(doc: dict[str, Any], width: float, precision: str, backend: str, entry: dict[str, Any],
                        fp32_row: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``entry`` under ``precisions[precision][backend]`` of the row of ``width`` (matched to 4 decimals as
    ``us3l select`` matches widths, ``width_keys``: 0.78125 is the row 0.7813, a grid width); a width the document
    lacks gets ``fp32_row`` (the PyTorch row measured with the entry). Returns ``doc``."""
    rows = doc["widths"]
    row = _row_of(rows, width)
    if row is None:
        if fp32_row is None:
            raise US3LError(f"width {width:g} has no row to store the {precision}/{backend} accuracy under")
        row = _row_fields(fp32_row)
        rows.append(row)
        rows.sort(key=lambda r: r["width"])
    row.setdefault("precisions", {}).setdefault(precision, {})[backend] = dict(entry)
    return doc


def carry_precisions(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Copy ``old``'s per-precision artifact results into ``new`` (same widths, matched by ``_row_of``: 0.78125 is
    0.7813) when both are of the same checkpoint, data (path, test count and fingerprint: ``data_mismatch``) and
    kNN protocol; returns notes about entries that could not be kept. An ``old`` that records no fingerprint
    comparable with the data's now (written before us3l recorded one) keeps none: ``new`` records the data's
    fingerprint, which would vouch for numbers measured on data nobody recorded (as ``add_data_check`` refuses)."""
    if not old:
        return []
    kept = [(r["width"], r["precisions"]) for r in old.get("widths") or [] if r.get("precisions")]
    if not kept:
        return []
    why = protocol_mismatch(old, new.get("checkpoint_sha256"), new.get("data"), new.get("num_test"),
                            new.get("protocols") or {}) or data_mismatch(old, new.get("data_check"))
    if why:
        return [f"dropped the artifact accuracies of the previous accuracy.json: {why}"]
    untied = _untied(old, new.get("data_check"))
    if untied:  # measured on data nobody recorded: the new file would tie them to this data's fingerprint
        return [f"dropped the artifact accuracies of the previous accuracy.json: it {untied}; they cannot be tied to "
                f"{new.get('data')} as it is now"]
    notes = []
    for w, precisions in kept:
        row = _row_of(new["widths"], float(w))
        if row is None:
            notes.append(f"dropped the artifact accuracies of width {w:g}: not evaluated this time")
            continue
        for prec, by_backend in precisions.items():
            row.setdefault("precisions", {}).setdefault(prec, {}).update(
                {b: e for b, e in by_backend.items() if b not in (row["precisions"].get(prec) or {})}
            )
    return notes


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
    return load_accuracy_sha256(path)[0]


def load_accuracy_sha256(path: str | Path) -> tuple[dict[str, Any], str]:
    """``load_accuracy`` and the sha256 of the bytes it parsed (one read: ``us3l.io.read_json_sha256``)."""
    p = Path(path)
    if p.is_dir():
        p = p / ACCURACY_FILE
    doc, sha = read_json_sha256(p, "accuracy file")
    validate_accuracy(doc, p)
    if doc["schema_version"] == 1:
        for key in _SCHEMA2_TOP:
            doc.setdefault(key, None)
        for row in doc["widths"]:
            for key in _SCHEMA2_ROW:
                row.setdefault(key, None)
    return doc, sha


def best_top1(row: dict[str, Any]) -> float | None:
    """The headline accuracy of a width row: linear top-1 when present, else kNN top-1."""
    for key in ("linear_top1", "knn_top1"):
        if row.get(key) is not None:
            return float(row[key])
    return None
