"""Config resolution (defaults < file < CLI) and one-line errors for bad values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from us3l.cli import main
from us3l.errors import US3LError
from us3l.train import resolve_config
from us3l.train.config import default_config_path


def test_default_config_is_packaged_and_valid() -> None:
    assert default_config_path().is_file()
    cfg = resolve_config()
    assert cfg.method == "us3l" and cfg.data == "builtin" and cfg.epochs % 4 == 0


def test_file_then_cli_overrides(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("method: us3l_byol\nepochs: 8\nlr: 0.05\n")
    cfg = resolve_config(y, {"lr": 0.1, "seed": None})
    assert (cfg.method, cfg.epochs, cfg.lr) == ("us3l_byol", 8, 0.1)
    t = tmp_path / "c.toml"
    t.write_text('method = "naive_simsiam"\nepochs = 12\nknn_widths = [1.0, 0.5]\n')
    cfg = resolve_config(t)
    assert (cfg.method, cfg.epochs, cfg.knn_widths) == ("naive_simsiam", 12, (1.0, 0.5))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "dino"}, "unknown method 'dino'"),
        ({"model": "resnet9000"}, "unknown model 'resnet9000'"),
        ({"width_min": 0.0}, r"width_min must be in \(0, 1\]"),
        ({"width_max": 1.5}, r"width_max must be in \(0, 1\]"),
        ({"epochs": 10, "schedule": "A"}, "multiple of 4"),
        ({"schedule": "B"}, "unknown schedule"),
        ({"schedule_stage1": -0.1}, r"schedule_stage1 must be in \[0, 1\)"),
        ({"augment": "simclr"}, "augment must be 'symmetric' or 'byol'"),
        ({"epochs": "abc"}, "config 'epochs' must be a whole number, got 'abc'"),
        ({"batch_size": 2.5}, "config 'batch_size' must be a whole number, got 2.5"),
        ({"reg_lambda": 1e300}, r"config 'reg_lambda' must be a finite number within float32's range, got 1e\+300"),
        ({"lr": float("nan")}, "config 'lr' must be a finite number within float32's range, got nan"),
        ({"batch_size": 1e300}, "config 'batch_size' must be a whole number within int64's range, got 1000"),
        ({"batch_size": 2**40}, "batch_size must be 2 to 4096, got 1099511627776"),
        ({"batch_size": 4097}, "batch_size must be 2 to 4096, got 4097"),  # as train --batch-size words its bound
        ({"batch_size": 1}, "batch_size must be 2 to 4096, got 1"),
        ({"threads": -1}, "threads must be >= 1 and <= 65536, got -1"),
        ({"threads": 100000}, "threads must be >= 1 and <= 65536, got 100000"),
        ({"num_workers": 100000}, "num_workers must be >= 0 and <= 1024, got 100000"),  # red-team: 100000 processes
        ({"num_workers": -2}, "num_workers must be >= 0 and <= 1024, got -2"),
        ({"momentum": 1.5}, "momentum must be >= 0.0 and <= 1.0, got 1.5"),
        ({"temperature": 0}, "temperature must be > 0.0, got 0.0"),
        ({"reg_lambda": -1e-4}, "reg_lambda must be >= 0.0, got -0.0001"),
        ({"proj_hidden": 0}, "proj_hidden must be >= 1, got 0"),
        # these shared one line naming four keys ("num_samples and reg_bins must be >= 1; save_every and ...")
        ({"knn_every": -1}, "^knn_every must be >= 0, got -1$"),
        ({"save_every": -2}, "^save_every must be >= 0, got -2$"),
        ({"reg_bins": 0}, "^reg_bins must be >= 1, got 0$"),
        ({"knn_t": 0}, r"^knn_t must be > 0.0, got 0.0$"),
        ({"knn_max_train": 0}, "^knn_max_train must be >= 1, got 0$"),
        ({"lr": "fast"}, r"config 'lr' must be a number \(or null\), got 'fast'"),
        ({"view_batching": "maybe"}, "config 'view_batching' must be true or false, got 'maybe'"),
        ({"amp": [1]}, r"config 'amp' must be true, false, 'auto' or 'bf16', got \[1\]"),
        ({"amp": "fp8"}, r"config 'amp' must be true, false, 'auto' or 'bf16', got 'fp8'"),
        ({"epochs": True}, "config 'epochs' must be a whole number, got True"),
        ({"method": 3}, "config 'method' must be a string, got 3"),
        ({"warmup_epochs": 2}, "warmup_epochs \\(2\\) needs lr_schedule: iter; the 'epoch' lr schedule has no warm-up"),
        ({"warmup_epochs": 2, "lr_schedule": "constant"}, "warmup_epochs \\(2\\) needs lr_schedule: iter"),
        ({"schedule": "none", "schedule_stage1": 0.5},
         "schedule_stage1 \\(0.5\\) is a share of schedule A's epochs; the width schedule here is 'none'"),
        ({"faithful_sandwich_bug": True, "sampling": "uniform"},
         "faithful_sandwich_bug reproduces the reference's sandwich sampling; sampling is 'uniform'"),
        ({"single_width": 0.5}, "single_width is a setting of --method single; this run's method is 'us3l'"),
        ({"method": "snets", "single_base": "byol"}, "single_base is a setting of --method single; this run's "
                                                     "method is 'snets'"),
        ({"bn_switches": [1.0, 0.5]}, "bn_switches is a setting of --method snets; this run's method is 'us3l'"),
        ({"method": "single", "snets_base": "byol"}, "snets_base is a setting of --method snets"),
        # red-team: width-sampling settings of a method that samples no width were dropped without a word
        ({"method": "single", "num_samples": 5},
         r"^num_samples is a setting of width sampling, which --method single does not do \(it trains single_width "
         r"1 every iteration\)$"),
        ({"method": "single", "sampling": "uniform"}, r"^sampling is a setting of width sampling, which --method "
                                                      r"single does not do"),
        ({"method": "single", "schedule_stage1": 0.5}, r"^schedule_stage1 is a setting of width sampling"),
        ({"method": "single", "faithful_sandwich_bug": True}, r"^faithful_sandwich_bug is a setting of width "
                                                              r"sampling"),
        ({"method": "snets", "num_samples": 1},
         r"^num_samples is a setting of width sampling, which --method snets does not do \(it trains every width of "
         r"bn_switches every iteration\)$"),
        ({"method": "snets", "sampling": "uniform"}, r"^sampling is a setting of width sampling, which --method "
                                                     r"snets does not do"),
        ({"method": "naive_simsiam", "ema_momentum": 0.9},
         r"^ema_momentum is a setting of the EMA teacher, which --method naive_simsiam does not have \(the online "
         r"network is its own target\)$"),
        ({"method": "naive_simclr", "ema_momentum": 0.9}, r"^ema_momentum is a setting of the EMA teacher"),
        # red-team: MoCo v3's temperature with another method was dropped without a word
        ({"mocov3_tau": 0.3}, r"^mocov3_tau is a setting of --method us3l_mocov3; this run's method is 'us3l'$"),
        ({"method": "us3l_byol", "mocov3_tau": 0.1},
         r"^mocov3_tau is a setting of --method us3l_mocov3; this run's method is 'us3l_byol'$"),
        ({"method": "naive_simsiam", "reg_lambda": 1e-4},
         r"reg_lambda is a setting of the group regularizer, which is off \(regularizer: false\)"),
        ({"regularizer": False, "reg_warmup_epochs": 2}, "reg_warmup_epochs is a setting of the group regularizer"),
        ({"feature_layers": ["layer4"]},
         r"feature_layers is a setting of feature distillation, which is off \(feature_distill: false\)"),
        ({"feature_lambda": 2.0}, "feature_lambda is a setting of feature distillation"),
        # red-team: distillation settings of a run that trains no sub-network were dropped without a word
        ({"method": "single", "distill_lambda": 2.0},
         r"^distill_lambda is a setting of sub-network distillation, which this run does not do \(--method single "
         r"trains one width\)$"),
        ({"method": "single", "feature_distill": True},
         r"^feature_distill is a setting of sub-network distillation, which this run does not do \(--method single "
         r"trains one width\)$"),
        ({"num_samples": 1, "distill_criterion": "ntxent"},
         r"^distill_criterion is a setting of sub-network distillation, which this run does not do \(num_samples 1 "
         r"trains the max width only\)$"),
        ({"width_min": 0.5, "width_max": 0.5, "distill_lambda": 0.5},
         r"^distill_lambda is a setting of sub-network distillation, which this run does not do \(width_min = "
         r"width_max = 0.5\)$"),
        ({"method": "snets", "bn_switches": [1.0], "distill_lambda": 2.0},
         r"^distill_lambda is a setting of sub-network distillation, which this run does not do \(bn_switches holds "
         r"one width\)$"),
        ({"method": "us3l_mocov3", "model": "vit_tiny", "distill_criterion": "ntxent"},
         r"^distill_criterion has no effect with --method us3l_mocov3: its sub-networks distil with the MoCo v3 "
         r"contrastive loss \(mocov3_tau\)$"),
        # red-team: a temperature for methods whose losses have none was dropped without a word
        ({"method": "us3l_byol", "temperature": 0.3},
         r"^temperature is a setting of the NT-Xent losses, which this run does not use \(--method us3l_byol: a "
         r"cosine base loss; sub-networks distil with distill_criterion 'cosine'\)$"),
        ({"method": "naive_simsiam", "temperature": 0.3}, r"\(--method naive_simsiam: a cosine base loss;"),
        ({"method": "us3l_simsiam", "temperature": 0.3}, r"\(--method us3l_simsiam: a cosine base loss;"),
        ({"method": "single", "single_base": "byol", "temperature": 0.3, "distill_criterion": "cosine"},
         r"^temperature is a setting of the NT-Xent losses, which this run does not use \(--method single with "
         r"single_base 'byol': a cosine base loss; no sub-network distils: --method single trains one width\)$"),
        ({"method": "snets", "snets_base": "byol", "temperature": 0.3},
         r"\(--method snets with snets_base 'byol': a cosine base loss; sub-networks distil with"),
        ({"method": "us3l_byol", "num_samples": 1, "temperature": 0.3},
         r"\(--method us3l_byol: a cosine base loss; no sub-network distils: num_samples 1 trains the max width "
         r"only\)$"),
        ({"method": "us3l_mocov3", "model": "vit_tiny", "temperature": 0.3},
         r"^temperature is a setting of the NT-Xent losses, which this run does not use \(--method us3l_mocov3: "
         r"its contrastive losses use mocov3_tau\)$"),
        # red-team: group i's coefficient is reg_lambda (1 - reg_alpha i): negative for the last groups, which the
        # regularizer then grew
        ({"reg_alpha": 0.2}, r"^reg_alpha 0.2 with reg_decay linear and reg_bins 8 gives the last channel group the "
                             r"coefficient reg_lambda x \(-0.4\), below 0: the regularizer would grow those weights; "
                             r"use reg_alpha <= 0.1429 \(1 / \(reg_bins - 1\)\), or reg_decay exp$"),
        # red-team: a warm-up as long as the run: the lr only climbed, never reaching lr nor its cosine
        ({"lr_schedule": "iter", "warmup_epochs": 24, "epochs": 24},
         r"^warmup_epochs \(24\) must be below the lr schedule's 24 epochs \(epochs\): the warm-up would fill the "
         r"whole run$"),
        ({"lr_schedule": "iter", "warmup_epochs": 30, "epochs": 24, "lr_schedule_epochs": 28},
         r"^warmup_epochs \(30\) must be below the lr schedule's 28 epochs \(lr_schedule_epochs\)"),
        ({"device": "mps"}, "device must be auto, cpu, cuda or cuda:N, got 'mps'"),
        ({"device": "cuda:x"}, "device must be auto, cpu, cuda or cuda:N, got 'cuda:x'"),
        ({"device": "cuda:99"}, "device cuda:99: torch sees (no CUDA GPU here|[0-9]+ CUDA GPU)"),
    ],
)
def test_bad_values_raise_one_line_errors(overrides: dict, message: str) -> None:
    with pytest.raises(US3LError, match=message) as exc:
        resolve_config(None, overrides)
    assert "\n" not in str(exc.value)


def test_threads_beyond_1024_are_taken_but_workers_stay_bounded() -> None:
    """threads above 1024 (a 2048-thread machine) were refused; num_workers, forked processes, keep their 1024."""
    assert resolve_config(None, {"threads": 2048}).threads == 2048
    with pytest.raises(US3LError, match="^num_workers must be >= 0 and <= 1024, got 1025$"):
        resolve_config(None, {"num_workers": 1025})


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "us3l_byol", "distill_criterion": "ntxent", "distill_lambda": 2.0, "temperature": 0.3},
        {"method": "naive_simsiam", "distill_criterion": "ntxent", "temperature": 0.3},  # ntxent distillation
        {"method": "snets", "snets_base": "byol", "distill_criterion": "ntxent", "temperature": 0.3},
        {"method": "naive_simclr", "temperature": 0.3},  # SimCLR-type base losses
        {"method": "single", "temperature": 0.3},
        {"method": "snets", "temperature": 0.3},
        {"method": "us3l_byol", "temperature": 0.2},  # default.yaml's (a run folder's config.yaml carries it)
        {"method": "naive_simsiam", "ema_momentum": 0.95},  # default.yaml's
        {"method": "single", "ema_momentum": 0.9},  # single's teacher: an EMA at its width
        {"method": "snets", "distill_lambda": 2.0, "feature_distill": True},
        {"method": "us3l_mocov3", "model": "vit_tiny", "distill_lambda": 2.0, "mocov3_tau": 0.3},
        {"num_samples": 2, "sampling": "uniform", "distill_lambda": 0.5, "width_min": 0.5},
        {"lr_schedule": "iter", "warmup_epochs": 26, "epochs": 24, "lr_schedule_epochs": 28},
        {"reg_alpha": 1 / 7},  # the last group's coefficient 0, not below
        {"reg_alpha": 0.5, "reg_bins": 3},
        {"reg_alpha": 0.9, "reg_decay": "exp"},
    ],
)
def test_settings_the_run_uses_are_not_refused(overrides: dict) -> None:
    """The checks of settings a run would drop refuse nothing a run uses (``_validate_unused``)."""
    resolve_config(None, overrides)


@pytest.mark.parametrize("use_default_file", [True, False])
@pytest.mark.parametrize("method", ["us3l", "us3l_byol", "us3l_simsiam", "us3l_mocov3", "naive_simsiam",
                                    "naive_simclr", "single", "snets"])
def test_every_method_resolves_from_the_defaults(method: str, use_default_file: bool) -> None:
    """`us3l train --method X` with nothing else: the packaged default.yaml (written for us3l) and the dataclass
    defaults set nothing the checks of unused settings refuse, e.g. default.yaml's temperature for us3l_byol."""
    from us3l.ssl.methods import METHODS

    assert method in METHODS
    extra = {"model": "vit_tiny"} if method == "us3l_mocov3" else {}
    assert resolve_config(None, {"method": method, **extra}, use_default_file=use_default_file).method == method


