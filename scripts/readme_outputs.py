#!/usr/bin/env python3
"""Regenerate the README's sample outputs and timings from a fresh clone (issue 13 item 12).

Clones HEAD of this repository into a temporary folder, installs it there with scripts/setup-env.sh (or reuses
a virtual environment given with --venv; the clone's code is still the one imported, through PYTHONPATH), runs
the README's walkthrough commands in order under /usr/bin/time, and writes each command's real output into
README.md between ``<!-- readme:NAME:begin -->`` and ``<!-- readme:NAME:end -->``, headed with the date (UTC),
the commit, ``nproc``, the load average at the command's start and its wall time. Results (stdout) are shown
in full; stderr (progress, notes) is filtered per step to the lines the README discusses, elisions marked
``...``. README.md is replaced atomically, and only when every requested step exited as expected.

    python scripts/readme_outputs.py                      # everything but the test-suite timing (~20 min)
    python scripts/readme_outputs.py --with-tests         # plus the ./test.sh timing
    python scripts/readme_outputs.py --venv .venv --only version,models,devices
    python scripts/readme_outputs.py --dry-run            # list the steps and their commands
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import selectors
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIME_BIN = "/usr/bin/time"
BUDGET_TOKEN = "{budget}"
SCHEDULE_TOKEN = "{schedule}"
SWITCHABLE_PROFILE = "profiles-switchable/cifar_resnet18-switchable-cpu-onnx-fp32.json"


class Fail(Exception):
    """A one-line error."""


@dataclass
class Step:
    name: str
    cmd: str  # shown as `$ cmd` and run with shlex.split (no shell); {budget} / {schedule} filled in first
    rc: int = 0  # expected exit code; non-zero ones are shown with `; echo $?`
    needs: tuple[str, ...] = ()
    keep: str | None = ".*"  # stderr lines kept (regex, re.search); None: no stderr
    head: int = 8  # kept stderr lines shown at most: the first `head` and the last `tail`
    tail: int = 4
    stdout_max: int | None = None  # stdout lines shown at most (then `...`)
    kind: str = "block"  # block: a fenced output block; time: an inline wall time; none: run only


# The README's walkthrough, in order. Step-by-step commands share one folder layout in the clone:
# run/ (train, calibrate, eval), profiles/, selection.json, artifacts/, report.html; quickstart/ is separate.
STEPS: list[Step] = [
    Step("version", "us3l version"),
    Step("models", "us3l models"),
    Step("info", "us3l info --model cifar_mobilenetv2 --width 0.5", stdout_max=9),
    Step("devices", "us3l devices"),
    Step("quickstart", "us3l quickstart --out quickstart",
         keep=r"^(quickstart |epoch |warning|note:)", head=10, tail=8),
    Step("time-quickstart", "", needs=("quickstart",), kind="time"),
    Step("train", "us3l train --out run", keep=r"^(epoch |warning|wrote|run folder)", head=3, tail=2),
    Step("calibrate", "us3l calibrate --ckpt run --points 4", needs=("train",)),
    Step("eval", "us3l eval --ckpt run --widths 1,0.75,0.5,0.25 --protocol both --linear-epochs 30 --plot",
         needs=("calibrate",)),
    Step("devices-check", "us3l devices --check --device cpu"),
    Step("devices-check-jetson", "us3l devices --check --device jetson-orin-nano", rc=1),
    Step("profile", "us3l profile --device cpu --ckpt run --widths 1,0.75,0.5,0.25 --max-seconds 2 --plot",
         needs=("eval",), keep=r"^(warning|note|wrote|error)|widths stable"),
    Step("profile-openvino",
         "us3l profile --device cpu --ckpt run --backend openvino --widths 1,0.75,0.5,0.25 --max-seconds 2",
         needs=("eval",), keep=r"^(warning|note|wrote|error)|widths stable"),
    Step("profile-cuda", "us3l profile --device cuda --model cifar_resnet18", rc=1),
    Step("select", f"us3l select --device cpu --accuracy run/accuracy.json --latency-ms {BUDGET_TOKEN} --plot",
         needs=("profile", "profile-openvino")),
    Step("select-strict",
         f"us3l select --device cpu --accuracy run/accuracy.json --latency-ms {BUDGET_TOKEN} --strict-accuracy "
         "--out strict", needs=("profile", "profile-openvino")),
    Step("select-infeasible", "us3l select --device cpu --latency-ms 0.01 --out infeasible", rc=3,
         needs=("profile", "profile-openvino")),
    Step("export", "us3l export --backend onnx --selection selection.json --device cpu --ckpt run --out artifacts",
         needs=("select",), keep=r"^(warning|note|wrote|error)|widths stable"),
    Step("export-openvino", "us3l export --backend openvino --width 0.5 --ckpt run --precision fp16 --out artifacts",
         needs=("eval",), keep=r"^(warning|note|wrote|error)|widths stable"),
    Step("export-tensorrt", "us3l export --backend tensorrt --width 0.5 --ckpt run --out artifacts", rc=1,
         needs=("train",)),
    Step("export-bad-width", "us3l export --backend onnx --width 1.5 --ckpt run --out artifacts", rc=1,
         needs=("train",)),
    Step("report", "us3l report .", needs=("eval", "select", "export")),
    # INT8 after the report: eval --artifact adds precisions.int8.onnx to run/accuracy.json, which the blocks above
    # read; the steps before are left exactly as they were
    Step("export-int8", "us3l export --backend onnx --width 0.5 --ckpt run --precision int8 --device cpu "
         "--out artifacts", needs=("eval",), keep=r"^(warning|note|wrote|error)"),
    Step("eval-int8", "us3l eval --ckpt run --artifact artifacts/cpu/cifar_resnet18-w0.5-onnx-int8",
         needs=("export-int8",), keep=r"^(warning|note|wrote|error)"),
    # the switchable artifact: one file for the calibrated widths, profiled through that file, a width schedule
    Step("export-switchable", "us3l export --backend onnx --switchable --ckpt run --out artifacts",
         needs=("eval",), keep=r"^(warning|note|wrote|error|one file)"),
    Step("profile-switchable",
         "us3l profile --device cpu --artifact artifacts/local/cifar_resnet18-switchable-onnx-fp32 --max-seconds 2 "
         "--out profiles-switchable", needs=("export-switchable",), keep=r"^(warning|note|wrote|error)|widths stable"),
    Step("select-schedule",
         f"us3l select --profile {SWITCHABLE_PROFILE} --accuracy run/accuracy.json "
         f"--latency-schedule {SCHEDULE_TOKEN} --out schedule",
         needs=("profile-switchable",)),
    Step("time-tests", "python -m pytest", kind="time"),
]
BY_NAME = {s.name: s for s in STEPS}
DEFAULT_SKIP = {"time-tests"}  # only with --with-tests


# ------------------------------------------------------------------------------------------ marker blocks

def marker_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- readme:{re.escape(name)}:begin -->)(.*?)(<!-- readme:{re.escape(name)}:end -->)",
                      re.S)


def substitute(text: str, blocks: dict[str, str]) -> tuple[str, list[str]]:
    """Replace the content between each NAME's begin/end markers with ``blocks[NAME]``.

    A marker pair on one line is replaced inline (the content must be one line); otherwise the content sits on
    its own lines between the markers. Returns the new text and the names that have no (or more than one)
    marker pair in ``text``, which are left out."""
    missing = []
    for name, content in blocks.items():
        rx = marker_re(name)
        found = rx.findall(text)
        if len(found) != 1:
            missing.append(name)
            continue
        inline = "\n" not in found[0][1]
        if inline:
            if "\n" in content.strip():
                raise Fail(f"block {name!r} is inline in the README but its content has several lines")
            new = content.strip()
        else:
            new = "\n" + content.strip("\n") + "\n"
        text = rx.sub(lambda m, new=new: m.group(1) + new + m.group(3), text, count=1)
    return text, missing


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------- rendering

def filter_lines(lines: list[str], keep: str | None, head: int, tail: int) -> list[int]:
    """Indices of the stderr lines a block shows: those matching ``keep`` (None: none), at most the first
    ``head`` and the last ``tail`` of them."""
    if keep is None:
        return []
    rx = re.compile(keep)
    idx = [i for i, line in enumerate(lines) if rx.search(line)]
    return idx if len(idx) <= head + tail else idx[:head] + idx[len(idx) - tail:]


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


@dataclass
class Result:
    step: Step
    shown_cmd: str
    rc: int
    wall_s: float
    started: str  # UTC, minutes
    load: str
    stream: list[tuple[str, str]] = field(default_factory=list)  # ("o"|"e", line) in arrival order


def header(res: Result, ctx: dict) -> str:
    return (f"<sub>{res.started} UTC · commit {ctx['commit']} · nproc {ctx['nproc']} · load {res.load} · "
            f"{fmt_duration(res.wall_s)} wall ({ctx['timer']}) · {ctx['venv_note']} · "
            f"scripts/readme_outputs.py</sub>")


def render_lines(res: Result) -> list[str]:
    """``$ command``, then stdout in full (or its first ``stdout_max`` lines) and the kept stderr lines in the
    order they arrived, each run of left-out lines as one ``...``; the exit code last when it is not 0."""
    s = res.step
    err_pos = [i for i, (k, _) in enumerate(res.stream) if k == "e"]
    kept = {err_pos[j] for j in filter_lines([res.stream[i][1] for i in err_pos], s.keep, s.head, s.tail)}
    body: list[str] = []
    n_out, gap = 0, False
    for i, (k, line) in enumerate(res.stream):
        if k == "o":
            n_out += 1
            if s.stdout_max is not None and n_out > s.stdout_max:
                gap = True
                continue
        elif i not in kept:
            gap = True
            continue
        if gap and (not body or body[-1] != "..."):
            body.append("...")
        gap = False
        body.append(line.rstrip())
    if gap and body and body[-1] != "...":
        body.append("...")
    return [f"$ {res.shown_cmd}" + ("; echo $?" if s.rc else ""), *body] + ([str(res.rc)] if s.rc else [])


def render_block(res: Result, ctx: dict) -> str:
    return header(res, ctx) + "\n\n```text\n" + "\n".join(render_lines(res)) + "\n```"


def render_time(res: Result, ctx: dict, extra: str = "") -> str:
    machine = f", {ctx['machine']}" if ctx.get("machine") else ""
    return (f"{fmt_duration(res.wall_s)}{extra} ({res.started[:10]}, commit {ctx['commit']}, nproc {ctx['nproc']}"
            f"{machine}, load {res.load.split()[0]} at start)")


# ----------------------------------------------------------------------------------------------- running

def run_step(argv: list[str], cwd: Path, env: dict, log: Path) -> tuple[int, float, list[tuple[str, str]]]:
    """Run argv under /usr/bin/time (wall clock); both streams read line by line in arrival order."""
    timefile = log.with_suffix(".time")
    timed = [TIME_BIN, "-f", "%e", "-o", str(timefile), *argv] if os.access(TIME_BIN, os.X_OK) else argv
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(timed, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise Fail(f"cannot run {argv[0]}: {exc.strerror}") from None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "o")
    sel.register(proc.stderr, selectors.EVENT_READ, "e")
    stream: list[tuple[str, str]] = []
    partial = {"o": b"", "e": b""}
    with log.open("wb") as fh:
        while sel.get_map():
            for key, _ in sel.select():
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                fh.write(chunk)
                data = partial[key.data] + chunk
                *lines, partial[key.data] = data.split(b"\n")
                stream += [(key.data, ln.decode("utf-8", "replace").rstrip("\r")) for ln in lines]
    stream += [(k, v.decode("utf-8", "replace")) for k, v in partial.items() if v]
    rc = proc.wait()
    wall = time.monotonic() - t0
    if timed is not argv and timefile.exists():
        text = timefile.read_text().strip().splitlines()
        if rc and text and text[0].startswith("Command exited"):
            text = text[1:]
        try:
            wall = float(text[-1])
        except (IndexError, ValueError):
            pass
    return rc, wall, stream


def git(*args: str, cwd: Path = REPO) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        raise Fail(f"git {' '.join(args)}: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}") \
            from None


def budget_ms(python: str, cwd: Path, env: dict) -> str:
    """The select examples' latency budget: quickstart's default rule over the step-by-step profiles."""
    code = ("import glob, pathlib; from us3l.commands.quickstart import default_budget_ms; "
            "print(default_budget_ms([pathlib.Path(p) for p in sorted(glob.glob('profiles/*-cpu-*.json'))]))")
    value = float(clone_python(python, cwd, env, code, "the select budget"))
    text = f"{value:.3f}"  # the rule rounds to 3 decimals where that stays inside its gap; else every digit counts
    return text.rstrip("0").rstrip(".") if float(text) == value else repr(value)


def clone_python(python: str, cwd: Path, env: dict, code: str, what: str) -> str:
    """The stdout of ``code`` run by the clone's python in the clone; a failure is a one-line ``Fail``."""
    r = subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise Fail(f"cannot compute {what}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return r.stdout.strip()


#: The CPU and its one-core fp32 matmul rate (best of 5 rounds of 512^3 products), printed by the clone's python
MACHINE_CODE = """
import time, torch
from us3l.profiler.provenance import cpu_isa
torch.set_num_threads(1)
a = torch.randn(512, 512)
for _ in range(10):
    a @ a
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(20):
        a @ a
    best = min(best, time.perf_counter() - t)
name, flags = (cpu_isa().split("; ") + ["", ""])[:2]
print(f"{name} ({flags}), 1-core 512^3 fp32 matmul {20 * 512 ** 3 / best / 1e9:.0f} GMAC/s")
"""


def machine(python: str, cwd: Path, env: dict) -> str:
    """``AMD EPYC (avx2), 1-core 512^3 fp32 matmul 37 GMAC/s``: which CPU the timings come from, and how fast it
    multiplies (the README's times differ by a factor of 3 between two of this project's 2-core machines)."""
    return clone_python(python, cwd, env, MACHINE_CODE, "the CPU's matmul rate")


def schedule_ms(python: str, cwd: Path, env: dict) -> str:
    """The schedule example's budgets, from the switchable profile just measured (a fixed list fails on a slower
    machine): midway between adjacent conservative latencies at the bottom, a third and two thirds up the
    profiled widths, and 10 % above the slowest, so that each budget sits between two widths."""
    code = ("from us3l.deploy.select import Budget, LatencyRule, load_profile, select_profile; "
            f"p = {SWITCHABLE_PROFILE!r}; "
            "c = select_profile(load_profile(p), Budget(latency_ms=1e12), LatencyRule(), None, p).candidates; "
            "print(*sorted(x.latency_ms for x in c))")
    lat = [float(v) for v in clone_python(python, cwd, env, code, "the schedule budgets").split()]
    return ",".join(f"{b:.3f}".rstrip("0").rstrip(".") for b in schedule_budgets(lat))


def schedule_budgets(lat: list[float]) -> list[float]:
    """Budgets between adjacent latencies of ``lat`` (sorted) at its bottom, a third and two thirds up, and one
    10 % above the slowest; distinct and increasing."""
    if not lat:
        raise Fail("the switchable profile has no width to schedule")
    n = len(lat)
    picks = sorted({i for i in (0, n // 3, (2 * n) // 3) if i + 1 < n})
    budgets = [(lat[i] + lat[i + 1]) / 2 for i in picks] + [lat[-1] * 1.1]
    return sorted({round(b, 3) for b in budgets})


def plan(only: str | None, with_tests: bool) -> list[Step]:
    if not only:
        return [s for s in STEPS if s.name not in DEFAULT_SKIP or with_tests]
    want = {n.strip() for n in only.split(",") if n.strip()}
    unknown = sorted(want - BY_NAME.keys())
    if unknown:
        raise Fail(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    if with_tests:
        want.add("time-tests")
    todo = set()

    def add(name: str) -> None:
        if name not in todo:
            todo.add(name)
            for dep in BY_NAME[name].needs:
                add(dep)

    for n in want:
        add(n)
    return [s for s in STEPS if s.name in todo]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, help="reuse this virtual environment instead of installing one in the clone")
    ap.add_argument("--only", help="comma-separated step names (their prerequisites run too)")
    ap.add_argument("--with-tests", action="store_true", help="also time the default test suite (./test.sh)")
    ap.add_argument("--dry-run", action="store_true", help="list the steps and commands, run nothing")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md", help="the file to update (default: README.md)")
    ap.add_argument("--columns", type=int, default=120, help="terminal width the tables are laid out for")
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone (its path is printed)")
    args = ap.parse_args(argv)

    steps = plan(args.only, args.with_tests)
    if args.dry_run:
        for s in steps:
            what = s.cmd or f"(wall time of step {s.needs[0]})"
            print(f"{s.name:22} {what}" + (f"   [exit {s.rc}]" if s.rc else ""))
        return 0

    readme = args.readme.resolve()
    if not readme.is_file():
        raise Fail(f"{readme} not found")
    commit = git("rev-parse", "--short=12", "HEAD")
    tmp = Path(tempfile.mkdtemp(prefix="us3l-readme-"))
    clone = tmp / "us3l"
    ctx = {"commit": commit, "nproc": os.cpu_count(), "timer": "/usr/bin/time"}
    if not os.access(TIME_BIN, os.X_OK):
        ctx["timer"] = "monotonic clock"
    logs = tmp / "logs"
    logs.mkdir()
    results: dict[str, Result] = {}
    install = None
    try:
        print(f"cloning {commit} into {clone}", file=sys.stderr)
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("US3L_", "VIRTUAL_ENV", "PYTHON"))}
        if args.venv:
            venv = args.venv.resolve()
            if not (venv / "bin" / "python").exists():
                raise Fail(f"--venv {args.venv}: no bin/python there")
            ctx["venv_note"] = "reused venv (install not timed)"
        else:
            print("installing with scripts/setup-env.sh (minutes)", file=sys.stderr)
            t0, load0 = time.monotonic(), os.getloadavg()[0]
            r = subprocess.run(["scripts/setup-env.sh"], cwd=clone, capture_output=True, text=True, env=env)
            if r.returncode:
                raise Fail(f"scripts/setup-env.sh exited {r.returncode}: "
                           f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
            install = (time.monotonic() - t0, load0)
            venv = clone / ".venv"
            ctx["venv_note"] = f"fresh install {fmt_duration(install[0])}"
        env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PYTHONPATH=str(clone),
                   PYTHONUNBUFFERED="1", COLUMNS=str(args.columns))
        # us3l.profiler/.devices/.deploy live beside us3l/ in the clone (us3l/__init__.py finds them there).
        imported = "import us3l.profiler, us3l.devices, us3l.deploy as d; print(us3l.__file__, d.__file__, sep='\\n')"
        check = subprocess.run([str(venv / "bin" / "python"), "-c", imported],
                               cwd=clone, env=env, capture_output=True, text=True)
        if check.returncode or not all(f.startswith(str(clone)) for f in check.stdout.splitlines() or ["?"]):
            raise Fail(f"the clone's us3l is not the one imported ({check.stdout.strip() or check.stderr.strip()})")

        if any(s.kind == "time" for s in steps):
            ctx["machine"] = machine(str(venv / "bin" / "python"), clone, env)
        budget = None
        for s in steps:
            if s.kind == "time" and not s.cmd:
                continue
            cmd = s.cmd
            if BUDGET_TOKEN in cmd:
                budget = budget or budget_ms(str(venv / "bin" / "python"), clone, env)
                cmd = cmd.replace(BUDGET_TOKEN, budget)
            if SCHEDULE_TOKEN in cmd:
                cmd = cmd.replace(SCHEDULE_TOKEN, schedule_ms(str(venv / "bin" / "python"), clone, env))
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            started = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
            print(f"[{started}] {s.name}: {cmd}", file=sys.stderr, flush=True)
            rc, wall, stream = run_step(shlex.split(cmd), clone, env, logs / f"{s.name}.log")
            if rc != s.rc:
                last = next((ln for k, ln in reversed(stream) if k == "e" and ln.strip()), None)
                last = last or next((ln for _, ln in reversed(stream) if ln.strip()), "no output")
                kept = REPO / "runs" / f"readme-{s.name}-failed.log"  # the clone goes; its log must not
                kept.parent.mkdir(exist_ok=True)
                shutil.copyfile(logs / f"{s.name}.log", kept)
                raise Fail(f"step {s.name} ({cmd}) exited {rc}, expected {s.rc}: {last.strip()} (full output: {kept})")
            print(f"  {fmt_duration(wall)}, exit {rc}", file=sys.stderr, flush=True)
            results[s.name] = Result(s, cmd, rc, wall, started, load, stream)

        blocks: dict[str, str] = {}
        for s in steps:
            if s.kind == "block":
                blocks[s.name] = render_block(results[s.name], ctx)
            elif s.kind == "time" and s.name == "time-quickstart":
                extra = (f" + {fmt_duration(install[0])} first-time install" if install
                         else " (install not timed: venv reused)")
                blocks[s.name] = render_time(results["quickstart"], ctx, extra)
            elif s.kind == "time":
                blocks[s.name] = render_time(results[s.name], ctx, "" if install else " (install not timed)")
        text, missing = substitute(readme.read_text(encoding="utf-8"), blocks)
        for name in missing:
            print(f"note: {readme.name} has no single readme:{name} marker pair; its output is left out",
                  file=sys.stderr)
        write_atomic(readme, text)
        summary = {n: round(r.wall_s, 1) for n, r in results.items()}
        print(json.dumps({"commit": commit, "readme": str(readme), "updated": sorted(set(blocks) - set(missing)),
                          "install_s": round(install[0], 1) if install else None, "wall_s": summary}))
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited {exc.returncode}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; README.md unchanged", file=sys.stderr)
        sys.exit(130)
