"""Cross-checks of what a manifest claims against its own numbers and against the artifact it describes.

A manifest is not hashed (any digest stored beside it could be edited with it), so a hand edit of its statements
used to go unnoticed: ``"passed": false`` turned into ``true``, or ``"precision": "fp16"`` written over an fp32
file. These claims are checked wherever manifests are read:

* **Verification** (``check_verification``, on every read: ``read_manifest``, ``read_switchable``): the recorded
  tolerance must be the precision's own (``us3l.deploy.verify.TOLERANCES``: every bound present with its value, so
  it cannot be loosened), ``verification.precision`` the backend's, ``passed`` what the recorded numbers give under
  that tolerance (the rule of ``verify.compare``; a ``null`` number is a non-finite one, which fails), and
  ``valid`` equal to ``verification.passed``. A ``valid: true`` manifest must record its verification (a
  switchable one: every width in each of its backend's modes), so deleting a failed check does not pass.
* **Precision** (``check_precision``, on the hash-checked bytes, by ``us3l.deploy.load``, ``load_switchable``,
  ``us3l profile --artifact``, quickstart's export reuse and the report): what the file holds, read from the
  graph, not from names:

  - ONNX (``onnx`` package, graph only): ``int8`` has QuantizeLinear/DequantizeLinear nodes (the explicit Q/DQ
    model us3l writes); ``fp32`` has none and no float16/bfloat16 initializer.
  - OpenVINO IR (the .xml, no weights read): ``int8`` has a FakeQuantize layer or an i8/u8 constant (NNCF);
    ``fp16`` has f16 constants and neither of those; ``fp32`` has no f16 constant and neither of those.
  - TensorRT: the engine is opaque without a GPU; the ONNX it was built from (hashed with it) must have Q/DQ
    nodes exactly when the precision is ``int8`` and no float16/bfloat16 initializer, and the build the manifest
    records (``tensorrt.builder_flags`` and the precision options of ``tensorrt.trtexec_command``, written since
    2026-12-06) must be the precision's: fp16 and fp32 engines come from the same fp32 ONNX and only the flags tell
    them apart. A manifest from before then records neither, and its fp16/fp32 claim is not checked.
* **Output shape** (``check_output_shape``, on the hash-checked bytes, by ``us3l.deploy.load`` and so
  ``us3l eval --artifact``, ``load_switchable`` / ``read_switchable``, and the report): ``output.shape`` must be
  the graph's first output, read from the ONNX graph, the IR's first Result layer, or a TensorRT engine's ONNX;
  ``"batch"`` exactly where that output's first dimension is symbolic (a dynamic-batch export). A switchable
  manifest's last axis is ``"features"`` (every width's size, one graph); its ``model.per_width[].feature_dim``
  must be the file's own ``us3l.switchable.feature_dims`` record (``switchable_runtime``). A manifest without
  ``output.shape`` claims none.
* **Inputs** (``check_inputs``, on the hash-checked bytes, wherever the output shape is checked): ``input``'s
  ``name``, ``dtype`` and ``shape`` must be an input of the graph (the ONNX graph's inputs, the IR's top-level
  Parameter layers, a TensorRT engine's ONNX: ``onnx_inputs`` / ``ir_inputs``), ``"batch"`` exactly where its first
  dimension is symbolic: ``input.shape`` is what ``us3l eval --artifact`` and ``us3l profile --artifact`` feed
  and what ``us3l.deploy.load(input_shape=)`` and quickstart's reuse compare. A switchable manifest's
  ``width_input`` likewise (the graph's int64 scalar that picks the width); its ``name`` must also be the file's
  own ``us3l.switchable.index_input`` record (``switchable_runtime``).
* **Runtime version** (``check_runtime_version``, wherever the precision is checked): an OpenVINO manifest's
  ``backend.runtime_version`` must be the release that wrote the IR (its ``rt_info``), the one the installed
  OpenVINO is compared with; onnxruntime's is not in an ONNX file, and a TensorRT engine is checked by TensorRT.
* **Switchable width facts** (``switchable_runtime._check_width_facts``, on every ``read_switchable``): each
  ``model.per_width[]``'s costs and BN facts (what ``us3l profile --artifact`` records and ``us3l select`` budgets
  on) must be the file's own ``us3l.switchable.per_width`` record; a file exported before 2026-12-07 has none.
* **Switchable copies** (``check_switchable_copies``, on every ``read_switchable``): a switchable manifest's
  ``switchable.widths``, ``switchable.feature_dims`` and ``switchable.index_input`` repeat ``model.widths``,
  ``model.per_width[].feature_dim`` and ``width_input.name`` (the ones checked against the file) and must equal
  them. A manifest without them claims none.

* **Model and width** (``check_model``, wherever the output shape is checked, one-width manifests;
  ``check_network`` with the caller's network: ``us3l.deploy.load(network=)``, ``us3l eval --artifact``,
  quickstart's reuse, the report against the run): nothing in a graph records its width, but a width is its layer
  sizes. The graph's weight layers (convolution weight shapes, linear layers' sizes) and output size must be those of
  the network rebuilt from ``model.name``, ``model.model_kwargs`` and ``model.width_range`` (meta device) at
  ``model.width``, and ``model.canonical_width``, ``model.feature_dim`` and ``model.channel_config`` that width's.
  A manifest without ``model_kwargs`` (before 2026-12-07) is checked only against a network the reader has.

``check_graph`` runs the precision, runtime-version, input, output and model checks in one call (every reader of the
artifact's files uses it). Each mismatch is one ``US3LError`` line naming the file and the field.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from us3l.errors import US3LError

#: Tolerance bounds compared with ``TOLERANCES[precision]`` (``rule``/``describe`` are derived from them).
_BOUNDS = ("max_abs", "min_cosine", "min_mean_cosine", "min_topk_agreement", "topk")
_FIX = "re-export the artifact"
_T = TypeVar("_T")

#: The graphs parsed within one ``parsed_once`` scope (id of the bytes -> (the bytes, kept so the id stays theirs,
#: the parsed graph)): every check of one artifact reads its ONNX model or IR .xml once, not once per claim.
_PARSED: ContextVar[dict[tuple[str, int], tuple[bytes, Any]] | None] = ContextVar("us3l_parsed_graphs", default=None)


@contextlib.contextmanager
def parsed_once() -> Iterator[None]:
    """Inside, each graph file's bytes are parsed once (``onnx_model_of``, ``xml_root_of``) however many claims read
    them; the parsed graphs are dropped on exit. Outside, every reader parses its own."""
    outer = _PARSED.get()
    token = _PARSED.set({} if outer is None else outer)  # nested: the outer scope's graphs
    try:
        yield
    finally:
        _PARSED.reset(token)


def _parsed(kind: str, data: bytes, parse: Callable[[bytes], _T]) -> _T:
    memo = _PARSED.get()
    if memo is None:
        return parse(data)
    key = (kind, id(data))
    if key not in memo:
        memo[key] = (data, parse(data))
    return memo[key][1]


def onnx_model_of(data: bytes) -> Any:
    """The ONNX model of ``data`` (read only: callers do not change it), parsed once within ``parsed_once``."""
    import onnx

    return _parsed("onnx", data, onnx.load_model_from_string)


def xml_root_of(xml: bytes) -> Any:
    """The root element of an IR's .xml bytes, parsed once within ``parsed_once``."""
    import xml.etree.ElementTree as ET

    return _parsed("xml", xml, ET.fromstring)


