"""The root click group and how errors reach the user."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from cosnet_index import __version__
from cosnet_index.errors import CosnetError
from cosnet_index.files import write_error

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# (module under cosnet_index.cli, attribute) of every command or sub-group, registered lazily
# so that `cosnet-index --help` imports neither torch nor faiss.
_COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "simulate"),
    "train": ("train", "train"),
    "campaign": ("campaign", "campaign"),
    "evaluate": ("evaluate", "evaluate"),
    "init": ("store", "init"),
    "db": ("store", "db"),
    "index": ("store", "index"),
    "reindex": ("store", "reindex"),
    "check": ("maintenance", "check"),
    "repair": ("maintenance", "repair"),
    "stats": ("maintenance", "stats"),
    "tomograms": ("tomograms", "tomograms"),
    "classes": ("classes", "classes"),
    "classify": ("query", "classify"),
    "search": ("query", "search"),
    "discover": ("query", "discover"),
    "export": ("export", "export"),
    "segment": ("segment", "segment"),
    "demo": ("demo", "demo"),
    "report": ("demo", "report"),
    "copick": ("copick", "copick"),
    "view": ("view", "view"),
}


def _available() -> set[str]:
    """Commands whose module exists in this installation."""
    return {
        name
        for name, (module, _) in _COMMANDS.items()
        if importlib.util.find_spec(f"cosnet_index.cli.{module}") is not None
    }


class LazyGroup(click.Group):
    """A group whose commands live in other modules and are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | _available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS and cmd_name in _available():
            module_name, attr = _COMMANDS[cmd_name]
            module = importlib.import_module(f"cosnet_index.cli.{module_name}")
            return getattr(module, attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except CosnetError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(exc)) from None
        except (OSError, RuntimeError) as exc:
            # the net under every write path that does not pass through cosnet_index.files
            # (e.g. copick's own writers): a full disk is one line, never a traceback
            full = write_error(exc, getattr(exc, "filename", None) or "a file")
            if full is None or (ctx.obj and ctx.obj.get("debug")):
                raise
            raise click.ClickException(str(full)) from None


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="cosnet-index")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """cosnet-index: sort, search and segment cryo-ET subtomograms from one example per class.

    Every subtomogram of a tomogram collection is embedded once by COS-Net into a FAISS + SQLite
    store; named support classes then classify, search and segment the whole collection without
    re-embedding anything.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # faiss says which CPU build it loads at INFO; a package that configured the root logger
    # first (copick does at import) would show it at normal verbosity: faiss follows -v instead
    logging.getLogger("faiss").setLevel(level)


def main() -> None:
    cli(prog_name="cosnet-index")
