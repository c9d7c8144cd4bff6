"""``amp``: the training step's autocast dtype; ``auto`` resolved from the CPU's bfloat16 unit and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from us3l.commands.quickstart import _same_training
from us3l.errors import US3LError
from us3l.train import precision, run_training
from us3l.train.config import default_config_path, make_config, resolve_config

from .conftest import TINY


def test_the_config_takes_the_four_values_and_the_default_recipe_uses_auto() -> None:
    assert [make_config({"amp": v}).amp for v in (True, False, "auto", "BF16 ")] == [True, False, "auto", "bf16"]
    assert resolve_config(default_config_path(), {}).amp == "auto"
    assert make_config({}).amp is True  # outside the default recipe: float16 on CUDA only, as before
    with pytest.raises(US3LError, match=r"^config 'amp' must be true, false, 'auto' or 'bf16', got 'yes please'$"):
        make_config({"amp": "yes please"})


@pytest.mark.parametrize(
    ("amp", "device", "unit", "resolved", "dtype"),
    [
        ("auto", "cpu", "AMX", "bf16", torch.bfloat16),
        ("auto", "cpu", "AVX512-BF16", "bf16", torch.bfloat16),
        ("auto", "cpu", "", False, None),
        ("auto", "cuda", "", True, torch.float16),
        (True, "cpu", "AMX", True, None),  # true means float16 on CUDA: float32 on the CPU
        (False, "cuda", "", False, None),
        ("bf16", "cuda", "", "bf16", torch.bfloat16),
        ("bf16", "cpu", "", "bf16", torch.bfloat16),  # asked for: emulated where the CPU lacks bfloat16
    ],
)
def test_resolution_and_dtype(amp: bool | str, device: str, unit: str, resolved: bool | str,
                              dtype: torch.dtype | None) -> None:
    got, _ = precision.resolve_amp(amp, device, unit)
    assert got == resolved and precision.autocast_dtype(got, device) == dtype


def test_the_bf16_unit_from_cpuinfo_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", None, raising=False)  # torch's check unavailable
    info = tmp_path / "cpuinfo"
    for flags, unit in [("fpu avx2 avx512f", None), ("avx512f avx512_bf16", "AVX512-BF16"),
                        ("avx512_bf16 amx_tile amx_bf16", "AMX")]:
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n", encoding="ascii")
        assert precision.cpu_bf16_unit(info) == unit
    assert precision.cpu_bf16_unit(tmp_path / "missing") is None


def test_bf16_autocast_runs_the_convolutions_in_bfloat16() -> None:
    """What the step does under ``amp: bf16`` on the CPU: convolutions and linear layers in bfloat16."""
    seen: list[torch.dtype] = []
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    for m in net:
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=precision.autocast_dtype("bf16", "cpu") or torch.float32):
        net(torch.randn(2, 3, 6, 6))
    assert seen[0] == torch.bfloat16 and seen[-1] == torch.bfloat16


def test_a_run_records_the_resolved_precision(tiny_folder: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(precision, "cpu_bf16_unit", lambda: "AMX")
    over = {**TINY, "method": "naive_simsiam", "epochs": 1, "data": f"folder:{tiny_folder}",
            "out": str(tmp_path / "r"), "amp": "auto", "device": "cpu", "quiet": False}
    res = run_training(resolve_config(None, over))
    assert "amp: auto -> bf16 (native bfloat16 on this CPU: AMX)" in capsys.readouterr().err
    assert yaml.safe_load((res.run_dir / "config.yaml").read_text())["amp"] == "bf16"
    meta = json.loads((res.run_dir / "checkpoint.json").read_text())
    assert meta["precision"] == "bf16" and meta["config"]["amp"] == "bf16"
    assert all(v == v for v in res.final_knn.values())  # finite accuracies: the bfloat16 step trained


def test_quickstart_reuses_a_run_trained_with_auto() -> None:
    wanted = make_config({"amp": "auto"}).to_dict()
    assert _same_training({**wanted, "amp": "bf16"}, wanted) and _same_training({**wanted, "amp": False}, wanted)
    pinned = make_config({"amp": False}).to_dict()
    assert not _same_training({**pinned, "amp": "bf16"}, pinned)


def test_auto_settings_match_what_a_finished_run_resolved_them_to() -> None:
    from us3l.train.config import as_recorded

    recorded = {"threads": 2, "amp": "bf16", "lr": 0.2}
    assert as_recorded({"threads": "auto", "amp": "auto", "lr": 0.2}, recorded) == recorded
    assert as_recorded({"threads": 1, "amp": False}, recorded) == {"threads": 1, "amp": False}  # pinned: compared


@pytest.mark.parametrize(
    ("mine", "everyone", "agreed"),
    [("bf16", True, "bf16"), ("bf16", False, False), (False, False, False), (True, False, True)],
)
def test_ranks_agree_on_bf16_only_where_every_cpu_has_it(mine: bool | str, everyone: bool,
                                                         agreed: bool | str) -> None:
    asked: list[bool] = []

    def all_ranks(flag: bool) -> bool:
        asked.append(flag)
        return everyone and flag

    got, why = precision.agreed_across_ranks(mine, "mine", all_ranks)
    assert asked == [mine == "bf16"]  # every rank takes part in the collective, whatever it resolved
    assert got == agreed
    assert why == ("mine" if got == mine else "another rank's CPU has no native bfloat16: every rank trains in float32")


_RANK_SCRIPT = """
import sys
from us3l.train.distributed import all_ranks, init_distributed, shutdown_distributed
from us3l.train.precision import agreed_across_ranks, resolve_amp
info = init_distributed("cpu")
amp, why = resolve_amp("auto", "cpu", unit=sys.argv[1])
print(repr(agreed_across_ranks(amp, why, lambda flag: all_ranks(flag, info))[0]))
shutdown_distributed()
"""


@pytest.mark.slow  # two gloo processes
def test_two_gloo_processes_whose_cpus_differ_both_train_in_float32(tmp_path: Path) -> None:
    """Real processes in a real gloo group: rank 0 with AMX, rank 1 without bfloat16."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank, unit in enumerate(("AMX", "")):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT, unit], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["False", "False"]
