"""The deployable graph of one width: the one function ``us3l profile`` and ``us3l export`` both build with.

``build_deployable_graph(model, w, backend, out_dir, ...)`` materializes width ``w`` of a slimmable model,
freezes its BatchNorm layers (the width's calibrated or running statistics; a width without either gets
placeholder statistics, see ``freeze_batch_stat_bns`` -- never batch statistics), exports it with the deploy
backend (BN folds into the convolutions) and hashes the result. The profiler times exactly this artifact and
export ships exactly this artifact, so the latency a selection rests on is the latency of the shipped graph.

Two hashes identify a graph (both recorded per profile record and in every manifest's ``graph`` section):

* ``graph_sha256``: the sha256 of the ONNX file the artifact is (onnx) or was built from (openvino IR,
  tensorrt engine) -- ``onnx_sha256`` in the backend facts. ``torch.onnx.export`` (either exporter, see
  ``us3l.deploy.backends.onnx``) writes the same bytes for the same module and input shape whatever the example values
  (checked by the tests), so an export of the same weights at the same width matches the profiled graph byte for
  byte. The derived files are not hashed: TensorRT engine builds are not bit-reproducible, and OpenVINO's IR
  serialisation names some nodes with a process-wide counter, so the same ONNX converted after other models in one
  process gives other bytes (seen in ``benchmarks/profiler_vs_benchmark_app.py``); both are functions of the ONNX
  graph and the runtime version.
* ``graph_structure_sha256``: the ONNX graph without initializer data (ops, attributes, tensor names, shapes,
  dtypes) -- what latency depends on. Same for every backend, and for any weights of the same architecture.

Fresh models (``--model NAME``, no checkpoint) are created by ``fresh_model`` with a fixed seed, so a fresh
profile and a fresh export of the same model hold the same weights too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from us3l.io import file_sha256

#: Seed of the random initialisation of a fresh model (``--model NAME`` in profile and export).
INIT_SEED = 0

#: How a graph's BatchNorm layers were frozen (profile records' ``bn``, manifests' ``graph.bn``).
BN_KINDS = ("calibrated", "running", "frozen-uncalibrated", "none")


@dataclass(frozen=True)
class DeployableGraph:
    """One width as deployed: the static module, its exported artifact (None for eager torch) and hashes."""

    width: float
    module: Any  # the static nn.Module that was exported (BN frozen, eval mode)
    bn: str  # one of BN_KINDS
    artifact: Any = None  # us3l.deploy.backends.Artifact
    graph_sha256: str | None = None
    graph_structure_sha256: str | None = None

    def facts(self) -> dict[str, Any]:
        """What a profile record and a manifest record about the graph."""
        return {
            "bn": self.bn,
            "graph_sha256": self.graph_sha256,
            "graph_structure_sha256": self.graph_structure_sha256,
        }


def fresh_model(name: str, seed: int = INIT_SEED, **kwargs: Any) -> Any:
    """A registered model (``num_classes=0``) with the seeded random initialisation; global RNG untouched."""
    import torch

    from us3l.deploy.timing import phase
    from us3l.models import create_model

    with phase("create model"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_model(name, num_classes=0, **kwargs)
    net.init_seed = seed
    return net


#: A manifest's ``model.bn_stats`` spelling of each BN kind (``BN_KINDS``: ``model.graph.bn``'s): the historical
#: values; the kinds not listed are spelled alike.
LEGACY_BN_STATS = {"frozen-uncalibrated": "uncalibrated", "none": "none (no BatchNorm)"}


def bn_kind_named(label: object) -> str | None:
    """The BN kind (``BN_KINDS``) a manifest's ``model.bn_stats`` names, ``None`` for a value that names none."""
    return next((kind for kind in BN_KINDS if LEGACY_BN_STATS.get(kind, kind) == label), None)


def bn_kind(model: Any, w: float) -> str:
    """How width ``w`` of a slimmable model gets BN statistics: calibrated, running, frozen-uncalibrated, none."""
    from us3l.slim import calibrated_widths, canonical_width

    kind = uncalibrated_bn_kind(model)
    if kind != "none" and canonical_width(model, w) in calibrated_widths(model):
        return "calibrated"
    return kind