def _number(v: object) -> float | None:
    """A recorded figure as a float; ``None`` for ``null`` (written for a non-finite value) or a non-number."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def verification_failures(ver: Mapping[str, Any], precision: str, where: str) -> list[str]:
    """Why the recorded numbers of ``ver`` (a ``Verification.to_dict()``) fail ``precision``'s tolerance, as
    ``"field value < bound"`` phrases (empty: they pass). One ``US3LError`` line when the recorded tolerance is not
    the precision's own."""
    from us3l.deploy.verify import TOLERANCES

    tol = TOLERANCES.get(precision)
    if tol is None:
        raise US3LError(f"{where}: verification.precision {precision!r:.40} has no tolerance; {_FIX}")
    recorded = ver.get("tolerance")
    if not isinstance(recorded, Mapping):
        raise US3LError(f"{where}: verification.tolerance must be an object, got {recorded!r:.60}; {_FIX}")
    for key in _BOUNDS:
        want = getattr(tol, key)
        if want is not None and recorded.get(key) != want:
            raise US3LError(f"{where}: verification.tolerance.{key} is {recorded.get(key)!r:.40}, the {precision} "
                            f"tolerance is {want!r} (the manifest was edited); {_FIX}")
    fails: list[str] = []
    max_abs, min_cos = _number(ver.get("max_abs_error")), _number(ver.get("min_cosine"))
    mean_cos = _number(ver.get("mean_cosine"))
    if max_abs is None or min_cos is None or mean_cos is None or _number(ver.get("mean_abs_error")) is None:
        fails.append("a non-finite (null) error or cosine")
    if min_cos is not None and min_cos < tol.min_cosine:
        fails.append(f"min_cosine {min_cos:g} < {tol.min_cosine:g}")
    if tol.max_abs is not None and max_abs is not None and max_abs > tol.max_abs:
        fails.append(f"max_abs_error {max_abs:g} > {tol.max_abs:g}")
    if tol.min_mean_cosine is not None and mean_cos is not None and mean_cos < tol.min_mean_cosine:
        fails.append(f"mean_cosine {mean_cos:g} < {tol.min_mean_cosine:g}")
    if tol.min_topk_agreement is not None:
        agreement = _number(ver.get("topk_agreement"))
        if agreement is None or agreement < tol.min_topk_agreement:
            fails.append(f"topk_agreement {ver.get('topk_agreement')!r:.20} < {tol.min_topk_agreement:g}")
    return fails


def _check_passed(ver: Mapping[str, Any], precision: str, where: str, field: str) -> bool:
    """``ver["passed"]`` checked against its numbers (one line naming ``field`` when they disagree); returns it."""
    passed = ver.get("passed")
    if not isinstance(passed, bool):
        raise US3LError(f"{where}: {field}.passed must be true or false, got {passed!r:.40}; {_FIX}")
    fails = verification_failures(ver, precision, where)
    if passed and fails:
        raise US3LError(f"{where}: {field}.passed is true but its recorded numbers fail the {precision} tolerance "
                        f"({'; '.join(fails)}): the manifest was edited; {_FIX}")
    if not passed and not fails:
        raise US3LError(f"{where}: {field}.passed is false but its recorded numbers meet the {precision} tolerance "
                        f"(the manifest was edited); {_FIX}")
    return passed


