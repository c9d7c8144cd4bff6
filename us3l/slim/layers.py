"""Universally slimmable layers: one weight tensor, the first ``c`` channels active at a width.

The active width is state set by :func:`us3l.slim.width` (never written inside ``forward``); each layer
computes its active channel counts as locals. ``width=None`` means full width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from us3l.slim.rounding import WidthRange
from us3l.slim.syncbn import grouped_sync_batch_norm, syncing
from us3l.width_key import width_key

_DEFAULT_RANGE = WidthRange()
_CUDNN = torch.backends.cudnn


class SlimModule(nn.Module):
    """Mixin for layers whose active channels follow the network width."""

    width: float | None
    width_range: WidthRange

    def _init_slim(self, width_range: WidthRange | None) -> None:
        self.width = None
        self.slim_range = width_range or _DEFAULT_RANGE

    def _w(self) -> float:
        """The active width (1.0 when unset), read straight from the instance dict: it runs on every forward."""
        w = self.__dict__["width"]
        return 1.0 if w is None else w

    def _active_cache(self) -> dict:
        """Active channel counts per width, memoised: they run on every eager forward, and the channel
        arithmetic (``WidthRange.channels``) cost more than a narrow layer's batch-1 convolution. Channel counts,
        ratios and ``slim_range`` are fixed at construction, so a width's entry never goes stale."""
        cache = self.__dict__.get("_us3l_active")
        if cache is None:
            cache = self.__dict__["_us3l_active"] = {}
        return cache

    def channel_signature(self, w: float) -> tuple[int, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    def signature_spec(self) -> tuple[tuple[int, bool, int], ...]:  # pragma: no cover - overridden
        """(full channels, slimmed?, ratio) of each entry of ``channel_signature`` (vectorised grid scans)."""
        raise NotImplementedError


class _InferenceMemo(dict):
    """A layer's dense no-grad slices per width (``_inference_slices``). Never copied: ``copy.deepcopy`` and
    pickling give an empty memo (the copy's parameters are other tensors), so a copied model never carries
    views of the original's parameters (``copy.deepcopy`` of a model updated in place after a no-grad call
    used to fail on them)."""

    def __deepcopy__(self, memo: dict) -> _InferenceMemo:
        return _InferenceMemo()

    def __reduce__(self) -> tuple:
        return (_InferenceMemo, ())


def _inference_slices(module: nn.Module, w: float, make: Callable[[float], tuple]) -> tuple:
    """``make(w)`` (a layer's active channels and sliced parameters) for a forward without autograd, with the
    sliced parameters as dense copies, memoised for the last few widths while the parameters are unchanged.
    Slicing on every call (a few aten view ops per layer), convolving strided weight slices (1.2-1.5x a dense
    weight at batch 1) and the per-layer lookups around them made batch-1 eager inference up to 2.5x slower
    than ``materialize``; this path is one dict lookup and a validity check. Same values, same operations.

    Validity follows the parameters' identity, storage and version counters, like autograd's checks of saved
    tensors: in-place updates (optimizer, EMA, ``load_state_dict``, writes under ``torch.no_grad``), replaced
    parameters and ``.to()``/``.double()`` conversions are seen; writes through ``.data`` (which bypass version
    counting by design) that keep the storage are not.
    """
    d = module.__dict__
    memo = d.get("_us3l_infer")
    if memo is None:
        memo = d["_us3l_infer"] = _InferenceMemo()
    params = d["_parameters"]
    weight, bias = params["weight"], params.get("bias")
    hit = memo.get(w)
    if (
        hit is not None
        and hit[0] is weight
        and hit[1] == weight._version
        and hit[2] == weight.data_ptr()
        and hit[3] is bias
        and (bias is None or hit[4] == bias._version)
    ):
        return hit[5]
    if len(memo) >= 4 and w not in memo:
        memo.pop(next(iter(memo)))
    with torch.no_grad():
        value = tuple(_dense_like(t, weight) for t in make(w))
    memo[w] = (weight, weight._version, weight.data_ptr(), bias, None if bias is None else bias._version, value)
    return value


def _dense_like(t: object, param: torch.Tensor) -> object:
    """A dense copy of a sliced parameter in the parameter's memory format (the parameter itself if dense)."""
    if not isinstance(t, torch.Tensor) or t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    cl = param.dim() == 4 and param.is_contiguous(memory_format=torch.channels_last) and not param.is_contiguous()
    return t.contiguous(memory_format=torch.channels_last if cl and t.dim() == 4 else torch.contiguous_format)


def _leading_block(t: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """``t[:sizes[0], :sizes[1], ...]`` as a dense copy in ``t``'s memory format, through one autograd node.

    ``constant_pad_nd`` with non-positive pads crops: one node whose backward writes the block's gradient into
    one zero-filled buffer of ``t``'s shape, where a chain of slices has a ``SliceBackward`` node (and a
    zero-filled buffer) per sliced dimension and hands the convolution a strided weight view. Same values and
    gradients, bit for bit (``tests/slim/test_training_slices.py``); measured in docs/training.md ("Eager slimming
    overhead").
    """
    if t.is_meta:  # shapes only (a manifest's or checkpoint's network): constant_pad_nd's meta version is a Python
        # decomposition whose first call imports sympy (0.6-0.8 s on a 2-core AVX2 CPU); the block's shape is all
        return t.new_empty((*sizes, *t.shape[len(sizes):]))
    pads: list[int] = []
    for dim in reversed(range(t.dim())):
        pads += [0, (sizes[dim] - t.shape[dim]) if dim < len(sizes) else 0]
    return torch.constant_pad_nd(t, pads)


#: Input channels below which oneDNN's strided 1x1 weight-gradient kernel for NHWC misbehaves (its AVX-512 channel
#: block; AVX2's is 8): ``_strided_1x1_nhwc_narrow``.
ONEDNN_1X1_IC_BLOCK = 16


def _strided_1x1_narrow(weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int], groups: int) -> bool:
    """The convolution half of ``_strided_1x1_nhwc_narrow``: a 1x1 kernel, a stride above 1, no padding, one group
    and fewer than ``ONEDNN_1X1_IC_BLOCK`` input channels (which convolutions ``nhwc_training_safe`` swaps)."""
    return (
        weight.shape[2] == 1
        and weight.shape[3] == 1
        and stride != (1, 1)
        and padding == (0, 0)
        and groups == 1
        and weight.shape[1] < ONEDNN_1X1_IC_BLOCK
    )


def _strided_1x1_nhwc_narrow(
    weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int], groups: int, x: torch.Tensor
) -> bool:
    """Whether a training convolution is one that oneDNN 3.x (torch 2.13's) computes wrongly: a 1x1 kernel with a
    stride above 1 on a channels_last input of fewer than 16 channels. Its backward-weights kernel
    (``jit_1x1:avx512_core``, "reduce to unit stride") gathers the strided input into a per-thread workspace laid
    out for a full channel block and writes past it: heap corruption, a crash at 3, 5 or 6 threads on a 2-core
    AVX-512 machine (``free(): invalid next size``; oneDNN issue 6035, which also reports wrong weight gradients
    on AVX2). The narrow ResNet downsample shortcuts are such convolutions (8 input channels at width 0.5 of the
    built-in 16-channel network). ``SlimConv2d`` then convolves the subsampled input at stride 1, the same
    function (a 1x1 kernel without padding reads only the strided positions) through the unit-stride kernel
    (``_unit_stride_input``); so does ``NHWCTrainingConv2d``, which ``nhwc_training_safe`` puts in a static
    network for training."""
    return (
        _strided_1x1_narrow(weight, stride, padding, groups)
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )


def _unit_stride_input(
    weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int], groups: int, x: torch.Tensor
) -> tuple[torch.Tensor, tuple[int, int]]:
    """(input, stride) of a training convolution: the input subsampled at the stride and a unit stride where
    ``_strided_1x1_nhwc_narrow`` (oneDNN issue 6035), else ``(x, stride)``. Same function either way."""
    if _strided_1x1_nhwc_narrow(weight, stride, padding, groups, x):
        return x[:, :, :: stride[0], :: stride[1]], (1, 1)
    return x, stride


class NHWCTrainingConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters, same function) whose training forward avoids oneDNN issue 6035 the way
    ``SlimConv2d`` does (``_unit_stride_input``). Only for training a static network (``nhwc_training_safe``):
    ``materialize`` and every exporter keep the plain strided ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.weight.requires_grad:
            x, stride = _unit_stride_input(self.weight, self.stride, self.padding, self.groups, x)  # type: ignore[arg-type]
            if stride != self.stride:  # the workaround applies: no padding, so padding_mode does not matter
                return F.conv2d(x, self.weight, self.bias, stride, 0, self.dilation, self.groups)
        return super().forward(x)


def _check_channels(layer: str, w: float, expected: int, got: int, unit: str = "channels") -> None:
    """The one-line error of a slim layer given an input of the wrong size for its width."""
    if got != expected:
        raise RuntimeError(f"{layer} at width {w:g} expects {expected} {unit}, got {got}")