def test_numbers_are_converted_where_the_type_allows(tmp_path: Path) -> None:
    cfg = resolve_config(None, {"epochs": 8.0, "temperature": 1, "out": tmp_path / "run"})
    assert (cfg.epochs, type(cfg.epochs), cfg.temperature, type(cfg.temperature)) == (8, int, 1.0, float)
    assert cfg.out == str(tmp_path / "run")
    y = tmp_path / "c.toml"
    y.write_text('epochs = "12"\n')
    with pytest.raises(US3LError, match="config 'epochs' must be a whole number, got '12'"):
        resolve_config(y)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("methd: us3l\n")
    with pytest.raises(US3LError, match="unknown config key"):
        resolve_config(y)


def test_cli_prints_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--method", "nope", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: unknown method 'nope'")
    assert main(["train", "--epochs", "10", "--quiet"]) == 1
    assert "multiple of 4" in capsys.readouterr().err


def test_nproc_is_removed_from_relaunched_arguments() -> None:
    from us3l.commands.train import _nproc_args
    from us3l.train.distributed import torchrun_command

    assert _nproc_args(["--nproc", "2", "--epochs", "4", "--nproc=3", "-q"]) == ["--epochs", "4", "-q"]
    cmd = torchrun_command(2, ["train", "--epochs", "4"])
    assert cmd[1:6] == ["-m", "us3l.train.launch", "--standalone", "--nproc_per_node=2", "-m"]
    assert cmd[6:] == ["us3l", "train", "--epochs", "4"]


