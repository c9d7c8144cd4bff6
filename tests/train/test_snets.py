"""``us3l train --method snets``: config resolution, the sampler, a tiny run whose checkpoint rebuilds switchable BN,
and ONNX export parity at a switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.conftest import TINY
from us3l import checkpoint as ckpt
from us3l.errors import US3LError
from us3l.slim import SlimBatchNorm2d, bn_switches, slim_modules, width
from us3l.train import make_config, resolve_config, run_training
from us3l.train.config import fill_method_defaults, validate
from us3l.train.sampling import SwitchWidths

SWITCHES = (1.0, 0.75, 0.5, 0.25)


def test_recipe_trains_every_switch_without_a_schedule() -> None:
    cfg = resolve_config(None, {"method": "snets"})  # over default.yaml (schedule A): the recipe wins
    assert (cfg.schedule, cfg.regularizer, cfg.bn_switches, cfg.snets_base) == ("none", True, SWITCHES,
                                                                                 "simclr_momentum")
    plain = fill_method_defaults(make_config({"method": "snets"}))
    assert (plain.lr, plain.proj_dim, plain.schedule) == (0.5, 256, "none")  # the us3l (SimCLR_Momentum) values
    byol = fill_method_defaults(make_config({"method": "snets", "snets_base": "byol"}))
    assert (byol.lr, byol.proj_dim) == (0.05, 2048)
    assert resolve_config(None, {"method": "snets", "bn_switches": "1,0.5"}).bn_switches == (1.0, 0.5)
    s = SwitchWidths((0.25, 1.0, 0.5))
    assert s.widths(0) == [1.0, 0.5, 0.25] and s.min_width(3) == 0.25 and s.state_dict() == {}


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"schedule": "A"}, "schedule must be 'none'"),
        ({"bn_switches": [0.75, 0.5]}, "must be the max width 1"),
        ({"model": "vit_tiny"}, "needs a model with BatchNorm"),
        ({"snets_momentum_update": True}, "needs --method snets with snets_base: byol"),
        ({"bn_switches": [1.0, 1.5]}, "bn_switches must be in"),
        ({"bn_switches": "a,b"}, "must be a list of numbers"),
    ],
)
def test_bad_snets_settings_are_one_line_errors(values: dict, match: str) -> None:
    with pytest.raises(US3LError, match=match):
        validate(fill_method_defaults(make_config({"method": "snets", "schedule": "none", **values})))


def test_switchable_bn_only_through_snets() -> None:
    with pytest.raises(US3LError, match="not model_kwargs.bn_switches"):
        resolve_config(None, {"method": "us3l", "model_kwargs": {"bn_switches": [1.0, 0.5]}})


@pytest.fixture(scope="module")
def snets_run(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snets") / "run"
    cfg = make_config({**TINY, "data": f"folder:{tiny_folder}", "out": str(out), "method": "snets",
                       "schedule": "none", "epochs": 1, "knn_widths": (1.0, 0.5, 0.3)})
    res = run_training(cfg)
    assert res.status == "completed" and res.epochs_done == 1
    assert set(res.final_knn) == {1.0, 0.5}  # the monitor runs only at switches (0.3 is none)
    return out


@pytest.mark.slow  # 0.9 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_empty_knn_widths_is_no_monitor(tiny_folder: Path, tmp_path: Path) -> None:
    """Docs truth pass 2026-12-05: `knn_widths: []` ran the monitor at every switch while the CLI said "no kNN
    monitor" (docs/training.md: `[]`: no monitor)."""
    cfg = make_config({**TINY, "data": f"folder:{tiny_folder}", "out": str(tmp_path / "run"), "method": "snets",
                       "schedule": "none", "epochs": 1, "knn_widths": ()})
    res = run_training(cfg)
    assert res.status == "completed" and res.final_knn == {}


def test_tiny_run_trains_every_switch_and_rebuilds_switchable_bn(snets_run: Path) -> None:
    (line,) = [json.loads(x) for x in (snets_run / "metrics.jsonl").read_text().splitlines()]
    assert set(line["loss"]) == {"base", "mid1", "mid2", "min"} and line["min_width"] == 0.25
    meta = ckpt.read_meta(snets_run)
    assert meta["method"] == "snets" and meta["bn"] == "switchable_running_stats"
    assert meta["bn_switches"] == list(SWITCHES) == meta["model_kwargs"]["bn_switches"]
    assert meta["config"]["bn_switches"] == list(SWITCHES) and meta["config"]["schedule"] == "none"
    loaded = ckpt.load_backbone(snets_run)  # safetensors weights; model rebuilt from checkpoint.json
    assert bn_switches(loaded.model) == SWITCHES
    tensors = ckpt.read_tensors(snets_run, ckpt.BACKBONE_PREFIX)
    assert "bn1.switch_weight.3" in tensors and "bn1.switch_running_mean_3" in tensors
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, tensors[k])
    bns = [m for _, m in slim_modules(loaded.model) if isinstance(m, SlimBatchNorm2d)]
    assert all(int(m.num_batches_tracked) > 0 for m in bns)  # every switch trained with its own statistics
    state = ckpt.load_train_state(snets_run)  # weights_only=True
    assert state["epoch"] == 1 and state["sampler"] == {}

    # the whole SSL module (EMA teacher with switchable BN, heads) loads strictly from the saved config
    from us3l.ssl import create_method
    from us3l.train.loop import build_backbone
    from us3l.train.state import join_state

    cfg = fill_method_defaults(make_config(meta["config"]))
    method = create_method("snets", build_backbone(cfg), cfg)
    method.load_state_dict(join_state(tensors, ckpt.read_tensors(snets_run, ckpt.TRAIN_PREFIX)), strict=True)
    assert bn_switches(method.encoder_k.backbone) == SWITCHES


def test_onnx_export_matches_the_dynamic_model_at_a_switch(snets_run: Path, tmp_path: Path) -> None:
    from us3l import deploy
    from us3l.deploy.export import export_width

    res = export_width(snets_run, 0.5, "onnx", tmp_path / "out", device_name="cpu")
    assert res.valid and res.verification.max_abs_error <= 1e-4
    loaded = ckpt.load_backbone(snets_run)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), width(loaded.model, 0.5):
        ref = loaded.model(x).numpy()
    with deploy.load(res.directory) as runner:
        assert runner.manifest["model"]["canonical_width"] == 0.5
        assert runner.manifest["model"]["bn_stats"] == "running"  # the 0.5 switch's own running statistics
        assert deploy.compare(ref, runner.infer(x.numpy()), "fp32")
    with pytest.raises(US3LError, match=r"^S-Nets run only at widths 1, 0.75, 0.5, 0.25 \(got 0.6\)$"):
        export_width(snets_run, 0.6, "onnx", tmp_path / "out2", device_name="cpu")