def uncalibrated_bn_kind(model: Any) -> str:
    """How a width of ``model`` without calibrated statistics gets BN statistics (``bn_kind``'s answer then), from
    its architecture alone: none (no BatchNorm), running (every BN keeps running statistics), else
    frozen-uncalibrated. A meta-device build of the architecture gives the same answer as the trained model."""
    from us3l.slim import SlimBatchNorm2d, slim_modules

    bns = [m for _, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)]
    if not bns:
        return "none"
    if all(m.track_running_stats for m in bns):  # sliced shared buffers, or an S-Nets switch's own
        return "running"
    return "frozen-uncalibrated"


#: Placeholder statistics of a BN layer without any (``freeze_batch_stat_bns``): the running mean is drawn
#: from N(0, FROZEN_MEAN_STD^2), seeded per layer; the running variance is 1.
FROZEN_MEAN_STD = 1e-3


def freeze_batch_stat_bns(static: Any) -> int:
    """Give BN layers that would normalise with batch statistics fixed placeholder running statistics.

    Latency does not depend on the statistics' values, only on the BN being frozen (foldable into the
    convolution, batch-independent); the outputs are meaningless until the width is calibrated. The
    placeholders are small but neither zero nor equal across layers, so that the folded graph has the same
    operators and tensors as any calibrated width's: with a fresh BN (shift 0) a zero mean folds into an
    all-zero convolution bias, which the exporter's optimiser drops, and equal biases would be merged into one
    shared initializer. Seeded per layer: the same model gives the same graph bytes. Returns how many layers
    were frozen.
    """
    import torch
    from torch import nn

    n = 0
    for name, m in list(static.named_modules()):
        if isinstance(m, nn.BatchNorm2d) and m.running_mean is None:
            bn = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
            gen = torch.Generator().manual_seed(n)
            with torch.no_grad():
                bn.weight.copy_(m.weight)
                bn.bias.copy_(m.bias)
                bn.running_mean.copy_(FROZEN_MEAN_STD * torch.randn(m.num_features, generator=gen))
                bn.running_var.fill_(1.0)
            parent_name, _, attr = name.rpartition(".")
            setattr(static.get_submodule(parent_name) if parent_name else static, attr, bn.eval())
            n += 1
    return n


def deployable_module(model: Any, w: float, require_bn_stats: bool = False) -> tuple[Any, str]:
    """(static module of width ``w`` with every BN frozen, its ``bn`` kind).

    ``require_bn_stats``: refuse (``US3LError``) a width without calibrated or running statistics instead of
    freezing it with the initial ones (``us3l export`` from a checkpoint ships only calibrated widths).
    """
    import torch

    from us3l.slim import materialize

    kind = bn_kind(model, w)
    static = materialize(model, w, require_bn_stats=require_bn_stats and kind != "none")
    # the deploy path runs on the CPU in float32 (its example input, the verification batch, every exporter);
    # materialize keeps the model's device and dtype, so a CUDA or float64 model is brought here
    static = static.to(device="cpu", dtype=torch.float32)
    if kind == "frozen-uncalibrated":
        freeze_batch_stat_bns(static)
    return static.eval(), kind


