"""Running a switchable-width artifact: one session, the width chosen per call (``index`` into the grid).

* ``OrtSwitchable``: one onnxruntime session; ``width_index`` is fed with every call. onnxruntime folds each
  ``If`` branch's weight slices (and the BN into the convolutions) once, at session creation, so every width
  runs on dense weights; a call pays only the ``Less``/``If`` tests (log2(n) of them).
* ``OvSwitchable``: OpenVINO. ``bound=True`` (the default) compiles the one file once per width with
  ``width_index`` bound to a constant (``us3l.deploy.switchable.bind_width``), lazily, on the first call at that
  width: each width then runs as its static network and switching is picking another compiled model.
  ``bound=False`` compiles once with ``width_index`` as an input: OpenVINO evaluates the ``If`` nodes at run time
  (a fixed cost per call, docs/deploy.md).

Both take float32 NCHW arrays and return (N, D) float32 embeddings, D the width's feature size.
``load_switchable(folder)`` (``us3l.deploy.load_switchable``) opens an exported folder after checking its manifest
(``read_switchable``), as ``us3l.deploy.load`` opens a one-width export.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from us3l.deploy.backends.base import INPUT_NAME, OUTPUT_NAME, as_input, fixed_dims
from us3l.deploy.switchable import INDEX_NAME, META_FEATURES, META_INDEX, META_PER_WIDTH, META_WIDTHS
from us3l.errors import US3LError
from us3l.io import check_schema, read_json
from us3l.validate import number

#: The manifest of a switchable export (``us3l.deploy.switchable_export``).
KIND = "switchable_manifest"
SCHEMA = 1
#: The per-width sizes a profile record needs, each a non-negative integer in the manifest.
SIZES = ("channels", "macs", "params", "weight_bytes", "activation_bytes")


def _index(index: int, n: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or not -n <= int(index) < n:
        raise US3LError(f"width index must be an integer in [{-n}, {n}) for this {n}-width artifact, got {index!r}")
    return int(index) % n


class _Closable:
    """``with load_switchable(dir) as r:`` as with ``us3l.deploy.load``'s one-width runners."""

    def close(self) -> None:
        """Release the runtime objects (idempotent)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OrtSwitchable(_Closable):
    """An onnxruntime session on a switchable ONNX file (``n`` widths); ``spin=False`` as in
    ``us3l.deploy.backends.onnx.OnnxRunner`` (sessions taking turns on the same cores)."""

    def __init__(
        self, path: str | Path, n: int, threads: int | None = None, spin: bool = True, model_bytes: bytes | None = None
    ) -> None:
        import onnxruntime as ort

        from us3l.deploy.backends.onnx import session_options

        self.n = n
        source = str(path) if model_bytes is None else model_bytes  # bytes: the ones whose hash was checked
        self.session = ort.InferenceSession(source, sess_options=session_options(threads, spin),
                                            providers=["CPUExecutionProvider"])
        self._indices = [np.array(k, np.int64) for k in range(n)]
        self.input_shape = fixed_dims(next(i for i in self.session.get_inputs() if i.name == INPUT_NAME).shape)
        #: time_once's IOBinding per index for the array last timed (input, index and an output buffer bound)
        self._bindings: dict[int, Any] = {}
        self._bound_x: np.ndarray | None = None

    def close(self) -> None:
        self._bindings, self._bound_x = {}, None

    def infer(self, x: np.ndarray, index: int) -> np.ndarray:
        k = _index(index, self.n)
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: as_input(x, self.input_shape),
                                                 INDEX_NAME: self._indices[k]})
        return np.asarray(out, dtype=np.float32)

    def time_once(self, x: np.ndarray, index: int) -> float:
        """Seconds of one ``run_with_iobinding`` at ``index``: input, index and output buffer bound once per
        (array, index), as ``OnnxRunner.time_once`` times a static artifact."""
        k = _index(index, self.n)
        if x is not self._bound_x:
            self._bindings, self._bound_x = {}, x
        if k not in self._bindings:
            data = as_input(x)
            out = self.infer(data, k)  # the output shape (untimed)
            buffer = np.empty(out.shape, dtype=np.float32)
            binding = self.session.io_binding()
            binding.bind_cpu_input(INPUT_NAME, data)
            binding.bind_cpu_input(INDEX_NAME, self._indices[k])
            binding.bind_output(OUTPUT_NAME, "cpu", 0, np.float32, list(buffer.shape), buffer.ctypes.data)
            self._bindings[k] = (binding, data, buffer)  # the arrays stay alive with the binding
        binding = self._bindings[k][0]
        t0 = time.perf_counter()
        self.session.run_with_iobinding(binding)
        return time.perf_counter() - t0


class OvSwitchable(_Closable):
    """OpenVINO on a switchable file (IR or ONNX); see the module docstring for ``bound``. ``ir``: the IR's .xml and
    .bin bytes (hash-checked): every model is then read from them, never from the files again."""

    def __init__(
        self, path: str | Path, n: int, threads: int | None = None, device: str = "CPU", bound: bool = True,
        ir: tuple[bytes, bytes] | None = None,
    ) -> None:
        from us3l.deploy.backends.openvino import compile_config, compile_on, require_device, shared_core

        self.core = shared_core()
        require_device(self.core, device)  # as OpenVinoRunner
        self.path, self.n, self.device, self.bound = str(path), n, device, bound
        self.config = compile_config(threads, device, "fp32")
        self._requests: dict[int, Any] = {}
        self._timed: dict[int, tuple[np.ndarray, Any]] = {}  # time_once's input bound per request (shared memory)
        self._ir = ir
        model = self._read()
        #: the file's input shape (None: a dynamic axis): infer checks an input against it in one line
        self.input_shape = fixed_dims(list(next(
            i for i in model.inputs if INPUT_NAME in i.get_names()).get_partial_shape()))
        if not bound:
            source = self.path if ir is None else model
            self._requests[-1] = compile_on(self.core, source, device, self.config).create_infer_request()

    def _read(self) -> Any:
        """A fresh ``ov.Model`` of the file (or of the checked IR bytes)."""
        if self._ir is None:
            return self.core.read_model(self.path)
        return self.core.read_model(model=self._ir[0], weights=self._ir[1])

    def close(self) -> None:
        self._timed.clear()
        if self.bound:
            self._requests.clear()

    def request(self, index: int) -> Any:
        """The infer request that runs ``index`` (bound: compiled on first use)."""
        k = _index(index, self.n)
        if not self.bound:
            return self._requests[-1]
        if k not in self._requests:
            from us3l.deploy.backends.openvino import compile_on
            from us3l.deploy.switchable import bind_width

            model = bind_width(self._read(), k)
            self._requests[k] = compile_on(self.core, model, self.device, self.config).create_infer_request()
        return self._requests[k]

    def _feed(self, x: np.ndarray, index: int) -> dict[str, Any]:
        feed: dict[str, Any] = {INPUT_NAME: as_input(x, self.input_shape)}
        if not self.bound:
            feed[INDEX_NAME] = np.array(_index(index, self.n), np.int64)
        return feed

    def infer(self, x: np.ndarray, index: int) -> np.ndarray:
        req = self.request(index)
        self._timed.pop(-1 if not self.bound else _index(index, self.n), None)  # infer binds its own copy
        req.infer(self._feed(x, index))
        return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def time_once(self, x: np.ndarray, index: int) -> float:
        """Seconds of one synchronous ``infer()`` at ``index`` on an input tensor bound once per request (shared
        memory), as ``OpenVinoRunner.time_once`` times a static artifact; with ``width_index`` as an input, its
        tensor is set before the timed call (a deployment sets it when the width changes)."""
        import openvino as ov

        k = _index(index, self.n)
        req = self.request(k)
        key = -1 if not self.bound else k
        if key not in self._timed or self._timed[key][0] is not x:
            data = as_input(x, self.input_shape)
            req.set_tensor(INPUT_NAME, ov.Tensor(data, shared_memory=True))
            self._timed[key] = (x, data)
        if not self.bound:
            req.set_tensor(INDEX_NAME, ov.Tensor(np.array(k, np.int64)))
        t0 = time.perf_counter()
        req.infer()
        return time.perf_counter() - t0


def open_switchable(
    backend: str, path: str | Path, n: int, threads: int | None = None, bound: bool = True, spin: bool = True,
    data: Mapping[str, bytes] | None = None, device: str = "CPU",
) -> Any:
    """``OrtSwitchable`` (``backend="onnx"``) or ``OvSwitchable`` (``"openvino"``, on OpenVINO ``device``) on
    ``path``; built from ``data`` (the folder's hash-checked files, name -> bytes: ``read_switchable_files``) when
    given, not from the files."""
    path = Path(path)
    data = data or {}
    if backend == "onnx":
        return OrtSwitchable(path, n, threads, spin, model_bytes=data.get(path.name))
    if backend == "openvino":
        xml, weights = data.get(path.name), data.get(path.with_suffix(".bin").name)
        ir = (xml, weights) if path.suffix == ".xml" and xml is not None and weights is not None else None
        return OvSwitchable(path, n, threads, device=device, bound=bound, ir=ir)
    raise US3LError(f"switchable artifacts exist for onnx and openvino, not '{backend}'")


def _check_grid(doc: dict[str, Any], path: Path) -> None:
    """``model.widths`` and ``model.per_width`` agree (index i is width i) and every size is a count."""
    widths, per_width = doc["model"]["widths"], doc["model"]["per_width"]
    if not isinstance(widths, list) or not isinstance(per_width, list) or len(widths) != len(per_width) \
            or len(widths) < 2:
        raise US3LError(f"{path}: model.widths and model.per_width must list the same widths (at least 2)")
    for i, (w, p) in enumerate(zip(widths, per_width, strict=True)):
        where = f"{path}: model.per_width[{i}]"
        if not isinstance(p, dict) or p.get("index") != i or p.get("width") != w:
            raise US3LError(f"{where} must be index {i}, width {w!r}")
        number(w, f"{where}.width", positive=True)
        if p.get("canonical_width") is not None:
            number(p["canonical_width"], f"{where}.canonical_width", positive=True)
        sha = p.get("bn_stats_sha256")
        if sha is not None and not isinstance(sha, str):  # compared by load_switchable and the report
            raise US3LError(f"{where}.bn_stats_sha256 must be a string or null, got {sha!r:.80}; re-export the "
                            "artifact")
        for key in SIZES:
            number(p.get(key), f"{where}.{key}", integer=True, nonnegative=True)


def read_switchable(folder: str | Path) -> tuple[dict[str, Any], Path]:
    """(manifest, artifact file) of a switchable export folder, checked: kind and schema, the sections used,
    ``valid``, the grid, and every listed file (plain names inside the folder, no links, sha256 as recorded:
    ``us3l.deploy.manifest.check_artifact_files``). One ``US3LError`` line otherwise."""
    doc, file, _ = read_switchable_files(folder)
    return doc, file


def read_switchable_files(folder: str | Path) -> tuple[dict[str, Any], Path, dict[str, bytes]]:
    """``read_switchable`` and the bytes of every listed file (name -> bytes), each read once and hashed: open the
    runtime on these (``open_switchable(..., data=)``), not on the paths, which may be replaced after the check."""
    from us3l.deploy.manifest import (
        MANIFEST_FILE,
        check_not_a_member,
        is_version,
        read_artifact_files,
        shape_ok,
    )
    from us3l.deploy.manifest_claims import (
        check_graph,
        check_switchable_copies,
        check_switchable_verification,
        parsed_once,
    )

    folder = Path(folder)
    check_not_a_member(folder)
    if folder.name == MANIFEST_FILE:
        folder = folder.parent
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise US3LError(f"{folder} is not an export folder (no {MANIFEST_FILE})")
    doc = read_json(path, "switchable manifest")
    if isinstance(doc, dict) and doc.get("kind") == "manifest":
        raise US3LError(f"{folder} holds a one-width export (open it with us3l.deploy.load; profile it with "
                        "--model/--ckpt), not a switchable one (us3l export --switchable)")
    check_schema(doc, KIND, SCHEMA, path)
    need = {"model": ("name", "widths", "per_width"), "backend": ("name",), "input": ("shape",),
            "width_input": ("name",), "artifact": ("file", "sha256", "files")}
    for section, keys in need.items():
        if not isinstance(doc.get(section), dict) or any(k not in doc[section] for k in keys):
            raise US3LError(f"{path}: malformed switchable manifest (section '{section}' needs {', '.join(keys)})")
    if doc.get("valid") is not True:
        raise US3LError(f"{folder}: the artifact failed its verification (manifest valid: false)")
    version = doc["backend"].get("runtime_version")  # compared with this machine's by splitting it
    if version is not None and not is_version(version):
        raise US3LError(f"{path}: backend.runtime_version must be a version string like \"1.2.3\", got "
                        f"{version!r:.80}; re-export the artifact")
    if not shape_ok(doc["input"]["shape"]):  # us3l profile --artifact builds its timing input from it
        raise US3LError(f'{path}: input.shape must be a list of positive integers N, C, H, W (N may be "batch"), got '
                        f"{doc['input']['shape']!r:.80}; re-export the artifact")
    _check_grid(doc, path)
    check_switchable_verification(doc, path)  # passed / valid against the recorded numbers (fp32 tolerance)
    data = read_artifact_files(doc, folder)
    file = folder / doc["artifact"]["file"]  # a plain name among the hashed files (checked by read_artifact_files)
    with parsed_once():  # the file parsed once, for its own records and for every claim about its graph
        _check_file_grid(doc, file, path, data[file.name])  # grid, feature dims and index input: the file's records
        # fp32 (no Q/DQ nodes or half-precision weights), input, width_input and output.shape's batch axis: the graph's
        check_graph(doc, path, data, feature_axis="features")
    check_switchable_copies(doc, path)  # switchable.widths / feature_dims / index_input: the ones just checked
    return doc, file, data


def _ir_metadata(xml: bytes, key: str) -> str | None:
    """The value of ``key`` in an OpenVINO IR's model-level ``<rt_info><framework>`` (where OpenVINO keeps the
    ONNX file's metadata_props), else ``None``."""
    from us3l.deploy.manifest_claims import xml_root_of

    for info in xml_root_of(xml).findall("rt_info"):
        for framework in info.findall("framework"):
            for item in framework:
                if item.tag == key:
                    return item.get("value")
    return None


def _file_metadata(file: Path, data: bytes, keys: tuple[str, ...]) -> tuple[str, str, dict[str, str | None]]:
    """(whose, kind, key -> value or ``None``) of a switchable file's own metadata: the ONNX file's metadata_props,
    kept by OpenVINO in the IR's ``rt_info`` (the file parsed once within ``manifest_claims.parsed_once``)."""
    from us3l.deploy.manifest_claims import onnx_model_of

    if file.suffix == ".onnx":
        props = {p.key: p.value for p in onnx_model_of(data).metadata_props}
        return "the ONNX file's", "ONNX file", {k: props.get(k) for k in keys}
    try:
        return "the IR's", "IR", {k: _ir_metadata(data, k) for k in keys}
    except Exception as exc:  # noqa: BLE001 - a file the hash matched but the XML parser refuses
        raise US3LError(f"{file}: cannot read the IR ({' '.join(str(exc).split())[:120]}); re-export") from None


def _check_file_grid(doc: dict[str, Any], file: Path, path: Path, data: bytes) -> None:
    """A switchable file records its grid in its own metadata (``us3l.switchable.widths``: the ONNX file's
    metadata_props, kept by OpenVINO in the IR's ``rt_info``): the manifest's grid, which maps an index to a width
    everywhere else, must be that one (the manifest is not hashed), and so must each width's output size
    (``model.per_width[].feature_dim``: ``us3l.switchable.feature_dims``), the name of its width-index input
    (``width_input.name``: ``us3l.switchable.index_input``) and each width's other facts (``model.per_width[]``'s
    costs and BN statistics: ``us3l.switchable.per_width``). An IR without them is left unchecked."""
    what, kind, records = _file_records(file, data, (META_WIDTHS, META_FEATURES, META_INDEX, META_PER_WIDTH), path)
    if META_WIDTHS not in records and kind == "IR":
        return
    try:
        recorded = [float(w) for w in records[META_WIDTHS]]
    except (KeyError, ValueError, TypeError):
        raise US3LError(f"{file}: no readable {META_WIDTHS} metadata (not a us3l switchable {kind}?)") from None
    if recorded != [float(w) for w in doc["model"]["widths"]]:
        raise US3LError(
            f"{path}: model.widths {doc['model']['widths']} differ from {what} own grid {recorded}; "
            "the manifest was edited: re-export"
        )
    _check_feature_dims(doc, path, what, records)
    _check_index_input(doc, path, what, records)
    _check_width_facts(doc, path, what, records)


def _file_records(
    file: Path, data: bytes, keys: tuple[str, ...], path: Path
) -> tuple[str, str, dict[str, Any]]:
    """(whose, kind, key -> value) of the records a switchable file keeps in its own metadata (``_file_metadata``),
    each value parsed from its JSON here, for every check that compares one with the manifest; a key the file does
    not record is absent (a file exported before it was recorded: that check is skipped). A record that is not
    JSON is refused in one line, whichever it is."""
    what, kind, raw = _file_metadata(file, data, keys)
    records: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        try:
            records[key] = json.loads(value)
        except ValueError:
            raise US3LError(f"{path}: {what} own {key} record is not JSON ({value!r:.40}); the file is not as us3l "
                            "wrote it: re-export") from None
    return what, kind, records


def _check_feature_dims(doc: dict[str, Any], path: Path, what: str, records: Mapping[str, Any]) -> None:
    """``model.per_width[].feature_dim`` (each width's output size, the ``"features"`` axis of ``output.shape``)
    against the file's ``us3l.switchable.feature_dims`` (in ``records``; absent: not recorded, unchecked). ``true``
    is not ``1``. Every switchable export has written both since the first one, so a manifest without them beside a
    file that records them was edited: refused, as ``us3l report`` shows it (its ``_check_switchable_model``)."""
    claimed = [p.get("feature_dim") for p in doc["model"]["per_width"]]
    if META_FEATURES not in records:
        return
    recorded = records[META_FEATURES]
    if not isinstance(recorded, list) or [(type(c), c) for c in claimed] != [(type(r), r) for r in recorded]:
        raise US3LError(f"{path}: model.per_width[].feature_dim {claimed!r:.80} differ from {what} own feature dims "
                        f"{recorded!r:.80}; the manifest was edited: re-export")


def _check_index_input(doc: dict[str, Any], path: Path, what: str, records: Mapping[str, Any]) -> None:
    """``width_input.name`` (the input a reader feeds the width's index through) against the file's
    ``us3l.switchable.index_input`` (in ``records``; absent: not recorded, unchecked)."""
    if META_INDEX not in records:
        return
    recorded = records[META_INDEX]
    claimed = doc["width_input"].get("name")
    if claimed != recorded:
        raise US3LError(f"{path}: width_input.name {claimed!r:.40} differs from {what} own index input "
                        f"{recorded!r:.40}; the manifest was edited: re-export")


def _check_width_facts(doc: dict[str, Any], path: Path, what: str, records: Mapping[str, Any]) -> None:
    """Each width's facts in ``model.per_width[]`` (MACs, params, channels, byte counts, BN kind and digest: what
    ``us3l profile --artifact`` records and ``us3l select`` budgets on) against the file's
    ``us3l.switchable.per_width`` (in ``records``; absent: a file exported before it was recorded, unchecked). Every
    key the file records must be the manifest's, typed (``1.0`` is not ``1``)."""
    if META_PER_WIDTH not in records:
        return
    recorded = records[META_PER_WIDTH]
    per_width = doc["model"]["per_width"]
    if not isinstance(recorded, list) or len(recorded) != len(per_width) or not all(
            isinstance(r, dict) for r in recorded):
        raise US3LError(f"{path}: {what} us3l.switchable.per_width is not one record per width; re-export")
    for i, (claimed, facts) in enumerate(zip(per_width, recorded, strict=True)):
        for key, want in facts.items():
            if (type(claimed.get(key)), claimed.get(key)) != (type(want), want):
                raise US3LError(f"{path}: model.per_width[{i}].{key} {claimed.get(key)!r:.80} differs from {what} own "
                                f"record {want!r:.80}; the manifest was edited: re-export")


def load_switchable(
    path: str | Path, threads: int | None = None, bound: bool = True, *,
    bn_stats_sha256: Mapping[float, str | None] | None = None,
) -> Any:
    """Open the switchable export at ``path`` (its folder or ``manifest.json``) after checking its manifest
    (``read_switchable``) and this machine's runtime (installed, compatible version): an ``OrtSwitchable`` or
    ``OvSwitchable`` (``bound``: OpenVINO compiles one model per width on first use, else feeds the index), with
    ``manifest`` and ``widths`` attributes. ``runner.infer(x, index)`` runs width ``runner.widths[index]``.
    ``bn_stats_sha256``: width -> the calibrated BN statistics the caller runs PyTorch with at that width
    (``us3l.eval.calibrate.width_bn_stats_sha256``), as ``us3l.deploy.load`` takes one width's: an artifact whose
    width was materialized with others (``model.per_width[i].bn_stats_sha256``: recalibrated since the export) is
    refused; widths not named, and manifests from before the record, are not checked."""
    from us3l.deploy.backends import get_backend
    from us3l.deploy.manifest import check_expected

    doc, file, data = read_switchable_files(path)
    check_expected(doc, file.parent / "manifest.json", bn_stats_sha256=bn_stats_sha256)
    be = get_backend(str(doc["backend"]["name"]))
    if be.runtime_version() is None:
        raise be.missing()
    be.check_runtime_compat(doc["backend"].get("runtime_version"))
    runner = open_switchable(be.name, file, len(doc["model"]["widths"]), threads, bound=bound, data=data)
    runner.manifest = doc
    runner.widths = tuple(float(w) for w in doc["model"]["widths"])
    return runner
