"""``sync_bn``: BatchNorm statistics over the processes of a real 2-process gloo group on CPU equal one process's
statistics over the whole batch: outputs, input gradients, summed parameter gradients and running statistics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from us3l.slim.layers import SlimBatchNorm2d
from us3l.slim.syncbn import enable_sync_bn
from us3l.ssl.heads import GroupedBatchNorm1d

WORLD = 2


def _inputs(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)  # a mean far from 0: no cancellation
    return x, torch.randn(shape, generator=g, dtype=torch.float64)


def _layers() -> dict[str, torch.nn.Module]:
    torch.manual_seed(1)
    slim = SlimBatchNorm2d(32, track_running_stats=True).double()
    head = GroupedBatchNorm1d(8, track_running_stats=True).double()
    for m in (slim, head):
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return {"slim": slim, "head": head}


def _run(name: str, m: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor, groups: int) -> dict:
    m.train()
    m.batch_groups = groups
    x = x.clone().requires_grad_(True)
    if name == "slim":
        m.width = 0.5  # 16 of the 32 channels: the sliced affine and running statistics
        c = m.active_channels(0.5)
        assert c == 16
        y = m(x[:, :c])
        (y * upstream[:, :c]).sum().backward()
    else:
        y = m(x)
        (y * upstream).sum().backward()
    return {"y": y.detach(), "dx": x.grad, "dw": m.weight.grad, "db": m.bias.grad,
            "mean": m.running_mean.clone(), "var": m.running_var.clone()}


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, shape in (("slim", (8, 32, 3, 3)), ("head", (8, 8))):
            x, up = _inputs(shape)
            for groups in (1, 2):  # two views in one call: each view's global batch has its own statistics
                rows = torch.cat([c.chunk(WORLD)[rank] for c in x.chunk(groups)])  # this rank's part of each view
                ups = torch.cat([c.chunk(WORLD)[rank] for c in up.chunk(groups)])
                m = _layers()[name]
                assert len(enable_sync_bn(m)) == 1
                r = _run(name, m, rows, ups, groups)
                for key in ("dw", "db"):  # what DDP's all-reduce adds up
                    dist.all_reduce(r[key])
                results[(name, groups)] = r
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes
def test_two_processes_normalise_like_one_process_over_the_whole_batch(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(str(tmp_path / "store"), out), nprocs=WORLD, join=True)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(WORLD)]
    for name, shape in (("slim", (8, 32, 3, 3)), ("head", (8, 8))):
        x, up = _inputs(shape)
        for groups in (1, 2):
            want = _run(name, _layers()[name], x, up, groups)  # one process, the whole batch
            for key in ("y", "dx"):  # each rank holds its rows of every view
                got = torch.cat([torch.cat([r[(name, groups)][key].chunk(groups)[v] for r in ranks])
                                 for v in range(groups)])
                torch.testing.assert_close(got, want[key], rtol=1e-9, atol=1e-9, msg=f"{name} {groups} {key}")
            for key in ("dw", "db", "mean", "var"):
                for r in ranks:
                    torch.testing.assert_close(r[(name, groups)][key], want[key], rtol=1e-9, atol=1e-9,
                                               msg=f"{name} {groups} {key}")


def test_a_marked_layer_outside_a_process_group_normalises_per_process() -> None:
    m = _layers()["slim"]
    enable_sync_bn(m)
    x, _ = _inputs((4, 32, 3, 3))
    y = m.train()(x)
    torch.testing.assert_close(y, F.batch_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps))


def test_a_batch_norm_that_cannot_synchronise_is_refused() -> None:
    net = torch.nn.Sequential(SlimBatchNorm2d(4), torch.nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match=r"^sync_bn: 1 \(BatchNorm2d\) cannot synchronise its statistics$"):
        enable_sync_bn(net)
