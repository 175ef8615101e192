"""Options that several commands share, declared once: name, type, default and help.

Each is a decorator (``@set_option()``, ``@cpu_option``); where one option means a slightly
different thing in two commands, the decorator takes the command's own ``help``. Defaults come
from :mod:`cosnet_index.defaults`, which imports nothing, so ``--help`` stays instant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from cosnet_index.defaults import (
    DEFAULT_MAX_LOST,
    DEFAULT_MIN_PROB,
    DEFAULT_REDUCE,
    DEFAULT_SET,
    REDUCE_CHOICES,
)

__all__ = [
    "classes_option",
    "cpu_option",
    "invert_contrast_option",
    "json_option",
    "keep_all_option",
    "max_lost_option",
    "min_prob_option",
    "no_crf_option",
    "overwrite_option",
    "parse_ids",
    "parse_names",
    "plausibility_options",
    "reduce_option",
    "seed_option",
    "set_option",
    "store_options",
    "subtomogram_ids_option",
    "threads_option",
    "top_k_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--store PATH`` (env ``COSNET_STORE``) and ``--db-url URL`` (env ``COSNET_DB_URL``)."""

    @click.option(
        "--store",
        "store_path",
        envvar="COSNET_STORE",
        default=None,
        type=click.Path(file_okay=False),
        help="Store directory (default: $COSNET_STORE; one of the two is required).",
    )
    @click.option(
        "--db-url",
        envvar="COSNET_DB_URL",
        default=None,
        help="SQLAlchemy URL of the catalog, e.g. postgresql+psycopg://user@host/db "
        "(default: STORE/catalog.sqlite; env COSNET_DB_URL).",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("store_path"):
            # click's own message ("Missing option '--store'") does not say the variable works
            raise click.UsageError(
                "Missing option '--store': give the store directory with --store PATH, or set "
                "it once for the shell with `export COSNET_STORE=PATH`"
            )
        return fn(*args, **kwargs)

    return wrapper


def set_option(*, every: bool = False) -> Decorator:
    """``--set NAME``: the class set (``every=True``: optional filter, default every set)."""
    if every:
        return click.option(
            "--set", "set_name", default=None, help="Only this set (default: every set)."
        )
    return click.option(
        "--set",
        "set_name",
        default=DEFAULT_SET,
        show_default=True,
        help="Class set (a namespace of classes).",
    )


classes_option: Decorator = click.option(
    "--classes",
    "class_names",
    default=None,
    help="Comma-separated class names (default: every class).",
)

reduce_option: Decorator = click.option(
    "--reduce",
    type=click.Choice(list(REDUCE_CHOICES)),
    default=DEFAULT_REDUCE,
    show_default=True,
    help="How the K shots of a class combine: best shot (max) or mean probability.",
)


def min_prob_option(
    help: str,
    *,
    name: str = "--min-prob",
    default: float | None = DEFAULT_MIN_PROB,
    open_interval: bool = False,
) -> Decorator:
    """A probability in [0, 1] (``open_interval``: in (0, 1)); ``default=None``: not shown."""
    return click.option(
        name,
        type=click.FloatRange(0.0, 1.0, min_open=open_interval, max_open=open_interval),
        default=default,
        show_default=default is not None,
        help=help,
    )


def max_lost_option(help: str) -> Decorator:
    """``--max-lost FRACTION`` in (0, 0.5): the mixture open-set rule's stated loss."""
    return click.option(
        "--max-lost",
        type=click.FloatRange(0.0, 0.5, min_open=True, max_open=True),
        default=DEFAULT_MAX_LOST,
        show_default=True,
        metavar="FRACTION",
        help=help,
    )


def subtomogram_ids_option(help: str) -> Decorator:
    """``--subtomogram ID[,ID...]`` (repeatable); read with :func:`parse_ids`."""
    return click.option(
        "--subtomogram", "subtomograms", multiple=True, metavar="ID[,ID...]", help=help
    )


def parse_ids(values: tuple[str, ...]) -> list[int]:
    """``--subtomogram 1 --subtomogram 2,3`` -> ``[1, 2, 3]``.

    Raises:
        click.BadParameter: a part is not an integer.
    """
    out = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise click.BadParameter(
                    f"{part!r} is not a subtomogram id (an integer)", param_hint="--subtomogram"
                ) from None
    return out


def parse_names(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; empty or None -> None (every class)."""
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


def invert_contrast_option(help: str) -> Decorator:
    """``--invert-contrast``: negate boxes (tomograms with bright molecules)."""
    return click.option("--invert-contrast", is_flag=True, help=help)


def edge_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--edge skip|pad``: what happens to boxes that cross the volume edge."""
    return click.option(
        "--edge",
        type=click.Choice(["skip", "pad"]),
        default="skip",
        show_default=True,
        help="Boxes crossing the volume edge: skip them, or pad with the box's mean.",
    )(fn)


def plausibility_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--contrast-check error|warn|off`` and ``--no-size-check`` (checks before indexing)."""
    fn = click.option(
        "--no-size-check",
        is_flag=True,
        help="Do not warn when the molecules' apparent size does not fit the voxel size.",
    )(fn)
    return click.option(
        "--contrast-check",
        type=click.Choice(["error", "warn", "off"]),
        default="error",
        show_default=True,
        help="Molecules brighter than the background: stop (error), warn, or do not check.",
    )(fn)


json_option: Decorator = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

cpu_option: Decorator = click.option(
    "--cpu", is_flag=True, help="Run on the CPU even when a GPU is present."
)


def _apply_threads(_ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    from cosnet_index.errors import InputError
    from cosnet_index.threads import set_threads

    try:
        set_threads(value)
    except InputError as exc:  # a bad COSNET_INDEX_THREADS
        raise click.BadParameter(str(exc)) from None


threads_option: Decorator = click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=None,
    expose_value=False,
    callback=_apply_threads,
    help="CPU threads [env COSNET_INDEX_THREADS; default: the cores this process may use, "
    "from its CPU affinity and cgroup quota (SLURM, containers), not the machine's].",
)


def overwrite_option(help: str = "Replace existing output files.") -> Decorator:
    """``--overwrite``."""
    return click.option("--overwrite", is_flag=True, help=help)


def no_crf_option(help: str) -> Decorator:
    """``--no-crf``: the decoder's probability alone, no dense CRF."""
    return click.option("--no-crf", is_flag=True, help=help)


def keep_all_option(help: str) -> Decorator:
    """``--all``: also rows that do not pass (column ``passes`` of a search)."""
    return click.option("--all", "keep_all", is_flag=True, help=help)


def seed_option(help: str) -> Decorator:
    """``--seed INT`` (default 0)."""
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


def top_k_option(default: int) -> Decorator:
    """``-k/--top-k``: hits shown per class in a report."""
    return click.option(
        "-k",
        "--top-k",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help="Hits shown.",
    )
