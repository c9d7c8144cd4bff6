"""SSL methods for universally slimmable training, registered by name (method.md §1).

Each method is an ``nn.Module`` whose parameter names follow the reference, which the group regularizer's
name-based exclusions rely on (``us3l.train.groupreg``):

=====================  ============================================================  ======================
name prefix            what                                                          group-reg
=====================  ============================================================  ======================
``encoder_q.backbone``  the slimmable backbone (saved as ``backbone.*``)              yes
``encoder_q.projector`` 3-layer projector, first layer input-sliced                   yes
``encoder_k.*``         EMA teacher (backbone + projector), width fixed at max        never
``predictor.*``         base predictor; sub-network-only head of us3l, naive_simclr,  not at max width
                        snets
``predictor_new.*``     auxiliary distillation head of BYOL/SimSiam/MoCo v3 variants  not at max width
``proj_conv.*``         1×1 adapters of the optional feature distillation             never
=====================  ============================================================  ======================

``forward(x1, x2, w)`` runs the base (max-width) branch and returns ``(loss, targets)``; the targets hold
the stop-gradient teacher outputs of this iteration. ``forward(x1, x2, w, targets)`` runs a sub-network
and returns ``(loss, None)``. Routing both through ``forward`` keeps them DDP-compatible.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from us3l.slim import width as width_ctx
from us3l.ssl import heads, losses
from us3l.ssl.ema import ema_update
from us3l.ssl.views import run_views

Targets = dict[str, Any]
METHODS: dict[str, type[SSLMethod]] = {}


def register_method(cls: type[SSLMethod]) -> type[SSLMethod]:
    """Class decorator: register a method under ``cls.name``."""
    METHODS[cls.name] = cls
    return cls


def create_method(name: str, backbone: nn.Module, cfg: Any) -> SSLMethod:
    """Build method ``name`` around ``backbone`` with settings from a ``TrainConfig``."""
    from us3l.errors import US3LError

    if name not in METHODS:
        raise US3LError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name](backbone, cfg)


def default_feature_layers(backbone: nn.Module) -> tuple[str, ...]:
    """The reference's hooked BN layers: last block's ``bn2`` of stages 2–4 of a ResNet."""
    names = dict(backbone.named_modules())
    out = []
    for stage in ("layer2", "layer3", "layer4"):
        blocks = [n for n in names if n.startswith(stage + ".") and n.count(".") == 1]
        if blocks:
            cand = f"{blocks[-1]}.bn2"
            if cand in names:
                out.append(cand)
    return tuple(out)


class Encoder(nn.Module):
    """Backbone + projector; records the outputs of ``feature_layers`` when ``capture`` is on."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, feature_layers: Sequence[str] = ()) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.feature_layers = tuple(feature_layers)
        self._captured: list[Tensor] = []
        self.capture = False
        mods = dict(backbone.named_modules())
        for name in self.feature_layers:
            mods[name].register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inp: Any, out: Tensor) -> None:
        if self.capture:
            self._captured.append(out)

    def forward(self, x: Tensor, w: float, features: bool = False) -> tuple[Tensor, list[Tensor]]:
        self._captured = []
        self.capture = features
        try:
            with width_ctx(self.backbone, w):
                z = self.projector(self.backbone(x))
        finally:
            self.capture = False
        feats, self._captured = self._captured, []
        return z, feats

    def forward_views(
        self, xs: Sequence[Tensor], w: float, features: bool = False, batched: bool = True
    ) -> list[tuple[Tensor, list[Tensor]]]:
        """``[self(x, w, features) for x in xs]``, as one call with per-view batch statistics when ``batched``
        (:func:`us3l.ssl.views.run_views`)."""
        return run_views(self, lambda x: self(x, w, features), xs, batched)


