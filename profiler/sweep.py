"""One profiling sweep: every width of a model on one device with one backend -> a ``Profile``.

For each width: build the deployable graph with ``deploy.graph.build_deployable_graph`` -- the function
``us3l export`` ships with: materialize, freeze BN (calibrated, running, or -- for a width without statistics
-- the initial 0/1 ones; never batch statistics), export with the deploy backend -- count MACs/params
(``profiler.costs``), weight bytes and peak activation memory (``profiler.memory``), then measure all widths
together with the interleaved loop (``profiler.measure``) -- locally, on the board itself, or over SSH. Each
record names the graph it timed (``graph_sha256``, ``graph_structure_sha256``) and how BN was handled (``bn``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from devices.spec import DeviceSpec
from profiler.measure import MeasurementPolicy, Timer, measure_interleaved
from profiler.profile_file import Profile, ProfileRecord
from us3l.errors import US3LError


@dataclass(frozen=True)
class StaticWidth:
    """One width as it will be timed: its deployable graph (module + artifact), size and cost."""

    width: float
    key: str
    model: nn.Module
    channels: int
    macs: int
    params: int
    weight_bytes: int
    activation_bytes: int
    bn: str = "none"
    artifact: Any = None  # deploy.backends.Artifact; None for the eager torch backend
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
) -> list[StaticWidth]:
    """Build every width's deployable graph (into ``root/<key>``) and measure its size and cost."""
    from deploy.graph import build_deployable_graph
    from profiler.costs import count_costs
    from profiler.memory import activation_bytes, weight_bytes
    from profiler.timers import example_input

    x = example_input(input_shape)
    be = export_backend(backend)
    out = []
    for i, w in enumerate(widths):
        key = f"w{i:03d}"
        graph = build_deployable_graph(
            model, float(w), be, None if root is None or be is None else root / key, input_shape,
            precision="fp32" if be != "openvino" else precision, require_bn_stats=require_bn_stats, example=x,
        )
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
    return out


def check_local_requirements(spec: DeviceSpec) -> None:
    """A local run of a Jetson / CUDA device needs that hardware here; otherwise say how to reach it."""
    from devices.detect import has_cuda_gpu, is_jetson

    how = (
        f"run us3l on the board itself, or reach it over SSH: us3l profile --device {spec.name} "
        f"--host ssh://user@board (or a --device-file with [reach] host)"
    )
    if spec.requires_tegra and not is_jetson():
        raise US3LError(f"device '{spec.name}' is an NVIDIA Jetson and this machine is not one: {how}")
    if spec.requires_cuda and not has_cuda_gpu():
        raise US3LError(f"device '{spec.name}' needs an NVIDIA GPU with CUDA and this machine has none: {how}")


def resolve_backend(spec: DeviceSpec, backend: str | None) -> str:
    """``backend`` (checked against the device) or the device's first choice."""
    if backend is None:
        return spec.backends[0]
    b = {"onnxruntime": "onnx", "ort": "onnx", "trt": "tensorrt"}.get(backend.lower(), backend.lower())
    if b not in spec.backends:
        raise US3LError(f"device '{spec.name}' supports backends {', '.join(spec.backends)}, not '{backend}'")
    return b


