"""Bounded memory and time of a sweep: the window bounds the live sessions (counted, fake and real
onnxruntime), the budget's per-width share and the ``budget`` / unstable flag (fake clock: no timing
thresholds), the window choice, and the remote runner's memory limit (the real script, run locally)."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.profiler.test_measure import FakeClock, sampler
from tests.shared_exports import Prepared, prepare_once, reuse_prepared
from us3l.devices.registry import get_device
from us3l.profiler import timers as timers_mod
from us3l.profiler.measure import MeasurementPolicy, WindowFull, measure_windowed, stop_reason
from us3l.profiler.remote import RUNNER_FILES
from us3l.profiler.sweep import run_sweep
from us3l.profiler.window import choose_window, coverage_order, width_share

FAST = MeasurementPolicy(warmup=2, min_repeats=10, max_repeats=40, target_rel_ci=0.05, max_seconds=0.3, chunk=5)


class Counted:
    """``open_timer`` over fake samplers that counts how many timers are open at once."""

    def __init__(self, clock: FakeClock, noise: dict[str, float] | None = None, full_at: int | None = None):
        self.clock, self.noise, self.full_at = clock, noise or {}, full_at
        self.live = 0
        self.most = 0
        self.opened: list[str] = []

    @contextmanager
    def __call__(self, key: str, live: int):
        assert live == self.live  # the loop reports the true count
        if self.full_at is not None and live >= self.full_at:
            raise WindowFull(key)
        self.live += 1
        self.most = max(self.most, self.live)
        self.opened.append(key)
        try:
            yield sampler(self.clock, 0.001, self.noise.get(key, 0.001), len(self.opened))
        finally:
            self.live -= 1


def test_window_bounds_live_timers_and_every_width_is_measured():
    clock = FakeClock()
    opener = Counted(clock)
    keys = [f"w{i}" for i in range(10)]
    res = measure_windowed(keys, opener, FAST, window=3, clock=clock)
    assert opener.most == 3 and res.max_live == 3 and opener.live == 0  # all closed at the end
    assert list(res.results) == keys and opener.opened == keys
    assert all(m.stats.n >= FAST.min_repeats for m in res.results.values())


def test_window_full_defers_a_width_until_one_closes():
    clock = FakeClock()
    opener = Counted(clock, full_at=2)
    res = measure_windowed([f"w{i}" for i in range(6)], opener, FAST, window=5, clock=clock)
    assert opener.most == 2 and res.max_live == 2 and len(res.results) == 6


def test_width_share_splits_what_is_left():
    assert width_share(100.0, 0.0, 9, 0.0) == pytest.approx(10.0)
    # 20 s reserved by the widths being timed, 4 to open after this one at 2 s each: (100-20-8)/5
    assert width_share(100.0, 20.0, 4, 2.0) == pytest.approx(14.4)
    assert width_share(5.0, 10.0, 3, 0.0) == 0.0 and width_share(-1.0, 0.0, 0, 0.0) == 0.0
    assert width_share(float("nan"), 0.0, 0, 0.0) == 0.0


def test_budget_flags_noisy_widths_unstable_and_quiet_ones_reach_the_target():
    clock = FakeClock()
    policy = MeasurementPolicy(warmup=0, min_repeats=10, max_repeats=10_000, target_rel_ci=0.01,
                               max_seconds=1e6, chunk=10)
    opener = Counted(clock, noise={"noisy": 0.5})
    res = measure_windowed(["noisy", "quiet"], opener, policy, window=2, max_total_s=1.0, clock=clock)
    noisy, quiet = res.results["noisy"], res.results["quiet"]
    # the first width opened gets half of the 1 s budget, the second half of what the first did not reserve
    assert noisy.share_s == pytest.approx(0.5) and quiet.share_s == pytest.approx(0.5)
    assert noisy.stop_reason == "budget" and not noisy.stats.stable and noisy.elapsed_s >= 0.5
    assert noisy.elapsed_s < 0.5 + 10 * 0.001 * 20  # stopped within one chunk of its share: not measured forever
    assert quiet.stop_reason == "target" and quiet.stats.stable
    assert res.wall_s <= 1.0 + 0.1


def test_spent_budget_gives_each_width_one_chunk():
    clock = FakeClock()
    res = measure_windowed(["a", "b", "c"], Counted(clock), FAST, window=1, max_total_s=0.0, clock=clock)
    for m in res.results.values():
        assert m.stop_reason == "budget" and m.stats.n == FAST.chunk and m.share_s == 0.0
        assert not m.stats.stable  # cut short before min_repeats: never called stable


def test_stop_reason_budget_after_the_policy_rules():
    policy = MeasurementPolicy(warmup=0, min_repeats=5, max_repeats=100, target_rel_ci=0.02, max_seconds=10, chunk=5,
                               tail_quantile=0)
    assert stop_reason([1.0, 3.0] * 3, 2.0, policy, share_s=1.5) == "budget"
    assert stop_reason([1.0] * 5, 2.0, policy, share_s=1.5) == "target"
    assert stop_reason([1.0, 3.0] * 3, 10.0, policy, share_s=1.5) == "time_cap"
    assert stop_reason([1.0, 3.0] * 3, 1.0, policy, share_s=1.5) is None


def test_choose_window():
    mib = 2**20
    w = choose_window(90, 100 * mib, 500 * mib, 20_000 * mib, 1000 * mib)
    assert (w.size, w.reason, w.limit_bytes) == (5, "memory", 1000 * mib)
    w = choose_window(90, 10 * mib, 500 * mib, 20_000 * mib, None)
    assert (w.size, w.reason) == (8, "max_window")
    w = choose_window(3, 10 * mib, 500 * mib, None, None)
    assert (w.size, w.reason) == (3, "widths")
    w = choose_window(90, 100 * mib, 500 * mib, 400 * mib, None)  # half of the available memory: 2 sessions
    assert (w.size, w.reason) == (2, "memory")
    assert choose_window(90, 100 * mib, 900 * mib, None, 600 * mib).size == 1  # under the baseline: one session


def test_coverage_order_starts_widest_and_is_a_permutation():
    for n in (1, 2, 7, 90):
        order = coverage_order(n)
        assert order[0] == n - 1 and sorted(order) == list(range(n))
    assert coverage_order(9)[:4] == [8, 0, 4, 2]


@pytest.fixture()
def counted_sessions(monkeypatch):
    """Wrap ``load_interleaved`` so every real onnxruntime session opened by the sweep is counted."""
    state = {"live": 0, "most": 0, "opened": 0}
    real = timers_mod.load_interleaved

    @contextmanager
    def counting(*args, **kwargs):
        with real(*args, **kwargs) as runner:
            state["live"] += 1
            state["opened"] += 1
            state["most"] = max(state["most"], state["live"])
            try:
                yield runner
            finally:
                state["live"] -= 1

    monkeypatch.setattr(timers_mod, "load_interleaved", counting)
    return state


TINY_WIDTHS = [0.25, 0.5, 1.0]  # three widths: a window of two must still defer one


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory) -> Prepared:
    """Every width of the fresh tiny cifar_resnet18 (16x16) exported to ONNX once for this module's real sweeps (what
    they check is the window and the budget over real onnxruntime sessions, not the export)."""
    from us3l.deploy.graph import fresh_model

    return prepare_once(fresh_model("cifar_resnet18", base_channels=8), TINY_WIDTHS, (1, 3, 16, 16), "onnx",
                        tmp_path_factory.mktemp("tiny-exports"))


@pytest.fixture()
def shared_exports(monkeypatch, tiny_exports: Prepared) -> list[list[float]]:
    return reuse_prepared(monkeypatch, tiny_exports)


@pytest.mark.parametrize(("kwargs", "size"), [({"max_window": 2}, 2), ({"max_memory_mb": 1}, 1)])
def test_real_sweep_holds_at_most_the_window(counted_sessions, shared_exports, kwargs, size):
    from us3l.deploy.graph import fresh_model

    net = fresh_model("cifar_resnet18", base_channels=8)
    widths = TINY_WIDTHS
    prof = run_sweep(net, "tiny", widths, get_device("cpu"), 16, backend="onnx", threads=1, policy=FAST, **kwargs)
    assert shared_exports == [widths]
    assert counted_sessions["most"] == size and counted_sessions["live"] == 0
    assert counted_sessions["opened"] == len(widths) + 1  # + the memory probe of the widest
    assert prof.window is not None and prof.window["size"] == size and prof.window["max_live"] == size
    assert prof.window["reason"] == ("memory" if "max_memory_mb" in kwargs else "max_window")
    assert prof.peak_rss_bytes and prof.peak_rss_bytes > 0
    assert [r.width for r in prof.records] == widths and all(r.latency.n >= 1 for r in prof.records)
    tb = prof.time_budget
    assert tb is not None and tb["max_total_seconds"] is None
    assert tb["stable_widths"] + tb["unstable_widths"] == len(widths)


def test_real_sweep_under_a_spent_budget_flags_every_width(shared_exports):
    from us3l.deploy.graph import fresh_model

    net = fresh_model("cifar_resnet18", base_channels=8)
    prof = run_sweep(net, "tiny", [0.25, 1.0], get_device("cpu"), 16, backend="onnx", threads=1, policy=FAST,
                     max_total_seconds=1e-6)
    assert shared_exports == [[0.25, 1.0]]
    # Preparation may use half the budget; spent, only the first width of the coverage order (the widest) is
    # prepared and timed, and the profile says how many were asked for.
    assert [r.width for r in prof.records] == [1.0]
    assert all(r.stop_reason == "budget" and r.share_s == 0.0 and not r.latency.stable for r in prof.records)
    tb = prof.time_budget
    assert tb["budget_stopped"] == 1 and tb["stable_widths"] == 0
    assert (tb["requested_widths"], tb["prepared_widths"]) == (2, 1)


def test_preparation_stops_at_half_the_budget_in_coverage_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from us3l.deploy.graph import fresh_model
    from us3l.profiler import sweep

    clock = iter(range(1000))  # each deadline check: one more second
    monkeypatch.setattr(sweep, "_clock", lambda: float(next(clock)))
    net = fresh_model("cifar_resnet18", base_channels=8)
    widths = [0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    items = sweep.prepare_widths(net, widths, (1, 3, 16, 16), "fp32", "torch", None, keep_models=False,
                                 order=sweep.coverage_order(len(widths)), deadline=2.5)
    # checks after the 2nd, 3rd and 4th width read 0, 1, 2 s; the 5th reads 3 s > 2.5 s: four widths, the widest
    # first and then spread over the range (coverage order), returned in grid order with their grid keys
    order = sweep.coverage_order(len(widths))[:4]
    assert [it.key for it in items] == [f"w{i:03d}" for i in sorted(order)]
    assert [it.width for it in items] == [widths[i] for i in sorted(order)]
    assert 6 in order and 0 in order


def _tiny_onnx(path: Path, channels: int) -> None:
    """Conv(3->channels, 3x3, pad 1) + Relu + Flatten, written with onnx.helper: no torch exporter runs inside
    the pytest process (the TorchScript exporter crashed it now and then after many tests, exit 139)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(channels)
    weight = numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(channels, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels * 16 * 16])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _runner(tmp_path: Path, max_memory_mb: float) -> subprocess.Popen:
    for key, c in (("a", 256), ("b", 256)):
        (tmp_path / key).mkdir(exist_ok=True)
        if not (tmp_path / key / "model.onnx").exists():
            _tiny_onnx(tmp_path / key / "model.onnx", c)
    manifest = {"seed": 0, "models": {k: {"path": f"{k}/model.onnx", "input_shape": [1, 3, 16, 16]} for k in "ab"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    argv = [sys.executable, str(RUNNER_FILES[0]), "--backend", "onnx", "--manifest", str(tmp_path / "manifest.json"),
            "--threads", "1", "--max-memory-mb", str(max_memory_mb)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(proc: subprocess.Popen, msg: dict) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(msg) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.mark.parametrize("limit_mb", [1.0, 0.0])
def test_remote_runner_honours_max_memory(tmp_path, limit_mb):
    proc = _runner(tmp_path, limit_mb)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] and ready["rss_bytes"] > 0
        assert ready["max_memory_bytes"] == (2**20 if limit_mb else None)
        first = _ask(proc, {"cmd": "load", "key": "a"})
        assert first["loaded"] == "a" and first["live"] == 1  # the first model always loads
        second = _ask(proc, {"cmd": "load", "key": "b"})
        if limit_mb:  # 1 MiB is below any process: a second session is refused, nothing loaded
            assert second["full"] and second["live"] == 1 and second["limit_bytes"] == 2**20
            assert _ask(proc, {"cmd": "stat"})["live"] == 1
            assert _ask(proc, {"cmd": "unload", "key": "a"})["live"] == 0
            assert _ask(proc, {"cmd": "load", "key": "b"})["loaded"] == "b"  # room again
        else:
            assert second["loaded"] == "b" and second["live"] == 2
        samples = _ask(proc, {"cmd": "time", "key": "b", "n": 3})["samples"]
        assert len(samples) == 3 and all(np.isfinite(samples))
        _ask_quit = proc.stdin
        assert _ask_quit is not None
        _ask_quit.write(json.dumps({"cmd": "quit"}) + "\n")
        _ask_quit.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
