"""Packaging (issue 13 item 9): profiler/, devices/ and deploy/ stay at the top of the repository but install as
us3l.profiler, us3l.devices and us3l.deploy, so no generic top-level name lands in site-packages and a
``deploy.py`` or ``profiler/`` in the current folder cannot shadow them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MAPPED = ("profiler", "devices", "deploy")
DECOY = "raise SystemExit('imported the decoy {} from the current folder')\n"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _packages_on_disk() -> set[str]:
    """Every folder with an __init__.py, by the name it installs under."""
    names = set()
    for folder, prefix in [("us3l", "us3l"), *((m, f"us3l.{m}") for m in MAPPED)]:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            names.add(".".join((prefix, *rel)))
    return names


def test_pyproject_maps_the_folders_inside_us3l() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {f"us3l.{m}": m for m in MAPPED}
    listed = set(config["packages"])
    assert all(p == "us3l" or p.startswith("us3l.") for p in listed)
    missing = _packages_on_disk() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    for name in listed:  # each listed name is a folder (data folders without __init__.py included)
        head, *rest = name.split(".")[1:] or [""]
        base = ROOT / head if head in MAPPED else ROOT / "us3l" / head
        assert base.joinpath(*rest).is_dir(), name
    for data_pkg, globs in config["package-data"].items():
        assert data_pkg in listed and globs
    for m in MAPPED:  # a folder us3l/<m> would shadow (or half-shadow, as a namespace package) the mapped one
        assert not (ROOT / "us3l" / m).exists(), f"us3l/{m} collides with {m}/ (installed as us3l.{m})"


def test_installed_distribution_has_no_generic_top_level_names(tmp_path: Path) -> None:
    dist = metadata.distribution("us3l")
    top = dist.read_text("top_level.txt")
    if top is not None:
        assert set(top.split()) == {"us3l"}
    owners = metadata.packages_distributions()
    assert not [m for m in MAPPED if "us3l" in owners.get(m, [])]
    # What the installed files (wheel or editable finder) really make importable, from an empty folder.
    code = f"import importlib.util as u; print([m for m in {MAPPED!r} if u.find_spec(m) is not None])"
    proc = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"importable as top-level modules: {proc.stdout.strip()}"


@pytest.fixture
def decoy_folder(tmp_path: Path) -> Path:
    """A current folder holding a deploy.py, a profiler.py and a devices/ package that fail when imported."""
    (tmp_path / "deploy.py").write_text(DECOY.format("deploy.py"))
    (tmp_path / "profiler.py").write_text(DECOY.format("profiler.py"))
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "__init__.py").write_text(DECOY.format("devices/"))
    return tmp_path


@pytest.mark.slow  # a CLI process in a copied folder
def test_cli_runs_beside_a_deploy_py_and_a_profiler_py(decoy_folder: Path) -> None:
    """``python -m us3l version`` and the mapped packages' imports, in one interpreter started in the folder of
    decoys (its first sys.path entry, as with ``-m``): two interpreters paid torch's import twice."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['us3l', 'version']\n"
        "import us3l.cli\n"
        "us3l.cli.end_process = sys.exit  # the command's end without os._exit: this interpreter goes on\n"
        "status = 0\n"
        "try:\n"
        "    runpy.run_module('us3l', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        "print(f'cli exit {status}', flush=True)\n"
        "from us3l.deploy.backends import get_backend\n"
        "from us3l.devices.registry import get_device\n"
        "import us3l.profiler.sweep\n"
        "print(get_backend('onnx').name, get_device('cpu').name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=decoy_folder, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("us3l: ") and lines[-2:] == ["cli exit 0", "onnx cpu"], proc.stdout + proc.stderr


def test_checkout_finds_its_own_packages_without_the_installed_finder(decoy_folder: Path) -> None:
    """Beside the decoys, a checkout put on sys.path (as PYTHONPATH=<checkout> does) resolves us3l.deploy & co. to
    its own folders, with the editable install's finder taken out (us3l/__init__.py adds the checkout's root)."""
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
        f"sys.path.insert(1, {str(ROOT)!r})\n"
        "import us3l.deploy.backends, us3l.devices.registry, us3l.profiler.remote\n"
        "print(us3l.deploy.__file__, us3l.devices.__file__, us3l.profiler.__file__, sep='\\n')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=decoy_folder, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(ROOT / m / "__init__.py") for m in MAPPED[::-1]]


def test_python_310_gets_the_toml_reader_device_files_need() -> None:
    """docs/profiling.md: on Python 3.10 device files are read with tomli, which installing us3l brings there."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("tomli") and "python_version<'3.11'" in d.replace(" ", "")
               for d in deps), deps


@pytest.mark.slow  # builds a wheel (about 10 s): CI runs it with `./test.sh -m slow`
def test_the_wheel_installs_us3l_alone_and_runs_from_it(tmp_path: Path) -> None:
    """The tests above run against the editable install; a user's `pip install us3l` gets the wheel. Built from a
    copy of this checkout, it holds `us3l/` and its dist-info only (profiler/, devices/ and deploy/ inside
    us3l/, the built-in device files with them), and the CLI runs from it, outside any checkout."""
    import shutil
    import zipfile

    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".ruff_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("us3l-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"us3l", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "us3l/devices/builtin/cpu.toml" in names and "us3l/deploy/export.py" in names
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    code = ("import us3l, us3l.deploy, us3l.devices.registry as r\n"
            "print(us3l.__file__, us3l.deploy.__file__, r.get_device('jetson-xavier-nx').tensorrt_version, sep='\\n')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=empty, capture_output=True, text=True, timeout=120,
                          env={**_env(), "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(target / "us3l" / "__init__.py"), str(target / "us3l" / "deploy" /
                                                                            "__init__.py"), "8.5"]