def check_verification(doc: Mapping[str, Any], where: str | Path) -> None:
    """The one-width manifest's ``verification`` against its numbers, its precision and ``valid``. A manifest
    without a ``verification`` section is refused when it says ``valid: true`` (every export records one), else
    left as it is."""
    ver = doc.get("verification")
    if ver is None:
        if doc.get("valid") is True:  # every export records one: deleting it must not turn a failure into valid
            raise US3LError(f"{where}: valid is true but the manifest records no verification (the manifest was "
                            f"edited); {_FIX}")
        return
    precision = (doc.get("backend") or {}).get("precision")
    if ver.get("precision") != precision:
        raise US3LError(f"{where}: verification.precision {ver.get('precision')!r:.40} differs from "
                        f"backend.precision {precision!r:.40} (the manifest was edited); {_FIX}")
    passed = _check_passed(ver, str(precision), str(where), "verification")
    if doc.get("valid") is not passed:
        raise US3LError(f"{where}: valid is {str(doc.get('valid')).lower()} but verification.passed is "
                        f"{str(passed).lower()} (the manifest was edited); {_FIX}")


#: The runtime modes ``us3l export --switchable`` verifies every width in, per backend
#: (``us3l.deploy.switchable_export._verify``): a valid manifest records each of them for every width.
SWITCHABLE_MODES = {"onnx": ("onnxruntime",),
                    "openvino": ("openvino (width_index input)", "openvino (bound per width)")}


def check_switchable_verification(doc: Mapping[str, Any], where: str | Path) -> None:
    """The switchable manifest's per-width verifications (fp32, every mode) against their numbers, and ``valid``
    / ``verification.passed`` against them all. A valid manifest records every width's check in each of its
    backend's modes (``SWITCHABLE_MODES``): a deleted one (a width or mode that failed) is refused."""
    summary = doc.get("verification")
    if summary is not None and not isinstance(summary, Mapping):  # was an AttributeError traceback below
        raise US3LError(f"{where}: verification must be an object, got {summary!r:.40}; {_FIX}")
    precision = doc["backend"].get("precision")
    if precision != "fp32":
        raise US3LError(f"{where}: backend.precision must be fp32 (switchable exports are fp32 only), got "
                        f"{precision!r:.40}; {_FIX}")
    valid = doc.get("valid") is True
    modes = SWITCHABLE_MODES.get(str(doc["backend"].get("name")), ())
    results: list[bool] = []
    for i, p in enumerate(doc["model"]["per_width"]):
        checks = p.get("verification")
        if checks is None:
            if valid:
                raise US3LError(f"{where}: valid is true but model.per_width[{i}] records no verification (the "
                                f"manifest was edited); {_FIX}")
            continue
        if not isinstance(checks, Mapping):
            raise US3LError(f"{where}: model.per_width[{i}].verification must be an object; {_FIX}")
        missing = [m for m in modes if m not in checks]
        if valid and missing:
            raise US3LError(f"{where}: valid is true but model.per_width[{i}].verification has no "
                            f"{', '.join(repr(m) for m in missing)} check (the manifest was edited); {_FIX}")
        for mode, ver in checks.items():
            if not isinstance(ver, Mapping):
                raise US3LError(f"{where}: model.per_width[{i}].verification[{mode!r:.40}] must be an object; {_FIX}")
            results.append(_check_passed(ver, "fp32", str(where), f"model.per_width[{i}].verification[{mode!r:.40}]"))
    if not results:
        return
    everything = all(results)
    recorded = (doc.get("verification") or {}).get("passed", everything)
    if recorded is not everything or doc.get("valid") is not everything:
        raise US3LError(f"{where}: valid / verification.passed say {str(doc.get('valid')).lower()} / "
                        f"{str(recorded).lower()}, the per-width verifications say {str(everything).lower()} (the "
                        f"manifest was edited); {_FIX}")


# ------------------------------------------------------------------------------------------------ precision


_QDQ = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


def onnx_precision_facts(data: bytes) -> tuple[bool, bool]:
    """(has Q/DQ nodes, has a float16/bfloat16 initializer) of an ONNX model's bytes (its graph and subgraphs)."""
    import onnx

    model = onnx_model_of(data)
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    qdq, fp16 = False, False
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        fp16 = fp16 or any(t.data_type in half for t in g.initializer)
        for n in g.node:
            qdq = qdq or n.op_type in _QDQ
            for a in n.attribute:
                graphs.extend([a.g] if a.HasField("g") else [])
                graphs.extend(a.graphs)
    return qdq, fp16


def ir_precision_facts(xml: bytes) -> tuple[bool, bool]:
    """(int8: a FakeQuantize layer or an i8/u8 constant, fp16: an f16 constant) of an OpenVINO IR's .xml bytes."""

    root = xml_root_of(xml)
    int8, fp16 = False, False
    for layer in root.iter("layer"):
        kind = layer.get("type")
        if kind == "FakeQuantize":
            int8 = True
        elif kind == "Const":
            data = layer.find("data")
            element = None if data is None else data.get("element_type")
            int8 = int8 or element in ("i8", "u8")
            fp16 = fp16 or element == "f16"
    return int8, fp16


