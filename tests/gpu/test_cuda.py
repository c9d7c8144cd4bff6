"""CUDA: the same losses, gradients and BN buffers as on CPU for every method; eager slimming equal to the
materialized network on the GPU; AMP training end to end (checkpoint loadable on CPU, GPU recorded); the torch
profiling backend on the GPU; DDP over NCCL through real torchrun.

Skipped where no CUDA GPU is visible (CI and the 2-core development machine). Run them on a GPU machine with
``scripts/gpu_check.sh``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.models.test_models import SMALL_INPUT, make
from tests.slim.test_materialize import check_parity
from tests.train.conftest import write_tiny_config
from us3l.models import create_model
from us3l.ssl import create_method
from us3l.train import make_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CFG = dict(
    model="cifar_resnet18", model_kwargs={"base_channels": 8}, proj_hidden=16, pred_hidden=16, proj_dim=8, epochs=4
)
METHODS = ("us3l", "us3l_byol", "naive_simsiam", "naive_simclr", "single")


@pytest.fixture(autouse=True)
def _exact_fp32() -> Iterator[None]:
    """TF32 off for the parity checks (cuDNN convolutions use it by default on Ampere and later)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _method(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    track = name in ("single", "naive_simsiam")
    bb = create_model("cifar_resnet18", num_classes=0, base_channels=8, bn_track_stats=track)
    return create_method(name, bb, make_config({**CFG, "method": name}))


def _step(m: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, sub: bool) -> torch.Tensor:
    loss, targets = m(x1, x2, 1.0)
    if sub:
        loss = loss + m(x1, x2, 0.25, targets)[0] + m(x1, x2, 0.5, targets)[0]
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("name", METHODS)
def test_method_step_on_cuda_matches_cpu(name: str) -> None:
    cpu = _method(name)
    gpu = copy.deepcopy(cpu).cuda()
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(6, 3, 16, 16, generator=g), torch.randn(6, 3, 16, 16, generator=g)
    sub = name != "single"
    lc = _step(cpu, x1, x2, sub)
    lg = _step(gpu, x1.cuda(), x2.cuda(), sub)
    torch.testing.assert_close(lg.cpu(), lc, rtol=1e-4, atol=1e-5)
    pc, pg = dict(cpu.named_parameters()), dict(gpu.named_parameters())
    graded = [k for k in pc if pc[k].grad is not None]
    assert graded and graded == [k for k in pg if pg[k].grad is not None]
    top = max(pc[k].grad.abs().max().item() for k in graded)
    for k in graded:  # float rounding (cuDNN vs oneDNN), relative to the gradient's scale and to the largest one
        scale = pc[k].grad.abs().max().item()  # (a bias in front of a BatchNorm has a gradient of ~1e-7)
        assert (pg[k].grad.cpu() - pc[k].grad).abs().max().item() <= 1e-3 * scale + 1e-5 * top, k
    bc, bg = dict(cpu.named_buffers()), dict(gpu.named_buffers())
    assert bc.keys() == bg.keys()
    for k in bc:
        torch.testing.assert_close(bg[k].cpu(), bc[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize("name", sorted(SMALL_INPUT))
def test_eager_slimming_equals_materialized_on_cuda(name: str) -> None:
    check_parity(name, make(name).width_grid(max_points=4), device="cuda", tol=1e-4)


def _us3l(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "us3l", *args], capture_output=True, text=True, timeout=timeout)


def test_amp_training_on_cuda_end_to_end(tiny_folder: Path, tmp_path: Path) -> None:
    from us3l import checkpoint as ckpt

    out = tmp_path / "run"
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, device="cuda", epochs=4, amp=True)
    proc = _us3l("train", "--config", str(cfg),
                 "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["epochs"] == 4
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for rec in lines for v in rec["loss"].values())
    meta = ckpt.read_meta(out)
    assert meta["distributed"]["device"].startswith("cuda")
    acc = meta["accelerator"]
    assert acc["amp"] is True and acc["name"] == torch.cuda.get_device_name() and acc["cuda"] == torch.version.cuda
    loaded = ckpt.load_backbone(out)  # a GPU-trained checkpoint evaluates and deploys on CPU
    assert all(v.device.type == "cpu" for v in loaded.model.state_dict().values())
    ev = _us3l("eval", "--ckpt", str(out), "--data", f"folder:{tiny_folder}", "--widths", "1,0.25",
               "--out", str(tmp_path / "eval"), "--quiet")
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert (tmp_path / "eval" / "accuracy.json").is_file()


def test_profile_torch_backend_on_cuda(tmp_path: Path) -> None:
    out = tmp_path / "profiles"
    proc = _us3l("profile", "--device", "cuda", "--backend", "torch", "--precision", "fp16,fp32",
                 "--model", "cifar_resnet18", "--widths", "1,0.5,0.25", "--max-seconds", "2", "--out", str(out),
                 "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [json.loads(f.read_text()) for f in sorted(out.glob("*.json"))]
    docs = [d for d in docs if d.get("kind") == "profile"]
    assert sorted(d["precision"] for d in docs) == ["fp16", "fp32"], [d.get("precision") for d in docs]
    for doc in docs:
        assert len(doc["records"]) == 3
        assert all(r["latency"]["p50_ms"] > 0 for r in doc["records"])
        assert "nvidia_gpus" in json.dumps(doc)  # the GPU is in the recorded environment


@pytest.mark.slow
def test_torchrun_nccl_one_process_per_gpu(tiny_folder: Path, tmp_path: Path) -> None:
    n = torch.cuda.device_count()
    out = tmp_path / "ddp"
    cfg = write_tiny_config(tmp_path / "tiny.yaml", tiny_folder, device="cuda", epochs=4, batch_size=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "us3l",
           "train", "--config", str(cfg),
           "--out", str(out), "--json"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["distributed"]["world_size"] == n and meta["accelerator"]["name"]