def build_deployable_graph(
    model: Any,
    width: float,
    backend: str | None,
    out_dir: str | Path | None,
    input_shape: tuple[int, ...],
    *,
    precision: str = "fp32",
    dynamic_batch: bool = False,
    require_bn_stats: bool = False,
    example: Any = None,
    calibration: Any = None,
    onnx_opset: int | None = None,
) -> DeployableGraph:
    """Materialize width ``width``, freeze its BN, export it with ``backend`` into ``out_dir`` and hash it.

    ``backend=None`` stops after freezing (eager torch timing: no artifact, no hashes). ``example`` is the
    tracing input (values do not change the graph; default zeros of ``input_shape``). ``calibration`` (a
    ``us3l.deploy.quantize.CalibrationSet``) is required for ``precision="int8"``: the graph is then the width's
    post-training INT8 model (``graph_sha256`` / ``graph_structure_sha256`` of the Q/DQ ONNX; for OpenVINO the
    FP32 ONNX it was converted from, and a structure hash that includes the quantization scheme).
    ``onnx_opset`` (``backend="onnx"`` only): the opset to export at, for a TensorRT whose parser reads less than
    us3l's (``us3l.deploy.backends.tensorrt_versions``); None: the backend's own.
    """
    import torch

    from us3l.deploy.backends import get_backend
    from us3l.deploy.timing import phase

    with phase("materialize width"):
        static, kind = deployable_module(model, width, require_bn_stats)
    w = float(getattr(static, "materialized_width", width))
    if backend is None:
        return DeployableGraph(width=w, module=static, bn=kind)
    if out_dir is None:
        raise ValueError("out_dir is required to export a graph")
    be = get_backend(backend)
    be.require_runtime()
    x = example if example is not None else torch.zeros(input_shape)
    opset: dict[str, Any] = {}
    if onnx_opset is not None:
        if be.name != "onnx":
            raise ValueError(f"onnx_opset applies to the onnx backend, not {be.name}")
        opset["opset"] = onnx_opset
    if precision == "int8":
        artifact = be.export(
            static, x, Path(out_dir), precision=precision, dynamic_batch=dynamic_batch, calibration=calibration,
            **opset,
        )
    else:
        artifact = be.export(static, x, Path(out_dir), precision=precision, dynamic_batch=dynamic_batch, **opset)
    extras = dict(artifact.extras)
    structure = extras.pop("graph_structure_sha256", None)
    artifact = dataclasses.replace(artifact, extras=extras)
    return DeployableGraph(
        width=w,
        module=static,
        bn=kind,
        artifact=artifact,
        graph_sha256=artifact_graph_sha256(artifact),
        graph_structure_sha256=structure,
    )


def artifact_graph_sha256(artifact: Any) -> str:
    """``graph_sha256`` of an artifact: the sha256 of its ONNX graph (see the module docstring)."""
    recorded = artifact.extras.get("onnx_sha256")
    if recorded:
        return str(recorded)
    onnx_files = [Path(f) for f in artifact.files if Path(f).suffix == ".onnx"]
    if not onnx_files:
        raise ValueError(f"{artifact.backend} artifact {artifact.path} records no ONNX graph hash")
    return file_sha256(onnx_files[0])


