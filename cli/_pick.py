"""Options of ``index`` without coordinates (``--pick`` and the detector's settings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["pick_options"]


def pick_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--pick``, ``--diameter``, ``--min-distance``, ``--pick-threshold``,
    ``--max-candidates``."""
    options = [
        click.option(
            "--pick",
            type=click.Choice(["dog", "decoder"]),
            default=None,
            help="Find candidate particles instead of reading --coords: 'dog' (multi-scale "
            "difference of Gaussians, the default without --coords) or 'decoder' (the model's "
            "foreground probability on a coarse grid). See docs/picking.md.",
        ),
        click.option(
            "--diameter",
            "diameters",
            type=float,
            multiple=True,
            help="Molecule diameter in angstrom to pick (repeat for several; default 120, 170, "
            "240, 350: molecules up to about 35 nm).",
        ),
        click.option(
            "--min-distance",
            type=float,
            default=None,
            help="Candidates at least this many angstrom apart (default 0.35 x the smallest "
            "--diameter).",
        ),
        click.option(
            "--pick-threshold",
            type=float,
            default=None,
            help="Candidate score needed: robust z-score for dog (default 4), mean foreground "
            "probability for decoder (default 0.05).",
        ),
        click.option(
            "--max-candidates",
            type=click.IntRange(min=1),
            default=None,
            help="At most this many candidates per tomogram, best first.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