@contextmanager
def open_timers(
    spec: DeviceSpec,
    backend: str,
    items: list[StaticWidth],
    input_shape: tuple[int, ...],
    threads: int,
    precision: str,
) -> Iterator[tuple[dict[str, Timer], dict[str, Any]]]:
    """Timers for every width's artifact (``items`` from ``prepare_widths``) on the device, plus facts to
    record (runtime version, remote fingerprint)."""
    from profiler.timers import example_input, interleaved_notes, load_interleaved, runner_timer, torch_timer

    x = example_input(input_shape)
    facts: dict[str, Any] = {}
    with ExitStack() as stack:
        timers: dict[str, Timer] = {}
        if backend == "torch":
            if not spec.reach.is_local:
                raise US3LError("the torch backend measures only locally (eager PyTorch on this machine)")
            dev = "cuda" if spec.requires_cuda else "cpu"
            if precision != "fp32" and dev == "cpu":
                raise US3LError("the torch backend runs fp32 on CPU; use --backend onnx/openvino for fp16")
            facts["runtime_version"] = torch.__version__
            for it in items:
                model = it.model.half() if precision == "fp16" else it.model
                timers[it.key] = torch_timer(model, x.half() if precision == "fp16" else x, threads, dev)
            yield timers, facts
            return
        arts = {it.key: it.artifact for it in items}  # built by prepare_widths: the graphs export ships
        if backend == "tensorrt":
            from profiler.executors import LocalExecutor
            from profiler.trt_timers import TrtexecSession

            ex: Any = LocalExecutor(spec.reach.command_timeout_s)
            if not spec.reach.is_local:
                from devices.ssh import SSHSession

                ex = stack.enter_context(SSHSession(spec.reach))
            trt = TrtexecSession(ex, precision=precision)
            stack.callback(trt.close)
            for it in items:
                trt.build(it.key, arts[it.key].path)
                timers[it.key] = trt.timer(it.key)
            facts["runtime_version"] = trt.version
            if not spec.reach.is_local:
                facts["fingerprint"] = _remote_fingerprint(ex)
            yield timers, facts
            return
        if spec.reach.is_local:
            from deploy.backends import get_backend

            be = get_backend(backend)
            device = spec.openvino_device if backend == "openvino" else "cpu"
            for it in items:
                runner = stack.enter_context(load_interleaved(backend, arts[it.key].path, threads, device, precision))
                timers[it.key] = runner_timer(runner, x.numpy())
            facts["runtime_version"] = be.runtime_version()
            facts["extra"] = interleaved_notes(backend)
            yield timers, facts
            return
        from devices.ssh import SSHSession
        from profiler.remote import RemoteRunner

        session = stack.enter_context(SSHSession(spec.reach))
        models = {it.key: (arts[it.key].files, input_shape) for it in items}
        remote = stack.enter_context(
            RemoteRunner(session, backend, models, threads or None, spec.openvino_device, precision)
        )
        facts["runtime_version"] = remote.ready.get("version")
        facts["fingerprint"] = remote.ready.get("fingerprint")
        facts["threads"] = remote.ready.get("threads")
        facts["extra"] = interleaved_notes(backend)
        timers = {it.key: remote.timer(it.key) for it in items}
        yield timers, facts


def _remote_fingerprint(session: Any) -> dict[str, Any]:
    """Run ``fingerprint.py`` with the device's Python (best effort)."""
    import json

    from profiler.remote import RUNNER_FILES

    try:
        tmp = session.mkdtemp("us3l-fp")
        try:
            session.put(RUNNER_FILES[1], f"{tmp}/fingerprint.py")
            res = session.run([session.reach.python, f"{tmp}/fingerprint.py"], timeout=60)
            return json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr.strip()[-200:]}
        finally:
            session.rmtree(tmp)
    except (US3LError, ValueError) as exc:
        return {"error": str(exc)}


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
) -> Profile:
    """Profile ``widths`` of a slimmable ``model`` on ``spec``: each width's deployable graph, as exported.

    A width without calibrated (or running) BN statistics is timed with frozen initial statistics and recorded
    as ``bn: "frozen-uncalibrated"``; ``require_bn_stats=True`` refuses such a width instead.
    """
    from profiler import fingerprint
    from profiler.timers import resolve_threads

    if not widths:
        raise US3LError("no widths to profile")
    be = resolve_backend(spec, backend)
    precision = spec.precision
    if be == "onnx" and precision != "fp32":
        precision = "fp32"  # onnxruntime runs the fp32 export; recorded as such
    if spec.reach.is_local:
        check_local_requirements(spec)
    policy = policy or spec.policy
    input_shape = (batch or spec.batch, 3, spec.input_size or input_size, spec.input_size or input_size)
    pinned = resolve_threads(threads or spec.threads) if spec.reach.is_local else (threads or spec.threads)
    with tempfile.TemporaryDirectory(prefix="us3l-profile-") as tmp:
        items = prepare_widths(model, widths, input_shape, precision, be, Path(tmp), require_bn_stats)
        with open_timers(spec, be, items, input_shape, pinned or 0, precision) as (timers, facts):
            results = measure_interleaved(timers, policy, on_round=on_round)
    fp = facts.get("fingerprint") or fingerprint.collect()
    records = tuple(
        ProfileRecord(
            width=it.width, channels=it.channels, macs=it.macs, params=it.params, weight_bytes=it.weight_bytes,
            activation_bytes=it.activation_bytes, latency=results[it.key].stats,
            stop_reason=results[it.key].stop_reason, bn=it.bn, graph_sha256=it.graph_sha256,
            graph_structure_sha256=it.graph_structure_sha256,
        )
        for it in items
    )
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
        },
    )