def _holds(backend: str, name: str, data: Mapping[str, bytes]) -> str | None:
    """The precision the bytes of an artifact show (``None``: cannot be told, TensorRT fp16/fp32 or no file)."""
    if backend == "onnx" and name in data:
        qdq, fp16 = onnx_precision_facts(data[name])
        return "int8" if qdq else "fp16" if fp16 else "fp32"
    if backend == "openvino" and name in data:
        int8, fp16 = ir_precision_facts(data[name])
        return "int8" if int8 else "fp16" if fp16 else "fp32"
    if backend == "tensorrt" and "model.onnx" in data:
        qdq, fp16 = onnx_precision_facts(data["model.onnx"])
        if fp16:  # us3l builds every engine from an fp32 (or Q/DQ) ONNX; fp16 comes from the builder flag
            return "fp16-onnx"
        return "int8" if qdq else None
    return None


def _read_graph(read: Callable[[], _T], where: str | Path, name: str, what: str) -> _T:
    """``read()`` (a parse of an artifact's graph), its failure one line: the hash matched but the parser refuses."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - onnx / XML parser errors of a file the hash matched
        why = " ".join(str(exc).split())[:120]
        raise US3LError(f"{where}: cannot read the graph of {name} to check its {what} ({why}); {_FIX}") from None


def _check_tensorrt_build(doc: Mapping[str, Any], where: str | Path, precision: object) -> None:
    """A TensorRT manifest's recorded build (``tensorrt.builder_flags``, ``tensorrt.trtexec_command``) against
    ``backend.precision``: the only record of fp16 against fp32. Pure file checks: TensorRT need not be here."""
    from us3l.deploy.backends.tensorrt import build_precision

    try:
        built = build_precision(doc.get("tensorrt") or {})
    except ValueError as exc:
        raise US3LError(f"{where}: {exc} (the manifest was edited); {_FIX}") from None
    if built is not None and built != precision:
        raise US3LError(f"{where}: backend.precision is {precision!r:.40} but the build it records "
                        f"(tensorrt.builder_flags, tensorrt.trtexec_command) is {built} (the manifest was edited); "
                        f"{_FIX}")


def check_precision(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes]) -> None:
    """Refuse (one line) a ``backend.precision`` that the artifact's bytes (``data``: name -> hash-checked bytes)
    contradict; the rule per backend is in the module docstring."""
    backend = str((doc.get("backend") or {}).get("name"))
    precision = (doc.get("backend") or {}).get("precision")
    name = str((doc.get("artifact") or {}).get("file"))
    if backend == "tensorrt":
        _check_tensorrt_build(doc, where, precision)
    holds = _read_graph(lambda: _holds(backend, name, data), where, name, "precision")
    if holds == "fp16-onnx":
        raise US3LError(f"{where}: model.onnx, the graph {name} was built from, has float16 initializers: us3l builds "
                        f"every engine from an fp32 or Q/DQ ONNX (the artifact was not made by us3l export); {_FIX}")
    if holds is None:
        if backend == "tensorrt" and precision == "int8":
            holds = "fp16 or fp32"  # the ONNX it was built from has no Q/DQ nodes
        else:
            return
    if holds != precision:
        raise US3LError(f"{where}: backend.precision is {precision!r:.40} but {name} holds an {holds} graph (the "
                        f"manifest was edited); {_FIX}")


# ------------------------------------------------------------------------------------------------ output shape


def onnx_output_dims(data: bytes) -> list[int | None]:
    """The dimensions of an ONNX model's first graph output (what onnxruntime's ``get_outputs()[0]`` is; ``None``:
    a symbolic or unknown one)."""

    out = onnx_model_of(data).graph.output[0]
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]


def ir_output_dims(xml: bytes) -> list[int | None]:
    """The dimensions of an OpenVINO IR's first Result layer (its .xml bytes; ``None``: a dynamic one, ``-1``,
    ``?`` or a range)."""

    result = next(layer for layer in xml_root_of(xml).iter("layer") if layer.get("type") == "Result")
    return [int(t) if (t := (d.text or "").strip()).isdigit() else None for d in result.iterfind("input/port/dim")]


def _graph_file(backend: str, name: str, data: Mapping[str, bytes]) -> tuple[str, bool] | None:
    """(the file of ``data`` whose graph the artifact runs, whether it is an OpenVINO IR's .xml); ``None``: no graph
    to read (a TensorRT engine without the ONNX it was built from)."""
    if backend in ("onnx", "openvino") and name in data:
        return name, backend == "openvino"
    if backend == "tensorrt" and "model.onnx" in data:  # the engine is opaque here; its ONNX is hashed with it
        return "model.onnx", False
    return None


def _from_graph(backend: str, name: str, data: Mapping[str, bytes], read_onnx: Callable[[bytes], _T],
                read_ir: Callable[[bytes], _T]) -> tuple[str, _T] | None:
    """(the file read, what ``read_onnx`` or ``read_ir`` reads from it) of an artifact's graph (``_graph_file``: the
    ONNX model, the IR's .xml, a TensorRT engine's ONNX); ``None``: no graph to read."""
    found = _graph_file(backend, name, data)
    if found is None:
        return None
    file, ir = found
    return file, (read_ir if ir else read_onnx)(data[file])


def _graph_output(backend: str, name: str, data: Mapping[str, bytes]) -> tuple[str, list[int | None]] | None:
    """(the file read, its output dimensions) of an artifact; ``None``: no graph to read."""
    return _from_graph(backend, name, data, onnx_output_dims, ir_output_dims)


def check_output_shape(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes], *,
                       feature_axis: str | None = None) -> None:
    """Refuse (one line) a manifest's ``output.shape`` that is not the artifact graph's output (``data``: name ->
    hash-checked bytes): the embedding size, and ``"batch"`` exactly where the graph's first dimension is symbolic.
    ``true`` is not ``1``, nor ``128.0`` ``128``. A manifest without ``output.shape`` claims none.

    ``feature_axis``: a switchable manifest's name for its last axis (``"features"``): one graph outputs every
    width's embedding size there (symbolic in the ONNX file; an IR's Result shows one branch's size), so that axis
    is compared by name; the sizes per width are the file's own record (``switchable_runtime``)."""
    output = doc.get("output")
    claimed = output.get("shape") if isinstance(output, Mapping) else None
    if claimed is None:
        return
    backend = str((doc.get("backend") or {}).get("name"))
    name = str((doc.get("artifact") or {}).get("file"))
    found = _read_graph(lambda: _graph_output(backend, name, data), where, name, "output shape")
    if found is None:
        return
    file, dims = found
    actual = _batch_named(dims)
    if feature_axis is not None and actual:
        actual[-1] = feature_axis
    if not isinstance(claimed, list) or [(type(c), c) for c in claimed] != [(type(a), a) for a in actual]:
        raise US3LError(f"{where}: output.shape is {claimed!r:.60} but {file} outputs {actual!r:.60} (the manifest "
                        f"was edited); {_FIX}")


