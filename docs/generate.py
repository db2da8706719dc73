"""Rewrite the generated blocks of docs/*.md from the code: `.venv/bin/python docs/generate.py` (`--check`: only compare).

A block is the text between `<!-- generated: NAME -->` and `<!-- end generated -->`. Names:
- `options COMMAND`: the options of a console script of setup.cfg that is a click command (found by
  reading `[options.entry_points]`, so a command added there gets a section of docs/commands.md the
  next time this runs);
- `experiment-options`: the stage-2 experiment options, from `heads/options.py`;
- `modules`: every module of the installed packages (setup.cfg's `[options.packages.find]`) with the first
  line of its docstring, read without importing it;
- `study-spec`: the tables and keys of a study spec, from `study/spec.py`'s docstring.

Nothing here imports TensorFlow: the commands import it only when they run.
"""

from __future__ import annotations

import ast
import configparser
import difflib
import importlib
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import click

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMANDS_PAGE = DOCS / "commands.md"
BLOCK = re.compile(r"<!-- generated: (?P<name>[^>]+?) -->\n.*?<!-- end generated -->\n?", re.S)
HEADER = "<!-- generated: {name} -->\n"
FOOTER = "<!-- end generated -->\n"
EXPERIMENT_ANCHOR = "#experiment-options"  # a heading of docs/commands.md

if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def console_scripts() -> list[tuple[str, str]]:
    """(name, 'module:attr') of every console script in setup.cfg, in file order."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg.get("options.entry_points", "console_scripts", fallback="").splitlines()
    pairs = [line.split("=", 1) for line in lines if "=" in line]
    return [(name.strip(), target.strip()) for name, target in pairs]


def click_command(target: str) -> click.Command | None:
    """The click command behind an entry point: the object itself, or the command its wrapper calls."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, click.Command):
        return obj
    names = getattr(getattr(obj, "__code__", None), "co_names", ())
    found = [module.__dict__[n] for n in names if isinstance(module.__dict__.get(n), click.Command)]
    return found[0] if found else None


def commands() -> dict[str, click.Command]:
    """Every console script that is a click command, by script name."""
    out = {}
    for name, target in console_scripts():
        command = click_command(target)
        if command is not None:
            out[name] = command
    return out


def cell(text: Any) -> str:
    """Text for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def type_text(kind: click.ParamType) -> str:
    """'int >= 1', 'float in (0, 1]', 'a, b, c', 'text'."""
    if isinstance(kind, click.Choice):
        return ", ".join(f"`{c}`" for c in kind.choices)
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        base = "int" if isinstance(kind, click.IntRange) else "float"
        lo, hi = kind.min, kind.max
        if hi is None:
            return f"{base} {'>' if kind.min_open else '>='} {lo}" if lo is not None else base
        left = "(" if kind.min_open else "["
        right = ")" if kind.max_open else "]"
        return f"{base} in {left}{lo if lo is not None else '-inf'}, {hi}{right}"
    names = {"integer": "int", "float": "float", "text": "text", "boolean": "bool", "path": "path"}
    return names.get(kind.name, kind.name)


def param_type(param: click.Option) -> str:
    if param.is_flag:
        return "flag"
    text = f"`{param.metavar}`" if param.metavar else type_text(param.type)
    return text + (", repeatable" if param.multiple else "")


def param_default(param: click.Option, command: click.Command) -> str:
    default = param.get_default(click.Context(command), call=False)
    if param.is_flag:
        if param.secondary_opts:
            return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
        return "off" if not default else "on"
    if isinstance(param.show_default, str):  # a default that reads otherwise than its value (K: None is "all")
        return f"`{param.show_default}`"
    if default is None or default == () or callable(default) or type(default).__name__ == "Sentinel":  # click's UNSET
        return ""
    return f"`{default}`"


def flags(param: click.Option) -> str:
    names = param.opts + param.secondary_opts
    if param.is_flag and param.secondary_opts:
        return f"`{param.opts[0]}/{param.secondary_opts[0]}`"
    return ", ".join(f"`{n}`" for n in names)


def experiment_helps() -> dict[str, str]:
    """Python name -> help of each stage-2 experiment option (empty when heads/options.py is not importable)."""
    try:
        from heads.options import EXPERIMENT_OPTIONS
    except ImportError:
        return {}
    return {o.name: o.help for o in EXPERIMENT_OPTIONS}


def is_experiment_option(param: click.Option, helps: dict[str, str]) -> bool:
    """A click option built from heads/options.py (same name, help starting with its help)."""
    return param.name in helps and (param.help or "").startswith(helps[param.name])


def option_rows(command: click.Command) -> list[str]:
    """One table row per visible option; the experiment options collapse into rows pointing to their table."""
    helps = experiment_helps()
    rows, shared = [], {True: [], False: []}
    for param in command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if is_experiment_option(param, helps):
            if not shared[True] and not shared[False]:
                rows.append(None)  # where the experiment options go
            shared[param.multiple].append(param)
            continue
        rows.append(f"| {flags(param)} | {cell(param_type(param))} | {cell(param_default(param, command))} | "
                    f"{cell(param.help or '')} |")
    out: list[str] = []
    for row in rows:
        if row is not None:
            out.append(row)
            continue
        link = f"[experiment options]({EXPERIMENT_ANCHOR})"
        for multiple, params in shared.items():
            if not params:
                continue
            names = ", ".join(f"`{p.opts[0]}`" for p in params)
            kind = (f"`{params[0].metavar}`, repeatable" if multiple else "one value")
            meaning = (f"the {link}; a comma list sweeps one, `AUX=list` sets the list for one aux choice"
                       if multiple else f"the {link}: one value each")
            out.append(f"| {names} | {cell(kind)} | see table | {meaning} |")
    return out


def usage(name: str, command: click.Command) -> str:
    ctx = click.Context(command, info_name=name)
    return " ".join([name, *command.collect_usage_pieces(ctx)])


def command_block(name: str, command: click.Command) -> str:
    """Usage line, the command's one-line summary and its option table."""
    summary = (command.help or "").strip().split("\n\n")[0]
    lines = [f"`{usage(name, command)}`", "", " ".join(summary.split()), ""]
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            lines += [f"#### `{name} {sub_name}`", "", command_block(f"{name} {sub_name}", sub).rstrip(), ""]
        return "\n".join(lines) + "\n"
    rows = option_rows(command)
    if rows:
        lines += ["| option | type | default | meaning |", "|---|---|---|---|", *rows]
    else:
        lines.append("No options besides `--help`.")
    return "\n".join(lines) + "\n"


