"""Where ``us3l export`` spends its time: per-phase wall and CPU time, TorchScript vs dynamo exporter, one run.

Each export runs in a fresh process, exactly as a user runs ``us3l export --model M --width W --backend B``
(interpreter start and imports included: they are part of what the user waits for), with
``us3l.deploy.timing.recording()`` collecting the pipeline's phases. The two ONNX exporters
(``US3L_ONNX_EXPORTER=torchscript|dynamo``) are interleaved repeat by repeat, so on a shared machine both see the
same load; the ratio dynamo/torchscript is computed per configuration from the medians, and with ``--repeats`` > 1
printed beside the range of its per-repeat values (repeat r of one exporter against repeat r of the other). CPU
time is the child process's user+system time (all threads): it measures the work even when the wall time is
inflated by other processes (the load average before and after is printed).

    python benchmarks/export_time.py                           # cifar_resnet18 1.0/0.5 and resnet50 1.0, onnx
    python benchmarks/export_time.py --backends onnx,openvino --repeats 3
    python benchmarks/export_time.py --configs resnet50:1.0 --exporters torchscript

Results in docs/deploy.md ("Export time") come from this script. ``--json PATH`` also writes them (kind
"export_time_benchmark", schema 1: the tool version, the git commit, the date, the machine and the command beside
the per-configuration medians), atomically; the path is checked before the first export.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from us3l import script_cli

ROOT = Path(__file__).resolve().parents[1]
#: ``--configs``' default. The defaults of the list flags are lists, not text for argparse to read with their type:
#: a ``--child`` would import the model registry (torch) before it starts timing its imports.
DEFAULT_CONFIGS = [("cifar_resnet18", 1.0), ("cifar_resnet18", 0.5), ("resnet50", 1.0)]
DEFAULT_EXPORTERS = ["torchscript", "dynamo"]
KIND = "export_time_benchmark"
SCHEMA = 1


def config(text: str) -> tuple[str, float]:
    """One ``--configs`` entry, ``MODEL:WIDTH``: a registered model and a width in (0, 1]."""
    model, sep, width = text.partition(":")
    if not sep or not model or not width or ":" in width:
        raise argparse.ArgumentTypeError(f"expects MODEL:WIDTH (e.g. cifar_resnet18:0.5), got {text!r}")
    return script_cli.model(model), script_cli.width(width)


def _exporters() -> tuple[str, ...]:
    from us3l.deploy.backends.onnx import EXPORTERS

    return EXPORTERS


CONFIGS = script_cli.comma_list(config, "MODEL:WIDTH pairs")
EXPORTERS = script_cli.comma_list(script_cli.choice("exporter", _exporters), "ONNX exporter names")


def _show_configs(pairs: list[tuple[str, float]]) -> str:
    return ",".join(f"{m}:{w:g}" for m, w in pairs)


def check_json_path(text: str) -> Path:
    """``--json``'s path, checked before the first export (a bad one used to fail after all of them had run): not
    a folder, not a file of another kind (never clobbered), in a folder that is, or can be made, writable."""
    from us3l.errors import US3LError

    path = Path(text)
    if path.is_dir():
        raise US3LError(f"--json must be a file, got the folder {path}")
    if path.exists():
        with open(path, "rb") as fh:
            ours = f'"kind": "{KIND}"'.encode() in fh.read(4096)
        if not ours:
            raise US3LError(f"refusing to replace {path}: it is not an export_time.py result; choose another --json")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise US3LError(f"--json {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise US3LError(f"--json {path}: cannot write in {folder}")
    return path


def result_document(results: list[dict[str, object]], argv: list[str], started: str,
                    load: tuple[float, float]) -> dict[str, object]:
    """What ``--json`` writes: us3l's result header (kind, schema, tool version, environment), when, at which
    commit and on which machine it ran, the command, then the results."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
    import collapse as cb

    from us3l.io import header

    return {**header(KIND, SCHEMA), "date": started, "command": ["python", "benchmarks/export_time.py", *argv],
            "git": cb.git_commit(),
            "machine": {**cb.machine(), "node": platform.node(), "load_average_before": round(load[0], 2),
                        "load_average_after": round(load[1], 2)},
            "results": results}


