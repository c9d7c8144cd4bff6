"""A switchable-width ONNX graph: one copy of the weights, every width of a grid, the width chosen per call.

Layout (docs/deploy.md, "Switchable-width artifacts"): the full (widest) weights of the slimmable network are the
top-level initializers ``shared.<parameter name>``; an int64 scalar input ``width_index`` picks a width of the
grid through a weight-balanced tree of ``If`` nodes (``Less(index, mid)``; the cheap widths, where a test's cost
shows, near the root: one test for the narrowest of 1 / 0.75 / 0.5 / 0.25, about log2(n) on average), and each
leaf is the static network of one width whose weights are ``Slice``\\ s of the shared ones. Only what is not a
slice of a shared tensor stays in the leaf: that width's BatchNorm running statistics (calibrated per width).
The output ``embedding`` is (batch, D) with D the width's feature size (a dynamic axis, ``features``).

Each leaf is the TorchScript exporter's graph of ``deployable_module(model, w)`` (the same static module a
static export of that width starts from) with BN kept as ``BatchNormalization`` (no constant folding: the
initializers keep their parameter names, which is what maps them onto the shared tensors). A runtime folds the
slices and the BN into the convolutions when it can see the branch's weights are constant (onnxruntime at
session creation; OpenVINO once ``width_index`` is bound to a constant, ``bind_width``). ``width_index`` outside
[-n, n) is an error in onnxruntime (a ``Gather`` over the grid's indices); negative values count from the end.

Everything here is pure graph construction on ``onnx`` protos plus one ``torch.onnx.export`` per width; running
and verifying the artifact is ``us3l.deploy.switchable_export``'s.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from us3l.deploy.backends.base import INPUT_NAME, OUTPUT_NAME
from us3l.errors import US3LError

#: The extra input: an index into the grid (``widths`` in the model's metadata and the manifest).
INDEX_NAME = "width_index"
#: Prefix of the shared (full-width) initializers.
SHARED_PREFIX = "shared."
#: ONNX opset of the graph (that of the static exports, ``us3l.deploy.backends.onnx.OPSET``).
OPSET = 18
#: Keys of the ONNX model's ``metadata_props`` (readable without us3l, e.g. onnxruntime's
#: ``get_modelmeta().custom_metadata_map``).
META_WIDTHS = "us3l.switchable.widths"
META_FEATURES = "us3l.switchable.feature_dims"
META_INDEX = "us3l.switchable.index_input"
#: Each width's facts beside the grid (``model.per_width[]`` of the manifest but its index, width, feature size and
#: verification: BN kind and digest, MACs, params, channels, byte counts), written by ``us3l export --switchable``
#: since 2026-12-07: a profile of the file records them and ``us3l select`` budgets on them.
META_PER_WIDTH = "us3l.switchable.per_width"


def record_metadata(proto: Any, key: str, value: Any) -> None:
    """Add ``key`` (JSON of ``value``) to an ONNX model's ``metadata_props`` (OpenVINO keeps them in an IR's
    ``rt_info``)."""
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, json.dumps(value)


@dataclass(frozen=True)
class SwitchableGraph:
    """The built graph and its facts: the grid, each width's feature size and the bytes it adds."""

    model: Any  # onnx.ModelProto
    widths: tuple[float, ...]
    feature_dims: tuple[int, ...]
    shared_bytes: int  # the one copy of the weights (top-level initializers)
    per_width_bytes: tuple[int, ...]  # each leaf's own tensors (BN statistics), slice bounds excluded
    slices: tuple[int, ...]  # Slice nodes per leaf
    depths: tuple[int, ...] = ()  # If tests a call at each width passes

    def facts(self) -> dict[str, Any]:
        return {
            "widths": list(self.widths),
            "feature_dims": list(self.feature_dims),
            "index_input": INDEX_NAME,
            "shared_weight_bytes": self.shared_bytes,
            "per_width_bytes": list(self.per_width_bytes),
            "per_width_bytes_total": int(sum(self.per_width_bytes)),
            "slices_per_width": list(self.slices),
            "selection": "weight-balanced tree of If nodes over width_index (Less), cheap widths near the root",
            "depths": list(self.depths),
        }


def check_grid(widths: Sequence[float]) -> tuple[float, ...]:
    """The grid as given (order kept: index i is ``widths[i]``); refuses fewer than two or repeated widths."""
    grid = tuple(float(w) for w in widths)
    if len(grid) < 2:
        raise US3LError(f"a switchable artifact needs at least 2 widths, got {len(grid)}")
    seen = sorted(grid)
    for a, b in zip(seen, seen[1:], strict=False):
        if a == b:
            raise US3LError(f"width {a:g} is given twice")
    return grid