def test_method_defaults_are_resolved_and_saved() -> None:
    def rc(**kw):
        return resolve_config(None, kw, use_default_file=False)

    assert rc(method="us3l").lr == 0.5
    assert rc(method="naive_simsiam").lr == 0.05
    assert rc(method="us3l_byol").proj_dim == 2048
    assert rc(method="us3l", lr=0.1).lr == 0.1
    assert resolve_config(None, {"method": "us3l"}).lr == 0.2  # the packaged default recipe sets lr


def test_naive_methods_get_the_reference_naive_recipe_not_the_default_files() -> None:
    simsiam = resolve_config(None, {"method": "naive_simsiam"})
    assert (simsiam.schedule, simsiam.regularizer, simsiam.weight_decay, simsiam.lr) == ("none", False, 5e-4, 0.05)
    simclr = resolve_config(None, {"method": "naive_simclr"})
    assert (simclr.schedule, simclr.regularizer, simclr.weight_decay, simclr.lr) == ("none", False, 1e-4, 0.5)
    # every other key of the packaged default file still applies (data scale, model, epochs)
    us3l = resolve_config()
    for key in ("data", "model", "model_kwargs", "image_size", "epochs", "batch_size", "crop_min", "proj_hidden"):
        assert getattr(simsiam, key) == getattr(us3l, key)
    # the reference's three widths per step, not the built-in us3l recipe's two
    assert (simsiam.num_samples, simclr.num_samples, us3l.num_samples) == (3, 3, 2)
    assert resolve_config(None, {"method": "naive_simsiam", "num_samples": 4}).num_samples == 4  # the user's wins
    # the us3l recipe and the other methods are unchanged
    assert (us3l.schedule, us3l.regularizer, us3l.weight_decay, us3l.lr) == ("A", True, 1e-4, 0.2)
    byol = resolve_config(None, {"method": "us3l_byol"})
    assert (byol.schedule, byol.regularizer, byol.weight_decay, byol.lr) == ("A", True, 1e-4, 0.2)
    # without any file: dataclass defaults filled per method
    bare = resolve_config(None, {"method": "naive_simsiam"}, use_default_file=False)
    assert (bare.schedule, bare.regularizer, bare.weight_decay) == ("none", False, 5e-4)
    assert resolve_config(None, {"method": "single"}, use_default_file=False).schedule == "A"