def _batch_named(dims: list[int | None]) -> list[int | str | None]:
    """A graph's dimensions as a manifest writes them: a symbolic first one is ``"batch"``."""
    return ["batch" if i == 0 and d is None else d for i, d in enumerate(dims)]


# ------------------------------------------------------------------------------------------------ inputs


#: An input of a graph: (element type, as numpy names it, and dimensions; ``None``: a symbolic or dynamic one).
GraphInput = tuple[str, list[int | None]]
#: OpenVINO IR element types by the names numpy (and a manifest's ``dtype``) give them.
_IR_TYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64", "i64": "int64",
             "i32": "int32", "i8": "int8", "u8": "uint8", "boolean": "bool"}


def onnx_inputs(data: bytes) -> dict[str, GraphInput]:
    """Name -> (element type, dimensions) of an ONNX model's graph inputs, initializers left out (what
    onnxruntime's ``get_inputs()`` lists)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx_model_of(data).graph
    constants = {t.name for t in graph.initializer}
    return {
        i.name: (tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name,
                 [int(d.dim_value) if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim])
        for i in graph.input if i.name not in constants
    }


def ir_inputs(xml: bytes) -> dict[str, GraphInput]:
    """Name -> (element type, dimensions) of an OpenVINO IR's inputs (its .xml bytes): the top-level Parameter
    layers (an ``If`` body's own are not inputs), named by their output tensor names as OpenVINO's ``inputs`` are."""

    layers = xml_root_of(xml).find("layers")
    out: dict[str, GraphInput] = {}
    for layer in [] if layers is None else layers.iterfind("layer[@type='Parameter']"):
        data, port = layer.find("data"), layer.find("output/port")
        element = "" if data is None else str(data.get("element_type"))
        dims = [] if port is None else [int(t) if (t := (d.text or "").strip()).isdigit() else None
                                         for d in port.iterfind("dim")]
        names = (None if port is None else port.get("names")) or str(layer.get("name"))
        for n in names.split(","):
            out[n.strip()] = (_IR_TYPES.get(element, element), dims)
    return out


def _check_input_claim(field: str, claimed: Mapping[str, Any], file: str, inputs: Mapping[str, GraphInput],
                       where: str | Path) -> None:
    """One input a manifest section describes (``claimed``: its ``name``, ``dtype`` and ``shape``, ``"batch"``
    where the graph's first dimension is symbolic) against the graph's ``inputs``; a key not written claims
    nothing, ``true`` is not ``1``."""
    name = claimed.get("name")
    if not isinstance(name, str) or name not in inputs:
        known = ", ".join(repr(n) for n in inputs)
        raise US3LError(f"{where}: {field}.name {name!r:.40} is not an input of {file} (its inputs: {known:.80}) (the "
                        f"manifest was edited); {_FIX}")
    dtype, dims = inputs[name]
    for key, actual in (("dtype", dtype), ("shape", _batch_named(dims))):
        if key in claimed and _typed(claimed[key]) != _typed(actual):
            raise US3LError(f"{where}: {field}.{key} is {claimed[key]!r:.60} but {file}'s input {name!r} is "
                            f"{actual!r:.60} (the manifest was edited); {_FIX}")


def check_inputs(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes], *,
                 width_input: bool = False) -> None:
    """Refuse (one line) a manifest's ``input`` (``name``, ``dtype``, ``shape``) that is not an input of the graph
    (``data``: name -> hash-checked bytes): ``input.shape`` is what ``us3l eval --artifact`` and ``us3l profile
    --artifact`` feed and what ``us3l.deploy.load(input_shape=)`` and quickstart's reuse compare with the run's
    size; ``"batch"`` exactly where the graph's first dimension is symbolic. ``width_input`` (a switchable
    manifest): its ``width_input`` too, the int64 scalar a reader feeds the width's index through (an edited name
    used to load, and ``us3l profile --artifact`` recorded it as the index input)."""
    backend = str((doc.get("backend") or {}).get("name"))
    name = str((doc.get("artifact") or {}).get("file"))
    found = _read_graph(lambda: _from_graph(backend, name, data, onnx_inputs, ir_inputs), where, name, "inputs")
    if found is None:
        return
    for section in ("input", "width_input") if width_input else ("input",):
        claimed = doc.get(section)
        if not isinstance(claimed, Mapping):
            raise US3LError(f"{where}: {section} must be an object, got {claimed!r:.40}; {_FIX}")
        _check_input_claim(section, claimed, *found, where)


# ------------------------------------------------------------------------------------------------ runtime version


def ir_writer_version(xml: bytes) -> str | None:
    """The OpenVINO release that wrote an IR (its .xml bytes: ``<rt_info><info name="OpenVINO Runtime">``), ``None``
    where it records none."""

    info = xml_root_of(xml).find("rt_info/info[@name='OpenVINO Runtime']")
    return None if info is None else info.get("value")


def check_runtime_version(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes]) -> None:
    """Refuse (one line) an OpenVINO manifest's ``backend.runtime_version`` that is not the release that wrote the IR
    (``data``: name -> hash-checked bytes). The installed OpenVINO is compared with it (``check_runtime_compat``: not
    older), so a lowered or deleted claim let an older release read a newer IR. Not checked: an IR that records no
    writer, onnxruntime's version (an ONNX file does not record it), a TensorRT engine (TensorRT checks its own)."""
    backend = (doc.get("backend") or {}).get("name")
    name = str((doc.get("artifact") or {}).get("file"))
    if backend != "openvino" or name not in data:
        return
    wrote = _read_graph(lambda: ir_writer_version(data[name]), where, name, "runtime version")
    claimed = doc["backend"].get("runtime_version")
    if wrote is not None and claimed != wrote:
        raise US3LError(f"{where}: backend.runtime_version is {claimed!r:.60} but {name} was written by OpenVINO "
                        f"{wrote:.60} (the manifest was edited); {_FIX}")