def export_static(module: Any, example: Any, dynamic_batch: bool) -> Any:
    """``module`` (static, eval mode) as an ONNX proto from the TorchScript exporter, BN kept and the
    initializers named after the parameters (no constant folding)."""
    import onnx
    import torch

    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        torch.onnx.export(
            module, (example,), buf, dynamo=False, opset_version=OPSET, do_constant_folding=False,
            training=torch.onnx.TrainingMode.PRESERVE, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes=axes, verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line for the user
        raise US3LError(f"the TorchScript ONNX exporter failed on this model: {exc}".splitlines()[0]) from None
    return onnx.load_from_string(buf.getvalue())


def _prefix_slice(arr: np.ndarray, full: np.ndarray | None) -> tuple[int, ...] | None:
    """The shape of ``arr`` if it is ``full[:s0, :s1, ...]`` exactly (values and dtype), else None."""
    if full is None or full.dtype != arr.dtype or full.ndim != arr.ndim:
        return None
    if any(a > f for a, f in zip(arr.shape, full.shape, strict=True)):
        return None
    view = full[tuple(slice(0, s) for s in arr.shape)]
    return tuple(arr.shape) if np.array_equal(view, arr) else None


def _shared_name(name: str, shared: dict[str, np.ndarray]) -> str | None:
    """The slimmable model's tensor that static initializer ``name`` was cut from: the same name, or the name
    without one numeric path component (``materialize`` wraps a Linear that slices its input in a Sequential:
    ``blocks.0.fc1.1.weight`` is ``blocks.0.fc1.weight``). The caller still checks the values."""
    if name in shared:
        return name
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            candidate = ".".join(parts[:i] + parts[i + 1 :])
            if candidate in shared:
                return candidate
    return None


def _leaf(static_model: Any, k: int, shared: dict[str, np.ndarray], used: set[str]) -> tuple[Any, int, int, int]:
    """Branch ``k``: the static graph with its names prefixed ``b<k>.`` and every initializer that is a prefix
    slice of the shared tensor of the same name replaced by a ``Slice`` of it. Returns (graph, feature size,
    bytes of the leaf's own tensors, Slice nodes); adds the shared names it reads to ``used``."""
    from onnx import helper, numpy_helper

    g = static_model.graph
    pre = f"b{k}."
    outer = {INPUT_NAME}

    def rename(name: str) -> str:
        return name if (not name or name in outer) else pre + name

    nodes, inits = [], []
    own_bytes = n_slices = 0
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        source = _shared_name(init.name, shared)
        shape = None if source is None else _prefix_slice(arr, shared[source])
        if source is None or shape is None:
            inits.append(numpy_helper.from_array(arr, pre + init.name))
            own_bytes += arr.nbytes
            continue
        src = SHARED_PREFIX + source
        used.add(src)
        full_shape = shared[source].shape
        axes = [i for i, (s, f) in enumerate(zip(shape, full_shape, strict=True)) if s != f]
        if not axes:
            nodes.append(helper.make_node("Identity", [src], [pre + init.name], name=f"{pre}{init.name}/shared"))
            continue
        bounds = [pre + init.name + suffix for suffix in ("/starts", "/ends", "/axes")]
        for name, values in zip(bounds, ([0] * len(axes), [shape[a] for a in axes], axes), strict=True):
            inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        nodes.append(helper.make_node("Slice", [src, *bounds], [pre + init.name], name=f"{pre}{init.name}/slice"))
        n_slices += 1
    for node in g.node:
        new = helper.make_node(
            node.op_type, [rename(i) for i in node.input], [rename(o) for o in node.output],
            name=pre + (node.name or node.output[0]), domain=node.domain or None,
        )
        new.attribute.extend(node.attribute)
        nodes.append(new)
    (out,) = [o for o in g.output if o.name == OUTPUT_NAME]
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out.type.tensor_type.shape.dim]
    out_vi = helper.make_tensor_value_info(pre + OUTPUT_NAME, out.type.tensor_type.elem_type, dims)
    graph = helper.make_graph(nodes, f"width_{k}", [], [out_vi], initializer=inits)
    return graph, int(dims[-1]), own_bytes, n_slices


def _output_info(name: str, batch: int | str) -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, "features"])


def split_point(weights: Sequence[float], lo: int, hi: int) -> int:
    """Where to split leaves ``lo..hi-1`` (at least two): the ``mid`` that makes the two sides' total weight
    most equal (a weight-balanced search tree: a leaf of weight p lands at depth about log2(total / p))."""
    total = sum(weights[lo:hi])
    best, best_gap, left = lo + 1, float("inf"), 0.0
    for mid in range(lo + 1, hi):
        left += weights[mid - 1]
        gap = abs(total - 2 * left)
        if gap < best_gap:
            best, best_gap = mid, gap
    return best


def leaf_depths(weights: Sequence[float]) -> list[int]:
    """How many ``If`` tests a call at each leaf passes in the tree ``_tree`` builds over ``weights``."""
    out = [0] * len(weights)

    def walk(lo: int, hi: int, depth: int) -> None:
        if hi - lo == 1:
            out[lo] = depth
            return
        mid = split_point(weights, lo, hi)
        walk(lo, mid, depth + 1)
        walk(mid, hi, depth + 1)

    walk(0, len(weights), 0)
    return out


