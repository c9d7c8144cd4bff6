"""Accuracy of an exported artifact itself: kNN (and the linear probe) on the embeddings its own runtime computes.

``us3l eval`` measures the PyTorch model at each width. An INT8 artifact is another function of the image (its
weights and activations are rounded), so ``evaluate_artifact`` runs the artifact's runtime (``us3l.deploy.load``:
manifest, hashes and source checkpoint checked first) over the same feature bank and test split, with the same
evaluation transform, kNN protocol (k, temperature, seeded stratified bank) and 95 % Wilson intervals as
``us3l eval``, and -- in the same run, on the same images -- the FP32 PyTorch model at the artifact's width, so
the two numbers are side by side and their difference is the cost of the precision. It also reports how often
the two kNN classifiers predict the same class (``prediction_agreement``).

The result is stored in ``accuracy.json`` under the width's ``precisions.<precision>.<backend>``
(``us3l.eval.accuracy.add_precision_entry``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from us3l.errors import US3LError
from us3l.eval.features import non_finite_rows

#: Images per runtime call for a dynamic-batch artifact (a fixed-batch one gets its own batch size).
FEATURE_CHUNK = 256


@torch.no_grad()
def runner_features(runner: Any, ds: Any, transform: Any, batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings (N, D) float32, labels (N,) int64) of ``ds`` through ``runner``.

    ``batch``: the artifact's fixed batch size (the last partial batch is padded by repeating its last image,
    and the padding's outputs dropped), ``None`` for a dynamic batch axis."""
    from us3l.data import iterate_batches

    chunk = FEATURE_CHUNK if batch is None else max(1, FEATURE_CHUNK // int(batch)) * int(batch)
    feats: list[np.ndarray] = []
    labels: list[torch.Tensor] = []
    for images, y in iterate_batches(ds, chunk):  # transform a chunk at once, feed the runtime its batch size
        xs = np.ascontiguousarray(transform(images).numpy(), dtype=np.float32)
        step = len(xs) if batch is None else int(batch)
        for i in range(0, len(xs), step):
            x = xs[i : i + step]
            n = len(x)
            if batch is not None and n < batch:
                x = np.concatenate([x, np.repeat(x[-1:], batch - n, axis=0)])
            feats.append(np.asarray(runner.infer(x), dtype=np.float32)[:n])
        labels.append(y.to(torch.int64))
    if not feats:
        raise ValueError("no samples to extract features from")
    out = torch.from_numpy(np.concatenate(feats))
    bad = non_finite_rows(out)
    if bad:  # scored, NaN embeddings gave a number (ties broken by index), and the mean cosine check let them pass
        raise US3LError(
            f"the artifact gives non-finite embeddings (NaN or inf) for {bad} of {len(out)} images: its runtime's "
            "arithmetic overflowed (a precision too narrow for this network's activations?), so no accuracy can be "
            "measured"
        )
    return out, torch.cat(labels)


#: The lowest mean cosine between an artifact's test embeddings and the PyTorch network's at the manifest's width
#: that still counts as the same network (INT8 artifacts verify at >= 0.99; another width or other weights give
#: unrelated embeddings).
MIN_SAME_NETWORK_COSINE = 0.9


def _check_same_network(art: torch.Tensor, ref: torch.Tensor, width: float, directory: Path) -> None:
    """Refuse to score an artifact whose embeddings are not those of the manifest's width (the manifest is not
    hashed: an edited ``model.width`` would file its accuracy under another width)."""
    if art.shape != ref.shape:
        raise US3LError(f"{directory}: the artifact's embeddings are {tuple(art.shape[1:])}, width {width:g} of this "
                        f"checkpoint gives {tuple(ref.shape[1:])}: the manifest names another width")
    cos = float(torch.nn.functional.cosine_similarity(art.float(), ref.float(), dim=1).mean())
    if cos < MIN_SAME_NETWORK_COSINE:
        raise US3LError(f"{directory}: the artifact's embeddings are not those of width {width:g} of this checkpoint "
                        f"(mean cosine {cos:.3f} < {MIN_SAME_NETWORK_COSINE}): the manifest names another width")


def _check_normalization(doc: dict[str, Any], directory: Path, used: dict[str, tuple[float, ...]]) -> None:
    """Refuse an artifact whose manifest states another input normalisation (``input.normalization``: what a
    deployment feeds it with; the graph does not hold it) than the checkpoint's, ``used`` here for both the artifact
    and the PyTorch reference. Mean and std: an edited std was not compared."""
    recorded = doc["input"].get("normalization") or {}
    for key, value in used.items():
        if recorded.get(key) is not None and not np.allclose(recorded[key], value):
            raise US3LError(f"{directory / 'manifest.json'}: the artifact expects another input normalisation than "
                            f"the checkpoint's (input.normalization.{key} {recorded[key]}, the checkpoint's "
                            f"{list(value)})")


def _check_reference_has_bn_stats(doc: dict[str, Any], directory: Path, model: Any, bn_sha: str | None) -> None:
    """Refuse an artifact exported with calibrated BN statistics when the checkpoint now has none for its width
    (``bn_sha`` None): the PyTorch reference would run batch or running statistics, another network than the
    artifact's, and its accuracy would be filed as the artifact's FP32 counterpart."""
    from us3l.deploy.bn_stats_record import bn_stats_differ, bn_stats_records
    from us3l.slim import has_batch_norm

    if bn_sha is not None or not has_batch_norm(model):
        return
    wrong = [why for r in bn_stats_records(doc) if (why := bn_stats_differ(r, None)) is not None]
    if wrong:
        raise US3LError(f"{directory / 'manifest.json'}: not the expected artifact ({'; '.join(wrong)}); restore the "
                        "run's bn_stats.safetensors, or run us3l calibrate and re-export it")


def evaluate_artifact(
    loaded: Any,
    artifact: str | Path,
    data: str | None = None,
    settings: Any = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    splits: dict[tuple[str, int], Any] | None = None,
) -> dict[str, Any]:
    """Accuracy of the artifact at ``artifact`` (its folder or manifest) and of the FP32 PyTorch model at the
    same width, on the same images and protocol; ``loaded`` is the checkpoint it was exported from
    (``us3l.eval.runner.open_checkpoint``; a manifest of another model or checkpoint is refused).

    Returns ``{"width", "precision", "backend", "entry", "fp32", "protocols", "data", "data_check", ...}``: ``entry``
    is what ``us3l.eval.accuracy.add_precision_entry`` stores, ``fp32`` the PyTorch width row (knn/linear fields),
    ``data_check`` accuracy.json's record of the data (``us3l.eval.runner.knn_data``).
    ``splits``: the data loaded for earlier artifacts of one evaluation, by (data spec, input size); the splits
    this call loads are added to it, so several artifacts of one checkpoint list and check the data once.
    """
    from us3l.deploy.loading import load
    from us3l.deploy.manifest import read_manifest_sha256
    from us3l.eval.features import embedding_std, extract_features
    from us3l.eval.hits import encode_hits
    from us3l.eval.intervals import wilson_interval
    from us3l.eval.linear import train_linear_probe
    from us3l.eval.runner import EvalSettings, knn_data, resolve_data_spec, width_costs
    from us3l.slim import canonical_width
    from us3l.train.knn import accuracy_and_hits, knn_predict

    s = settings or EvalSettings()
    if s.run_linear and s.linear.augment:
        raise US3LError("an artifact's linear probe uses cached features: drop --linear-augment")
    doc, directory, manifest_sha = read_manifest_sha256(artifact)
    model, meta = loaded.model, loaded.meta
    width = float(doc["model"]["width"])
    from us3l.eval.calibrate import width_bn_stats_sha256

    not_a_width = None
    try:  # the BN statistics the PyTorch reference below runs with: the artifact must hold these, not older ones
        bn_sha = width_bn_stats_sha256(model, width)
    except (US3LError, ValueError) as exc:  # a width this model lacks: refused below, after load's checks (checkpoint)
        bn_sha, not_a_width = None, str(exc)
    # the checkpoint's model and weights: the result is filed under this checkpoint, never under the manifest's word
    runner = load(directory, threads=threads, model=meta.get("model"), checkpoint_sha256=loaded.sha256,
                  bn_stats_sha256=bn_sha, network=model)  # the graph's layers: the checkpoint's at model.width
    try:  # after load's checks: another checkpoint's artifact is refused as such, not for its BN statistics
        if runner.manifest != doc:  # load read the manifest again: the result must describe the one that runs
            raise US3LError(f"{directory / 'manifest.json'} changed while it was being read; run the evaluation again")
        if not_a_width is not None:  # named with its manifest: several --artifact folders may be evaluated
            raise US3LError(f"{directory / 'manifest.json'}: model.width {width:g} is not a width of this checkpoint "
                            f"({not_a_width}); re-export the artifact")
        _check_reference_has_bn_stats(doc, directory, model, bn_sha)
        spec = resolve_data_spec(meta, data)
        input_size = int(meta.get("input_size") or model.input_size)
        shape = doc["input"]["shape"]
        if int(shape[-1]) != input_size:
            raise US3LError(f"{directory}: the artifact takes {shape[-1]} px images, the checkpoint {input_size} px")
        key = (spec, input_size)
        d = splits[key] if splits is not None and key in splits else knn_data(spec, meta, s, input_size, data)
        if splits is not None:
            splits[key] = d
        _check_normalization(doc, directory, {"mean": d.mean, "std": d.std})
    except BaseException:  # a refusal, bad data, Ctrl-C: the runtime session is not left to garbage collection
        runner.close()
        raise
    backend, precision = str(doc["backend"]["name"]), str(doc["backend"]["precision"])
    train_ds, test_ds, transform, bank_idx, bank_ds, k_requested, k = (
        d.train, d.test, d.transform, d.bank_idx, d.bank, d.k_requested, d.k)
    num_classes, num_test = int(train_ds.num_classes), len(test_ds)
    full_train = s.run_linear
    feature_ds = train_ds if full_train else bank_ds
    batch = None if shape[0] == "batch" else int(shape[0])

    t0 = time.perf_counter()
    with runner:
        qtr, ytr = runner_features(runner, feature_ds, transform, batch)
        qte, yte = runner_features(runner, test_ds, transform, batch)
    if progress:
        progress(f"{backend}/{precision} width {width:g}: runtime embeddings in {time.perf_counter() - t0:.1f}s")
    ftr, _ = extract_features(model, width, feature_ds, transform, s.feature_batch_size)
    fte, _ = extract_features(model, width, test_ds, transform, s.feature_batch_size)
    _check_same_network(qte, fte, width, directory)

    def ci(v: float | None) -> list[float] | None:
        return None if v is None else wilson_interval(v, num_test)

    def scores(train_f: torch.Tensor, test_f: torch.Tensor) -> dict[str, Any]:
        out: dict[str, Any] = {"knn_top1": None, "knn_top1_ci": None, "knn_top1_hits": None, "knn_top5": None,
                               "linear_top1": None, "linear_top1_ci": None, "linear_top1_hits": None,
                               "linear_top5": None, "_pred": None}
        if s.run_knn:
            bank = train_f[bank_idx] if full_train and bank_idx is not None else train_f
            bank_y = ytr[bank_idx] if full_train and bank_idx is not None else ytr
            sc = knn_predict(bank, bank_y, test_f, num_classes, k, s.knn.temperature)
            top1, top5, hits = accuracy_and_hits(sc, yte)
            out.update(knn_top1=top1, knn_top1_ci=ci(top1), knn_top1_hits=encode_hits(hits), _pred=sc.argmax(dim=1),
                       knn_top5=top5)
        if s.run_linear:
            l1, l5, hits = train_linear_probe(train_f, ytr, test_f, yte, num_classes, s.linear)
            out.update(linear_top1=l1, linear_top1_ci=ci(l1), linear_top1_hits=encode_hits(hits), linear_top5=l5)
        return out

    art, ref = scores(qtr, qte), scores(ftr, fte)
    agreement = None
    if art["_pred"] is not None:
        same = art.pop("_pred") == ref.pop("_pred")
        agreement = int(same.sum()) / same.numel()
    art.pop("_pred", None)
    ref.pop("_pred", None)

    def drop(key: str) -> float | None:
        return None if art[key] is None or ref[key] is None else ref[key] - art[key]

    quant = doc.get("quantization") or {}
    entry = {
        **art,
        "fp32_knn_top1": ref["knn_top1"],
        "fp32_linear_top1": ref["linear_top1"],
        "knn_top1_drop": drop("knn_top1"),
        "linear_top1_drop": drop("linear_top1"),
        "prediction_agreement": agreement,
        "embedding_std": embedding_std(qte),
        "artifact": {
            "path": str(directory),
            "manifest_sha256": manifest_sha,  # of the bytes read above (and loaded: runner.manifest == doc)
            "file_sha256": doc["artifact"]["sha256"],
            "runtime": doc["backend"].get("runtime"),
            "runtime_version": doc["backend"].get("runtime_version"),
            "quantizer": quant.get("quantizer"),
            "quantizer_version": quant.get("quantizer_version"),
            "calibration_sha256": (quant.get("calibration") or {}).get("sha256"),
        },
    }
    # the network's own costs, as `us3l eval` records them: the manifest's model.macs/params are not checked against
    # the graph, and us3l select compares a row's MACs with the profile's
    macs, params = width_costs(model, width, input_size)
    fp32_row = {
        "width": width,
        "canonical_width": canonical_width(model, width),
        "feature_dim": int(fte.shape[1]),
        **ref,
        "macs": macs,
        "params": params,
        "embedding_std": embedding_std(fte),
        "baseline_random_init": None,
    }
    knn_protocol = None
    if s.run_knn:
        knn_protocol = {
            "k": k, "k_requested": k_requested, "temperature": s.knn.temperature, "max_train": s.knn.max_train,
            "bank_size": len(bank_ds), "bank_seed": s.knn.bank_seed if bank_idx is not None else None,
        }
    return {
        "width": width,
        "precision": precision,
        "backend": backend,
        "entry": entry,
        "fp32": fp32_row,
        "data": spec,
        "num_classes": num_classes,
        "num_test": num_test,
        "input_size": input_size,
        "data_check": d.data_check,
        "protocols": {
            "preset": s.preset,
            "knn": knn_protocol,
            "linear": s.linear.to_dict() if s.run_linear else None,
            "feature_transform": repr(transform),
        },
    }
