"""Model registry: one lowercase name per architecture, shared by the CLI, configs and result files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from us3l.errors import US3LError
from us3l.models.base import SlimNet
from us3l.slim.rounding import WidthRange


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., SlimNet]
    description: str
    input_size: int
    size_option: str | None = None  # the factory option that sets the input side, for a model built for one


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, input_size: int, size_option: str | None = None) -> Callable:
    """Register ``factory(width_range=..., **kwargs) -> SlimNet`` under ``name``. ``size_option`` names the
    factory option that builds the model for another input side (a ViT's ``img_size``: its position embedding
    fixes the number of patches); models without one run at any size."""

    def deco(fn: Callable[..., SlimNet]) -> Callable[..., SlimNet]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, fn, description, input_size, size_option)
        return fn

    return deco


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise US3LError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(
    name: str,
    width_min: float = 0.25,
    width_max: float = 1.0,
    divisor: int = 8,
    **kwargs: object,
) -> SlimNet:
    """Create a registered slimmable model.

    Keyword arguments of every model: ``width_min``/``width_max``/``divisor`` (the width range), ``num_classes``
    (0 = no head; ``forward`` returns the embedding). Those of an architecture (``us3l models`` lists the models,
    not their options): ResNets ``base_channels``, ``zero_init_residual``, ``bn_track_stats`` (False like US3L
    training; True for the single-width baseline), ``bn_switches`` (S-Nets); MobileNetV2 ``last_channels``,
    ``bn_track_stats``, ``bn_switches``; ViTs ``img_size``, ``patch_size``, ``mlp_ratio``, ``stop_grad_conv1``.
    Another name is a one-line ``US3LError`` (``model 'NAME' has no option 'X'``).
    """
    entry = model_entry(name)
    classes = kwargs.get("num_classes", 0)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:  # -1 built a model without a head
        raise US3LError(f"model {name!r}: num_classes must be an integer >= 0 (0: no head), got {classes!r}")
    try:
        wr = WidthRange(width_min, width_max, divisor)
    except ValueError as exc:
        raise US3LError(str(exc)) from None
    try:
        model = entry.factory(width_range=wr, **kwargs)
    except TypeError as exc:
        msg = str(exc)
        if "unexpected keyword argument" in msg or "got multiple values" in msg:
            bad = msg.rsplit(" ", 1)[-1].strip("'")
            raise US3LError(f"model {name!r} has no option {bad!r}") from None
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())  # a value of the wrong type: name them all
        raise US3LError(f"model {name!r} cannot take the options {given} ({' '.join(msg.split())})") from None
    except (ValueError, US3LError) as exc:  # an option's value the architecture refuses (an img_size not in
        # patches) or of the wrong type (base_channels=16.0, bn_track_stats="no")
        raise US3LError(f"model {name!r}: {exc}") from None
    # the name and options that built it, besides the width range (``model.width_range``): an export records the
    # options in its manifest (``model.model_kwargs``), from which a reader rebuilds the architecture to check the
    # width of the graph (``us3l.deploy.manifest_claims.check_model``)
    model.registered_as = (name, dict(kwargs))
    return model


def size_kwargs(name: str, size: int | None) -> dict[str, int]:
    """The option that builds ``name`` for ``size``-pixel inputs (``{}`` where the model runs at any size or
    ``size`` is None or its default)."""
    entry = model_entry(name)
    if size is None or entry.size_option is None or size == entry.input_size:
        return {}
    return {entry.size_option: size}