def _tree(
    leaves: list[Any], weights: Sequence[float], lo: int, hi: int, batch: int | str, out_name: str
) -> tuple[list[Any], list[Any]]:
    """Nodes and initializers that compute the output of leaf ``index`` (``lo <= index < hi``, at least two
    leaves) into ``out_name``: ``If(index < mid)`` with each side a leaf or a subtree, split by ``split_point``."""
    from onnx import helper, numpy_helper

    mid = split_point(weights, lo, hi)

    def branch(a: int, b: int) -> Any:
        if b - a == 1:
            return leaves[a]
        name = f"t{a}_{b}.out"
        nodes, inits = _tree(leaves, weights, a, b, batch, name)
        return helper.make_graph(nodes, f"widths_{a}_{b}", [], [_output_info(name, batch)], initializer=inits)

    cond, bound = f"t{lo}_{hi}.less", f"t{lo}_{hi}.mid"
    nodes = [
        helper.make_node("Less", [INDEX_NAME + ".checked", bound], [cond], name=cond),
        helper.make_node("If", [cond], [out_name], name=f"t{lo}_{hi}.if", then_branch=branch(lo, mid),
                         else_branch=branch(mid, hi)),
    ]
    return nodes, [numpy_helper.from_array(np.asarray(mid, np.int64), bound)]


def build_switchable(
    model: Any,
    widths: Sequence[float],
    input_shape: tuple[int, ...],
    *,
    dynamic_batch: bool = False,
    require_bn_stats: bool = False,
) -> SwitchableGraph:
    """The switchable graph of slimmable ``model`` over ``widths`` (index i runs ``widths[i]``), for inputs of
    ``input_shape`` (N, C, H, W; N symbolic with ``dynamic_batch``). ``require_bn_stats``: refuse a width without
    calibrated or running BN statistics (``us3l export`` from a checkpoint)."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from us3l.deploy.graph import deployable_module

    grid = check_grid(widths)
    shared = {name: t.detach().cpu().numpy() for name, t in model.state_dict().items() if t.dtype.is_floating_point}
    example = torch.zeros(input_shape)
    leaves, dims, own, slices, params = [], [], [], [], []
    used: set[str] = set()
    ir_version = None
    for k, w in enumerate(grid):
        static, _kind = deployable_module(model, w, require_bn_stats)
        params.append(sum(p.numel() for p in static.parameters()))
        proto = export_static(static, example, dynamic_batch)
        ir_version = proto.ir_version
        leaf, dim, nbytes, n_slices = _leaf(proto, k, shared, used)
        leaves.append(leaf)
        dims.append(dim)
        own.append(nbytes)
        slices.append(n_slices)
    batch: int | str = "batch" if dynamic_batch else int(input_shape[0])
    n = len(grid)
    nodes = [
        helper.make_node("Gather", ["grid_indices", INDEX_NAME], [INDEX_NAME + ".checked"], name="check_index", axis=0)
    ]
    inits = [numpy_helper.from_array(np.arange(n, dtype=np.int64), "grid_indices")]
    # every If test costs a runtime a few microseconds per call (onnxruntime: about 10): weigh each leaf by the
    # inverse of its parameter count, so the cheap widths, where that cost shows, sit near the root
    weights = [1.0 / max(1, p) for p in params]
    tree_nodes, tree_inits = _tree(leaves, weights, 0, n, batch, OUTPUT_NAME)
    nodes += tree_nodes
    inits += tree_inits
    shared_inits = [numpy_helper.from_array(shared[name[len(SHARED_PREFIX):]], name) for name in sorted(used)]
    graph = helper.make_graph(
        nodes,
        "us3l_switchable",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, *input_shape[1:]]),
         helper.make_tensor_value_info(INDEX_NAME, TensorProto.INT64, [])],
        [_output_info(OUTPUT_NAME, batch)],
        initializer=inits + shared_inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="us3l")
    if ir_version is not None:
        proto.ir_version = ir_version
    for key, value in ((META_WIDTHS, list(grid)), (META_FEATURES, dims), (META_INDEX, INDEX_NAME)):
        record_metadata(proto, key, value)
    onnx.checker.check_model(proto)
    return SwitchableGraph(
        model=proto,
        widths=grid,
        feature_dims=tuple(dims),
        shared_bytes=int(sum(shared[name[len(SHARED_PREFIX):]].nbytes for name in used)),
        per_width_bytes=tuple(own),
        slices=tuple(slices),
        depths=tuple(leaf_depths(weights)),
    )


def bind_width(ov_model: Any, index: int) -> Any:
    """The OpenVINO model ``ov_model`` (an ``openvino.Model``, changed in place and returned) with its
    ``width_index`` input replaced by the constant ``index``: compiled, OpenVINO folds the ``If`` tree to that
    width's static network (one compiled model per width, all read from the one file)."""
    import openvino.opset13 as ops

    params = [p for p in ov_model.get_parameters() if p.get_friendly_name() == INDEX_NAME]
    if not params:
        raise US3LError(f"the model has no '{INDEX_NAME}' input (already bound, or not a switchable artifact)")
    const = ops.constant(np.array(index, np.int64))
    for target in params[0].output(0).get_target_inputs():
        target.replace_source_output(const.output(0))
    ov_model.remove_parameter(params[0])
    ov_model.validate_nodes_and_infer_types()
    return ov_model
