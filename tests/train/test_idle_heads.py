"""``idle_heads_zero_grad``: the reference's torch-1.10 ``zero_grad()`` semantics for heads idle at a width step.

torch 1.10's ``Optimizer.zero_grad()`` zeroed existing gradients in place (``set_to_none=False``), so a head unused
at a width step (BYOL's auxiliary head at the max width, its base predictor at sub-widths) still got the SGD
momentum and weight-decay update once it had had a gradient. The reference-style loop below writes that
out (zero_grad and SGD as torch 1.10's ``optim/_functional.sgd``); three iterations must match ``_train_step``
bit for bit with the option on, and differ with it off (``set_to_none=True`` skips the idle heads).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from tests.ssl.conftest import random_views
from tests.train.conftest import TINY
from us3l.errors import US3LError
from us3l.ssl.methods import create_method
from us3l.train import make_config
from us3l.train.distributed import DistInfo
from us3l.train.loop import _train_step, build_backbone

WIDTHS = [1.0, 0.6, 0.25]
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4  # the reference BYOL CIFAR recipe: plain weight decay, no regularizer


def _cfg(**kw: object):
    return make_config({**TINY, "method": "us3l_byol", "regularizer": False, "weight_decay": WD, "lr": LR,
                        "schedule": "none", "amp": False, **kw})


def _reference_loop(method: torch.nn.Module, iterations: int) -> None:
    params = [p for p in method.parameters() if p.requires_grad]
    bufs: dict[int, torch.Tensor] = {}
    for it in range(iterations):
        x1, x2 = random_views(seed=it)
        targets = None
        for w in WIDTHS:
            for p in params:  # torch 1.10 Optimizer.zero_grad(): zero in place, None stays None
                if p.grad is not None:
                    p.grad.detach_()
                    p.grad.zero_()
            loss, new_targets = method(x1, x2, w, targets)
            if targets is None:
                targets = new_targets
            loss.float().backward()
            with torch.no_grad():  # torch 1.10 optim._functional.sgd (dampening 0, no nesterov)
                for i, p in enumerate(params):
                    if p.grad is None:
                        continue
                    d_p = p.grad.add(p, alpha=WD)
                    if i not in bufs:
                        bufs[i] = torch.clone(d_p).detach()
                    else:
                        bufs[i].mul_(MOMENTUM).add_(d_p, alpha=1.0)
                    p.add_(bufs[i], alpha=-LR)


def _project_loop(method: torch.nn.Module, cfg, iterations: int) -> None:
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=LR, momentum=MOMENTUM,
                          weight_decay=WD)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for it in range(iterations):
        x1, x2 = random_views(seed=it)
        _train_step(method, method, opt, scaler, None, x1, x2, WIDTHS, 0, cfg, None, DistInfo())


def test_three_iterations_equal_the_reference_loop_bit_for_bit() -> None:
    cfg = _cfg(idle_heads_zero_grad=True)
    torch.manual_seed(0)
    start = create_method("us3l_byol", build_backbone(cfg), cfg)
    ref, ours, skipped = copy.deepcopy(start), copy.deepcopy(start), copy.deepcopy(start)
    _reference_loop(ref, 3)
    _project_loop(ours, cfg, 3)
    _project_loop(skipped, replace(cfg, idle_heads_zero_grad=False), 3)
    ref_sd, ours_sd, skip_sd = ref.state_dict(), ours.state_dict(), skipped.state_dict()
    for name, value in ref_sd.items():
        assert torch.equal(value, ours_sd[name]), name
    # without the option the idle heads miss their momentum / weight-decay updates: trajectories differ
    differ = [n for n in ref_sd if not torch.equal(ref_sd[n], skip_sd[n])]
    assert any(n.startswith("predictor.") for n in differ) and any(n.startswith("predictor_new.") for n in differ)


def test_the_option_defaults_off_and_is_on_in_the_reference_recipes() -> None:
    from pathlib import Path

    import yaml

    assert make_config({}).idle_heads_zero_grad is False  # the built-in default recipe
    for path in sorted(Path("configs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if path.name != "default.yaml":
            assert doc.get("idle_heads_zero_grad") is True, path


def test_simsiam_momentum_zero_inits_residuals_of_imagenet_resnets_only() -> None:
    from us3l.train.loop import model_kwargs_for

    assert model_kwargs_for(make_config({"method": "us3l_simsiam", "model": "resnet18"}))["zero_init_residual"]
    assert "zero_init_residual" not in model_kwargs_for(make_config({"method": "us3l", "model": "resnet18"}))
    cifar = make_config({"method": "us3l_simsiam", "model": "cifar_resnet18"})
    assert "zero_init_residual" not in model_kwargs_for(cifar)
    off = make_config({"method": "us3l_simsiam", "model": "resnet50", "model_kwargs": {"zero_init_residual": False}})
    assert model_kwargs_for(off)["zero_init_residual"] is False  # an explicit setting wins


def test_a_vit_is_built_for_the_configured_image_size() -> None:
    """A ViT's position embedding fixes its input side: image_size builds it for that side, recorded with the
    checkpoint's model kwargs; an explicit model_kwargs img_size that disagrees is refused before training."""
    from us3l.train.loop import build_backbone, model_kwargs_for

    cfg = make_config({"method": "us3l_mocov3", "model": "vit_tiny", "image_size": 32})
    assert model_kwargs_for(cfg)["img_size"] == 32
    assert build_backbone(cfg).input_size == 32
    assert "img_size" not in model_kwargs_for(make_config({"method": "us3l_mocov3", "model": "vit_tiny"}))
    assert "img_size" not in model_kwargs_for(make_config({"model": "cifar_resnet18", "image_size": 16}))
    both = make_config({"method": "us3l_mocov3", "model": "vit_tiny", "image_size": 32,
                        "model_kwargs": {"img_size": 64}})
    with pytest.raises(US3LError, match="^image_size 32 and model_kwargs img_size 64 disagree: vit_tiny is built for "
                                        "one input side; give one of them$"):
        model_kwargs_for(both)
