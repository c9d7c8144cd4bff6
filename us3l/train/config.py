"""The training configuration: one frozen dataclass, resolved once (CLI > config file > defaults) and saved.

``load_config(path)`` reads YAML or TOML; ``resolve_config(file, overrides)`` merges and validates. Unknown
keys and bad values raise a one-line ``US3LError``.

Layering, lowest first: dataclass defaults < the packaged ``default.yaml`` (only when no config file is given)
< the method's recipe (``METHOD_RECIPES``) < the user's config file < CLI overrides. The method's recipe sits
*above* the packaged default file: ``default.yaml`` is written for the ``us3l`` recipe (schedule A, group
regularization, its lr), so ``us3l train --method naive_simsiam`` gets the reference's naive recipe (no width
schedule, no regularizer, its weight decay and lr) instead of inheriting the us3l recipe's keys, while every
other key of ``default.yaml`` (data, model, image size, epochs, ...) still applies. Recipe keys left unset
(``None``) are filled by ``fill_method_defaults``, so a ``TrainConfig`` built in code gets them too, and the
resolved values are what the run saves.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from us3l.errors import US3LError
from us3l.io import read_input_text
from us3l.train.sampling import REFERENCE_STAGE1, SAMPLINGS, SCHEDULES, check_schedule
from us3l.train.threads import AUTO
from us3l.validate import MAX_INPUT_SIZE, MAX_THREADS, MAX_WORKERS, MIN_INPUT_SIZE
from us3l.validate import batch_size as check_batch_size

DEFAULT_CONFIG_NAME = "default.yaml"
#: ``lr_schedule`` values: per-epoch cosine (reference), per-iteration cosine with warm-up, constant lr.
LR_SCHEDULES = ("epoch", "iter", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (see ``docs/training.md`` for each field)."""

    # what
    method: str = "us3l"
    model: str = "cifar_resnet18"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    data: str = "builtin"
    image_size: int | None = None  # None: the model's input_size
    crop_min: float | None = None  # RandomResizedCrop min scale; None: the data set's recipe (0.2)
    augment: str = "symmetric"  # "symmetric" (CNN recipes) or "byol": asymmetric views (MoCo v3 ViT recipe)
    out: str = "runs/us3l"
    # optimisation
    epochs: int = 400
    batch_size: int = 128  # per process
    lr: float | None = None  # None: the method's reference value (0.5 SimCLR-type, 0.05 BYOL/SimSiam-type)
    optimizer: str = "sgd"  # "sgd" (CNN recipes) or "adamw" (MoCo v3 ViT recipe)
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the method's recipe (METHOD_RECIPES); 0 when the regularizer is on
    lr_schedule: str = "epoch"  # "epoch" (reference), "iter" (per-iteration cosine with warm-up) or "constant"
    warmup_epochs: int = 0
    lr_schedule_epochs: int | None = None  # lr cosine length in epochs (None: ``epochs``); only the lr follows it
    step_per_width: bool = True  # reference: one SGD step per sampled width; False: accumulate (US-Nets)
    view_batching: bool = True  # both views in one call, BN statistics per view (same math); False: one call per view
    # reference (torch 1.10): zero_grad() left zero gradients, so heads idle at a width step still got momentum
    # and weight-decay updates; False: zero_grad(set_to_none=True) skips them (method.md §10)
    idle_heads_zero_grad: bool = False
    drop_last: bool = True
    seed: int = 100
    # mixed precision (us3l.train.precision): true = float16 on CUDA (float32 on the CPU), false = float32,
    # "bf16" = bfloat16 autocast on any device, "auto" = float16 on CUDA, bfloat16 on a CPU with native bfloat16
    # (AMX or AVX512-BF16), else float32; "auto" is resolved when the run starts and recorded for resume
    amp: bool | str = True
    device: str = "auto"
    # CPU threads per process (None: torch's default; "auto": the cores idle when the run starts, resolved then and
    # recorded: us3l.train.threads); recorded for resume
    threads: int | None = None
    # flush denormal floats to zero on the CPU during the run (torch.set_flush_denormal; run_training puts the
    # caller's mode back): bit-identical results on the recipes measured, and no 10-20 %+ slowdown once a run
    # collapses (docs/training.md, "Denormal floats")
    flush_denormal: bool = True
    # widths
    width_min: float | None = None  # None: the model's width range
    width_max: float | None = None
    num_samples: int = 3
    sampling: str = "sandwich"
    schedule: str | None = None  # None: the method's recipe ("A"; "none" for the naive baselines)
    schedule_stage1: float = 0.25  # share of schedule A's epochs in stage 1 (full width only); reference 0.25
    faithful_sandwich_bug: bool = False
    single_width: float = 1.0  # the `single` baseline's width
    # SSL heads and losses
    proj_dim: int | None = None  # None: 256 for SimCLR-type methods, 2048 otherwise
    proj_hidden: int = 2048
    pred_hidden: int = 2048
    ema_momentum: float = 0.99
    temperature: float = 0.5
    mocov3_tau: float = 0.2
    distill_lambda: float = 1.0
    distill_criterion: str = "cosine"  # or "ntxent"
    feature_distill: bool = False
    feature_lambda: float = 1.0
    feature_layers: tuple[str, ...] = ()  # default per model family when feature_distill is on
    single_base: str = "simclr_momentum"  # base loss of the `single` baseline: simclr_momentum | byol
    # S-Nets (`snets`): switchable BN at these widths, all trained every iteration
    bn_switches: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    snets_base: str = "simclr_momentum"  # base loss of `snets`: simclr_momentum (the us3l losses) | byol
    # reference s_* recipes (MOMENTUM_UPDATE left at True): EMA update at every width step, sub-networks through
    # the base predictor (byol base only)
    snets_momentum_update: bool = False
    # group regularization
    regularizer: bool | None = None  # None: the method's recipe (on; off for the naive baselines)
    reg_lambda: float = 5e-5
    reg_alpha: float = 0.05
    reg_bins: int = 8
    reg_warmup_epochs: int = 0
    reg_decay: str = "linear"
    # monitoring / output
    knn_every: int = 0  # 0: only at the end
    knn_widths: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    knn_k: int = 200  # requested; the monitor uses min(knn_k, max(1, smallest bank class // 2))
    knn_t: float = 0.1
    knn_max_train: int = 10000  # larger train splits: a seeded stratified subset of this many images is the bank
    collapse_warn: float = 0.1  # warn when std(L2-normalised z)·sqrt(D) falls below this
    collapse_stop: bool = False
    save_every: int = 10
    sync_bn: bool = False
    num_workers: int = 0
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_kwargs"] = dict(self.model_kwargs)
        d["feature_layers"] = list(self.feature_layers)
        d["knn_widths"] = list(self.knn_widths)
        d["bn_switches"] = list(self.bn_switches)
        return d