def check_graph(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes], *,
                feature_axis: str | None = None) -> None:
    """Every claim about the artifact's files that a manifest makes, against the hash-checked bytes ``data``:
    ``backend.precision`` (``check_precision``), ``backend.runtime_version`` (``check_runtime_version``), ``input``
    (``check_inputs``) and ``output.shape`` (``check_output_shape``, ``feature_axis`` as there); a switchable
    manifest (``feature_axis`` given) also ``width_input``."""
    with parsed_once():  # each graph file parsed once for all of them
        check_precision(doc, where, data)
        check_runtime_version(doc, where, data)
        check_inputs(doc, where, data, width_input=feature_axis is not None)
        check_output_shape(doc, where, data, feature_axis=feature_axis)
        if feature_axis is None:
            check_model(doc, where, data)


# ------------------------------------------------------------------------------------------------ model and width


#: One weight layer of a graph: ``("conv", (out, in / groups, kh, kw))`` or ``("linear", (smaller, larger))`` (a
#: linear layer's two sizes sorted: exporters store its weight as [out, in] or transposed).
Layer = tuple[str, tuple[int, ...]]


def _onnx_layers(data: bytes) -> Counter[Layer]:
    """The weight layers of an ONNX model's main graph: each ``Conv`` whose weight, and each ``Gemm`` / ``MatMul``
    whose second input, is a constant (an initializer or ``Constant``, possibly through ``DequantizeLinear`` /
    ``QuantizeLinear`` / ``Transpose`` / ``Identity`` / ``Cast``: the Q/DQ model us3l writes). A ``MatMul`` of two
    activations (attention) is none."""
    from onnx import numpy_helper

    graph = onnx_model_of(data).graph
    dims: dict[str, list[int]] = {t.name: [int(d) for d in t.dims] for t in graph.initializer}
    producer: dict[str, Any] = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.HasField("t"):
                    dims[n.output[0]] = [int(d) for d in numpy_helper.to_array(a.t).shape]
        for o in n.output:
            producer[o] = n

    def shape(name: str, depth: int = 0) -> list[int] | None:
        if name in dims:
            return dims[name]
        node = producer.get(name)
        if node is None or depth > 8 or not node.input:
            return None
        if node.op_type in ("DequantizeLinear", "QuantizeLinear", "Identity", "Cast"):
            return shape(node.input[0], depth + 1)
        if node.op_type == "Transpose":
            inner = shape(node.input[0], depth + 1)
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if inner is None:
                return None
            return [inner[i] for i in perm] if perm and len(perm) == len(inner) else inner[::-1]
        return None

    out: Counter[Layer] = Counter()
    for n in graph.node:
        weight = shape(n.input[1]) if len(n.input) > 1 else None
        if weight is None:
            continue
        if n.op_type == "Conv" and len(weight) == 4:
            out[("conv", tuple(weight))] += 1
        elif n.op_type in ("Gemm", "MatMul") and len(weight) == 2:
            out[("linear", tuple(sorted(weight)))] += 1
    return out


