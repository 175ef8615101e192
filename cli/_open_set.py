"""The open-set options and output shared by `classify`, `search` and `discover`: which rule
was asked for, and what it decided (threshold, estimated loss and novel particles per class)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from cosnet_index.defaults import DEFAULT_RULE, RULE_CHOICES

__all__ = ["class_line", "given", "resolve_rule", "rule_lines", "rule_option"]


def rule_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--rule",
        type=click.Choice(list(RULE_CHOICES)),
        default=None,
        help=help,
    )


def given(name: str) -> bool:
    """Whether option ``name`` was given on the command line (not its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def resolve_rule(rule: str | None, prob_name: str, prob_flag: str) -> str:
    """The open-set rule asked for: ``--rule``, else ``fixed`` when only the fixed threshold
    ``prob_flag`` is given, else the default; contradictory options are a usage error."""
    prob, lost = given(prob_name), given("max_lost")
    if rule == "fixed" and lost:
        raise click.UsageError("--max-lost is the mixture rule's; drop it or --rule fixed")
    if rule == "mixture" and prob:
        raise click.UsageError(
            f"{prob_flag} is the fixed rule's threshold; the mixture rule takes --max-lost"
        )
    if rule is None and prob and lost:
        raise click.UsageError(
            f"give {prob_flag} (the fixed rule) or --max-lost (the mixture rule), not both"
        )
    if rule is None and lost:
        return "mixture"
    return rule or ("fixed" if prob else DEFAULT_RULE)


def rule_lines(meta: dict[str, Any]) -> list[str]:
    """What decided ``unknown``, from a result's metadata: the rule and its estimates."""
    line = f"open-set rule: {meta.get('rule')}"
    if meta.get("rule_fallback"):
        line += f" (asked for {meta['rule_requested']}: {meta['rule_fallback']})"
    elif meta.get("rule") == "collection":
        line += f" (level {meta['rule_level']:g}, {meta['rule_neighbours']} neighbours)"
    elif meta.get("rule") == "mixture":
        line += (
            f" (at most {meta['max_lost']:g} of each class's members lost; estimated: "
            f"{meta['estimated_lost_overall']:.3f} of named particles lost, "
            f"{meta['estimated_novel_overall']:.0f} novel particles)"
        )
    lines = [line]
    if meta.get("dominant_class"):
        how = "fitted on its own members" if meta["rule"] == "mixture" else "see the rule"
        if meta["rule"] == "collection":
            how = "its bulk is taken over the other particles"
        lines.append(
            f"class {meta['dominant_class']!r} is the best class of "
            f"{100 * meta['dominant_share']:.0f}% of the particles ({how})"
        )
    return lines


def class_line(meta: dict[str, Any], name: str, count: str) -> str:
    """One class: ``count``, its threshold and, for the mixture rule, its estimates or why it
    flags nothing."""
    modes = meta.get("class_modes") or {}
    if name in modes and modes[name] != "two modes":
        return f"  {name:<24} {count:>8}   {modes[name]}"
    threshold = meta.get("thresholds", {}).get(name, meta.get("fixed_min_prob", 0.0))
    line = f"  {name:<24} {count:>8}   unknown below p {threshold:.3f}"
    if name in modes:
        line += (
            f"   est. lost {meta['estimated_lost'][name]:.3f}, "
            f"est. novel {meta['estimated_novel'][name]:.0f}"
        )
    return line
