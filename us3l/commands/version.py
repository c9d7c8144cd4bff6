"""``us3l version``: print the tool version and its environment (Python, platform, machine, torch), the header every
result file records, and the installed versions of the packages a bug report needs (the deployment runtimes among
them, read from package metadata without importing them); ``us3l devices --check`` checks that the runtimes work."""

from __future__ import annotations

import typer

from us3l.cli_app import app, emit_json
from us3l.cli_output import result
from us3l.io import basic_environment
from us3l.version import __version__

#: Distributions listed by ``us3l version`` (``onnxruntime-gpu`` only where installed: it replaces ``onnxruntime``).
PACKAGES = ("numpy", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "fvcore",
            "safetensors", "typer")
OPTIONAL_UNLISTED = ("onnxruntime-gpu",)  # not named as "not installed": most installs have the CPU build


def package_table() -> dict[str, str | None]:
    """Each of ``PACKAGES``'s installed version, None where it is not installed (``onnxruntime-gpu`` left out
    then)."""
    from us3l.profiler.fingerprint import package_versions

    found = package_versions(PACKAGES)
    return {name: found.get(name) for name in PACKAGES if name in found or name not in OPTIONAL_UNLISTED}


@app.command("version")
def version_cmd(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Show the us3l version, its environment and the installed runtimes."""
    doc = {"us3l": __version__, **basic_environment(), "packages": package_table()}
    if json_out:
        emit_json(doc)
        return
    for k, v in doc.items():
        if k != "packages":
            result(f"{k}: {v}")
    for name, v in doc["packages"].items():
        result(f"{name}: {v or 'not installed'}")