def _ir_layers(xml: bytes) -> Counter[Layer]:
    """The weight layers of an OpenVINO IR (its .xml bytes, top-level layers): each ``Convolution``, each
    ``GroupConvolution`` (its [groups, out / groups, in / groups, kh, kw] weight as the convolution's [out,
    in / groups, kh, kw]) and each ``MatMul`` whose second input is 2-D (a linear layer's weight; attention multiplies
    activations of more dimensions), read from the layers' input ports."""

    layers = xml_root_of(xml).find("layers")
    out: Counter[Layer] = Counter()
    for layer in [] if layers is None else layers.iterfind("layer"):
        kind = layer.get("type")
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        ports = {p.get("id"): p for p in layer.iterfind("input/port")}
        port = ports.get("1")
        dims = [] if port is None else [(d.text or "").strip() for d in port.iterfind("dim")]
        if not dims or not all(d.isdigit() for d in dims):
            continue
        w = [int(d) for d in dims]
        if kind == "Convolution" and len(w) == 4:
            out[("conv", tuple(w))] += 1
        elif kind == "GroupConvolution" and len(w) == 5:
            out[("conv", (w[0] * w[1], *w[2:]))] += 1
        elif kind == "MatMul" and len(w) == 2:
            out[("linear", tuple(sorted(w)))] += 1
    return out


def module_layers(static: Any) -> Counter[Layer]:
    """The weight layers of a static (materialized) network, as ``_onnx_layers`` / ``_ir_layers`` read a graph."""
    from torch import nn

    out: Counter[Layer] = Counter()
    for m in static.modules():
        if isinstance(m, nn.Conv2d):
            out[("conv", tuple(int(d) for d in m.weight.shape))] += 1
        elif isinstance(m, nn.Linear):
            out[("linear", tuple(sorted(int(d) for d in m.weight.shape)))] += 1
    return out


def _layer_text(layer: Layer) -> str:
    kind, dims = layer
    return f"{'x'.join(map(str, dims))} {'convolution' if kind == 'conv' else 'linear layer'}"


#: A model option as a manifest records it (``model.model_kwargs``): what a config's ``model_kwargs`` may hold.
_OPTION_TYPES = (str, int, float, bool, type(None))


def model_kwargs_ok(kwargs: object) -> bool:
    """``model.model_kwargs``: null, or an object of option name -> a JSON scalar or a list of them."""
    if kwargs is None:
        return True
    return isinstance(kwargs, dict) and all(
        isinstance(k, str) and (isinstance(v, _OPTION_TYPES) or (isinstance(v, list) and all(
            isinstance(x, _OPTION_TYPES) for x in v))) for k, v in kwargs.items())


def recorded_network(doc: Mapping[str, Any], where: str | Path) -> Any:
    """The network a one-width manifest says its graph is a width of, built on the meta device (shapes only, no
    weights): ``create_model(model.name, **model.model_kwargs)`` with the width range ``model.width_range``.
    ``None`` where the manifest records no ``model_kwargs`` (an export before 2026-12-07, or of a module that is not
    a registered model built by ``create_model``)."""
    from us3l.models import create_model, list_models
    from us3l.models.meta import shapes_only

    model = doc["model"]
    kwargs = model.get("model_kwargs")
    if kwargs is None:
        return None
    name = model.get("name")
    if name not in list_models():
        raise US3LError(f"{where}: model.name {name!r:.60} is not a registered model (us3l models lists them) but the "
                        f"manifest records its model_kwargs (the manifest was edited); {_FIX}")
    wr = model.get("width_range")
    if not isinstance(wr, dict):
        raise US3LError(f"{where}: model.width_range must be an object (min, max, divisor), got {wr!r:.60}; {_FIX}")
    ranges = {arg: wr[key] for key, arg in (("min", "width_min"), ("max", "width_max"), ("divisor", "divisor"))
              if key in wr}
    try:
        with shapes_only():  # shapes only: an edited base_channels allocates nothing
            return create_model(str(name), **{**kwargs, **ranges})
    except (TypeError, ValueError, RuntimeError, US3LError) as exc:
        why = " ".join(str(exc).split())[:120]
        raise US3LError(f"{where}: cannot build {name} from model.model_kwargs {kwargs!r:.80} and model.width_range "
                        f"({why}) (the manifest was edited); {_FIX}") from None


