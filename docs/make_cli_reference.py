"""Generate the command-line reference from ``--help`` of every ``cosnet-index`` command.

Writes ``docs/cli.md`` (the full ``--help`` text of every command and sub-command) and, when
``README.md`` has the markers ``<!-- cli-reference:start -->`` / ``<!-- cli-reference:end -->``,
rewrites the block between them with a one-line-per-command table linking to ``docs/cli.md``.
``tests/test_report_cli_reference.py`` fails when either is out of date; rerun this script then.

    python docs/make_cli_reference.py           # rewrite docs/cli.md and the README block
    python docs/make_cli_reference.py --check   # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"
PROG = "cosnet-index"
WIDTH = 100


def _root() -> click.Group:
    from cosnet_index.cli._app import cli

    return cli


def commands(
    group: click.Group | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every (path, command) below ``group``, depth first, sorted by name; the root first."""
    group = group or _root()
    if not path:
        yield (), group
    ctx = click.Context(group, info_name=PROG)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or getattr(command, "hidden", False):
            continue
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    """The ``--help`` output of ``cosnet-index PATH...`` at a fixed width."""
    result = CliRunner().invoke(
        _root(), [*path, "--help"], prog_name=PROG, terminal_width=WIDTH, catch_exceptions=False
    )
    if result.exit_code != 0:
        raise RuntimeError(f"`{PROG} {' '.join(path)} --help` failed:\n{result.output}")
    return result.output.rstrip() + "\n"


def _summary(command: click.Command) -> str:
    return command.get_short_help_str(limit=90).replace("|", "\\|")


def _anchor(path: tuple[str, ...]) -> str:
    return "-".join((PROG, *path))


def cli_markdown() -> str:
    """The content of docs/cli.md."""
    lines = [
        "# Command-line reference",
        "",
        "Generated from `--help` by `python docs/make_cli_reference.py`; "
        "`tests/test_report_cli_reference.py` fails when this file is out of date.",
    ]
    for path, _ in commands():
        title = " ".join((PROG, *path))
        lines += ["", f"## {title}", "", "```text", help_text(path).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def readme_block() -> str:
    """The README's command table (between the markers, markers excluded)."""
    lines = [
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for path, command in commands():
        if not path:
            continue
        name = " ".join((PROG, *path))
        lines.append(f"| [`{name}`](docs/cli.md#{_anchor(path)}) | {_summary(command)} |")
    lines += [
        "",
        "`cosnet-index COMMAND --help` prints every option; all: [docs/cli.md](docs/cli.md).",
        "",
    ]
    return "\n".join(lines)


def _with_readme_block(text: str) -> str | None:
    """README text with the block replaced, or None when it has no markers."""
    if START not in text or END not in text:
        return None
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{readme_block()}\n{END}{tail}"


def stale() -> list[Path]:
    """The generated files that differ from what this script would write now."""
    out = []
    if not CLI_DOC.exists() or CLI_DOC.read_text(encoding="utf-8") != cli_markdown():
        out.append(CLI_DOC)
    if README.exists():
        text = README.read_text(encoding="utf-8")
        updated = _with_readme_block(text)
        if updated is not None and updated != text:
            out.append(README)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if out of date, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.relative_to(ROOT)} is out of date: run python docs/make_cli_reference.py")
        return 1 if out_of_date else 0
    CLI_DOC.write_text(cli_markdown(), encoding="utf-8")
    print(f"wrote {CLI_DOC.relative_to(ROOT)}")
    if README.exists():
        updated = _with_readme_block(README.read_text(encoding="utf-8"))
        if updated is None:
            print(f"README.md has no {START} / {END} markers: left unchanged")
        else:
            README.write_text(updated, encoding="utf-8")
            print("rewrote the command table in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