def experiment_block() -> str:
    """The table of heads/options.py: flag, type, default, the aux choices it applies to, sweep behaviour."""
    from heads.cells import K_NAME
    from heads.options import EXPERIMENT_OPTIONS

    lines = ["| option | type | default | applies to `--aux` | in `sweep-heads` | meaning |",
             "|---|---|---|---|---|---|"]
    for o in EXPERIMENT_OPTIONS:
        applies = "all" if o.applies is None else ", ".join(f"`{a}`" for a in sorted(o.applies))
        sweep = ("comma list, selected per value" if o.name == K_NAME
                 else "comma list" if o.sweepable else "one value")
        default = "" if o.default is None and o.default_text == "None" else f"`{o.default_text}`"
        lines.append(f"| `{o.flag}` | {cell(type_text(o.type))} | {cell(default)} | {applies} | {sweep} | "
                     f"{cell(o.help)} |")
    return "\n".join(lines) + "\n"


def packages() -> list[str]:
    """Top-level packages installed by setup.cfg (`[options.packages.find] include`), in file order."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = cfg.get("options.packages.find", "include", fallback="").split()
    return [n for n in names if "." not in n and "*" not in n]


def first_line(path: Path) -> str:
    """The first line of a module's docstring (the file is parsed, not imported)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def modules_block() -> str:
    """One row per module of each installed package: its path and the first line of its docstring."""
    lines = ["| module | what it holds (its docstring's first line) |", "|---|---|"]
    for package in packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            lines.append(f"| `{path.relative_to(ROOT).as_posix()}` | {cell(first_line(path))} |")
    return "\n".join(lines) + "\n"


def study_spec_block() -> str:
    """The spec's tables and keys: study/spec.py's docstring (parsed, not imported), as a code block."""
    doc = ast.get_docstring(ast.parse((ROOT / "study" / "spec.py").read_text())) or ""
    lines = [line.removeprefix("    ") for line in doc.strip().splitlines()[1:]]
    return "```text\n" + "\n".join(lines).strip("\n") + "\n```\n"


def render(name: str, found: dict[str, click.Command]) -> str | None:
    """The body of block `name`, or None for a name this generator does not know (a removed command)."""
    if name == "study-spec":
        return study_spec_block()
    if name == "experiment-options":
        return experiment_block()
    if name == "modules":
        return modules_block()
    if name.startswith("options "):
        command = name.removeprefix("options ")
        return command_block(command, found[command]) if command in found else None
    return None


def blocks(text: str) -> Iterator[str]:
    for match in BLOCK.finditer(text):
        yield match["name"]


def rewrite(text: str, found: dict[str, click.Command], append_missing: bool = False) -> str:
    """`text` with every generated block rewritten; on the commands page, a section for each command missing one."""

    def replace(match: re.Match) -> str:
        body = render(match["name"], found)
        if body is None:
            body = f"(no such command or table any more: remove this block: {match['name']})\n"
        return HEADER.format(name=match["name"]) + body + FOOTER

    out = BLOCK.sub(replace, text)
    if append_missing:
        present = set(blocks(out))
        for command in found:
            if f"options {command}" not in present:
                out = out.rstrip("\n") + (f"\n\n## `{command}`\n\n" + HEADER.format(name=f"options {command}")
                                          + command_block(command, found[command]) + FOOTER)
    return out


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def generated() -> dict[Path, str]:
    """Every docs page as this generator would write it now."""
    found = commands()
    return {p: rewrite(p.read_text(), found, append_missing=p == COMMANDS_PAGE) for p in pages()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for path, new in generated().items():
        old = path.read_text()
        if new == old:
            continue
        stale += 1
        if check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(path), "generated"))
        else:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    if check and stale:
        print(f"{stale} page(s) differ from the code: run `python docs/generate.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
