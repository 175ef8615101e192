"""Confusion matrix of predicted vs true classes: a count table and its PNG.

Rows are the true classes, columns the predicted ones plus ``unknown`` (the open-set answer: the
particle matched no support class well enough). A true class that is not a support class (a
structure the user did not name) can only be answered correctly by ``unknown``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cosnet_index.errors import InputError

__all__ = ["UNKNOWN", "confusion_counts", "plot_confusion"]

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"


def confusion_counts(
    truth: Sequence[str], pred: Sequence[str], classes: Sequence[str]
) -> pd.DataFrame:
    """Count table of true (rows) vs predicted (columns) classes.

    Args:
        truth: the true class of each particle.
        pred: the predicted class of each particle (a name of ``classes`` or ``"unknown"``).
        classes: the support classes, in display order.

    Returns:
        An int64 DataFrame; rows are ``classes`` followed by any other true class (sorted),
        columns are ``classes`` followed by ``"unknown"`` and by any other predicted name (sorted).
        Its total is ``len(truth)``.

    Raises:
        InputError: if ``truth`` and ``pred`` have different lengths.
    """
    truth = [str(t) for t in truth]
    pred = [str(p) for p in pred]
    if len(truth) != len(pred):
        raise InputError(
            f"truth has {len(truth)} labels but pred has {len(pred)}: give one of each per particle"
        )
    classes = [str(c) for c in classes]
    rows = classes + sorted(set(truth) - set(classes))
    columns = [*classes, UNKNOWN]
    columns += sorted(set(pred) - set(columns))
    row_index = {name: i for i, name in enumerate(rows)}
    col_index = {name: j for j, name in enumerate(columns)}
    counts = np.zeros((len(rows), len(columns)), dtype=np.int64)
    np.add.at(counts, ([row_index[t] for t in truth], [col_index[p] for p in pred]), 1)
    table = pd.DataFrame(counts, index=pd.Index(rows, name="true"), columns=columns)
    table.columns.name = "predicted"
    return table


def plot_confusion(
    truth: Sequence[str],
    pred: Sequence[str],
    classes: Sequence[str],
    path: str | Path,
    *,
    title: str = "Confusion matrix (rows: true class, normalised)",
) -> pd.DataFrame:
    """Write a row-normalised confusion matrix PNG with the counts annotated in each cell.

    Args:
        truth, pred, classes: as for :func:`confusion_counts`.
        path: the PNG to write (its folder is created).
        title: the figure title.

    Returns:
        The count table (see :func:`confusion_counts`).

    Raises:
        InputError: if ``truth`` and ``pred`` have different lengths.
    """
    table = confusion_counts(truth, pred, classes)
    counts = table.to_numpy()
    row_sums = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_sums, out=np.zeros(counts.shape), where=row_sums > 0)

    n_rows, n_cols = counts.shape
    fig = Figure(figsize=(1.6 + 0.75 * n_cols, 1.4 + 0.55 * n_rows), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            if counts[i, j] == 0:
                continue
            colour = "white" if fractions[i, j] > 0.6 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n_cols), labels=list(table.columns), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(
        range(n_rows),
        labels=[f"{name} ({int(n)})" for name, n in zip(table.index, row_sums[:, 0], strict=True)],
        fontsize=8,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (particles)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="fraction of the row")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    logger.info("wrote confusion matrix %s (%d particles)", path, int(counts.sum()))
    return table