FIELD_NAMES = {f.name for f in fields(TrainConfig)}
_TUPLE_FIELDS = {"feature_layers", "knn_widths", "bn_switches"}
_FLOAT_TUPLE_FIELDS = {"knn_widths", "bn_switches"}


def _coerce(name: str, value: Any) -> Any:
    if name in _TUPLE_FIELDS and value is None:  # `knn_widths:` with no value (null) reached validate's loop
        kind = {"knn_widths": "numbers ([] for none)", "feature_layers": "names ([] for the model's default)"}
        raise US3LError(f"config {name!r} must be a list of {kind.get(name, 'numbers')}, got None")
    if name in _TUPLE_FIELDS:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, int | float):
            value = [value]
        if name in _FLOAT_TUPLE_FIELDS:
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise US3LError(f"config {name!r} must be a list of numbers, got {value!r}") from None
        else:
            value = tuple(str(v) for v in value)
    if name == "data" and isinstance(value, str):
        from us3l.data.datasets import anchored_data_spec

        value = anchored_data_spec(value)  # saved in the run: `folder:data` typed elsewhere is other data
    if name == "model_kwargs":
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise US3LError(f"config 'model_kwargs' must be a mapping, got {value!r}")
        _check_keys(value, "config 'model_kwargs'", "an option's")
        value = dict(value)
    return value


#: The largest config text read (a recipe is a few kB; a huge file is a mistake or an attack on the parser).
MAX_CONFIG_BYTES = 1_000_000


def plain_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` of a config text without aliases (``*name``: a few hundred bytes of nested aliases
    expand to gigabytes), without duplicate keys (the later one would win silently) and at most
    ``MAX_CONFIG_BYTES``; anything else is a one-line ``US3LError`` naming ``where``."""
    import yaml

    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise US3LError(f"{where} is larger than {MAX_CONFIG_BYTES // 1000} kB; a config is a few kB of settings")

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise US3LError(f"{where}: YAML aliases (*name, line {mark.line + 1}) are not accepted; "
                                "write the values out")
            return super().compose_node(parent, index)

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:`: named here, not PyYAML's constructor error
                raise US3LError(f"{where}: YAML merge keys (<<, line {line}) are not accepted; write the values out")
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, list | dict | set):  # `[1, 2]: 3`: named here, not an unhashable-type error
                raise US3LError(f"{where}: every key must be a name, got {key!r:.60} (line {line})")
            if key in seen:
                raise US3LError(f"{where}: key {key!r:.60} appears twice (line {line})")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    # Numbers as YAML 1.2's core schema reads them, not YAML 1.1 (PyYAML): 1.1 reads 1e-3 and 5e-4 as strings (its
    # floats need a dot and a signed exponent), 010 as octal 8, 1:00 as sexagesimal 60 and 1_000 as 1000. Every
    # other config language (and YAML 1.2) reads 010 as 10; a number with a colon or an underscore is a string here,
    # which the setting's type check then names.
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(_INT_TAG, _CORE_INT, list("-+0123456789"))
    Loader.add_implicit_resolver(_FLOAT_TAG, _CORE_FLOAT, list("-+.0123456789"))
    Loader.add_constructor(_INT_TAG, _core_int)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
