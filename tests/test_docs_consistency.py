"""Reference tables in the docs that restate the code or each other stay equal to them: the README's flag and
exit-code tables are docs/cli.md's, and docs/training.md's "Every key" table lists every ``TrainConfig`` field
with its dataclass default."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from tests.script_module import ROOT
from us3l.train.config import TrainConfig

KEY_TABLE_HEAD = "| key | default | meaning |"


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_readme_tables_are_cli_md_tables() -> None:
    readme = set((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    missing = [row for row in _table_rows((ROOT / "docs" / "cli.md").read_text(encoding="utf-8")) if row not in readme]
    assert not missing, "docs/cli.md table rows not in the README as they are:\n" + "\n".join(missing)


def _key_table() -> dict[str, str | None]:
    """key -> default cell of docs/training.md's "Every key" table (None for a key of a grouped row)."""
    lines = (ROOT / "docs" / "training.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(KEY_TABLE_HEAD) + 2
    table: dict[str, str | None] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        keys_cell, default_cell = (c.strip() for c in line.split("|")[1:3])
        keys = re.findall(r"`([a-z0-9_]+)`", keys_cell)
        for key in keys:
            table[key] = default_cell if len(keys) == 1 else None
    return table


def _doc_default(value: object) -> str:
    if value is None:
        return "`None`"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" for v in value) if value else "`()`"
    return "`{}`" if value == {} else str(value)


def test_every_config_key_is_documented_with_its_default() -> None:
    table = _key_table()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert sorted(set(fields) - set(table)) == [], "TrainConfig fields missing from docs/training.md's key table"
    assert sorted(set(table) - set(fields)) == [], "docs/training.md documents keys TrainConfig does not have"
    defaults = TrainConfig()
    for name in fields:
        cell = table[name]
        if cell is None:
            continue  # a grouped row lists several defaults; checked by name only
        value = getattr(defaults, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert float(cell) == value, f"{name}: documented default {cell}, the dataclass has {value}"
        else:
            assert cell == _doc_default(value), f"{name}: documented default {cell}"


def test_every_exit_status_the_cli_uses_is_documented() -> None:
    """Red-team 2026-12-06: `us3l` exits 143 on SIGTERM (us3l.errors.EXIT_TERMINATED), but neither docs/cli.md's
    exit-code table (nor the README's copy of it) nor `us3l --help` named it."""
    from us3l import errors
    from us3l.cli_app import app

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)} | {0, 1, 2}
    table = {int(m) for m in re.findall(r"^\| (\d+) \|", (ROOT / "docs" / "cli.md").read_text(encoding="utf-8"),
                                        re.MULTILINE)}
    assert codes <= table, f"exit statuses missing from docs/cli.md: {sorted(codes - table)}"
    epilog = str(app.info.epilog)
    assert all(f"{code} " in epilog for code in codes), epilog


def _cli_params() -> dict[str, list[Any]]:
    """Per command path (``select``, ``profile show``), its Click parameters, after every command is registered."""
    import typer.main

    from us3l.cli import load_commands
    from us3l.cli_app import app

    load_commands()
    found: dict[str, list[Any]] = {}

    def walk(cmd: Any, path: str) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())
        if path:
            found[path] = [p for p in cmd.params if getattr(p, "opts", None)]

    walk(typer.main.get_command(app), "")
    return found


def _long_names(param: Any) -> set[str]:
    return {o for o in (*param.opts, *getattr(param, "secondary_opts", ())) if o.startswith("--")}


def _flag_rows() -> list[tuple[str, str, str]]:
    """docs/cli.md's flag table as (flags, commands, old spellings) cells."""
    lines = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Flag |")) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        flags, _, commands, old = (c.strip() for c in line.split(" | "))
        rows.append((flags.lstrip("| "), commands, old.rstrip(" |")))
    return rows


def test_every_flag_in_the_cli_table_is_an_option_of_exactly_the_commands_it_names() -> None:
    """Audit 2026-12-07: the flag table (README's copy included) is what a new user reads first; a flag renamed,
    added to another command or dropped from one must show there. `--widths LIST` / `--width W` rows pair their
    flags with the ` / `-separated command lists; "every command with a table" is not checked."""
    params = _cli_params()
    commands = set(params)
    for flags_cell, commands_cell, _ in _flag_rows():
        if commands_cell == "every command with a table":
            continue
        groups = flags_cell.split(" / ")
        lists = commands_cell.split(" / ") if len(groups) > 1 else [commands_cell]
        assert len(groups) == len(lists), flags_cell
        for group, listed in zip(groups, lists, strict=True):
            names = [n.split()[0] for n in re.findall(r"`([^`]+)`", group)]
            longs = [n for n in names if n.startswith("--")]
            shorts = [n for n in names if not n.startswith("--")]
            named = commands if listed == "every command" else {c.split(" --")[0] for c in listed.split(", ")}
            for long in longs:
                having = {c for c, ps in params.items() if any(long in _long_names(p) and not p.hidden for p in ps)}
                assert having == named, f"{long}: docs/cli.md names {sorted(named)}, --help has {sorted(having)}"
                for cmd, short in ((c, s) for c in named for s in shorts):
                    param = next(p for p in params[cmd] if long in _long_names(p))
                    assert short in param.opts, f"{cmd} {long}: no {short}"


def test_every_old_spelling_a_command_still_takes_is_in_the_cli_table() -> None:
    """A hidden option is an old spelling kept for old scripts: the table's last column names it (with a note on
    stderr when used: tests/test_cli_conventions.py). ``select --plot-file`` is what ``select --plot FILE`` becomes
    (``us3l.cli.legacy_argv``), listed as that."""
    old_cells = " ".join(old for _, _, old in _flag_rows())
    hidden = {long for ps in _cli_params().values() for p in ps if p.hidden for long in _long_names(p)}
    missing = sorted(h for h in hidden - {"--plot-file"} if f"`{h} " not in old_cells and f" {h}`" not in old_cells
                     and f" {h} " not in old_cells)
    assert not missing, f"old spellings missing from docs/cli.md's flag table: {missing}"


def test_the_repeatable_options_are_the_ones_docs_cli_md_names() -> None:
    """docs/cli.md says which options stay repeatable (the rest: `given twice`, exit 2); `select --profile` and `eval
    --artifact` take a list too but were not named. ``export --backend`` is declared repeatable only to refuse a
    second backend with its own usage error (`export takes one --backend`)."""
    text = " ".join((ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split())
    sentence = text.split("The options that take a list stay repeatable: ", 1)[1].split(". ", 1)[0]
    for cmd, ps in _cli_params().items():
        for p in ps:
            if not getattr(p, "multiple", False) or p.hidden or (cmd, p.opts[0]) == ("export", "--backend"):
                continue
            long = sorted(_long_names(p))[0]
            named = re.search(rf"`(?:{cmd} )?{long}`(?: \(([^)]*)\))?", sentence)
            assert named and (named.group(1) is None or cmd in named.group(1).split(", ")), (
                f"{cmd} {long} is repeatable; docs/cli.md does not say so: {sentence}")
