"""The command line as a whole: help text on every command, --version, errors without tracebacks."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cosnet_index import __version__
from cosnet_index.cli._app import cli


def _all_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, ctx, (*prefix, name))


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_root_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["-h"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_every_command_has_help_text() -> None:
    ctx = click.Context(cli)
    commands = list(_all_commands(cli, ctx))
    assert commands, "no commands registered"
    runner = CliRunner()
    for path, command in commands:
        assert command.help and command.help.strip(), f"`{' '.join(path)}` has no help text"
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_every_option_has_help_text() -> None:
    ctx = click.Context(cli)
    bare = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, command in _all_commands(cli, ctx)
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert bare == []


def test_missing_store_names_the_environment_variable() -> None:
    result = CliRunner(env={"COSNET_STORE": None}).invoke(cli, ["stats"])
    assert result.exit_code == 2
    assert "--store" in result.output and "COSNET_STORE" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["no-such-command"]])
def test_unknown_command_fails_cleanly(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output


@pytest.mark.parametrize("widths", ["4,8", "0,8,8"])
def test_train_with_a_bad_architecture_is_a_one_line_error(tmp_path, widths: str) -> None:
    """Issue 16: a bad CosNetConfig in `train` printed a ValueError traceback."""
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "run"), "--widths", widths])
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and "widths" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_long_commands_take_no_progress() -> None:
    """Every command that draws a progress bar can be told not to (logs, batch jobs)."""
    runner = CliRunner()
    for path in (["segment"], ["index"]):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0 and "--no-progress" in result.output, path