#: YAML 1.2 core schema integers: decimal (leading zeros allowed: 010 is ten), 0o octal, 0x hexadecimal.
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
#: YAML 1.2 core schema floats (``1e-3``, ``5E4``, ``.5``, ``1.0e3``, ``.inf``, ``-.inf``, ``.nan``).
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def _core_int(loader: Any, node: Any) -> int:
    """An integer scalar as YAML 1.2 reads it (PyYAML's constructor would read 010 as octal)."""
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file into a flat mapping."""
    p = Path(path)
    if p.is_file() and p.stat().st_size > MAX_CONFIG_BYTES + 3:  # + a BOM; not read whole first (a data file)
        raise US3LError(f"config {p} is larger than {MAX_CONFIG_BYTES // 1000} kB; a config is a few kB of settings")
    text = read_input_text(p, "config file")
    try:
        if p.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef]
                except ImportError:
                    raise US3LError("TOML configs need Python >= 3.11 or the 'tomli' package") from None
            doc = tomllib.loads(text)
        else:
            doc = plain_yaml(text, f"config {p}")
    except US3LError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse error is a user error
        msg = str(exc).replace("\n", " ")
        raise US3LError(f"cannot parse config {p}: {msg}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise US3LError(f"config {p} must be a mapping of settings")
    _check_keys(doc, f"config {p}", "a setting's")  # e.g. `1: 2`, or `yes:` / `null:`, read as true / null
    return doc


def _check_keys(mapping: Mapping[Any, Any], where: str, what: str) -> None:
    """One line for a key that is not a string (YAML reads `1:`, `yes:` and `null:` as 1, true and null)."""
    bad = [k for k in mapping if not isinstance(k, str)]
    if bad:
        raise US3LError(f"{where}: every key must be {what} name, got {bad[0]!r}")


def default_config_path() -> Path:
    """The packaged ``us3l/configs/default.yaml``."""
    return Path(__file__).resolve().parent.parent / "configs" / DEFAULT_CONFIG_NAME


def _scalar_types() -> dict[str, tuple[type, bool]]:
    """(type, None allowed) of every bool/int/float/str field, from the dataclass annotations."""
    import types
    import typing

    out: dict[str, tuple[type, bool]] = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        if hint in (bool, int, float, str):
            out[name] = (hint, False)
            continue
        args = typing.get_args(hint)
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if is_union and len(args) == 2 and type(None) in args:
            base = next(a for a in args if a is not type(None))
            if base in (bool, int, float, str):
                out[name] = (base, True)
    return out


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _check_type(name: str, value: Any) -> Any:
    """``value`` for the scalar field ``name`` (an integral float becomes an int, an int a float), or a one-line
    ``US3LError`` naming the field, the expected type and the value (``--set epochs=abc``, ``amp=[1]``)."""
    if name == "amp":  # true, false or a word (us3l.train.precision)
        return _check_amp(value)
    spec = _SCALAR_TYPES.get(name)
    if spec is None:
        return value
    if name == "threads" and value == AUTO:  # resolved when the run starts (us3l.train.threads)
        return value
    kind, optional = spec
    if value is None and optional:
        return value
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        if isinstance(value, os.PathLike):  # out=Path(...) from Python
            value = os.fspath(value)
        ok = isinstance(value, str)
    if not ok:
        none = " (or null)" if optional else ""
        raise US3LError(f"config {name!r} must be {_TYPE_WORDS[kind]}{none}, got {value!r}")
    # every number ends up in torch: a float must fit float32 (1e300 overflows inside the loss), an int int64
    if kind is float and not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX):
        raise US3LError(f"config {name!r} must be a finite number within float32's range, got {value!r}")
    if kind is int and not -(2**63) <= value < 2**63:
        raise US3LError(f"config {name!r} must be a whole number within int64's range, got {value!r}")
    return value


_FLOAT32_MAX = 3.4028234663852886e38


def _check_amp(value: Any) -> bool | str:
    """``amp``: true, false, "auto" or "bf16" (any case), or a one-line ``US3LError``."""
    from us3l.train.precision import WORDS

    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in WORDS:
        return value.strip().lower()
    raise US3LError(f"config 'amp' must be true, false, {' or '.join(repr(w) for w in WORDS)}, got {value!r}")


_SCALAR_TYPES = _scalar_types()


def make_config(values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Build a config from ``values`` over ``base`` (unknown keys and values of the wrong type are an error);
    not yet validated."""
    unknown = sorted(set(values) - FIELD_NAMES)
    if unknown:
        raise US3LError(unknown_keys_message(unknown))
    kw = {k: _check_type(k, _coerce(k, v)) for k, v in values.items()}
    try:
        return dataclasses.replace(base or TrainConfig(), **kw)
    except TypeError as exc:
        raise US3LError(f"bad config: {exc}") from None