def onnx_structure_sha256(path_or_proto: Any, consume: bool = False) -> str:
    """sha256 of an ONNX model (a file, or a loaded ``ModelProto``) with every initializer's data removed (names,
    dims and dtypes kept). A proto is copied first, unless ``consume`` (its initializers' data is then cleared)."""
    import onnx

    if isinstance(path_or_proto, str | Path):
        proto = onnx.load(str(path_or_proto), load_external_data=False)
    elif consume:
        proto = path_or_proto
    else:
        proto = onnx.ModelProto()
        proto.CopyFrom(path_or_proto)
    for init in proto.graph.initializer:
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                      "string_data", "external_data"):
            init.ClearField(field)  # type: ignore[arg-type]
        init.ClearField("data_location")
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def compare_graphs(profiled: Mapping[str, Any], exported: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(warnings, notes) comparing a profiled width's graph with an exported artifact's graph.

    Each side: ``graph_sha256``, ``graph_structure_sha256``, ``bn``, ``backend``, ``precision``,
    ``checkpoint_sha256``, ``init_seed`` and a ``label`` for messages. The byte hash is compared only like
    with like (same checkpoint or same seeded fresh init, same backend, precision and BN kind); otherwise the
    structure hash is (weights and BN statistics do not change latency, the graph's ops and shapes do).
    A structure difference is always a warning: the latency was measured on another graph.
    """
    warnings: list[str] = []
    notes: list[str] = []
    where = str(exported.get("label") or "export")
    p_struct = profiled.get("graph_structure_sha256")
    if not p_struct and not profiled.get("graph_sha256"):
        if profiled.get("backend") == "torch":
            notes.append(f"{where}: the width was profiled with eager torch, not an exported graph")
        else:
            warnings.append(
                f"{where}: its profile records no graph hash (made before graphs were recorded, possibly timed "
                "on a batch-statistics BN graph heavier than the one shipped); re-profile to be sure"
            )
        return warnings, notes
    e_struct = exported.get("graph_structure_sha256")
    if p_struct and e_struct and p_struct != e_struct:
        warnings.append(
            f"{where}: the exported graph's structure (ops/shapes) differs from the profiled one "
            f"({str(e_struct)[:12]} vs {str(p_struct)[:12]}; profiled {profiled.get('bn')}, exported "
            f"{exported.get('bn')}): its latency was not measured; re-profile with the same batch and settings"
        )
        return warnings, notes
    same_weights = (
        profiled.get("checkpoint_sha256") is not None
        and profiled.get("checkpoint_sha256") == exported.get("checkpoint_sha256")
    ) or (
        profiled.get("checkpoint_sha256") is None
        and exported.get("checkpoint_sha256") is None
        and profiled.get("init_seed") is not None
        and profiled.get("init_seed") == exported.get("init_seed")
    )
    like = same_weights and all(profiled.get(k) == exported.get(k) for k in ("backend", "precision", "bn"))
    if like and profiled.get("graph_sha256") != exported.get("graph_sha256"):
        warnings.append(
            f"{where}: the exported graph ({str(exported.get('graph_sha256'))[:12]}) is not byte-identical to the "
            f"profiled one ({str(profiled.get('graph_sha256'))[:12]}) though weights, backend and precision are the "
            "same (another exporter version?); re-profile to time the shipped graph"
        )
    elif not like:
        why = []
        if not same_weights:
            why.append("other weights")
        if profiled.get("bn") != exported.get("bn"):
            why.append(f"BN {profiled.get('bn')} when profiled, {exported.get('bn')} now")
        if profiled.get("backend") != exported.get("backend") or profiled.get("precision") != exported.get(
            "precision"
        ):
            why.append(
                f"profiled on {profiled.get('backend')}/{profiled.get('precision')}, exported "
                f"{exported.get('backend')}/{exported.get('precision')}"
            )
        notes.append(f"{where}: same graph structure as profiled ({', '.join(why)}): the latency applies")
    return warnings, notes


def profiled_graph(profile: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The graph a profile record timed, with what ``compare_graphs`` needs (a selection candidate's ``graph``)."""
    return {
        "bn": record.get("bn"),
        "graph_sha256": record.get("graph_sha256"),
        "graph_structure_sha256": record.get("graph_structure_sha256"),
        "backend": profile.get("backend"),
        "precision": profile.get("precision"),
        "checkpoint_sha256": profile.get("checkpoint_sha256"),
        "init_seed": profile.get("init_seed"),
    }


def chosen_graph_warnings(chosen: Any, backend: str, device: str) -> list[str]:
    """What ``us3l select`` warns about a chosen width's profiled graph (``chosen``: a ``Candidate`` or None).

    A profile without graph hashes may have timed a heavier graph than export ships; a checkpoint width timed
    with frozen uncalibrated BN statistics has the right latency but ``us3l export`` refuses it until calibrated.
    """
    if chosen is None or backend == "torch":
        return []
    graph = getattr(chosen, "graph", None) or {}
    label = f"{device} ({backend}) width {chosen.width:g}"
    if not graph.get("graph_structure_sha256") and not graph.get("graph_sha256"):
        return [
            f"{label}: its profile records no graph hash (made before graphs were recorded, possibly timed on a "
            "batch-statistics BN graph heavier than the one export ships); re-profile to be sure"
        ]
    if graph.get("bn") == "frozen-uncalibrated" and graph.get("checkpoint_sha256"):
        return [
            f"{label}: profiled with frozen, uncalibrated BN statistics (same graph, so the latency holds); "
            "calibrate this width (us3l calibrate) before `us3l export --ckpt` can ship it"
        ]
    return []