def _active(range_: WidthRange, full: int, w: float, slim: bool, ratio: int) -> int:
    return range_.channels(full, w, ratio) if slim else full


class SlimConv2d(SlimModule):
    """A slimmable ``Conv2d``: ``weight[:out, :in]`` at a width.

    ``slim_in``/``slim_out`` say which sides follow the width (the RGB input of the stem does not);
    ``ratio=(r_in, r_out)`` keeps a side a multiple of an expansion ratio; ``depthwise=True`` makes
    ``groups`` equal to the active channels. A fixed ``groups>1`` (grouped conv) keeps the group count and
    slices each group's input channels; active channels must stay divisible by ``groups``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        depthwise: bool = False,
        slim_in: bool = True,
        slim_out: bool = True,
        ratio: tuple[int, int] = (1, 1),
        width_range: WidthRange | None = None,
    ) -> None:
        super().__init__()
        self._init_slim(width_range)
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv needs in_channels == out_channels")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride, self.padding, self.dilation = (stride, stride), (padding, padding), (dilation, dilation)
        self.depthwise = depthwise
        self.groups = in_channels if depthwise else groups
        self.slim_in, self.slim_out, self.ratio = slim_in, slim_out, tuple(ratio)
        in_per_group = 1 if depthwise else in_channels // groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_per_group, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default Conv2d init
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / fan_in**0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def active_channels(self, w: float) -> tuple[int, int, int]:
        """(in, out, groups) at width ``w``."""
        cache = self._active_cache()
        hit = cache.get(w)
        if hit is None:
            hit = cache[w] = self._compute_active(w)
        return hit

    def _compute_active(self, w: float) -> tuple[int, int, int]:
        cin = _active(self.slim_range, self.in_channels, w, self.slim_in, self.ratio[0])
        cout = _active(self.slim_range, self.out_channels, w, self.slim_out, self.ratio[1])
        if self.depthwise:
            return cin, cin, cin
        return cin, cout, self.groups

    def channel_signature(self, w: float) -> tuple[int, ...]:
        return self.active_channels(w)[:2]

    def signature_spec(self) -> tuple[tuple[int, bool, int], ...]:
        a = (self.in_channels, self.slim_in, self.ratio[0])
        return (a, a) if self.depthwise else (a, (self.out_channels, self.slim_out, self.ratio[1]))

    def sliced(self, w: float) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        cin, cout, groups = self.active_channels(w)
        if cout == self.out_channels and (self.depthwise or cin == self.in_channels):
            # Full width: the parameters themselves (a no-op slice would still cost a view and, in backward,
            # a zero-filled full-size gradient buffer).
            return self.weight, self.bias, groups
        # one dense block through one autograd node (``_leading_block``), not a strided view of two slices
        weight = _leading_block(self.weight, (cout,) if self.depthwise else (cout, cin // groups))
        bias = self.bias[:cout] if self.bias is not None else None
        return weight, bias, groups

    def _inference(self, w: float) -> tuple[int, torch.Tensor, torch.Tensor | None, int]:
        return (self.active_channels(w)[0], *self.sliced(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._w()
        stride = self.stride
        training = torch.is_grad_enabled() and self.__dict__["_parameters"]["weight"].requires_grad
        if training:
            cin = self.active_channels(w)[0]
            weight, bias, groups = self.sliced(w)
        else:  # inference: dense slices memoised per width (the per-layer cost is most of a narrow batch-1 call)
            cin, weight, bias, groups = _inference_slices(self, w, self._inference)
        _check_channels("SlimConv2d", w, cin, x.shape[1], "input channels")
        if training:
            x, stride = _unit_stride_input(weight, stride, self.padding, groups, x)
        return torch.conv2d(x, weight, bias, stride, self.padding, self.dilation, groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"groups={'depthwise' if self.depthwise else self.groups}, slim=({self.slim_in}, {self.slim_out}), "
            f"ratio={self.ratio}"
        )


class SlimLinear(SlimModule):
    """A slimmable ``Linear``: ``weight[:out, :in]`` at a width.

    With ``slice_input=True`` the layer slices its input to the first active features itself (the
    reference ViT: the residual stream stays full width, each block Linear reads only its first channels).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        slim_in: bool = True,
        slim_out: bool = False,
        slice_input: bool = False,
        width_range: WidthRange | None = None,
    ) -> None:
        super().__init__()
        self._init_slim(width_range)
        self.in_features, self.out_features = in_features, out_features
        self.slim_in, self.slim_out, self.slice_input = slim_in, slim_out, slice_input
        ref = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default init
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None

    def active_features(self, w: float) -> tuple[int, int]:
        cache = self._active_cache()
        hit = cache.get(w)
        if hit is None:
            hit = cache[w] = self._compute_active(w)
        return hit

    def _compute_active(self, w: float) -> tuple[int, int]:
        cin = _active(self.slim_range, self.in_features, w, self.slim_in, 1)
        cout = _active(self.slim_range, self.out_features, w, self.slim_out, 1)
        return cin, cout

    def channel_signature(self, w: float) -> tuple[int, ...]:
        return self.active_features(w)

    def signature_spec(self) -> tuple[tuple[int, bool, int], ...]:
        return ((self.in_features, self.slim_in, 1), (self.out_features, self.slim_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._w()
        cin, cout = self.active_features(w)
        if self.slice_input:
            x = x[..., :cin]
        else:
            _check_channels("SlimLinear", w, cin, x.shape[-1], "input features")
        if cout == self.out_features and cin == self.in_features:
            return F.linear(x, self.weight, self.bias)
        bias = self.bias[:cout] if self.bias is not None else None
        return F.linear(x, self.weight[:cout, :cin], bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, slim=({self.slim_in}, {self.slim_out}), "
            f"slice_input={self.slice_input}"
        )


def switch_error(switches: tuple[float, ...], w: float) -> str:
    """The one-line refusal of a width that is not one of an S-Nets model's switches."""
    return f"S-Nets run only at widths {', '.join(f'{s:g}' for s in switches)} (got {w:g})"


#: Switch widths are kept as their ``us3l.width_key`` (4 decimals, half up, like every key of calibrated
#: statistics, ``bn_stats.safetensors``);
#: a width within half of that step of a switch is that switch.
SWITCH_TOL = 5e-5


def check_switches(switches: Sequence[float], width_range: WidthRange) -> tuple[float, ...]:
    """Validate S-Nets switch widths against ``width_range``: the distinct widths, largest first."""
    from us3l.errors import US3LError

    if isinstance(switches, str | bytes) or not isinstance(switches, Sequence) or not switches:
        raise US3LError(f"bn_switches must be a non-empty list of widths, got {switches!r}")
    out: list[float] = []
    for s in switches:
        try:
            v = width_key(width_range.check(s))
        except ValueError as exc:
            raise US3LError(f"bn_switches: {exc}") from None
        if any(abs(v - o) <= SWITCH_TOL for o in out):
            raise US3LError(f"bn_switches lists width {v:g} twice: {list(switches)}")
        out.append(v)
    return tuple(sorted(out, reverse=True))


class SlimBatchNorm2d(SlimModule):
    """Slimmable BatchNorm: one shared affine sliced to the first ``c`` channels, or switchable (S-Nets).

    Shared (default, US-Nets / US3L, method.md §4): ``weight``/``bias`` are sliced to the first ``c`` channels.
    Running statistics: by default the layer always normalises with batch statistics, like the reference during
    US3L training; ``track_running_stats=True`` keeps sliced running statistics (the single-width baseline).

    Switchable (``switches=(1.0, 0.75, 0.5, 0.25)``, S-Nets, Yu et al. 2018): a *private* BatchNorm per switch
    width, with its own affine (``switch_weight[i]``/``switch_bias[i]``, exactly the switch's active channels)
    and, with ``track_running_stats=True``, its own running statistics (``switch_running_mean_{i}``/
    ``switch_running_var_{i}``); ``weight``/``bias`` are ``None``. Only the convolutions and linears share
    (sliced) weights. Running the layer at a width that is not a switch raises ``US3LError``
    (:func:`switch_error`); it never falls back to another switch's BN. ``switches`` are sorted largest first.

    Calibrated statistics per width live in ``width_stats`` (keyed by the canonical width, see
    :func:`us3l.slim.canonical_width`: the switch itself for a switchable model); in eval mode they take
    precedence over running statistics. ``slim=False`` keeps all channels (MobileNetV2's last BN) while still
    holding per-width statistics (and, when switchable, a private affine per switch).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        track_running_stats: bool = False,
        slim: bool = True,
        ratio: int = 1,
        width_range: WidthRange | None = None,
        switches: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self._init_slim(width_range)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.slim, self.ratio = slim, ratio
        self.track_running_stats = track_running_stats
        self.switches: tuple[float, ...] | None = None
        if switches is None:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.switches = check_switches(switches, self.slim_range)
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
            sizes = [self.active_channels(s) for s in self.switches]
            self.switch_weight = nn.ParameterList([nn.Parameter(torch.ones(c)) for c in sizes])
            self.switch_bias = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in sizes])
        if track_running_stats and self.switches is None:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = None
            self.running_var = None
        if track_running_stats and self.switches is not None:
            for i, s in enumerate(self.switches):
                c = self.active_channels(s)
                self.register_buffer(f"switch_running_mean_{i}", torch.zeros(c))
                self.register_buffer(f"switch_running_var_{i}", torch.ones(c))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.width_stats: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self.stats_key: float | None = None  # canonical width of the current width, set with the width
        self.collector: StatsCollector | None = None
        # > 1 while several views run as one batch (us3l.ssl.views): batch statistics per view, see batch_groups
        self.batch_groups = 1

    def active_channels(self, w: float) -> int:
        cache = self._active_cache()
        hit = cache.get(w)
        if hit is None:
            hit = cache[w] = _active(self.slim_range, self.num_features, w, self.slim, self.ratio)
        return hit

    def channel_signature(self, w: float) -> tuple[int, ...]:
        return (self.active_channels(w),)

    def signature_spec(self) -> tuple[tuple[int, bool, int], ...]:
        return ((self.num_features, self.slim, self.ratio),)

    def switch_index(self, w: float) -> int:
        """The index of switch ``w`` (``US3LError`` when ``w`` is not a switch of this switchable layer)."""
        assert self.switches is not None
        for i, s in enumerate(self.switches):
            if abs(s - w) <= SWITCH_TOL:
                return i
        from us3l.errors import US3LError

        raise US3LError(switch_error(self.switches, w))

    def affine_weights(self) -> list[nn.Parameter]:
        """Every γ of the layer: the shared one, or one per switch (for initialisation)."""
        return [self.weight] if self.switches is None else list(self.switch_weight)

    def affine_biases(self) -> list[nn.Parameter]:
        """Every β of the layer: the shared one, or one per switch (for initialisation)."""
        return [self.bias] if self.switches is None else list(self.switch_bias)

    def _affine(self, w: float) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.active_channels(w)
        return self.weight[:c], self.bias[:c]

    def affine(self, w: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ, β) at width ``w``: the shared affine's first channels, or the switch's private affine."""
        if self.switches is not None:
            i = self.switch_index(w)
            return self.switch_weight[i], self.switch_bias[i]
        return self._affine(w)

    def running_stats(self, w: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The running statistics used at width ``w`` (views that training updates in place), or None."""
        if self.switches is not None:
            if not self.track_running_stats:
                return None
            i = self.switch_index(w)
            return getattr(self, f"switch_running_mean_{i}"), getattr(self, f"switch_running_var_{i}")
        if self.running_mean is None or self.running_var is None:
            return None
        c = self.active_channels(w)
        return self.running_mean[:c], self.running_var[:c]

    def eval_stats(self, w: float, key: float | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The statistics eval mode uses at width ``w``: calibrated, else running (sliced or the switch's own),
        else None."""
        if self.switches is not None:
            self.switch_index(w)  # a width that is not a switch has no statistics of its own
        if key is not None and key in self.width_stats:
            return self.width_stats[key]
        return self.running_stats(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.__dict__
        w = self._w()
        c = self.active_channels(w)
        _check_channels("SlimBatchNorm2d", w, c, x.shape[1])
        if (
            not d["training"]
            and d["switches"] is None
            and d["collector"] is None
            and not (torch.is_grad_enabled() and d["_parameters"]["weight"].requires_grad)
        ):
            # eval inference, the common deployment call: memoised dense affine, calibrated statistics, and
            # the aten op directly (F.batch_norm's checks are for training)
            weight, bias = _inference_slices(self, w, self._affine)
            key = d["stats_key"]
            stats = d["width_stats"].get(key) if key is not None else None
            if stats is None:
                stats = self.running_stats(w)
            if stats is None:  # no statistics at all: batch statistics, as the reference does
                return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
            stats = _stats_like(stats, weight)
            return torch.batch_norm(x, weight, bias, stats[0], stats[1], False, 0.0, self.eps, _CUDNN.enabled)
        if self.switches is not None:
            weight, bias = self.affine(w)
        elif c == self.num_features:
            weight, bias = self.weight, self.bias
        elif self.weight.requires_grad and torch.is_grad_enabled():
            weight, bias = self.weight[:c], self.bias[:c]
        else:
            weight, bias = _inference_slices(self, w, self._affine)
        if self.collector is not None:
            self.collector.update(x)
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        if self.training:
            running = self.running_stats(w)
            if running is not None:
                # In-place updates through the views update the running buffers (shared, or the switch's own).
                mean, var, momentum = running[0], running[1], self.momentum
            else:
                mean, var, momentum = None, None, 0.0
            groups = d.get("batch_groups", 1)
            if d.get("sync_bn", False) and syncing(self):  # sync_bn: the whole distributed batch's statistics
                tracked = self.num_batches_tracked if running is not None else None
                return grouped_sync_batch_norm(x, groups, mean, var, weight, bias, momentum, self.eps, tracked)
            if groups == 1:
                if running is not None:
                    self.num_batches_tracked.add_(1)
                return F.batch_norm(x, mean, var, weight, bias, True, momentum, self.eps)
            tracked = self.num_batches_tracked if running is not None else None
            return grouped_batch_norm(x, groups, mean, var, weight, bias, momentum, self.eps, tracked)
        stats = self.eval_stats(w, self.stats_key)
        if stats is None:  # no statistics at all: batch statistics, as the reference does
            return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)
        stats = _stats_like(stats, weight)
        return F.batch_norm(x, stats[0], stats[1], weight, bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        sw = "" if self.switches is None else f", switches={self.switches}"
        return (
            f"{self.num_features}, eps={self.eps}, track_running_stats={self.track_running_stats}, "
            f"slim={self.slim}, ratio={self.ratio}{sw}, calibrated_widths={len(self.width_stats)}"
        )


def _stats_like(stats: tuple[torch.Tensor, torch.Tensor], weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Calibrated statistics (kept in float32) in the dtype of the affine they normalise with: batch_norm refused a
    float64 or bfloat16 model's calibrated widths ("expected scalar type Double but found Float")."""
    if stats[0].dtype == weight.dtype:
        return stats
    return stats[0].to(weight.dtype), stats[1].to(weight.dtype)


def grouped_batch_norm(
    x: torch.Tensor,
    groups: int,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    momentum: float,
    eps: float,
    num_batches_tracked: torch.Tensor | None = None,
) -> torch.Tensor:
    """Training-mode batch norm of ``x`` as ``groups`` equal consecutive batches, each with its own batch
    statistics: the same function as normalising each group in a separate forward, running statistics updated
    once per group in order. ``x``'s first dimension must be a multiple of ``groups``."""
    n = x.shape[0]
    if n % groups:
        raise ValueError(f"batch of {n} does not split into {groups} equal groups")
    outs = []
    for part in x.chunk(groups):
        if running_mean is not None and num_batches_tracked is not None:
            num_batches_tracked.add_(1)
        outs.append(F.batch_norm(part, running_mean, running_var, weight, bias, True, momentum, eps))
    return torch.cat(outs)


class StatsCollector:
    """Accumulates per-channel batch mean and unbiased variance during BN recalibration.

    ``momentum=None``: cumulative average over batches (US-Nets, PyTorch ``momentum=None``);
    a float: exponential moving average from mean 0 / var 1 (the reference's momentum-0.1 variant).
    """

    def __init__(self, momentum: float | None = None) -> None:
        self.momentum = momentum
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None
        self.n = 0

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        mean = x.mean(dim=dims).float()
        var = x.var(dim=dims, unbiased=count > 1).float()
        if self.mean is None or self.var is None:
            if self.momentum is None:
                self.mean, self.var = mean.clone(), var.clone()
            else:
                m = self.momentum
                self.mean = m * mean
                self.var = (1 - m) * torch.ones_like(var) + m * var
        elif self.momentum is None:
            self.mean += (mean - self.mean) / (self.n + 1)
            self.var += (var - self.var) / (self.n + 1)
        else:
            m = self.momentum
            self.mean.mul_(1 - m).add_(m * mean)
            self.var.mul_(1 - m).add_(m * var)
        self.n += 1