def _child(args: argparse.Namespace) -> NoReturn:
    """One export in this fresh process; prints one JSON line of phases."""
    w0, c0 = time.perf_counter(), time.process_time()
    sys.path.insert(0, str(ROOT))
    import us3l.cli as cli
    from us3l.deploy.timing import phase, recording

    cli.load_commands(["export"])  # what `us3l export` loads (us3l.cli.COMMAND_MODULES)
    import us3l.deploy.export  # noqa: F401  (imported by the command on first use; counted with the imports)

    imports = (time.perf_counter() - w0, time.process_time() - c0)
    argv = ["export", "--backend", args.backend, "--width", str(args.width), "--out", args.out, "--quiet", "--json"]
    argv += ["--ckpt", args.ckpt] if args.ckpt else ["--model", args.model]
    import contextlib
    import io

    buf = io.StringIO()
    with recording() as phases, phase("whole command"), contextlib.redirect_stdout(buf):
        rc = cli.main(argv)
    doc = json.loads(buf.getvalue()) if rc == 0 else {}
    valid = bool(doc.get("exports")) and all(e["valid"] for e in doc["exports"])
    rows = [{"name": "imports (us3l.cli, commands, deploy)", "wall_s": imports[0], "cpu_s": imports[1]}]
    inner = [p for p in phases if p.name != "whole command"]
    rows += [{"name": p.name, "wall_s": p.wall_s, "cpu_s": p.cpu_s} for p in inner]
    whole = next(p for p in phases if p.name == "whole command")
    rest = (whole.wall_s - sum(p.wall_s for p in inner), whole.cpu_s - sum(p.cpu_s for p in inner))
    rows.append({"name": "rest of the command (CLI, checks, table)", "wall_s": rest[0], "cpu_s": rest[1]})
    print("PHASES " + json.dumps({"rc": rc, "valid": valid, "phases": rows}), flush=True)
    cli.end_process(rc)  # as the `us3l` command ends (its console script): without the interpreter's finalisation


