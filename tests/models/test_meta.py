"""us3l.models.meta.shapes_only: networks built for their shapes only, without torch._dynamo's import."""

from __future__ import annotations

import subprocess
import sys

import torch

from us3l.models import create_model
from us3l.models.meta import shapes_only


def test_the_same_shapes_as_a_real_build_and_nothing_allocated() -> None:
    with shapes_only():
        meta = create_model("resnet50", num_classes=0)
    real = create_model("resnet50", num_classes=0)
    assert [(n, p.shape) for n, p in meta.named_parameters()] == [(n, p.shape) for n, p in real.named_parameters()]
    assert [(n, b.shape) for n, b in meta.named_buffers()] == [(n, b.shape) for n, b in real.named_buffers()]
    assert all(t.is_meta for t in [*meta.parameters(), *meta.buffers()])


def test_only_draws_on_meta_tensors_are_skipped() -> None:
    real = torch.zeros(1000)
    with shapes_only():
        real.normal_()  # a tensor of values, made before the block: drawn as usual
        made = torch.empty(3)
    assert real.std() > 0.5 and made.is_meta


def test_building_resnet50_for_its_shapes_does_not_import_dynamo() -> None:
    """``kaiming_normal_`` on the meta device imported torch._dynamo (1.7 s of each checkpoint load, manifest
    record and check of a ResNet-50 on a 2-core AVX2 CPU)."""
    code = ("import sys\nfrom us3l.models import create_model\nfrom us3l.models.meta import shapes_only\n"
            "with shapes_only():\n    create_model('resnet50', num_classes=0)\nprint('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "False"