def test_explicit_values_beat_the_naive_recipe(tmp_path: Path) -> None:
    cli = resolve_config(None, {"method": "naive_simsiam", "schedule": "A", "regularizer": True, "lr": 0.1})
    assert (cli.schedule, cli.regularizer, cli.lr, cli.weight_decay) == ("A", True, 0.1, 5e-4)
    y = tmp_path / "naive.yaml"
    y.write_text("method: naive_simsiam\nepochs: 8\nweight_decay: 1.0e-3\nschedule: A\n")
    f = resolve_config(y)
    assert (f.schedule, f.regularizer, f.weight_decay, f.lr) == ("A", False, 1e-3, 0.05)
    assert resolve_config(y, {"schedule": "none"}).schedule == "none"
    # a user file that sets the method back to us3l gets the us3l recipe
    u = tmp_path / "u.yaml"
    u.write_text("method: us3l\nepochs: 8\n")
    assert (resolve_config(u).schedule, resolve_config(u).regularizer, resolve_config(u).lr) == ("A", True, 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weight_decay: 5.0e-4\n", "weight_decay 0.0005 has no effect while the group regularizer is on (it replaces "
                                   "weight decay); set regularizer: false for plain weight decay, or leave "
                                   "weight_decay out (the method's 0.0001, unused)"),
        ("method: naive_simsiam\nregularizer: true\nweight_decay: 1.0e-4\n",
         "weight_decay 0.0001 has no effect while the group regularizer is on (it replaces weight decay); set "
         "regularizer: false for plain weight decay, or leave weight_decay out (the method's 0.0005, unused)"),
        ("weight_decay: 5.0e-4\nregularizer: false\n", None),  # plain weight decay
        ("weight_decay: 0\n", None),  # what the optimizer gets anyway
        ("weight_decay: 1.0e-4\n", None),  # the recipe's, which every resolved config.yaml carries
        ("method: naive_simsiam\nregularizer: true\nweight_decay: 5.0e-4\n", None),  # the naive recipe's
    ],
)
def test_a_weight_decay_in_a_file_is_refused_while_the_regularizer_is_on(text: str, message: str | None,
                                                                          tmp_path: Path) -> None:
    """Red-team 2026-12-05: `--set weight_decay=X` with the regularizer on was refused, the same key in a --config
    file dropped without a word. The method's recipe value counts as unset: resolved configs carry it."""
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 8\n" + text)
    if message is None:
        resolve_config(p)
        return
    with pytest.raises(US3LError) as exc:
        resolve_config(p)
    assert str(exc.value) == message


