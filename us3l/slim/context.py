"""Width as a scoped context, the distinct-width grid, and BN recalibration at a width."""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from us3l.errors import US3LError
from us3l.slim.layers import SWITCH_TOL, SlimBatchNorm2d, SlimModule, StatsCollector, switch_error
from us3l.slim.rounding import WidthRange
from us3l.validate import number
from us3l.width_key import legacy_width_key, width_key, width_key_text


def slim_modules(model: nn.Module) -> list[tuple[str, SlimModule]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SlimModule)]


def width_range_of(model: nn.Module) -> WidthRange:
    """The ``WidthRange`` of a slimmable model (its own attribute, or the first submodule's)."""
    if not isinstance(model, nn.Module):  # None reached model.modules() and its AttributeError
        raise US3LError(f"model must be a slimmable us3l model, got {model!r:.40}")
    wr = getattr(model, "width_range", None)
    if isinstance(wr, WidthRange):
        return wr
    for m in model.modules():
        wr = getattr(m, "width_range", None)
        if isinstance(wr, WidthRange):
            return wr
    if getattr(model, "materialized_width", None) is not None:
        raise US3LError("this model is a materialized static network; it has one fixed width")
    raise US3LError(f"{type(model).__name__} is not a slimmable us3l model (no width_range)")


def bn_switches(model: nn.Module) -> tuple[float, ...] | None:
    """The switch widths of a model with switchable BN (S-Nets), largest first; ``None`` for US-Nets models.

    An S-Nets model runs only at its switches: :func:`width`, :func:`canonical_width` and ``materialize``
    refuse any other width with one line, and its width grid is the switches."""
    cache = _grid_cache(model)
    if "switches" not in cache:
        found = {m.switches for _, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)}
        found.discard(None)
        if len(found) > 1:
            raise US3LError(f"{type(model).__name__} mixes BN layers with different switches: {sorted(found)}")
        cache["switches"] = next(iter(found)) if found else None
    return cache["switches"]


def check_width(model: nn.Module, w: object, flag: str | None = None) -> float:
    """``w`` as a float if ``model`` runs at it: inside its width range and, for an S-Nets model, one of its
    switches (returned exactly). Otherwise one ``US3LError`` line, starting with ``flag: `` when the width came
    from that flag (or file)."""
    prefix = f"{flag}: " if flag else ""
    try:
        v = width_range_of(model).check(w)
    except ValueError as exc:
        raise US3LError(f"{prefix}{exc}") from None
    switches = bn_switches(model)
    if switches is None:
        return v
    for s in switches:
        if abs(s - v) <= SWITCH_TOL:
            return s
    raise US3LError(f"{prefix}{switch_error(switches, v)}")


def channel_config(model: nn.Module, w: float) -> tuple[tuple[int, ...], ...]:
    """Active channels of every slimmable layer at width ``w`` (what makes two widths the same network)."""
    return tuple(m.channel_signature(w) for _, m in slim_modules(model))


def _grid_cache(model: nn.Module) -> dict:
    cache = model.__dict__.setdefault("_us3l_grid_cache", {})
    return cache


def width_grid(model: nn.Module, max_points: int | None = None) -> tuple[float, ...]:
    """The distinct widths of ``model``: one width per distinct channel configuration, ascending.

    Each configuration is represented by the smallest width that produces it (so the range minimum is
    always first), except the full-width configuration, which is represented by the range maximum.
    ``max_points`` thins the grid to at most that many widths, evenly spread over the width range and
    always keeping both ends (a full sweep of ResNet-50 has several hundred configurations); 1 is the widest.
    """
    if max_points is not None:  # 2.5 and NaN were range()'s TypeError, True a 1-point grid
        max_points = int(number(max_points, "max_points", positive=True, integer=True))
    grid = _full_grid(model)  # an S-Nets model: its switches
    if max_points is None or len(grid) <= max_points:
        return grid
    if max_points == 1:
        return grid[-1:]
    lo, hi = grid[0], grid[-1]
    picked: list[float] = []
    for i in range(max_points):
        target = lo + (hi - lo) * i / (max_points - 1)
        best = min(grid, key=lambda g: (abs(g - target), g))
        if best not in picked:
            picked.append(best)
    return tuple(sorted(picked))


