"""One profiling sweep: every width of a model on one device with one backend -> a ``Profile``.

For each width: build the deployable graph with ``us3l.deploy.graph.build_deployable_graph`` -- the function
``us3l export`` ships with: materialize, freeze BN (calibrated, running, or -- for a width without statistics
-- the initial 0/1 ones; never batch statistics), export with the deploy backend -- count MACs/params
(``us3l.profiler.costs``), weight bytes and peak activation memory (``us3l.profiler.memory``), then measure the widths
with the windowed interleaved loop (``us3l.profiler.measure.measure_windowed``) -- locally, on the board itself, or
over SSH. At most a window of widths' sessions is loaded at once, sized from the memory one session takes and
the memory limit (``us3l.profiler.window``); a total time budget is spread over the widths. Each record names the
graph it timed (``graph_sha256``, ``graph_structure_sha256``) and how BN was handled (``bn``); the profile
records the peak resident memory, the window and the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from us3l.deploy.backends.tensorrt_versions import device_onnx_opset
from us3l.devices.spec import DeviceSpec, canonical_backend
from us3l.errors import US3LError
from us3l.io import owned_temporary_directory
from us3l.profiler.measure import MeasurementPolicy, SweepProgress, Timer, WindowFull, measure_windowed
from us3l.profiler.profile_file import Profile, ProfileRecord
from us3l.profiler.timers import keeps_torch_threads
from us3l.profiler.window import WindowPlan, choose_window, coverage_order, estimate_session_bytes
from us3l.validate import memory_mb


@dataclass(frozen=True)
class StaticWidth:
    """One width as it will be timed: its deployable graph (module + artifact), size and cost."""

    width: float
    key: str
    model: nn.Module | None  # None once measured when the sweep does not time the module itself
    channels: int
    macs: int
    params: int
    weight_bytes: int
    activation_bytes: int
    bn: str = "none"
    artifact: Any = None  # us3l.deploy.backends.Artifact; None for the eager torch backend
    graph_sha256: str | None = None
    graph_structure_sha256: str | None = None


def channels_of(model: nn.Module) -> int:
    """The widest layer's output channels (Conv2d/Linear) of a static model: one int per configuration."""
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    widths += [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    return max(widths) if widths else 0


def export_backend(backend: str) -> str | None:
    """The deploy backend whose artifact a profiling backend times (TensorRT engines are built on the device
    from the ONNX file, as ``us3l export`` builds them from the same file; eager torch exports nothing)."""
    return {"torch": None, "tensorrt": "onnx"}.get(backend, backend)


def prepare_widths(
    model: nn.Module,
    widths: Sequence[float],
    input_shape: tuple[int, ...],
    precision: str,
    backend: str = "torch",
    root: Path | None = None,
    require_bn_stats: bool = False,
    keep_models: bool = True,
    on_item: Callable[[int, int], None] | None = None,
    calibration: Any = None,
    export: bool = True,
    order: Sequence[int] | None = None,
    deadline: float | None = None,
    onnx_opset: int | None = None,
) -> list[StaticWidth]:
    """Build every width's deployable graph (into ``root/<key>``) and measure its size and cost.

    ``export=False`` stops at the frozen static module (size and cost only, no artifact): the adaptive sweep
    exports a width only when it is about to be timed (:func:`export_item`).

    ``order`` (indices into ``widths``) is the order of preparation; with a ``deadline`` (``time.perf_counter``
    time) no further width is started once it has passed, so the returned list (always in ``widths`` order, keys
    by position in ``widths``) may hold only the first of ``order`` -- at least one.

    ``keep_models=False`` drops each static module once counted (a sweep of exported artifacts needs only
    the files: holding 90 modules would cost more memory than the sessions); ``on_item(done, total)`` after
    each width. ``precision="int8"`` builds each width's post-training INT8 graph (as ``us3l export`` does)
    calibrated on ``calibration`` (a ``us3l.deploy.quantize.CalibrationSet``).
    """
    from us3l.profiler.costs import count_costs
    from us3l.profiler.memory import activation_bytes, weight_bytes
    from us3l.profiler.timers import example_input

    x = example_input(input_shape)
    be = export_backend(backend)
    out = []
    for n, i in enumerate(range(len(widths)) if order is None else order):
        if deadline is not None and n and _clock() > deadline:
            break
        w = widths[i]
        key = f"w{i:03d}"
        graph = _width_graph(model, float(w), be if export else None, None if root is None else root / key,
                             input_shape, precision, require_bn_stats, calibration, x, onnx_opset)
        static = graph.module
        costs = count_costs(static, input_shape)
        out.append(
            StaticWidth(
                width=float(w),
                key=key,
                model=static,
                channels=channels_of(static),
                macs=int(costs.macs),
                params=int(costs.params),
                weight_bytes=weight_bytes(static, precision),
                activation_bytes=activation_bytes(static, x),
                bn=graph.bn,
                artifact=graph.artifact,
                graph_sha256=graph.graph_sha256,
                graph_structure_sha256=graph.graph_structure_sha256,
            )
        )
        if not keep_models:
            out[-1] = replace(out[-1], model=None)
        del graph, static
        if on_item is not None:
            on_item(n + 1, len(widths))
    return sorted(out, key=lambda it: int(it.key[1:]))


#: The part of ``--max-total-seconds`` that preparing widths (export, hashes, costs) may take before the sweep
#: stops preparing more and times what it has.
PREPARE_SHARE = 0.5

#: The clock of ``prepare_widths``' deadline (``time.perf_counter``; a seam for tests).
_clock = time.perf_counter


def _graph_precision(precision: str, backend: str | None) -> str:
    """The precision of the graph a backend times (onnxruntime runs the fp32 export for fp16 requests)."""
    return precision if precision == "int8" or backend == "openvino" else "fp32"


def _width_graph(
    model: nn.Module, w: float, be: str | None, out_dir: Path | None, input_shape: tuple[int, ...], precision: str,
    require_bn_stats: bool, calibration: Any, example: Any, onnx_opset: int | None = None,
) -> Any:
    """The deployable graph a sweep times at width ``w``, exported by export backend ``be`` into ``out_dir``
    (``be=None``: the frozen static module only, no artifact): the one builder of ``prepare_widths`` and
    ``export_item``."""
    from us3l.deploy.graph import build_deployable_graph

    graph_precision = _graph_precision(precision, be)
    return build_deployable_graph(
        model, w, be, None if be is None else out_dir, input_shape, precision=graph_precision,
        require_bn_stats=require_bn_stats, example=example,
        calibration=calibration if graph_precision == "int8" and be is not None else None,
        onnx_opset=onnx_opset if be == "onnx" else None,
    )


def export_item(
    item: StaticWidth, model: nn.Module, backend: str, root: Path, input_shape: tuple[int, ...], precision: str,
    require_bn_stats: bool = False, calibration: Any = None,
) -> StaticWidth:
    """``item`` (prepared with ``export=False``) with its artifact exported into ``root/<key>`` and hashed: the
    same deployable graph ``prepare_widths`` would have built."""
    from us3l.profiler.timers import example_input

    graph = _width_graph(model, item.width, export_backend(backend), root / item.key, input_shape, precision,
                         require_bn_stats, calibration, example_input(input_shape))
    return replace(item, bn=graph.bn, artifact=graph.artifact, graph_sha256=graph.graph_sha256,
                   graph_structure_sha256=graph.graph_structure_sha256)


#: What a profile records of its INT8 calibration set (enough to rebuild the same quantized graphs).
CALIB_FACTS = ("size", "sha256", "data", "split", "seed")

#: Profiling backends that time INT8 artifacts (eager torch has no int8 kernels here; TensorRT INT8 engines are
#: built by ``us3l export --backend tensorrt --precision int8`` but not yet timed by the trtexec sweep).
INT8_BACKENDS = ("onnx", "openvino")


def check_int8(backend: str, calibration: Any) -> None:
    """Refuse (one line) INT8 profiling on a backend that cannot run it here, or without calibration images."""
    if backend == "torch":
        raise US3LError("the torch backend times eager PyTorch in fp32; profile int8 with --backend onnx or openvino")
    if backend not in INT8_BACKENDS:
        raise US3LError(
            f"profiling int8 on {backend} is not implemented (int8 profiles: {', '.join(INT8_BACKENDS)}); "
            "export the INT8 engine with us3l export --backend tensorrt --precision int8"
        )
    if calibration is None:
        raise US3LError("int8 profiling needs calibration images (us3l.deploy.quantize.CalibrationSet)")


def check_local_requirements(spec: DeviceSpec, backends: Sequence[str] = ()) -> None:
    """A local run of a Jetson / CUDA device needs that hardware here; otherwise say how to reach it. With
    ``openvino`` in ``backends``, its runtime and the device's ``openvino_device`` must be here too (one line
    naming the device file, before any export or timing)."""
    from us3l.devices.detect import has_cuda_gpu, is_jetson

    how = (
        f"run us3l on the board itself, or reach it over SSH: us3l profile --device {spec.name} "
        f"--host ssh://user@board (or a --device-file with [reach] host)"
    )
    if spec.requires_tegra and not is_jetson():
        raise US3LError(f"device '{spec.name}' is an NVIDIA Jetson and this machine is not one: {how}")
    if spec.requires_cuda and not has_cuda_gpu():
        raise US3LError(f"device '{spec.name}' needs an NVIDIA GPU with CUDA and this machine has none: {how}")
    if "openvino" in backends:
        from us3l.deploy.backends import get_backend

        get_backend("openvino").require_runtime()
        from us3l.deploy.backends.openvino import require_device, shared_core

        require_device(shared_core(), spec.openvino_device, f"device file {spec.source}: ")


def check_timed_device(spec: DeviceSpec, backends: Sequence[str]) -> None:
    """With ``openvino`` in ``backends``, refuse in one line naming the device file an ``openvino_device`` that a
    latency profile cannot time (``BATCH:...``: ``openvino_devices.timing_problem``), locally or over SSH; the
    profile command calls it before any model is built."""
    from us3l.deploy.backends.openvino_devices import timing_problem

    problem = timing_problem(spec.openvino_device) if "openvino" in backends else None
    if problem is not None:
        raise US3LError(f"device file {spec.source}: {problem}")


def resolve_backend(spec: DeviceSpec, backend: str | None) -> str:
    """``backend`` (checked against the device) or the device's first choice."""
    if backend is None:
        return spec.backends[0]
    b = canonical_backend(backend)  # the aliases a device file accepts (ort, ov, trtexec, ...)
    if b not in spec.backends:
        raise US3LError(f"device '{spec.name}' supports backends {', '.join(spec.backends)}, not '{backend}'")
    return b


@dataclass(frozen=True)
class Site:
    """Where the sessions live: ``open(item)`` loads one width's session as a timer for a ``with`` block;
    ``rss`` / ``peak`` / ``available`` read the memory of the process holding them (this one, or the runner on
    the device; None where unknown, e.g. trtexec, which runs a process per measurement); ``guard``: the host
    checks the memory limit before each load (locally; a remote runner checks it itself)."""

    open: Callable[[StaticWidth], AbstractContextManager[Timer]]
    rss: Callable[[], int | None]
    peak: Callable[[], int | None]
    available: Callable[[], int | None]
    guard: bool
    scope: str  # what ``peak`` measures, recorded in the profile


def _none() -> None:
    return None


@contextmanager
def open_site(
    spec: DeviceSpec,
    backend: str,
    items: list[StaticWidth],
    input_shape: tuple[int, ...],
    threads: int,
    precision: str,
    model: nn.Module | None = None,
    require_bn_stats: bool = False,
    max_memory_mb: float | None = None,
    export_on_open: Callable[[str], StaticWidth] | None = None,
) -> Iterator[tuple[Site, dict[str, Any]]]:
    """A ``Site`` for every width's artifact (``items`` from ``prepare_widths``) on the device, plus facts to
    record (runtime version, remote fingerprint). Nothing is loaded until ``Site.open``; the eager torch
    backend rebuilds a width's static module from ``model`` when it was dropped. On this machine, a width
    prepared without its artifact is exported when first opened, by ``export_on_open(key)``."""
    from us3l.profiler import window as mem
    from us3l.profiler.timers import example_input, interleaved_notes, load_interleaved, runner_timer, torch_timer

    x = example_input(input_shape)
    facts: dict[str, Any] = {}
    local = (mem.rss_bytes, mem.peak_rss_bytes, mem.available_bytes)
    with ExitStack() as stack:
        if backend == "torch":
            if not spec.reach.is_local:
                raise US3LError("the torch backend measures only locally (eager PyTorch on this machine)")
            dev = "cuda" if spec.requires_cuda else "cpu"
            if precision != "fp32" and dev == "cpu":
                raise US3LError("the torch backend runs fp32 on CPU; use --backend onnx/openvino for fp16")
            facts["runtime_version"] = torch.__version__

            @contextmanager
            def open_torch(it: StaticWidth) -> Iterator[Timer]:
                static = it.model
                if static is None:
                    from us3l.deploy.graph import build_deployable_graph

                    if model is None:
                        raise ValueError("open_site needs the slimmable model to rebuild a dropped width")
                    static = build_deployable_graph(
                        model, it.width, None, None, input_shape, precision="fp32",
                        require_bn_stats=require_bn_stats, example=x,
                    ).module
                static = static.half() if precision == "fp16" else static
                yield torch_timer(static, x.half() if precision == "fp16" else x, threads, dev)

            yield Site(open_torch, *local, guard=True, scope="process"), facts
            return
        arts = {it.key: it.artifact for it in items}  # built by prepare_widths: the graphs export ships
        if not spec.reach.is_local and any(a is None for a in arts.values()):
            raise ValueError("a remote sweep needs every width's artifact before it starts")
        if backend == "tensorrt":
            from us3l.profiler.executors import LocalExecutor
            from us3l.profiler.trt_timers import TrtexecSession

            ex: Any = LocalExecutor(spec.reach.command_timeout_s)
            if not spec.reach.is_local:
                from us3l.devices.ssh import SSHSession

                ex = stack.enter_context(SSHSession(spec.reach))
            trt = TrtexecSession(ex, precision=precision)
            stack.callback(trt.close)
            for it in items:  # engines are files on the device; trtexec holds one only while it measures
                trt.build(it.key, arts[it.key].path)
            facts["runtime_version"] = trt.version
            if not spec.reach.is_local:
                facts["fingerprint"] = _remote_fingerprint(ex)

            @contextmanager
            def open_trt(it: StaticWidth) -> Iterator[Timer]:
                yield trt.timer(it.key)

            yield Site(open_trt, _none, _none, _none, guard=False, scope="none"), facts
            return
        if spec.reach.is_local:
            from us3l.deploy.backends import get_backend

            be = get_backend(backend)
            device = spec.openvino_device if backend == "openvino" else "cpu"
            xn = x.numpy()

            @contextmanager
            def open_local(it: StaticWidth) -> Iterator[Timer]:
                art = arts.get(it.key)
                if art is None:
                    if export_on_open is None:
                        raise ValueError(f"width {it.width:g} was prepared without its artifact")
                    art = arts[it.key] = export_on_open(it.key).artifact
                with load_interleaved(backend, art.path, threads, device, precision) as runner:
                    yield runner_timer(runner, xn)

            facts["runtime_version"] = be.runtime_version()
            facts["extra"] = interleaved_notes(backend)
            yield Site(open_local, *local, guard=True, scope="process"), facts
            return
        from us3l.devices.ssh import SSHSession
        from us3l.profiler.remote import RemoteRunner

        session = stack.enter_context(SSHSession(spec.reach))
        models = {it.key: (arts[it.key].files, input_shape) for it in items}
        remote = stack.enter_context(
            RemoteRunner(session, backend, models, threads or None, spec.openvino_device, precision, max_memory_mb,
                         where=f"device file {spec.source}: ")
        )
        facts["runtime_version"] = remote.ready.get("version")
        facts["fingerprint"] = remote.ready.get("fingerprint")
        facts["threads"] = remote.ready.get("threads")
        facts["extra"] = interleaved_notes(backend)

        def stat(name: str) -> Callable[[], int | None]:
            def read() -> int | None:  # an integer or null: checked as the answer arrived (remote.FACTS)
                return remote.stat().get(name)

            return read

        site = Site(lambda it: remote.open(it.key), stat("rss_bytes"), stat("peak_rss_bytes"),
                    stat("available_bytes"), guard=False, scope="remote runner")
        yield site, facts


def plan_window(
    site: Site, items: list[StaticWidth], backend: str, max_memory_mb: float | None, max_window: int | None = None
) -> WindowPlan:
    """Load the widest width's session once (the first of ``items``' coverage order) to measure what a session
    takes, and choose the window (``us3l.profiler.window.choose_window``)."""
    from us3l.profiler.window import MAX_WINDOW

    widest = items[coverage_order(len(items))[0]]
    session = estimate_session_bytes(backend, widest.weight_bytes, widest.activation_bytes)
    limit = None if max_memory_mb is None else int(max_memory_mb * 2**20)
    before = site.rss()
    if before is not None:
        with site.open(widest) as timer:
            timer(1)
            after = site.rss()
        if after is not None:
            session = max(session, after - before)
    return choose_window(len(items), session, before, site.available(), limit, max_window or MAX_WINDOW)


def _remote_fingerprint(session: Any) -> dict[str, Any]:
    """Run ``fingerprint.py`` with the device's Python (best effort)."""
    import json

    from us3l.profiler.remote import RUNNER_FILES, device_fingerprint

    try:
        tmp = session.mkdtemp("us3l-fp")
        try:
            session.put(RUNNER_FILES[1], f"{tmp}/fingerprint.py")
            res = session.run([session.reach.python, f"{tmp}/fingerprint.py"], timeout=60)
            if res.returncode != 0:
                return {"error": res.stderr.strip()[-200:]}
            return device_fingerprint(json.loads(res.stdout), f"fingerprint.py on {session.reach.url}")
        finally:
            session.rmtree(tmp)
    except (US3LError, ValueError, RecursionError) as exc:  # ValueError: not JSON; RecursionError: nested too deep
        return {"error": str(exc)[:200] or type(exc).__name__}


def _measure_adaptive(
    items: Sequence[StaticWidth], order: Sequence[str], measure: Callable[[list[str]], Any],
    policy: MeasurementPolicy, budget_spent: Callable[[], bool] = lambda: False,
    before_round: Callable[[list[str]], None] = lambda keys: None,
) -> tuple[dict[str, Any], float, int, dict[str, Any]]:
    """The adaptive sweep: ``measure`` the covering subset, then the midpoints of rough intervals until the fit
    is smooth; interpolate every other width. Once ``budget_spent()`` no further round starts: widths timed
    with a chunk each are too noisy for the fit to ever look smooth, so refining would time (and export) the
    whole grid. ``before_round(keys)`` runs before each round, while no session is open (the lazy exports).
    Returns (results by key, measuring seconds, max live sessions, the profile's ``adaptive`` document)."""
    from us3l.profiler import interpolate as ip
    from us3l.profiler.measure import Measurement

    macs = {it.key: float(it.macs) for it in items}
    rank = {k: i for i, k in enumerate(order)}  # the sweep's coverage order (widest first: the memory probe)
    results: dict[str, Any] = {}
    wall, live, rounds, stopped = 0.0, 0, 0, False
    keys = sorted(ip.initial_keys(macs), key=rank.__getitem__)
    while keys:
        before_round(keys)
        res = measure(keys)
        results.update(res.results)
        wall += res.wall_s
        live = max(live, res.max_live)
        rounds += 1
        if budget_spent():
            stopped = True
            break
        points = {k: ip.point_of(macs[k], results[k].stats) for k in results}
        keys = sorted(ip.next_keys(macs, points, policy.target_rel_ci), key=rank.__getitem__)
    measured = {k: (macs[k], results[k].stats) for k in list(results)}
    err = ip.fit_error([ip.point_of(m, s) for m, s in measured.values()])
    for it in items:
        if it.key not in results:
            results[it.key] = Measurement(stats=ip.interpolated_stats(macs[it.key], measured, err),
                                          stop_reason="interpolated", elapsed_s=0.0)
    doc = {
        "method": "piecewise-linear in MACs between measured neighbours; refined at the midpoint of every "
                  "interval whose leave-one-out error exceeds the CI (or the CI target)",
        "measured": len(measured), "interpolated": len(items) - len(measured), "rounds": rounds,
        "fit_rel_error": round(err, 6), "stopped_by_budget": stopped,
    }
    return results, wall, live, doc


def swept_precision(spec: DeviceSpec, backend: str, precision: str | None) -> str:
    """The precision a sweep of ``backend`` times and records: ``precision``, else the device's default; onnxruntime
    runs the fp32 export where the device's default is another (fp16), recorded as fp32."""
    precision = precision or spec.precision
    return "fp32" if backend == "onnx" and precision not in ("fp32", "int8") else precision


@keeps_torch_threads
def run_sweep(
    model: nn.Module,
    model_name: str,
    widths: Sequence[float],
    spec: DeviceSpec,
    input_size: int,
    *,
    backend: str | None = None,
    batch: int | None = None,
    threads: int | None = None,
    policy: MeasurementPolicy | None = None,
    checkpoint_sha256: str | None = None,
    on_round: Callable[[int, dict[str, int]], None] | None = None,
    require_bn_stats: bool = False,
    max_memory_mb: float | None = None,
    max_total_seconds: float | None = None,
    max_window: int | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    on_prepare: Callable[[int, int], None] | None = None,
    adaptive: bool = False,
    precision: str | None = None,
    calibration: Any = None,
) -> Profile:
    """Profile ``widths`` of a slimmable ``model`` on ``spec``: each width's deployable graph, as exported.

    ``precision`` overrides the device's (``spec.precision``); ``"int8"`` times each width's post-training INT8
    artifact (onnx: Q/DQ, openvino: NNCF), quantized with ``calibration`` as ``us3l export --precision int8``
    would (see ``check_int8``).

    A width without calibrated (or running) BN statistics is timed with frozen initial statistics and recorded
    as ``bn: "frozen-uncalibrated"``; ``require_bn_stats=True`` refuses such a width instead.

    Memory: at most a window of sessions is loaded at once (``plan_window``), within ``max_memory_mb``
    (default: the device file's ``max_memory_mb``) of resident memory of the process that holds them;
    ``max_window`` caps the window (default ``us3l.profiler.window.MAX_WINDOW``). Time: ``max_total_seconds``
    bounds the whole sweep (export included); every width gets a share, and one that misses the CI target
    within it stops with ``stop_reason = "budget"``, unstable. Each width takes at least one chunk of samples,
    so a budget too small for the grid is overrun by that much. ``on_progress`` gets a ``SweepProgress`` (ETA)
    after each round, ``on_prepare(done, total)`` after each width's export.

    ``adaptive``: measure a covering subset first, then only where latency is not linear in MACs between
    measured neighbours; interpolate the rest (``us3l.profiler.interpolate``; records flagged ``interpolated``).
    """
    from us3l.profiler import fingerprint
    from us3l.profiler.timers import resolve_threads
    from us3l.profiler.window import reset_peak_rss

    t_start = time.perf_counter()
    if not widths:
        raise US3LError("no widths to profile")
    if max_memory_mb is None:
        max_memory_mb = spec.max_memory_mb
    if max_memory_mb is not None:  # every caller's limit (the CLI's, a device file's, one given in Python): one check
        memory_mb(max_memory_mb, "max_memory_mb")
    if max_total_seconds is not None and not (isinstance(max_total_seconds, int | float)
                                              and 0 < max_total_seconds < float("inf")):
        raise US3LError(f"max_total_seconds must be a finite number > 0, got {max_total_seconds!r}")
    be = resolve_backend(spec, backend)
    precision = swept_precision(spec, be, precision)
    if precision == "int8":
        check_int8(be, calibration)
    check_timed_device(spec, [be])
    if spec.reach.is_local:
        check_local_requirements(spec, [be])
    policy = policy or spec.policy
    input_shape = (batch or spec.batch, 3, spec.input_size or input_size, spec.input_size or input_size)
    if be == "tensorrt":  # trtexec on the GPU: no CPU thread count applies, none is recorded
        if threads is not None:
            raise US3LError("--threads pins a CPU runtime's threads; TensorRT runs on the GPU (trtexec takes no "
                            "thread count): drop --threads")
        pinned = None
    else:
        pinned = resolve_threads(threads or spec.threads) if spec.reach.is_local else (threads or spec.threads)
    swept = reset_peak_rss()
    # The adaptive sweep on this machine exports a width only when it is about to be timed: a 378-width
    # ResNet-50 grid then exports the few dozen widths it measures, not all of them.
    lazy = adaptive and spec.reach.is_local and be in ("onnx", "openvino")
    # Under a budget, preparation (export, hashes, costs) may use PREPARE_SHARE of it, widest width first then
    # spread over the range; widths it does not reach are not profiled, and the profile says how many.
    deadline = None if max_total_seconds is None else t_start + PREPARE_SHARE * max_total_seconds
    with owned_temporary_directory("us3l-profile-") as tmp:
        items = prepare_widths(model, widths, input_shape, precision, be, Path(tmp), require_bn_stats,
                               keep_models=False, on_item=on_prepare, calibration=calibration, export=not lazy,
                               order=coverage_order(len(widths)), deadline=deadline,
                               onnx_opset=device_onnx_opset(spec) if be == "tensorrt" else None)
        prepared_s = time.perf_counter() - t_start
        by_key = {it.key: it for it in items}

        def export_on_open(key: str) -> StaticWidth:
            if by_key[key].artifact is None:
                by_key[key] = export_item(by_key[key], model, be, Path(tmp), input_shape, precision,
                                          require_bn_stats, calibration)
            return by_key[key]

        def export_round(keys: list[str]) -> None:
            # Export a round's widths before its sessions open: an export's transient memory (tracing, the ONNX
            # bytes, OpenVINO's conversion) then never adds to a window of live sessions (measured: ResNet-50 on
            # OpenVINO peaked at 2.2 GB exporting on open, 1.6 GB exporting first).
            for key in keys:
                export_on_open(key)

        with open_site(spec, be, items, input_shape, pinned or 0, precision, model, require_bn_stats,
                       max_memory_mb, export_on_open if lazy else None) as (site, facts):
            plan = plan_window(site, items, be, max_memory_mb, max_window)
            order = [items[i].key for i in coverage_order(len(items))]

            def open_timer(key: str, live: int) -> AbstractContextManager[Timer]:
                if site.guard and live and plan.limit_bytes is not None:
                    now = site.rss()
                    if now is not None and now + plan.session_bytes > plan.limit_bytes:
                        raise WindowFull(key)
                return site.open(by_key[key])

            def budget_left() -> float | None:
                """Seconds of ``max_total_seconds`` not spent yet (0 when spent), None without a budget."""
                if max_total_seconds is None:
                    return None
                return max(0.0, max_total_seconds - (time.perf_counter() - t_start))

            def measure(keys: list[str]) -> Any:
                """One windowed measurement of ``keys``; under a total budget they get their fair part of what
                is left (in proportion to the widths not measured yet)."""
                left = budget_left()
                if left is not None:
                    left *= len(keys) / max(1, len(items) - len(results))
                return measure_windowed(keys, open_timer, policy, window=plan.size, max_total_s=left,
                                        on_round=on_round, on_progress=on_progress)

            results: dict[str, Any] = {}
            measure_s, max_live, adaptive_doc = 0.0, 0, None
            if not adaptive:
                res = measure(order)
                results, measure_s, max_live = dict(res.results), res.wall_s, res.max_live
            else:
                results, measure_s, max_live, adaptive_doc = _measure_adaptive(
                    items, order, measure, policy, lambda: budget_left() == 0.0,
                    export_round if lazy else lambda keys: None,
                )
            peak = site.peak()
    wall = time.perf_counter() - t_start
    # a remote device's fingerprint is its own (an error record when it sent none), never this host's
    fp = facts["fingerprint"] if "fingerprint" in facts else fingerprint.collect()
    items = [by_key[it.key] for it in items]  # with the artifacts exported during the sweep
    records = tuple(
        ProfileRecord(
            width=it.width, channels=it.channels, macs=it.macs, params=it.params, weight_bytes=it.weight_bytes,
            activation_bytes=it.activation_bytes, latency=results[it.key].stats,
            stop_reason=results[it.key].stop_reason, bn=it.bn, graph_sha256=it.graph_sha256,
            graph_structure_sha256=it.graph_structure_sha256, share_s=results[it.key].share_s,
            timing_s=results[it.key].elapsed_s, interpolated=results[it.key].stop_reason == "interpolated",
        )
        for it in items
    )
    stable = sum(1 for r in records if r.latency.stable)
    return Profile(
        model=model_name,
        device=spec.name,
        backend=be,
        precision=precision,
        input_shape=input_shape,
        threads=facts.get("threads") or pinned,
        policy=policy.to_dict(),
        fingerprint=fp,
        records=records,
        checkpoint_sha256=checkpoint_sha256,
        init_seed=None if checkpoint_sha256 else getattr(model, "init_seed", None),
        reach=spec.reach.url,
        runtime_version=facts.get("runtime_version"),
        extra={
            **({"openvino_device": spec.openvino_device} if be == "openvino" else {}),
            **facts.get("extra", {}),
            **({"int8_calibration": {k: v for k, v in calibration.describe().items() if k in CALIB_FACTS}}
               if precision == "int8" and calibration is not None else {}),
        },
        peak_rss_bytes=peak,
        adaptive=adaptive_doc,
        window={
            **plan.to_dict(), "max_live": max_live,
            "peak_scope": "sweep" if site.scope == "process" and swept else site.scope,
        },
        time_budget={
            "max_total_seconds": max_total_seconds, "wall_s": wall, "prepare_s": prepared_s,
            "measure_s": measure_s, "stable_widths": stable,
            "unstable_widths": sum(1 for r in records if not r.latency.stable and not r.interpolated),
            "budget_stopped": sum(1 for r in records if r.stop_reason == "budget"),
            "requested_widths": len(widths), "prepared_widths": len(items),
        },
    )