@pytest.mark.parametrize("method", ["us3l", "us3l_byol", "naive_simsiam", "single"])
def test_a_run_folders_config_starts_a_new_run(method: str, tiny_folder: Path, tmp_path: Path) -> None:
    """`us3l train --config RUN/config.yaml`: the resolved config a run saves carries every key (weight_decay
    with the regularizer on, default.yaml's temperature under us3l_byol, single's num_samples) and starts a new
    run as it is."""
    from us3l.train import run_training

    from .conftest import TINY

    over = {**TINY, "method": method, "epochs": 1, "schedule": "none", "data": f"folder:{tiny_folder}",
            "out": str(tmp_path / "r"), "knn_widths": [1.0]}
    cfg = resolve_config(None, over)
    saved = run_training(cfg).run_dir / "config.yaml"
    again = resolve_config(saved, {"out": str(tmp_path / "again")})
    assert (again.method, again.weight_decay, again.temperature) == (method, cfg.weight_decay, cfg.temperature)


def test_the_run_saves_the_resolved_naive_recipe(tiny_folder: Path, tmp_path: Path) -> None:
    import yaml

    from us3l.train import run_training
    from us3l.train.config import make_config

    from .conftest import TINY

    over = {**TINY, "method": "naive_simsiam", "epochs": 1, "data": f"folder:{tiny_folder}", "out": str(tmp_path / "r")}
    over.pop("lr")
    cfg = resolve_config(None, over)
    res = run_training(cfg)
    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert (saved["schedule"], saved["regularizer"], saved["weight_decay"], saved["lr"]) == ("none", False, 5e-4, 0.05)
    assert cfg.threads == "auto" and isinstance(saved["threads"], int)  # resolved when the run started
    assert cfg.amp == "auto" and saved["amp"] in ("bf16", False)  # resolved from the CPU when the run started
    assert make_config(saved) == dataclasses.replace(cfg, threads=saved["threads"], amp=saved["amp"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: 4\nknn_widths: &w [1.0, 0.5]\nbn_switches: *w\n",
         r"YAML aliases \(\*name, line 3\) are not accepted; write the values out"),
        ("epochs: 4\nepochs: 8\n", "key 'epochs' appears twice"),
        # red-team: "could not determine a constructor for the tag 'tag:yaml.org,2002:merge'" and a YAML excerpt
        ("epochs: 4\nmodel_kwargs:\n  <<: {base_channels: 8}\n",
         r"YAML merge keys \(<<, line 3\) are not accepted; write the values out$"),
        # red-team: "cannot parse config ...: unhashable type: 'list'"
        ("epochs: 4\n[1, 2]: 3\n", r"every key must be a name, got \[1, 2\] \(line 2\)$"),
        ("epochs: 4\n? {a: 1}\n: 3\n", r"every key must be a name, got \{'a': 1\} \(line 2\)$"),
    ],
)
def test_config_files_without_aliases_or_duplicate_keys(text: str, message: str, tmp_path: Path) -> None:
    from us3l.train.config import load_config_file

    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(US3LError, match=message):
        load_config_file(p)
    p.write_text("x" * 1_000_001)
    with pytest.raises(US3LError, match=r"is larger than 1000 kB"):
        load_config_file(p)