def _run_one(model: str, width: float, backend: str, exporter: str, ckpt: str | None) -> dict[str, object]:
    from us3l.errors import US3LError

    env = {**os.environ, "US3L_ONNX_EXPORTER": exporter, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory(prefix="us3l-export-time-") as out:
        cmd = [sys.executable, __file__, "--child", "--model", model, "--width", str(width), "--backend", backend,
               "--out", out]
        cmd += ["--ckpt", ckpt] if ckpt else []
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PHASES ")), None)
    if proc.returncode != 0 or line is None:
        raise US3LError(f"export failed ({model} {width} {backend} {exporter}, exit {proc.returncode}): "
                        f"{script_cli.last_words(proc.stderr)}")
    doc = json.loads(line[len("PHASES "):])
    if not doc["valid"]:
        raise US3LError(f"export not valid ({model} {width} {backend} {exporter})")
    return {"wall_s": wall, "cpu_s": cpu, "phases": doc["phases"]}


def _median_phases(runs: list[dict[str, object]]) -> dict[str, tuple[float, float]]:
    names: list[str] = []
    for r in runs:
        for p in r["phases"]:  # type: ignore[union-attr]
            if p["name"] not in names:
                names.append(p["name"])
    out = {}
    for n in names:
        walls = [sum(p["wall_s"] for p in r["phases"] if p["name"] == n) for r in runs]  # type: ignore[union-attr]
        cpus = [sum(p["cpu_s"] for p in r["phases"] if p["name"] == n) for r in runs]  # type: ignore[union-attr]
        out[n] = (statistics.median(walls), statistics.median(cpus))
    return out


def _latency(model: str, width: float, rounds: int) -> dict[str, float]:
    """onnxruntime median latency (ms, 1 thread, batch 1) of the TorchScript- and the dynamo-exported graph of the
    same static module, interleaved round by round; returns the medians and the ratio dynamo/torchscript."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from us3l.deploy.backends.onnx import OnnxRunner, export_onnx
    from us3l.deploy.graph import deployable_module, fresh_model

    net = fresh_model(model)
    static, _ = deployable_module(net, width)
    x = torch.zeros(1, 3, net.input_size, net.input_size)
    feed = np.zeros(tuple(x.shape), dtype=np.float32)
    times: dict[str, list[float]] = {"torchscript": [], "dynamo": []}
    with tempfile.TemporaryDirectory(prefix="us3l-export-time-") as tmp:
        runners = {}
        for e in times:
            export_onnx(static, x, Path(tmp) / f"{e}.onnx", exporter=e)
            runners[e] = OnnxRunner(Path(tmp) / f"{e}.onnx", 1, "cpu")
            for _ in range(5):
                runners[e].time_once(feed)  # warm-up
        for _ in range(rounds):
            for e, r in runners.items():
                times[e].append(min(r.time_once(feed) for _ in range(5)))
    med = {e: 1e3 * statistics.median(v) for e, v in times.items()}
    return {"torchscript_ms": med["torchscript"], "dynamo_ms": med["dynamo"],
            "ratio_dynamo_over_torchscript": med["dynamo"] / med["torchscript"]}


def main() -> int:
    ap = script_cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=CONFIGS, default=DEFAULT_CONFIGS, metavar="MODEL:WIDTH,...",
                    help=f"models and widths to export (default {_show_configs(DEFAULT_CONFIGS)})")
    ap.add_argument("--backends", type=script_cli.backends, default=["onnx"],
                    help="comma-separated: onnx,openvino (default onnx)")
    ap.add_argument("--exporters", type=EXPORTERS, default=DEFAULT_EXPORTERS,
                    help=f"interleaved (default {','.join(DEFAULT_EXPORTERS)})")
    ap.add_argument("--repeats", type=script_cli.positive_int, default=1)
    ap.add_argument("--ckpt", default=None, help="export from this checkpoint instead of fresh models")
    ap.add_argument("--latency", type=script_cli.nonnegative_int, default=0, metavar="ROUNDS",
                    help="also time both exporters' graphs in onnxruntime (1 thread, batch 1), ROUNDS interleaved")
    ap.add_argument("--json", dest="json_path", default=None, metavar="PATH",
                    help=f"also write the results here (kind {KIND}, schema {SCHEMA}; written atomically)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--width", type=script_cli.width, help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)

    json_path = check_json_path(args.json_path) if args.json_path else None
    from us3l.profiler.provenance import (
        provenance_line,  # not at the top: --child must not import us3l before its timing
    )
    exporters, backends = args.exporters, args.backends
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()[0]
    print(provenance_line())
    print(f"# us3l export time, {platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}; "
          f"load average before {load_before:.2f}")
    print(f"# command: python benchmarks/export_time.py --configs {_show_configs(args.configs)} "
          f"--backends {','.join(backends)} --exporters {','.join(exporters)} --repeats {args.repeats}")
    results: list[dict[str, object]] = []
    for model, width in args.configs:
        for backend in backends:
            runs: dict[str, list[dict[str, object]]] = {e: [] for e in exporters}
            for r in range(args.repeats):
                order = exporters if r % 2 == 0 else exporters[::-1]  # alternate who goes first
                for e in order:
                    runs[e].append(_run_one(model, width, backend, e, args.ckpt))
            print(f"\n## {model} width {width:g} -> {backend} ({args.repeats} repeat(s), medians)")
            head = "".join(f" | {e + ' wall':>17} | {e + ' cpu':>17}" for e in exporters)
            print(f"{'phase':40s}{head}")
            med = {e: _median_phases(runs[e]) for e in exporters}
            names: list[str] = []
            for e in exporters:
                names += [n for n in med[e] if n not in names]
            for n in names:
                cells = "".join(
                    f" | {med[e].get(n, (0.0, 0.0))[0]:17.2f} | {med[e].get(n, (0.0, 0.0))[1]:17.2f}"
                    for e in exporters
                )
                print(f"{n:40s}{cells}")
            totals = {
                e: (statistics.median(float(x["wall_s"]) for x in runs[e]),  # type: ignore[arg-type]
                    statistics.median(float(x["cpu_s"]) for x in runs[e]))  # type: ignore[arg-type]
                for e in exporters
            }
            cells = "".join(f" | {totals[e][0]:17.2f} | {totals[e][1]:17.2f}" for e in exporters)
            print(f"{'PROCESS TOTAL (start to exit)':40s}{cells}")
            entry: dict[str, object] = {
                "model": model, "width": width, "backend": backend,
                "totals": {e: {"wall_s": totals[e][0], "cpu_s": totals[e][1]} for e in exporters},
                "phases": {e: {n: {"wall_s": v[0], "cpu_s": v[1]} for n, v in med[e].items()} for e in exporters},
            }
            if "dynamo" in totals and "torchscript" in totals:
                rw = totals["dynamo"][0] / totals["torchscript"][0]
                rc = totals["dynamo"][1] / totals["torchscript"][1]
                # repeat r of one exporter ran beside repeat r of the other: their ratio per repeat is the spread
                per = {k: [float(d[f"{k}_s"]) / float(t[f"{k}_s"])  # type: ignore[arg-type]
                           for d, t in zip(runs["dynamo"], runs["torchscript"], strict=True)] for k in ("wall", "cpu")}
                spread = "" if args.repeats == 1 else "".join(
                    f", {k} per repeat {min(v):.2f}-{max(v):.2f}x" for k, v in per.items())
                print(f"ratio dynamo/torchscript: wall {rw:.2f}x, cpu {rc:.2f}x{spread}")
                entry["ratio_dynamo_over_torchscript"] = {"wall": rw, "cpu": rc, "per_repeat": per}
            if args.latency:
                lat = _latency(model, width, args.latency)
                print(f"onnxruntime latency (1 thread, batch 1, median of {args.latency} interleaved rounds): "
                      f"torchscript graph {lat['torchscript_ms']:.3f} ms, dynamo graph {lat['dynamo_ms']:.3f} ms, "
                      f"ratio {lat['ratio_dynamo_over_torchscript']:.3f}")
                entry["latency"] = lat
            results.append(entry)
    load_after = os.getloadavg()[0]
    print(f"\n# load average after {load_after:.2f}")
    if json_path is not None:
        from us3l.io import atomic_write_json

        atomic_write_json(json_path, result_document(results, sys.argv[1:], started, (load_before, load_after)))
        print(f"wrote {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    script_cli.run(main)
