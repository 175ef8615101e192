"""The hard benchmark's tables: accuracy per cell, Markdown, paired scores, frequent mistakes."""

from __future__ import annotations

import math

import pandas as pd

from cosnet_index.benchmark.tiers import TIER_NAMES
from cosnet_index.evaluate import accuracy_cells, accuracy_table

__all__ = ["KEYS", "confused_pairs", "hard_accuracy_table", "hard_markdown", "paired_markdown"]

KEYS = ("method", "tier", "ways", "shots", "snr")


def hard_accuracy_table(episodes: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, 95% Wilson interval and episodes per (method, tier, ways, shots, snr)."""
    if episodes.empty:
        return pd.DataFrame(columns=[*KEYS, "accuracy", "ci_low", "ci_high", "episodes"])
    return accuracy_table(episodes, keys=KEYS)


def _label(snr: float) -> str:
    return "inf" if not math.isfinite(snr) else f"{snr:g}"


METHOD_LABELS = {"cosnet": "COS-Net", "template_matching": "template matching"}


def hard_markdown(table: pd.DataFrame) -> str:
    """Markdown: per tier, one row per (N, K, method), one column per SNR, ``acc [lo, hi] (n)``."""
    if table.empty:
        return "(no cell could run)"
    snrs = sorted(table["snr"].unique(), key=lambda s: -s)
    head = "| tier | N-way K-shot | method | " + " | ".join(f"SNR {_label(s)}" for s in snrs) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(snrs)]
    order = {name: i for i, name in enumerate(TIER_NAMES)}
    for (tier, ways, shots), group in sorted(
        table.groupby(["tier", "ways", "shots"]), key=lambda g: (order.get(g[0][0], 99), *g[0][1:])
    ):
        for method in ("cosnet", "template_matching"):
            rows = group[group["method"] == method]
            if rows.empty:
                continue
            cells = accuracy_cells(rows, snrs)
            label = METHOD_LABELS.get(method, method)
            row_head = f"| {tier} | {ways}-way {shots}-shot | {label} | "
            lines.append(row_head + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_markdown(episodes: pd.DataFrame) -> str:
    """Markdown: COS-Net vs template matching on the episodes both scored, per cell."""
    base = episodes[episodes["method"] == "template_matching"]
    if base.empty:
        return "(template matching scored no episode)"
    keys = ["tier", "ways", "shots", "snr", "episode"]
    both = base.merge(
        episodes[episodes["method"] == "cosnet"], on=keys, suffixes=("_tm", "_cosnet")
    )
    snrs = sorted(both["snr"].unique(), key=lambda s: -s)
    lines = [
        "| tier | N-way K-shot | " + " | ".join(f"SNR {_label(s)}" for s in snrs) + " |",
        "|---|---|" + "---|" * len(snrs),
    ]
    order = {name: i for i, name in enumerate(TIER_NAMES)}
    groups = sorted(
        both.groupby(["tier", "ways", "shots"]), key=lambda g: (order.get(g[0][0], 99), *g[0][1:])
    )
    for (tier, ways, shots), group in groups:
        cells = []
        for snr in snrs:
            g = group[group["snr"] == snr]
            cells.append(
                f"{g['correct_cosnet'].mean():.2f} vs {g['correct_tm'].mean():.2f} (n={len(g)})"
                if len(g)
                else ""
            )
        lines.append(f"| {tier} | {ways}-way {shots}-shot | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def confused_pairs(episodes: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """The most frequent mistakes: (method, tier, true class, predicted class, count).

    Counted over every cell's wrong predictions (all N, K and SNRs together).
    """
    wrong = episodes[~episodes["correct"].astype(bool)]
    columns = ["method", "tier", "true", "predicted", "count"]
    if wrong.empty:
        return pd.DataFrame(columns=columns)
    names = wrong["classes"].str.split(";")
    pairs = pd.DataFrame(
        {
            "method": wrong["method"].to_numpy(),
            "tier": wrong["tier"].to_numpy(),
            "true": [n[t] for n, t in zip(names, wrong["target"], strict=True)],
            "predicted": [n[p] for n, p in zip(names, wrong["pred"], strict=True)],
        }
    )
    counts = pairs.value_counts().rename("count").reset_index()
    return (
        counts.sort_values(["method", "tier", "count"], ascending=[True, True, False])
        .groupby(["method", "tier"])
        .head(top)
        .reset_index(drop=True)[columns]
    )