def test_another_model_does_not_inherit_the_default_files_model_kwargs() -> None:
    # default.yaml's base_channels: 16 is an option of its cifar_resnet18; vit_tiny has no such option
    assert resolve_config().model_kwargs == {"base_channels": 16}
    vit = resolve_config(None, {"model": "vit_tiny"})
    assert vit.model_kwargs == {} and vit.image_size == resolve_config().image_size
    assert resolve_config(None, {"model": "resnet18"}).model_kwargs == {}
    # naming the default's own model keeps them; the user's own model_kwargs always apply
    assert resolve_config(None, {"model": "cifar_resnet18"}).model_kwargs == {"base_channels": 16}
    assert resolve_config(None, {"model": "resnet18", "model_kwargs.base_channels": 8}).model_kwargs == {
        "base_channels": 8
    }


def test_train_with_another_model_reaches_its_own_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    # it used to fail with "model 'vit_tiny' has no option 'base_channels'" before anything the user typed
    assert main(["train", "--model", "vit_tiny", "--set", "image_size=40", "--out", "unused"]) == 1
    assert "not a multiple of the patch size 16" in capsys.readouterr().err


def test_a_sub_key_over_a_mapping_key_that_is_not_a_mapping_is_one_line() -> None:
    """Red-team 2026-12-05: ``--set model_kwargs=5 --set model_kwargs.base_channels=8`` was a TypeError."""
    with pytest.raises(US3LError) as info:
        resolve_config(None, {"model_kwargs": 5, "model_kwargs.base_channels": 8})
    assert str(info.value) == "config 'model_kwargs' must be a mapping, got 5"