def _channels_vec(full: int, slim: bool, ratio: int, ws: np.ndarray, divisor: int) -> np.ndarray:
    """``WidthRange.channels`` for many widths at once (same float operations, same results)."""
    if not slim:
        return np.full(ws.shape, full, dtype=np.int64)
    v = full * ws / ratio
    new = np.maximum(1, np.floor((v + divisor / 2) // divisor) * divisor)
    new = np.where(new < 0.9 * v, new + divisor, new)
    c = np.minimum(full, np.maximum(1, new).astype(np.int64) * ratio)
    return np.where(ws >= 1.0, full, c)


def _full_grid(model: nn.Module) -> tuple[float, ...]:
    wr = width_range_of(model)
    cache = _grid_cache(model)
    key = ("grid", wr)
    if key in cache:
        return cache[key]
    switches = bn_switches(model)
    if switches is not None:  # S-Nets: two switches are different networks even with equal channel counts
        cache[key] = tuple(sorted(switches))
        return cache[key]
    specs = tuple(s for _, m in slim_modules(model) for s in m.signature_spec())
    grid, configs = _scan_grid(wr, specs)
    cache[("configs", wr)] = configs
    cache[key] = grid
    return grid


@functools.lru_cache(maxsize=64)
def _scan_grid(wr: WidthRange, specs: tuple[tuple[int, bool, int], ...]) -> tuple[tuple[float, ...], dict]:
    """The distinct widths of a network whose slimmable layers have ``specs`` (their ``signature_spec``s, in
    module order), and each width's flat channel configuration (every layer's ``channel_signature``, joined)
    mapped to it. A pure function of the architecture, so every model built alike shares one scan: a fresh
    model, as each checkpoint load builds, no longer re-scans its 7,500 candidate widths (60 ms for the
    built-in network)."""
    # Candidate widths: every multiple of 1e-4 in the range (finer than any layer's channel step).
    lo, hi = math.ceil(wr.min * 10_000 - 1e-6), math.floor(wr.max * 10_000 + 1e-6)
    ws = np.round(np.arange(lo, hi + 1) / 10_000, 4)
    if ws.size == 0 or ws[-1] != wr.max:
        ws = np.append(ws, wr.max)
    if ws[0] != wr.min:
        ws = np.insert(ws, 0, wr.min)
    table = np.stack([_channels_vec(f, sl, r, ws, wr.divisor) for f, sl, r in specs], axis=1) if specs else (
        np.zeros((ws.size, 0), dtype=np.int64))
    # make_divisible is not monotone below 4 channels (1 → 9 → 8), so a configuration can recur:
    # keep each configuration once, at the smallest width that produces it.
    _, first = np.unique(table, axis=0, return_index=True)
    full_row = table[-1]
    order = [int(i) for i in sorted(first) if not np.array_equal(table[i], full_row)]
    configs = {tuple(table[i].tolist()): float(ws[i]) for i in order}
    configs[tuple(full_row.tolist())] = float(wr.max)
    return tuple(configs.values()), configs


def _flat_config(model: nn.Module, w: float) -> tuple[int, ...]:
    """``channel_config`` joined into one tuple (the keys of ``_scan_grid``'s configurations)."""
    return tuple(c for signature in channel_config(model, w) for c in signature)


def canonical_width(model: nn.Module, w: float) -> float:
    """The grid width with the same channel configuration as ``w`` (the key of calibrated BN statistics).

    For an S-Nets model (switchable BN) it is the switch ``w`` itself: every switch has its own BN, so two
    switches with the same channel counts are still different networks; another width raises ``US3LError``."""
    wr = width_range_of(model)
    w = wr.check(w)
    if bn_switches(model) is not None:
        return check_width(model, w)
    _full_grid(model)
    table = _grid_cache(model)[("configs", wr)]
    return table.get(_flat_config(model, w), width_key(w))


#: model -> (instance dicts of its slimmable modules, those of its BN layers), see _width_plan
_MODULE_DICTS: weakref.WeakKeyDictionary[nn.Module, tuple[list[dict], list[dict]]] = weakref.WeakKeyDictionary()


def _width_plan(model: nn.Module, wr: WidthRange, w: float) -> tuple[list[dict], list[dict], float]:
    """The instance dicts of the slimmable modules and of the BN ones, and the canonical width of ``w``, cached
    on ``model`` (entering a width context is on every eager forward: walking the modules and computing every
    channel signature each time cost more than a batch-1 forward of a narrow network). The module dicts are held
    outside the model (``_MODULE_DICTS``, weakly keyed by the model object): kept in the model's own cache, a deep
    copy (``materialize`` deep-copies submodules) copied every module's dict with it, 7x the cost of
    materializing. Like the grid cache, it assumes the module structure does not change."""
    hit = _MODULE_DICTS.get(model)
    if hit is None:
        mods = [m for _, m in slim_modules(model)]
        bns = [m.__dict__ for m in mods if isinstance(m, SlimBatchNorm2d)]
        hit = _MODULE_DICTS[model] = ([m.__dict__ for m in mods], bns)
    cache = _grid_cache(model)
    key = ("canonical", wr, w)
    canon = cache.get(key)
    if canon is None:
        if sum(1 for k in cache if isinstance(k, tuple) and k[0] == "canonical") > 4096:
            for k in [k for k in cache if isinstance(k, tuple) and k[0] == "canonical"]:
                del cache[k]
        canon = cache[key] = canonical_width(model, w)
    return hit[0], hit[1], canon


class _WidthContext:
    """What :func:`width` returns: a plain class rather than a generator context manager, since it is entered
    on every eager forward and its own cost counts against a narrow batch-1 network."""

    __slots__ = ("model", "w", "key", "dicts", "bn_dicts", "saved_w", "saved_key")

    def __init__(self, model: nn.Module, w: float) -> None:
        wr = width_range_of(model)
        w = wr.check(w)
        self.dicts, self.bn_dicts, self.key = _width_plan(model, wr, w)
        if bn_switches(model) is not None:
            w = self.key  # S-Nets: exactly the switch (a width within half a 1e-4 step of it is that switch)
        self.model, self.w = model, w

    def __enter__(self) -> nn.Module:
        # ``width``/``stats_key`` are plain float attributes: written straight into the instance dicts, skipping
        # nn.Module.__setattr__'s parameter/buffer/module bookkeeping (which made up most of entering a context).
        w, key = self.w, self.key
        self.saved_w = [d["width"] for d in self.dicts]
        self.saved_key = [d["stats_key"] for d in self.bn_dicts]
        for d in self.dicts:
            d["width"] = w
        for d in self.bn_dicts:
            d["stats_key"] = key
        return self.model

    def __exit__(self, *exc: object) -> None:
        for d, old_w in zip(self.dicts, self.saved_w, strict=True):
            d["width"] = old_w
        for d, old_key in zip(self.bn_dicts, self.saved_key, strict=True):
            d["stats_key"] = old_key


def width(model: nn.Module, w: float) -> _WidthContext:
    """Run ``model`` at width ``w`` inside the ``with`` block; the previous widths are restored on exit.

    Raises ``ValueError`` for a width outside the model's range, NaN or a non-number, and ``US3LError`` for a
    width that is not one of an S-Nets model's switches (when called, before the block).
    """
    return _WidthContext(model, w)


def current_width(model: nn.Module) -> float:
    """The width the model currently runs at (its range maximum when none was set)."""
    mods = slim_modules(model)
    for _, m in mods:
        if m.width is not None:
            return m.width
    return width_range_of(model).max


@contextmanager
def calibrating(model: nn.Module, w: float, momentum: float | None = None) -> Iterator[nn.Module]:
    """Re-estimate BN statistics at width ``w``: forward batches inside the block (no grad needed).

    Every ``SlimBatchNorm2d`` normalises with batch statistics and accumulates them: cumulative average
    (``momentum=None``, US-Nets) or an EMA from mean 0 / var 1 (``momentum=0.1``, the reference). On a
    normal exit the result is stored as that width's calibrated statistics (replacing earlier ones); an
    exception stores nothing. Weights are never touched.
    """
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, int | float)
                                 or not 0.0 < float(momentum) <= 1.0):  # 5.0 or nan: NaN or negative variances
        raise ValueError(f"BN momentum must be in (0, 1] (None: a cumulative average), got {momentum!r}")
    scope = width(model, w)  # the model and the width are checked first
    bns = [m for _, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)]
    was_training = model.training
    with scope:
        key = canonical_width(model, w)
        collectors = [StatsCollector(momentum) for _ in bns]
        for bn, col in zip(bns, collectors, strict=True):
            bn.collector = col
        model.train()
        try:
            yield model
        except BaseException:
            for bn in bns:
                bn.collector = None
            model.train(was_training)
            raise
        for bn, col in zip(bns, collectors, strict=True):
            bn.collector = None
            if col.mean is None or col.var is None:
                continue  # the layer was not reached at this width
            bn.width_stats[key] = (col.mean.detach().clone(), col.var.detach().clone())
        model.train(was_training)


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` has slimmable BatchNorm layers, i.e. per-width statistics to calibrate (a ViT has not)."""
    return any(isinstance(m, SlimBatchNorm2d) for _, m in slim_modules(model))


def calibrated_widths(model: nn.Module) -> tuple[float, ...]:
    """Widths for which every BN layer has calibrated statistics."""
    bns = [m for _, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)]
    if not bns:
        return ()
    keys = set(bns[0].width_stats)
    for bn in bns[1:]:
        keys &= set(bn.width_stats)
    return tuple(sorted(keys))


def bn_stats_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Calibrated per-width BN statistics as a flat tensor dict (for ``bn_stats.safetensors``)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in slim_modules(model):
        if isinstance(m, SlimBatchNorm2d):
            for key, (mean, var) in m.width_stats.items():
                out[f"{width_key_text(key)}/{name}.mean"] = mean.detach().contiguous().cpu()
                out[f"{width_key_text(key)}/{name}.var"] = var.detach().contiguous().cpu()
    return out


def _switch_of_key(switches: tuple[float, ...], key: float) -> float | None:
    """The S-Nets switch whose statistics are stored under ``key``: the switch itself, or (a file of an earlier
    us3l version, whose keys were Python's ``round(w, 4)``) the switch a width spelled with one more decimal 5
    rounds half up to (25/32: switch 0.7813, stored as 0.7812 then); ``None`` when none is."""
    from decimal import Decimal

    exact = next((s for s in switches if abs(s - key) <= SWITCH_TOL), None)
    if exact is not None:
        return exact
    for s in switches:
        tie = float(Decimal(width_key_text(s)) - Decimal("0.00005"))  # 0.78125 for the switch 0.7813
        if width_key(tie) == s and legacy_width_key(tie) == key:
            return s
    return None


def load_bn_stats_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`bn_stats_state`; rejects names or shapes that do not fit the model."""
    bns = {n: m for n, m in slim_modules(model) if isinstance(m, SlimBatchNorm2d)}
    staged: dict[tuple[str, float], dict[str, torch.Tensor]] = {}
    for k, t in state.items():
        try:
            wkey, rest = k.split("/", 1)
            name, kind = rest.rsplit(".", 1)
            w = width_key(float(wkey))
            if not 0 < w <= 1:  # "nan", "inf", "7.0000": no width (nan reached int() and its own ValueError)
                raise ValueError(wkey)
        except ValueError:
            raise US3LError(f"BN statistics entry {k!r} is malformed") from None
        if name not in bns or kind not in ("mean", "var"):
            raise US3LError(f"BN statistics entry {k!r} does not belong to this model")
        staged.setdefault((name, w), {})[kind] = t
    switches = bn_switches(model)
    for (name, stored), d in staged.items():
        bn = bns[name]
        w = stored if switches is None else _switch_of_key(switches, stored)
        if w is None:
            raise US3LError(f"BN statistics for width {stored:g} do not fit this model: "
                            f"{switch_error(switches, stored)}")
        try:
            expect = bn.active_channels(w)
        except ValueError as exc:  # a width outside the model's range: the bare "width must be in [...]" named no file
            raise US3LError(f"BN statistics for width {w:g} do not fit this model: {exc}") from None
        if set(d) != {"mean", "var"} or any(t.shape != (expect,) for t in d.values()):
            raise US3LError(f"BN statistics for {name} at width {w} do not fit this model ({expect} channels)")
        bn.width_stats[w] = (d["mean"].float(), d["var"].float())
