"""Share a sweep's exported widths between tests instead of exporting the same graphs again in each one.

``prepare_once`` runs the sweep's own builder (``us3l.profiler.sweep.prepare_widths``, real exports) once, e.g. in
a module-scoped fixture; ``reuse_prepared`` then makes ``run_sweep`` -- called directly or through ``us3l profile``
-- take its widths from there, after checking that it asks for exactly what was prepared: the same weights (and BN
buffers), input shape, backend and precision. Only for tests whose property is what happens after the export (the
window, the budget, the SSH transport, error messages); tests/profiler/test_sweep_local.py and
test_graph_parity.py run the sweep's exports end to end.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import torch


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Widths prepared once: the model's state they were built from, the arguments, and the items by width."""

    state: dict[str, torch.Tensor]
    input_shape: tuple[int, ...]
    precision: str
    backend: str
    items: dict[float, Any]


def prepare_once(
    model: torch.nn.Module, widths: list[float], input_shape: tuple[int, ...], backend: str, root: Path,
    precision: str = "fp32",
) -> Prepared:
    """Export ``widths`` of ``model`` into ``root`` with the sweep's own builder, as ``run_sweep`` does."""
    from us3l.profiler.sweep import prepare_widths

    items = prepare_widths(model, widths, input_shape, precision, backend, root, keep_models=False)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Prepared(state, tuple(input_shape), precision, backend, {it.width: it for it in items})


def reuse_prepared(monkeypatch: pytest.MonkeyPatch, prepared: Prepared) -> list[list[float]]:
    """Make ``run_sweep`` use ``prepared``; returns the list of the width lists it asked for (one per sweep).

    The stand-in takes ``prepare_widths``' own signature and honours its preparation order and deadline; any
    other argument besides the model, widths, input shape, precision, backend, root and progress callback must be
    at its default (``keep_models`` False, as a sweep asks), so a sweep that would build other graphs (INT8
    calibration, required BN statistics, ...) fails here."""
    import inspect

    from us3l.profiler import sweep as sweep_mod

    signature = inspect.signature(sweep_mod.prepare_widths)
    calls: list[list[float]] = []

    def prepare(*args: Any, **kwargs: Any) -> list[Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        model, widths, on_item = a.pop("model"), a.pop("widths"), a.pop("on_item", None)
        assert (tuple(a.pop("input_shape")), a.pop("precision"), a.pop("backend"), a.pop("keep_models")) == (
            prepared.input_shape, prepared.precision, prepared.backend, False)
        a.pop("root", None)  # where the sweep would export to: the shared files are elsewhere
        order, deadline = a.pop("order", None), a.pop("deadline", None)
        defaults = {k: p.default for k, p in signature.parameters.items()}
        assert all(v == defaults[k] for k, v in a.items()), a
        state = model.state_dict()  # the very weights (and BN buffers) the shared exports were made from
        assert state.keys() == prepared.state.keys()
        assert all(torch.equal(state[k], v) for k, v in prepared.state.items())
        calls.append([float(w) for w in widths])
        out = []
        for n, i in enumerate(range(len(widths)) if order is None else order):  # prepare_widths' own rule
            if deadline is not None and n and time.perf_counter() > deadline:
                break
            out.append(dataclasses.replace(prepared.items[float(widths[i])], key=f"w{i:03d}"))
            if on_item is not None:
                on_item(n + 1, len(widths))
        return sorted(out, key=lambda it: int(it.key[1:]))

    monkeypatch.setattr(sweep_mod, "prepare_widths", prepare)
    return calls