@pytest.mark.parametrize(("text", "value"), [("1e-3", 0.001), ("5E-4", 0.0005), ("1.0e3", 1000.0), (".5e1", 5.0),
                                             ("-2e+2", -200.0), ("1.5", 1.5), ("12", 12), ("'1e-3'", "1e-3"),
                                             ("1e", "1e"), ("e3", "e3")])
def test_numbers_with_an_exponent_are_numbers(text: str, value: object) -> None:
    """Red-team 2026-12-05: YAML 1.1 (PyYAML) reads 1e-3 as a string, so `lr: 1e-3` and `--set lr=1e-3` were
    refused as "must be a number"."""
    from us3l.train.config import plain_yaml

    parsed = plain_yaml(text, "t")
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("text", "value"), [("010", 10), ("0123", 123), ("-007", -7), ("007.5", 7.5), ("0o17", 15),
                                             ("0x1F", 31), ("1:00", "1:00"), ("1:30.5", "1:30.5"), ("1_000", "1_000"),
                                             (".inf", float("inf")), ("-.inf", float("-inf"))])
def test_numbers_are_read_as_yaml_1_2_reads_them(text: str, value: object) -> None:
    """Red-team 2026-12-07: YAML 1.1 (PyYAML) read `seed: 0123` as octal 83, `epochs: 010` as 8 and `knn_every: 1:00`
    as sexagesimal 60, silently. YAML 1.2 (and TOML, JSON) read 010 as ten; a colon or underscore leaves a string,
    which the setting's type check names."""
    from us3l.train.config import plain_yaml

    parsed = plain_yaml(text, "t")
    assert parsed == value and type(parsed) is type(value)


