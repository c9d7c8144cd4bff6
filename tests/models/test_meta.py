"""us3l.models.meta.shapes_only: networks built for their shapes only, without torch._dynamo's import."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


@pytest.mark.slow  # 4.3 s on the 2-core EPYC: CI runs it (./test.sh -m slow)
def test_no_registered_network_imports_dynamo_or_sympy_for_its_shapes() -> None:
    """Each registered network built for its shapes and materialized at a narrow width, as a checkpoint's load and
    a manifest's check do: ``kaiming_normal_`` on the meta device imported torch._dynamo (ResNet-50, MobileNetV2's
    ``normal_``), ViT's position table and the narrow weights' ``constant_pad_nd`` imported sympy: 0.6-2.5 s of
    each such command on a 2-core AVX2 CPU."""
    code = ("import sys\nfrom us3l.models import create_model, list_models\nfrom us3l.models.meta import shapes_only\n"
            "from us3l.slim import materialize\nfor name in list_models():\n    with shapes_only():\n"
            "        m = create_model(name, num_classes=0)\n    materialize(m, 0.5)\n"
            "print(sorted(k for k in ('torch._dynamo', 'sympy') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"