def check_network(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes], network: Any,
                  what: str) -> None:
    """Refuse (one line) a one-width manifest whose ``model.width`` is not the width of the graph: the graph's weight
    layers (every convolution's and linear layer's weight shape, ``_onnx_layers`` / ``_ir_layers``) and output
    size must be those of ``network`` (a slimmable model, ``what`` names it in the message) materialized at that
    width, and ``model.canonical_width``, ``model.feature_dim`` and ``model.channel_config``, where present, that
    width's. Nothing in the graph records its width; its layer sizes are what a width is (two widths with the same
    channels are one network). ``data``: name -> hash-checked bytes."""
    from us3l.slim import materialize
    from us3l.width_key import same_width

    model = doc["model"]
    w = float(model["width"])
    backend = str((doc.get("backend") or {}).get("name"))
    name = str((doc.get("artifact") or {}).get("file"))
    built = getattr(network, "registered_as", None)  # us3l.models.create_model's (name, options)
    if isinstance(built, tuple) and built and built[0] != model.get("name"):
        raise US3LError(f"{where}: model.name {model.get('name')!r:.60} is not {what} (a {built[0]}) (the manifest was "
                        f"edited); {_FIX}")
    try:
        static = materialize(network, w)
    except (ValueError, US3LError) as exc:  # outside the width range, not a switch of an S-Nets model
        why = " ".join(str(exc).split())[:120]
        raise US3LError(f"{where}: model.width {w:g} is not a width of {what} ({why}) (the manifest was edited); "
                        f"{_FIX}") from None
    wrong: list[str] = []
    file = name
    found = _read_graph(lambda: _from_graph(backend, name, data, _onnx_layers, _ir_layers), where, name, "layers")
    if found is not None:
        file, layers = found
        expected = module_layers(static)
        lacks, extra = expected - layers, layers - expected
        if lacks:
            wrong.append(f"it has a {_layer_text(next(iter(lacks)))} the graph lacks")
        if extra:
            wrong.append(f"the graph has a {_layer_text(next(iter(extra)))} it lacks")
    found_out = _read_graph(lambda: _graph_output(backend, name, data), where, name, "output shape")
    feature_dim = int(network.feature_dim(w)) if hasattr(network, "feature_dim") else None
    if found_out is not None and feature_dim is not None and found_out[1] and found_out[1][-1] != feature_dim:
        file = found_out[0]
        wrong.append(f"it outputs {feature_dim} features, the graph {found_out[1][-1]}")
    if wrong:
        raise US3LError(f"{where}: {file} is not {what} at model.width {w:g}: {'; '.join(wrong)} (the manifest was "
                        f"edited); {_FIX}")
    claims = []  # the manifest's own records of the width's network
    if "canonical_width" in model and not same_width(model["canonical_width"], static.canonical_width):
        claims.append(f"model.canonical_width {model['canonical_width']!r:.20} (its canonical width is "
                      f"{static.canonical_width:g})")
    dim = model.get("feature_dim", feature_dim)
    if feature_dim is not None and (type(dim) is not int or dim != feature_dim):
        claims.append(f"model.feature_dim {dim!r:.20} (it outputs {feature_dim})")
    if "channel_config" in model and not _same_config(model["channel_config"], static.channel_config):
        claims.append("model.channel_config (not its channels)")
    claims += _bn_kind_claim(model, network)
    if claims:
        raise US3LError(f"{where}: {', '.join(claims)} do{'es' if len(claims) == 1 else ''} not describe {what} at "
                        f"model.width {w:g} (the manifest was edited); {_FIX}")


def _bn_kind_claim(model: Mapping[str, Any], network: Any) -> list[str]:
    """``model.bn_stats`` where ``network``'s BatchNorm cannot be frozen that way (``validate_manifest`` checked it
    names a kind): "calibrated", or the kind the architecture gives a width without calibrated statistics
    (``us3l.deploy.graph.uncalibrated_bn_kind``: running statistics kept, or placeholders frozen), and only "none"
    without BatchNorm."""
    from us3l.deploy.graph import LEGACY_BN_STATS, bn_kind_named, uncalibrated_bn_kind

    kind = bn_kind_named(model.get("bn_stats"))
    base = uncalibrated_bn_kind(network)
    allowed = [base] if base == "none" else ["calibrated", base]
    if kind is None or kind in allowed:
        return []
    return [f"model.bn_stats {model['bn_stats']!r:.40} (its BatchNorm is "
            f"{' or '.join(repr(LEGACY_BN_STATS.get(k, k)) for k in allowed)})"]


def _same_config(claimed: object, actual: Any) -> bool:
    """A manifest's ``model.channel_config`` (lists of integers) against ``channel_config(model, w)`` (tuples)."""
    return isinstance(claimed, list) and len(claimed) == len(actual) and all(
        _typed(c) == _typed(list(a)) for c, a in zip(claimed, actual, strict=True))


def check_model(doc: Mapping[str, Any], where: str | Path, data: Mapping[str, bytes]) -> None:
    """``check_network`` against the network the manifest itself names (``recorded_network``: ``model.name``,
    ``model.model_kwargs``, ``model.width_range``): an edited ``model.width`` or ``model.name`` is refused by every
    reader of the artifact's files. Unchecked where the manifest records no ``model_kwargs``."""
    network = recorded_network(doc, where)
    if network is not None:
        check_network(doc, where, data, network, f"{doc['model']['name']} (as model.model_kwargs builds it)")


# ------------------------------------------------------------------------------------------------ switchable copies


def _typed(value: object) -> object:
    """A list compared with its items' types (``true`` is not ``1``, nor ``1`` ``1.0``); anything else as it is."""
    return [(type(v), v) for v in value] if isinstance(value, list) else value


def check_switchable_copies(doc: Mapping[str, Any], where: str | Path) -> None:
    """Refuse (one line) a switchable manifest whose ``switchable.widths``, ``switchable.feature_dims`` or
    ``switchable.index_input`` is not ``model.widths``, ``model.per_width[].feature_dim`` or ``width_input.name``:
    the export writes each twice, and only the first is compared with the file. A manifest without the section or
    the key claims none."""
    section = doc.get("switchable")
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise US3LError(f"{where}: switchable must be an object, got {section!r:.40}; {_FIX}")
    model = doc["model"]
    originals = {"widths": ("model.widths", model["widths"]),
                 "feature_dims": ("model.per_width[].feature_dim", [p.get("feature_dim") for p in model["per_width"]]),
                 "index_input": ("width_input.name", doc["width_input"].get("name"))}
    for key, (field, want) in originals.items():
        if key in section and _typed(section[key]) != _typed(want):
            verb = "differ" if isinstance(want, list) else "differs"
            raise US3LError(f"{where}: switchable.{key} {section[key]!r:.80} {verb} from {field} {want!r:.80} (the "
                            f"manifest was edited); {_FIX}")