def test_leading_zeros_and_colons_in_a_config_file_and_set(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("seed: 0123\nepochs: 012\n")
    cfg = resolve_config(p)
    assert (cfg.seed, cfg.epochs) == (123, 12)  # YAML 1.1: 83 and 10
    with pytest.raises(US3LError, match="knn_every"):
        resolve_config(None, {"knn_every": plain_yaml_value("1:00")})


def plain_yaml_value(text: str) -> object:
    from us3l.train.config import plain_yaml

    return plain_yaml(text, "--set")


def test_exponent_numbers_in_a_config_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("weight_decay: 5e-4\nreg_lambda: 5e-5\nepochs: 8e0\nmethod: naive_simsiam\n")
    cfg = resolve_config(p)
    assert (cfg.weight_decay, cfg.reg_lambda, cfg.epochs) == (0.0005, 5e-05, 8)


@pytest.mark.parametrize(("text", "shown"), [("1: 2", "1"), ("true: 1", "True"), ("null: 3", "None"),
                                             ("1: 2\nfoo: 3", "1"), ("model_kwargs: {1: 2}", "1")])
def test_keys_that_are_not_names_are_one_line(tmp_path: Path, text: str, shown: str) -> None:
    """Red-team 2026-12-05: a YAML key read as a number, boolean or null ended in `TypeError: 'int' object is not
    iterable` (or `'<' not supported`)."""
    p = tmp_path / "c.yaml"
    p.write_text(text + "\n")
    with pytest.raises(US3LError, match=rf"every key must be an? (setting|option)'s name, got {shown}$"):
        resolve_config(p)


def test_explicit_null_is_applied_and_a_missing_flag_is_not() -> None:
    """``--set lr=null`` means the method's reference lr (like ``lr: null`` in a file); it was dropped like a flag
    not given, leaving default.yaml's 0.2."""
    assert resolve_config(None, {"lr": None}).lr == 0.2  # a flag not given: default.yaml's
    assert resolve_config(None, explicit={"lr": None}).lr == 0.5  # us3l's reference lr
    with pytest.raises(US3LError, match="config 'data' must be a string, got None"):
        resolve_config(None, explicit={"data": None})  # `--set data=$UNSET`: not silently the built-in data


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_a_huge_config_file_is_refused_by_its_size_before_it_is_read(suffix: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team: the size limit was checked on the text once the whole file was read (a 10 GB data file passed as
    --config was read into memory first), and a TOML config had no limit at all."""
    import us3l.train.config as config_mod

    p = tmp_path / f"c{suffix}"
    with open(p, "wb") as fh:
        fh.truncate(50_000_000)  # sparse: 50 MB of nothing
    monkeypatch.setattr(config_mod, "read_input_text", lambda *a: pytest.fail("read"))
    with pytest.raises(US3LError, match=rf"^config {p} is larger than 1000 kB; a config is a few kB of settings$"):
        config_mod.load_config_file(p)


@pytest.mark.parametrize(("key", "kind"), [
    ("knn_widths", "numbers ([] for none)"),
    ("bn_switches", "numbers"),
    ("feature_layers", "names ([] for the model's default)"),
])
def test_a_list_setting_given_no_value_is_one_line(key: str, kind: str, tmp_path: Path) -> None:
    """Red-team: `knn_widths:` with no value (YAML null), in a config file, --set or a resumed run's saved config,
    ended in 'error: TypeError: 'NoneType' object is not iterable'."""
    p = tmp_path / "c.yaml"
    p.write_text(f"{key}:\n")
    with pytest.raises(US3LError) as info:
        resolve_config(p)
    assert str(info.value) == f"config {key!r} must be a list of {kind}, got None"