def unknown_keys_message(unknown: list[str]) -> str:
    """``unknown config key(s): X (did you mean Y?); valid keys: ...`` on one line."""
    import difflib

    close = [m for k in unknown for m in difflib.get_close_matches(k, FIELD_NAMES, n=1)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    valid = ", ".join(sorted(FIELD_NAMES))
    return f"unknown config key(s): {', '.join(unknown)}{hint}; valid keys: {valid}"


#: Keys whose ``auto`` is resolved when a run starts and saved resolved (``threads``: the idle cores, ``amp``: the
#: precision this CPU or GPU computes in).
RESOLVED_AT_START = ("threads", "amp")


def as_recorded(wanted: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
    """``wanted`` with every key of ``RESOLVED_AT_START`` that is still ``auto`` replaced by the value ``recorded``
    (a finished run's saved config) resolved it to: ``auto`` matches whatever it became."""
    return {**wanted, **{k: recorded.get(k) for k in RESOLVED_AT_START if wanted.get(k) == AUTO}}


#: Config keys whose value is a mapping: ``--set KEY.SUBKEY=VALUE`` sets one entry of them.
MAPPING_KEYS = ("model_kwargs",)


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``values[a][b]... = value`` for ``key`` = ``a.b...`` (``--set model_kwargs.base_channels=8``), copying
    the mappings on the way so that the caller's nested dicts are not changed."""
    head, *path = key.split(".")
    if head not in FIELD_NAMES:
        raise US3LError(unknown_keys_message([head]))
    if not path:
        values[head] = value
        return
    if head not in MAPPING_KEYS or any(not p for p in path):
        nested = ", ".join(MAPPING_KEYS)
        raise US3LError(f"config key {key!r}: only {nested} take dotted sub-keys (KEY.SUBKEY=VALUE)")
    current = values.get(head)
    if current is not None and not isinstance(current, Mapping):
        raise US3LError(f"config '{head}' must be a mapping, got {current!r:.80}")
    node = dict(current or {})
    values[head] = node
    for part in path[:-1]:
        child = node.get(part)
        if child is not None and not isinstance(child, Mapping):
            raise US3LError(f"config key {key!r}: {part!r} is not a mapping")
        node[part] = dict(child or {})
        node = node[part]
    node[path[-1]] = value


def resolve_config(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    use_default_file: bool = True,
    explicit: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """``explicit`` > CLI ``overrides`` > ``config_file`` > packaged ``default.yaml`` > dataclass defaults;
    validated.

    An override whose value is ``None`` is a flag not given; an ``explicit`` one (``--set KEY=VALUE``) is applied
    even when ``None`` (``--set lr=null``: the method's reference lr, as ``lr: null`` in a file). A key ``a.b``
    sets entry ``b`` of the mapping key ``a`` (``model_kwargs``), keeping its other entries. An ``explicit``
    ``weight_decay`` other than 0 is refused while the group regularizer is on (``validate`` refuses any value but
    0 and the method's recipe value, which a run folder's resolved ``config.yaml`` carries)."""
    values: dict[str, Any] = {}
    if config_file is None and use_default_file and default_config_path().is_file():
        values.update(load_config_file(default_config_path()))
    user: dict[str, Any] = {}
    if config_file is not None:
        user.update(load_config_file(config_file))
    given = {**{k: v for k, v in (overrides or {}).items() if v is not None}, **(explicit or {})}
    user.update({k: v for k, v in given.items() if "." not in k})
    dotted = {k: v for k, v in given.items() if "." in k}
    # The method's recipe beats the packaged default file (written for another recipe), not the user's keys.
    method = user.get("method", values.get("method", TrainConfig.method))
    for key, value in METHOD_RECIPES.get(str(method), {}).items():
        values.pop(key, None)
        if getattr(TrainConfig, key, None) is not None:  # a key fill_method_defaults does not fill (num_samples)
            values[key] = value
    # The packaged default's model_kwargs (base_channels: 16) are options of its model: another model named by
    # the user starts from that model's own defaults (vit_tiny has no base_channels).
    if "model" in user and user["model"] != values.get("model"):
        values.pop("model_kwargs", None)
    values.update(user)
    for key, value in dotted.items():  # --set model_kwargs.base_channels=8: one entry over the files' mapping
        set_dotted(values, key, value)
    cfg = fill_method_defaults(make_config(values))
    wd = (explicit or {}).get("weight_decay")
    if wd and cfg.regularizer and cfg.weight_decay > 0:  # the optimizer's weight decay is 0 under the regularizer
        raise US3LError(f"--set weight_decay={wd} has no effect while the group regularizer is on "
                        "(it replaces weight decay); add --set regularizer=false for plain weight decay")
    validate(cfg)
    return cfg


#: Recipe keys whose default depends on the method (``None`` in ``TrainConfig``): the US3L recipes' values.
RECIPE_DEFAULTS: dict[str, Any] = {"weight_decay": 1e-4, "schedule": "A", "regularizer": True}

#: The reference's naive collapse baselines (``configs/cifar/us_resnet18_{simsiam,simclr}_cifar.yaml`` of the
#: reference, method.md §10): no width schedule (the sandwich's three widths over the full range every iteration),
#: no group regularizer, plain weight decay, the method's reference lr. These keys beat the packaged
#: ``default.yaml`` (whose ``num_samples: 2`` is the built-in us3l recipe's, not the reference's).
METHOD_RECIPES: dict[str, dict[str, Any]] = {
    "naive_simsiam": {"lr": 0.05, "weight_decay": 5e-4, "schedule": "none", "regularizer": False, "num_samples": 3},
    "naive_simclr": {"lr": 0.5, "weight_decay": 1e-4, "schedule": "none", "regularizer": False, "num_samples": 3},
    # S-Nets trains every switch every iteration: no width schedule (everything else is the us3l recipe)
    "snets": {"schedule": "none"},
}

#: Reference learning rates per method (method.md §1.6): 0.5 for SimCLR-type, 0.05 for BYOL/SimSiam-type.
METHOD_LR = {
    "us3l": 0.5,
    "us3l_byol": 0.05,
    "us3l_simsiam": 0.05,
    "us3l_mocov3": 1.5e-4,
    **{name: float(recipe["lr"]) for name, recipe in METHOD_RECIPES.items() if "lr" in recipe},
}


def recipe_value(method: str, key: str) -> Any:
    """The value ``fill_method_defaults`` gives the recipe key ``key`` (``RECIPE_DEFAULTS``) for ``method``."""
    return METHOD_RECIPES.get(method, {}).get(key, RECIPE_DEFAULTS[key])


def fill_method_defaults(cfg: TrainConfig) -> TrainConfig:
    """Resolve ``None`` recipe keys (``lr``, ``proj_dim``, ``weight_decay``, ``schedule``, ``regularizer``) to
    the method's reference values (so they are saved); keys already set are kept."""
    simclr_type = (
        cfg.method in ("us3l", "naive_simclr", "us3l_mocov3")
        or (cfg.method == "single" and cfg.single_base == "simclr_momentum")
        or (cfg.method == "snets" and cfg.snets_base == "simclr_momentum")
    )
    changes: dict[str, Any] = {}
    if cfg.lr is None:
        if cfg.method in ("single", "snets"):
            changes["lr"] = 0.5 if simclr_type else 0.05
        else:
            changes["lr"] = METHOD_LR.get(cfg.method, 0.05)
        if cfg.method == "us3l_mocov3":
            changes["lr"] = 1.5e-4 * cfg.batch_size / 256  # MoCo v3: lr·bs/256 (per-process batch)
    if cfg.proj_dim is None:
        changes["proj_dim"] = 256 if simclr_type else 2048
    recipe = {**RECIPE_DEFAULTS, **METHOD_RECIPES.get(cfg.method, {})}
    for key in RECIPE_DEFAULTS:
        if getattr(cfg, key) is None:
            changes[key] = recipe[key]
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _check_width(name: str, w: float | None) -> None:
    if w is None:
        return
    if not isinstance(w, int | float) or math.isnan(w) or not 0.0 < float(w) <= 1.0:
        raise US3LError(f"{name} must be in (0, 1], got {w!r}")


def _check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and a CUDA device only where torch sees it (one line, before
    anything is written)."""
    import re

    import torch

    m = re.fullmatch(r"auto|cpu|cuda(?::([0-9]+))?", device)  # \d: also other scripts' digits ("cuda:١")
    if m is None:
        raise US3LError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise US3LError(f"device {device}: torch sees no CUDA GPU here (torch {torch.__version__}); use cpu/auto")
        if m.group(1) is not None and int(m.group(1)) >= count:
            raise US3LError(f"device {device}: torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")


def validate(cfg: TrainConfig, new_run: bool = True) -> None:
    """Reject bad values with one clear line (models are checked against the registry); for a ``new_run`` also
    settings this run would not use (``_validate_unused``), which a run saved before that check still resumes
    with."""
    from us3l.ssl.methods import METHODS

    if cfg.method not in METHODS:
        raise US3LError(f"unknown method {cfg.method!r}; choose one of {', '.join(sorted(METHODS))}")
    try:
        from us3l.models import list_models
    except ImportError:  # pragma: no cover - foundation missing
        list_models = None
    if list_models is not None and cfg.model not in list_models():
        raise US3LError(f"unknown model {cfg.model!r}; choose one of {', '.join(list_models())}")
    _check_device(cfg.device)
    for name in ("width_min", "width_max", "single_width"):
        _check_width(name, getattr(cfg, name))
    for w in cfg.knn_widths:
        _check_width("knn_widths", w)
    if cfg.width_min is not None and cfg.width_max is not None and cfg.width_min > cfg.width_max:
        raise US3LError(f"width_min ({cfg.width_min}) must not exceed width_max ({cfg.width_max})")
    if cfg.epochs < 1:
        raise US3LError(f"epochs must be >= 1, got {cfg.epochs}")
    check_batch_size(cfg.batch_size, least=2, flag="batch_size")  # as train --batch-size (BatchNorm needs 2)
    if cfg.lr is not None and not cfg.lr > 0:
        raise US3LError(f"lr must be > 0, got {cfg.lr}")
    if cfg.sampling not in SAMPLINGS:
        raise US3LError(f"unknown sampling {cfg.sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if cfg.schedule not in SCHEDULES:
        raise US3LError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if cfg.method != "single":
        check_schedule(cfg.schedule, cfg.epochs, cfg.schedule_stage1)
    if cfg.crop_min is not None and not 0.0 < cfg.crop_min <= 1.0:
        raise US3LError(f"crop_min must be in (0, 1], got {cfg.crop_min}")
    from us3l.data.augment import AUGMENTS

    if cfg.augment not in AUGMENTS:
        raise US3LError(f"augment must be {' or '.join(repr(a) for a in AUGMENTS)}, got {cfg.augment!r}")
    if cfg.optimizer not in ("sgd", "adamw"):
        raise US3LError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
    if cfg.lr_schedule_epochs is not None and cfg.lr_schedule_epochs < cfg.epochs:
        raise US3LError(f"lr_schedule_epochs must be >= epochs ({cfg.epochs}), got {cfg.lr_schedule_epochs}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        allowed = ", ".join(repr(v) for v in LR_SCHEDULES[:-1]) + f" or {LR_SCHEDULES[-1]!r}"
        raise US3LError(f"lr_schedule must be {allowed}, got {cfg.lr_schedule!r}")
    if cfg.distill_criterion not in ("cosine", "ntxent"):
        raise US3LError(f"distill_criterion must be 'cosine' or 'ntxent', got {cfg.distill_criterion!r}")
    if cfg.reg_decay not in ("linear", "exp"):
        raise US3LError(f"reg_decay must be 'linear' or 'exp', got {cfg.reg_decay!r}")
    if cfg.single_base not in ("simclr_momentum", "byol"):
        raise US3LError(f"single_base must be 'simclr_momentum' or 'byol', got {cfg.single_base!r}")
    _validate_ranges(cfg)
    if cfg.method == "us3l_mocov3" and not cfg.model.startswith("vit"):
        raise US3LError(f"method us3l_mocov3 needs a ViT model (e.g. vit_tiny), got {cfg.model!r}")
    _validate_snets(cfg)
    if new_run:
        _validate_unused(cfg)
        _validate_group_coefficients(cfg)


def _validate_group_coefficients(cfg: TrainConfig) -> None:
    """``reg_decay: linear`` gives group i the coefficient λ(1 − α·i): an ``reg_alpha`` over 1/(reg_bins − 1)
    made the last groups' coefficients negative, a regularizer that grows those weights (us3l.train.groupreg)."""
    if not cfg.regularizer or cfg.reg_decay != "linear" or cfg.reg_bins < 2:
        return
    top = 1.0 / (cfg.reg_bins - 1)
    if cfg.reg_alpha > top:
        last = 1.0 - cfg.reg_alpha * (cfg.reg_bins - 1)
        raise US3LError(f"reg_alpha {cfg.reg_alpha:g} with reg_decay linear and reg_bins {cfg.reg_bins} gives the last "
                        f"channel group the coefficient reg_lambda x ({last:g}), below 0: the regularizer would grow "
                        f"those weights; use reg_alpha <= {top:.4g} (1 / (reg_bins - 1)), or reg_decay exp")


def _validate_unused(cfg: TrainConfig) -> None:
    """One line for a setting this run would drop without a word (a feature that is off, another method's key)."""
    if cfg.faithful_sandwich_bug and cfg.sampling != "sandwich":  # the reference's sandwich list, nothing else
        raise US3LError(f"faithful_sandwich_bug reproduces the reference's sandwich sampling; sampling is "
                        f"{cfg.sampling!r}")
    if cfg.schedule != "A" and cfg.schedule_stage1 != REFERENCE_STAGE1:  # a share of schedule A's stages only
        raise US3LError(f"schedule_stage1 ({cfg.schedule_stage1:g}) is a share of schedule A's epochs; the width "
                        f"schedule here is {cfg.schedule!r}")
    if cfg.warmup_epochs and cfg.lr_schedule != "iter":  # only the per-iteration schedule warms up: no silent no-op
        raise US3LError(f"warmup_epochs ({cfg.warmup_epochs}) needs lr_schedule: iter; the {cfg.lr_schedule!r} "
                        "lr schedule has no warm-up")
    length = cfg.lr_schedule_epochs or cfg.epochs
    if cfg.warmup_epochs >= length:  # the lr would only climb: never the cosine, never lr itself before the end
        raise US3LError(f"warmup_epochs ({cfg.warmup_epochs}) must be below the lr schedule's {length} epochs "
                        f"({'lr_schedule_epochs' if cfg.lr_schedule_epochs else 'epochs'}): the warm-up would fill "
                        "the whole run")
    for key, owner in (("single_width", "single"), ("single_base", "single"), ("bn_switches", "snets"),
                       ("snets_base", "snets"), ("mocov3_tau", "us3l_mocov3")):
        # another method's setting: it would be dropped without a word
        if cfg.method != owner and getattr(cfg, key) != getattr(_DEFAULTS, key):
            raise US3LError(f"{key} is a setting of --method {owner}; this run's method is {cfg.method!r}")
    if not cfg.feature_distill:
        for key in ("feature_lambda", "feature_layers"):
            if getattr(cfg, key) != getattr(_DEFAULTS, key):
                raise US3LError(f"{key} is a setting of feature distillation, which is off (feature_distill: false)")
    if cfg.regularizer is False:
        for key in ("reg_lambda", "reg_alpha", "reg_bins", "reg_warmup_epochs", "reg_decay"):
            if getattr(cfg, key) != getattr(_DEFAULTS, key):
                raise US3LError(f"{key} is a setting of the group regularizer, which is off (regularizer: false)")
    if cfg.method in ("single", "snets"):  # us3l.train.loop: FixedWidth / SwitchWidths, no WidthSampler
        trains = f"single_width {cfg.single_width:g}" if cfg.method == "single" else "every width of bn_switches"
        # (`schedule`, a recipe key, is left alone: a config shared by us3l and single runs sets it for the former)
        for key in ("num_samples", "sampling", "schedule_stage1", "faithful_sandwich_bug"):
            if not _unset(cfg, key):
                raise US3LError(f"{key} is a setting of width sampling, which --method {cfg.method} does not do (it "
                                f"trains {trains} every iteration)")
    if cfg.method in ("naive_simsiam", "naive_simclr") and not _unset(cfg, "ema_momentum"):  # us3l.ssl.methods._Naive
        raise US3LError(f"ema_momentum is a setting of the EMA teacher, which --method {cfg.method} does not have "
                        "(the online network is its own target)")
    _validate_distillation(cfg)
    recipe_wd = recipe_value(cfg.method, "weight_decay")
    if cfg.regularizer and cfg.weight_decay and cfg.weight_decay != recipe_wd:  # the loop's optimizer gets 0
        raise US3LError(f"weight_decay {cfg.weight_decay:g} has no effect while the group regularizer is on (it "
                        f"replaces weight decay); set regularizer: false for plain weight decay, or leave "
                        f"weight_decay out (the method's {recipe_wd:g}, unused)")


_DEFAULTS = TrainConfig()


@functools.lru_cache(maxsize=1)
def _packaged_default() -> TrainConfig | None:
    """The packaged ``default.yaml`` as a (not validated) config; ``None`` where it is missing."""
    path = default_config_path()
    return make_config(load_config_file(path)) if path.is_file() else None


def _unset(cfg: TrainConfig, key: str) -> bool:
    """Whether ``key`` holds the dataclass default or the packaged ``default.yaml``'s value, neither of which is
    a choice made for this run: ``us3l train --method us3l_byol`` inherits ``default.yaml``'s ``temperature: 0.2``,
    and a run folder's resolved ``config.yaml`` carries every key."""
    value, packaged = getattr(cfg, key), _packaged_default()
    return value == getattr(_DEFAULTS, key) or (packaged is not None and value == getattr(packaged, key))


def no_distillation(cfg: TrainConfig) -> str | None:
    """Why this run trains no sub-network (``SSLMethod.sub``, where every distillation loss is), or ``None``
    when it does: ``single`` trains one width, ``snets`` its switches, every other method the sampler's widths
    (``us3l.train.loop``), which are the max width alone with ``num_samples: 1`` or ``width_min = width_max``."""
    if cfg.method == "single":
        return "--method single trains one width"
    if cfg.method == "snets":
        return None if len(set(cfg.bn_switches)) > 1 else "bn_switches holds one width"
    if cfg.num_samples == 1:
        return "num_samples 1 trains the max width only"
    if cfg.width_min is not None and cfg.width_min == cfg.width_max:
        return f"width_min = width_max = {cfg.width_max:g}"
    return None


def _validate_distillation(cfg: TrainConfig) -> None:
    """Distillation settings of a run that trains no sub-network, or that distils with another loss, and a
    ``temperature`` no loss of the run reads."""
    why = no_distillation(cfg)
    if why is not None:
        for key in ("distill_lambda", "distill_criterion", "feature_distill"):
            if not _unset(cfg, key):
                raise US3LError(f"{key} is a setting of sub-network distillation, which this run does not do ({why})")
    elif cfg.method == "us3l_mocov3" and not _unset(cfg, "distill_criterion"):
        raise US3LError("distill_criterion has no effect with --method us3l_mocov3: its sub-networks distil with "
                        "the MoCo v3 contrastive loss (mocov3_tau)")
    if not _unset(cfg, "temperature"):
        why = _no_temperature(cfg, why)
        if why is not None:
            raise US3LError(f"temperature is a setting of the NT-Xent losses, which this run does not use ({why})")


def _no_temperature(cfg: TrainConfig, no_sub: str | None) -> str | None:
    """Why no loss of this run reads ``temperature`` (``us3l.ssl.methods``), or ``None`` when one does: the
    SimCLR-type base losses (``us3l``, ``naive_simclr``, ``single``/``snets`` on ``simclr_momentum``) and the
    sub-networks' ``distill_criterion: ntxent`` (every method but ``us3l_mocov3``, whose losses use
    ``mocov3_tau``); ``no_sub``: why the run trains no sub-network (``no_distillation``)."""
    if cfg.method == "us3l_mocov3":
        return "--method us3l_mocov3: its contrastive losses use mocov3_tau"
    base = {"single": cfg.single_base, "snets": cfg.snets_base}.get(cfg.method)
    if cfg.method in ("us3l", "naive_simclr") or base == "simclr_momentum":
        return None
    if no_sub is None and cfg.distill_criterion == "ntxent":
        return None
    what = f"--method {cfg.method}" + (f" with {cfg.method}_base {base!r}" if base else "")
    sub = (f"no sub-network distils: {no_sub}" if no_sub
           else f"sub-networks distil with distill_criterion {cfg.distill_criterion!r}")
    return f"{what}: a cosine base loss; {sub}"


#: (field, lowest, highest, whether the lowest is allowed): numeric settings the checks above do not cover.
_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    ("threads", 1, MAX_THREADS, True),
    ("num_workers", 0, MAX_WORKERS, True),  # data-loader processes, each forked
    ("image_size", MIN_INPUT_SIZE, MAX_INPUT_SIZE, True),
    ("momentum", 0.0, 1.0, True),
    ("ema_momentum", 0.0, 1.0, True),
    ("weight_decay", 0.0, math.inf, True),
    ("temperature", 0.0, math.inf, False),
    ("mocov3_tau", 0.0, math.inf, False),
    ("distill_lambda", 0.0, math.inf, True),
    ("feature_lambda", 0.0, math.inf, True),
    ("reg_lambda", 0.0, math.inf, True),
    ("reg_alpha", 0.0, math.inf, True),
    ("collapse_warn", 0.0, math.inf, True),
    ("warmup_epochs", 0, math.inf, True),
    ("reg_warmup_epochs", 0, math.inf, True),
    ("knn_k", 1, math.inf, True),
    ("knn_max_train", 1, math.inf, True),
    ("knn_t", 0.0, math.inf, False),
    ("knn_every", 0, math.inf, True),
    ("save_every", 0, math.inf, True),
    ("num_samples", 1, math.inf, True),
    ("reg_bins", 1, math.inf, True),
    ("proj_dim", 1, math.inf, True),
    ("proj_hidden", 1, math.inf, True),
    ("pred_hidden", 1, math.inf, True),
)


def _validate_ranges(cfg: TrainConfig) -> None:
    """One line for a number outside its range (``threads: -1`` used to fail inside torch)."""
    for name, lo, hi, lo_ok in _RANGES:
        value = getattr(cfg, name)
        if value is None or (name == "threads" and value == AUTO):
            continue
        if not ((value >= lo if lo_ok else value > lo) and value <= hi):
            low = f">= {lo}" if lo_ok else f"> {lo}"
            rng = low if hi == math.inf else f"{low} and <= {hi}"
            raise US3LError(f"{name} must be {rng}, got {value!r}")


def _validate_snets(cfg: TrainConfig) -> None:
    """S-Nets settings: switchable BN only through ``--method snets``, whose switches include the max width."""
    if "bn_switches" in cfg.model_kwargs:
        raise US3LError(
            "set switchable BN with the config key bn_switches and --method snets, not model_kwargs.bn_switches"
        )
    if cfg.snets_base not in ("simclr_momentum", "byol"):
        raise US3LError(f"snets_base must be 'simclr_momentum' or 'byol', got {cfg.snets_base!r}")
    if cfg.snets_momentum_update and (cfg.method != "snets" or cfg.snets_base != "byol"):
        raise US3LError("snets_momentum_update (the reference s_* recipe) needs --method snets with snets_base: byol")
    if cfg.method != "snets":
        return
    if cfg.model.startswith("vit"):
        raise US3LError(f"method snets needs a model with BatchNorm (switchable BN); {cfg.model!r} has none")
    if not cfg.bn_switches:
        raise US3LError("bn_switches must list at least one width")
    for w in cfg.bn_switches:
        _check_width("bn_switches", w)
    w_max = 1.0 if cfg.width_max is None else float(cfg.width_max)
    if abs(max(cfg.bn_switches) - w_max) > 5e-5:
        raise US3LError(
            f"the largest of bn_switches ({max(cfg.bn_switches):g}) must be the max width {w_max:g}: the base "
            "network and the EMA teacher run there"
        )
    if cfg.schedule != "none":
        raise US3LError(
            f"method snets trains every switch width in every iteration; schedule must be 'none', got {cfg.schedule!r}"
        )