class SSLMethod(nn.Module):
    """Common structure: ``encoder_q`` (+ ``encoder_k`` EMA teacher) and the method's heads."""

    name: ClassVar[str] = ""
    uses_ema: ClassVar[bool] = True
    simclr_type: ClassVar[bool] = False  # D=256 and a biased middle projector layer
    base_head: ClassVar[str | None] = None  # head applied to the base output ("predictor" or None)
    aux_head: ClassVar[str | None] = "predictor_new"  # head applied to sub-network outputs
    proj_out_bn: ClassVar[bool] = False  # projector ends with BatchNorm1d(affine=False) (reference SimSiam)

    def __init__(self, backbone: nn.Module, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        wr = backbone.width_range
        self.w_max = float(cfg.width_max if cfg.width_max is not None else wr.max)
        dim = cfg.proj_dim or (256 if self.simclr_type else 2048)
        self.dim = dim
        layers: tuple[str, ...] = ()
        if cfg.feature_distill:
            layers = tuple(cfg.feature_layers) or default_feature_layers(backbone)
            missing = [n for n in layers if n not in dict(backbone.named_modules())]
            if missing or not layers:
                from us3l.errors import US3LError

                raise US3LError(f"feature_layers not found in {cfg.model}: {missing or 'none configured'}")
        self.encoder_q = Encoder(backbone, self.make_projector(backbone.num_features, cfg.proj_hidden, dim), layers)
        if self.uses_ema:
            self.encoder_k = copy.deepcopy(self.encoder_q)
            for p in self.encoder_k.parameters():
                p.requires_grad_(False)
        for head in sorted({self.base_head, self.aux_head} - {None}):
            self.add_module(head, self.make_predictor(dim, cfg.pred_hidden))
        if layers:
            mods = dict(backbone.named_modules())
            self.proj_conv = nn.ModuleDict(
                {n.replace(".", "_"): heads.InputSlicedConv1x1(mods[n].num_features) for n in layers}
            )
        self.momentum_now = float(cfg.ema_momentum)
        # both views in one call per network and head (us3l.ssl.views; the reference calls once per view)
        self.view_batching = bool(getattr(cfg, "view_batching", True))

    # -- building blocks ------------------------------------------------------------------------------
    def make_projector(self, in_features: int, hidden: int, dim: int) -> nn.Module:
        return heads.projector(in_features, hidden, dim, middle_bias=self.simclr_type, out_bn=self.proj_out_bn)

    def make_predictor(self, dim: int, hidden: int) -> nn.Module:
        return heads.predictor(dim, hidden)

    def _heads(self, name: str | None, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor]:
        """The head ``name`` on both views' outputs (one call, per-view batch statistics; docs/training.md)."""
        if name is None:
            return z1, z2
        head = getattr(self, name)
        p1, p2 = run_views(head, head, (z1, z2), self.view_batching)
        return p1, p2

    def _encode(
        self, encoder: Encoder, x1: Tensor, x2: Tensor, w: float, features: bool = False
    ) -> tuple[tuple[Tensor, list[Tensor]], tuple[Tensor, list[Tensor]]]:
        """``(encoder(x1, w), encoder(x2, w))``: one call on both views unless ``view_batching`` is off."""
        a, b = encoder.forward_views((x1, x2), w, features, self.view_batching)
        return a, b

    @torch.no_grad()
    def _teacher(self, x1: Tensor, x2: Tensor, features: bool) -> Targets:
        (k1, f1), (k2, f2) = self._encode(self.encoder_k, x1, x2, self.w_max, features)
        feats = [(a.detach(), b.detach()) for a, b in zip(f1, f2, strict=True)]
        return {"k": (k1.detach(), k2.detach()), "feats": feats}

    def _distill(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        if self.cfg.distill_criterion == "ntxent":
            crit: Callable[[Tensor, Tensor], Tensor] = lambda a, b: losses.nt_xent_target(  # noqa: E731
                a, b, self.cfg.temperature
            )
        else:
            crit = losses.neg_cosine
        return losses.cross_view(crit, online, targets)

    def _feature_loss(self, student: Sequence[list[Tensor]], targets: Targets) -> Tensor:
        s1, s2 = student
        terms = []
        for i, key in enumerate(self.proj_conv):
            adapt = self.proj_conv[key]
            t1, t2 = targets["feats"][i]
            terms.append(losses.feature_mse((adapt(s1[i]), adapt(s2[i])), (t1, t2)))
        return torch.stack(terms).mean()

    # -- the two branches -----------------------------------------------------------------------------
    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        raise NotImplementedError

    def base(self, x1: Tensor, x2: Tensor, w: float) -> tuple[Tensor, Targets]:
        feats = bool(self.encoder_q.feature_layers)
        (z1, _), (z2, _) = self._encode(self.encoder_q, x1, x2, w)
        # Reference order: EMA update inside the max-width pass, before the teacher forward.
        ema_update(self.encoder_k, self.encoder_q, self.momentum_now)
        t = self._teacher(x1, x2, feats)
        p = self._heads(self.base_head, z1, z2)
        return self.base_loss(p, t["k"]), t

    def sub(self, x1: Tensor, x2: Tensor, w: float, targets: Targets) -> Tensor:
        feats = bool(self.encoder_q.feature_layers)
        (z1, f1), (z2, f2) = self._encode(self.encoder_q, x1, x2, w, feats)
        p = self._heads(self.aux_head, z1, z2)
        loss = self.cfg.distill_lambda * self._distill(p, targets["k"])
        if feats:
            loss = loss + self.cfg.feature_lambda * self._feature_loss((f1, f2), targets)
        return loss

    def forward(
        self, x1: Tensor, x2: Tensor, w: float, targets: Targets | None = None
    ) -> tuple[Tensor, Targets | None]:
        if targets is None:
            return self.base(x1, x2, w)
        return self.sub(x1, x2, w, targets), None


@register_method
class US3L(SSLMethod):
    """The US3L recipe (SimCLR_Momentum): base NT-Xent(z, sg k) vs the EMA teacher, no base head;
    sub-networks: −cos(predictor(z_w), sg k) against this iteration's EMA teacher output."""

    name = "us3l"
    simclr_type = True
    base_head = None
    aux_head = "predictor"

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.cross_view(lambda a, b: losses.nt_xent_target(a, b, self.cfg.temperature), online, targets)


@register_method
class US3LBYOL(SSLMethod):
    """BYOL base (−cos(predictor(z), sg k)); sub-networks distil through ``predictor_new``."""

    name = "us3l_byol"
    base_head = "predictor"
    aux_head = "predictor_new"

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.cross_view(losses.neg_cosine, online, targets)


@register_method
class US3LSimSiam(US3LBYOL):
    """SimSiam_Momentum: identical in form to BYOL (predictor + EMA target), method.md §1.4."""

    name = "us3l_simsiam"


@register_method
class US3LMoCoV3(SSLMethod):
    """MoCo v3 for ViTs: ctr(h(z1), k2) + ctr(h(z2), k1) with τ; sub-networks through ``predictor_new``.
    The EMA momentum follows a cosine schedule to 1 (set by the loop in ``momentum_now``)."""

    name = "us3l_mocov3"
    simclr_type = True  # D = 256
    base_head = "predictor"
    aux_head = "predictor_new"

    def __init__(self, backbone: nn.Module, cfg: Any) -> None:
        super().__init__(backbone, cfg)
        self.predictor_new.load_state_dict(self.predictor.state_dict())  # MoCo_USViT: deepcopy(self.predictor)

    def make_projector(self, in_features: int, hidden: int, dim: int) -> nn.Module:
        """MoCo_ViT's projector: 3 bias-free Linears, the last followed by ``BatchNorm1d(dim, affine=False)``."""
        return heads.mocov3_mlp(3, in_features, hidden, dim)

    def make_predictor(self, dim: int, hidden: int) -> nn.Module:
        """MoCo_ViT's predictor (and ``predictor_new``, its copy): 2 bias-free Linears + final BN(affine=False)."""
        return heads.mocov3_mlp(2, dim, hidden, dim)

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.mocov3_pair(online, targets, self.cfg.mocov3_tau)

    def _distill(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.mocov3_pair(online, targets, self.cfg.mocov3_tau)


class _Naive(SSLMethod):
    """No EMA teacher: the online max network is its own target; sub-networks use US-Nets inplace
    distillation from the online max network's (stop-gradient) output of this iteration. The recipe-level
    defaults (no width schedule, no group regularizer, plain weight decay, the reference lr) come from
    ``us3l.train.config.METHOD_RECIPES``."""

    uses_ema = False

    def base(self, x1: Tensor, x2: Tensor, w: float) -> tuple[Tensor, Targets]:
        (z1, _), (z2, _) = self._encode(self.encoder_q, x1, x2, w)
        p = self._heads(self.base_head, z1, z2)
        return self.base_loss(p, (z1, z2)), {"k": (z1.detach(), z2.detach()), "feats": []}


@register_method
class NaiveSimSiam(_Naive):
    """SimSiam + US-Nets (the reference ``SimSiam`` class): ½Σ −cos(h(z_s), sg z_t) at max width; sub-networks
    −cos(h(z_s^w), sg z_t^max) through the *same* predictor (no separate head). The projector ends with
    ``BatchNorm1d(D, affine=False)`` and its last Linear's bias is frozen, as in the reference."""

    name = "naive_simsiam"
    base_head = "predictor"
    aux_head = "predictor"
    proj_out_bn = True

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.cross_view(losses.neg_cosine, online, targets)


@register_method
class NaiveSimCLR(_Naive):
    """SimCLR + US-Nets (the reference ``SimCLR`` class with ``PREDICTOR: True``, its default): NT-Xent(z1, z2)
    (gradient through both) at max width without a head; sub-networks −cos(predictor(z_s^w), sg z_t^max), the
    predictor being applied only to sub-network outputs."""

    name = "naive_simclr"
    simclr_type = True
    base_head = None
    aux_head = "predictor"

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        return losses.nt_xent(online[0], online[1], self.cfg.temperature)


@register_method
class Single(SSLMethod):
    """The individually trained baseline: one fixed width (``single_width``), BN with running statistics,
    the base loss of ``single_base`` (SimCLR_Momentum by default, or BYOL) against an EMA teacher at the
    same width."""

    name = "single"
    aux_head = None

    def __init__(self, backbone: nn.Module, cfg: Any) -> None:
        if cfg.single_base == "byol":
            self.base_head = "predictor"  # type: ignore[misc]
            self.simclr_type = False  # type: ignore[misc]
        else:
            self.base_head = None  # type: ignore[misc]
            self.simclr_type = True  # type: ignore[misc]
        super().__init__(backbone, cfg)
        self.w_max = float(cfg.single_width)  # the teacher runs at the same fixed width

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        if self.cfg.single_base == "byol":
            return losses.cross_view(losses.neg_cosine, online, targets)
        return losses.cross_view(lambda a, b: losses.nt_xent_target(a, b, self.cfg.temperature), online, targets)


@register_method
class SNets(SSLMethod):
    """S-Nets (4 switches), the paper's slimmable-network comparison: a backbone with switchable BN (a private
    BN per switch width, ``bn_switches``; convolutions shared and sliced) trained at *every* switch in every
    iteration, largest first. The losses are ``us3l``'s (``snets_base: simclr_momentum``): the base network
    (largest switch) learns NT-Xent against the EMA teacher, which is EMA-updated once in that pass; every smaller
    switch distils −cos(``predictor``(z_w), sg k) from this iteration's teacher output. ``snets_base: byol``:
    BYOL base (−cos through ``predictor``), sub-networks through ``predictor_new``; with
    ``snets_momentum_update`` (the reference's ``s_*`` recipes, whose ``MOMENTUM_UPDATE`` stays at its default
    True) the teacher is EMA-updated again in every sub-network pass and sub-networks use the base predictor."""

    name = "snets"

    def __init__(self, backbone: nn.Module, cfg: Any) -> None:
        from us3l.errors import US3LError
        from us3l.slim import bn_switches

        switches = bn_switches(backbone)
        if switches is None:
            raise US3LError("method snets needs a backbone with switchable BN (model option bn_switches)")
        if cfg.snets_base == "byol":
            self.base_head = "predictor"  # type: ignore[misc]
            self.aux_head = "predictor" if cfg.snets_momentum_update else "predictor_new"  # type: ignore[misc]
            self.simclr_type = False  # type: ignore[misc]
        else:
            self.base_head = None  # type: ignore[misc]
            self.aux_head = "predictor"  # type: ignore[misc]
            self.simclr_type = True  # type: ignore[misc]
        super().__init__(backbone, cfg)
        self.switches = switches
        self.w_max = max(switches)  # the base network and the EMA teacher run at the largest switch

    def base_loss(self, online: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        if self.cfg.snets_base == "byol":
            return losses.cross_view(losses.neg_cosine, online, targets)
        return losses.cross_view(lambda a, b: losses.nt_xent_target(a, b, self.cfg.temperature), online, targets)

    def sub(self, x1: Tensor, x2: Tensor, w: float, targets: Targets) -> Tensor:
        if self.cfg.snets_momentum_update:
            # the reference's BYOL.forward(momentum_update=True) in a sub-network pass: the teacher moves again
            # (its outputs there are discarded; the distillation targets stay those of the max-width pass)
            ema_update(self.encoder_k, self.encoder_q, self.momentum_now)
        return super().sub(x1, x2, w, targets)
