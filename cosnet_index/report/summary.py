"""Classification figures against a truth table: accuracy with its 95% interval, unknown rate.

Definitions (used by the demo, the report and docs):

- *accuracy*: among particles whose true class is a support class, the fraction predicted as
  exactly that class (``unknown`` counts as wrong). It is the figure comparable to the N-way
  accuracy of ``cosnet-index evaluate``.
- *unknown rate*: the fraction of all particles predicted ``unknown``.
- *open-set recall*: among particles whose true class is NOT a support class, the fraction
  predicted ``unknown`` (the right answer for a structure nobody named).
- 95% intervals are Wilson score intervals of a binomial proportion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cosnet_index.errors import InputError
from cosnet_index.report.confusion import UNKNOWN

__all__ = ["ClassificationSummary", "attach_truth", "summarize_classification", "wilson_interval"]

_Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval (low, high) of a proportion; (nan, nan) when ``n == 0``."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ClassificationSummary:
    """Figures of one classification against the truth (see the module docstring)."""

    n_particles: int
    n_known: int  # particles whose true class is a support class
    n_correct: int  # of those, predicted exactly
    accuracy: float
    accuracy_ci95: tuple[float, float]
    n_unknown: int
    unknown_rate: float
    n_novel: int  # particles whose true class is not a support class
    open_set_recall: float  # of those, the fraction predicted unknown (nan when none)
    per_class: pd.DataFrame  # index true class; columns n, correct, recall, predicted, precision


def summarize_classification(
    truth: Sequence[str], pred: Sequence[str], classes: Sequence[str]
) -> ClassificationSummary:
    """Accuracy, unknown rate and per-class recall/precision of ``pred`` against ``truth``.

    Raises:
        InputError: if ``truth`` and ``pred`` have different lengths.
    """
    truth_arr = np.asarray([str(t) for t in truth], dtype=object)
    pred_arr = np.asarray([str(p) for p in pred], dtype=object)
    if truth_arr.shape != pred_arr.shape:
        raise InputError(
            f"truth has {truth_arr.size} labels but pred has {pred_arr.size}: "
            "give one of each per particle"
        )
    support = {str(c) for c in classes}
    known = np.isin(truth_arr, list(support))
    correct = known & (truth_arr == pred_arr)
    unknown = pred_arr == UNKNOWN
    n_known = int(known.sum())
    n_correct = int(correct.sum())
    n_novel = int((~known).sum())

    rows = []
    names = [str(c) for c in classes] + sorted(set(truth_arr.tolist()) - support)
    for name in names:
        is_true = truth_arr == name
        right_answer = name if name in support else UNKNOWN
        hits = int((is_true & (pred_arr == right_answer)).sum())
        n_pred = int((pred_arr == name).sum()) if name in support else 0
        n_pred_correct = int((is_true & (pred_arr == name)).sum())
        rows.append(
            {
                "class": name,
                "support": name in support,
                "n": int(is_true.sum()),
                "correct": hits,
                "recall": hits / is_true.sum() if is_true.any() else math.nan,
                "predicted": n_pred,
                "precision": n_pred_correct / n_pred if n_pred else math.nan,
            }
        )
    per_class = pd.DataFrame(rows).set_index("class")
    return ClassificationSummary(
        n_particles=int(truth_arr.size),
        n_known=n_known,
        n_correct=n_correct,
        accuracy=n_correct / n_known if n_known else math.nan,
        accuracy_ci95=wilson_interval(n_correct, n_known),
        n_unknown=int(unknown.sum()),
        unknown_rate=float(unknown.mean()) if truth_arr.size else math.nan,
        n_novel=n_novel,
        open_set_recall=float((unknown & ~known).sum() / n_novel) if n_novel else math.nan,
        per_class=per_class,
    )


def attach_truth(
    result: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    class_column: str = "class",
    max_distance_voxels: float = 2.0,
) -> pd.Series:
    """The true class of each row of ``result``, matched by tomogram and nearest coordinate.

    Both tables have ``tomogram``, ``x``, ``y``, ``z`` columns (voxels of the named tomogram);
    ``truth[class_column]`` is the true class. A result row with no truth particle within
    ``max_distance_voxels`` gets ``None``.

    Returns:
        A Series aligned with ``result.index``, named ``true_class``.

    Raises:
        InputError: if a table lacks one of the columns.
    """
    for name, table, columns in (
        ("result", result, ("tomogram", "x", "y", "z")),
        ("truth", truth, ("tomogram", "x", "y", "z", class_column)),
    ):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InputError(
                f"the {name} table lacks the column(s) {missing}: it has {list(table)}"
            )
    out = pd.Series([None] * len(result), index=result.index, name="true_class", dtype=object)
    for tomogram, rows in result.groupby(result["tomogram"].astype(str), sort=False):
        reference = truth[truth["tomogram"].astype(str) == tomogram]
        if reference.empty:
            continue
        tree = cKDTree(reference[["x", "y", "z"]].to_numpy(dtype=np.float64))
        distance, nearest = tree.query(rows[["x", "y", "z"]].to_numpy(dtype=np.float64))
        labels = reference[class_column].astype(str).to_numpy()[nearest]
        labels = np.where(distance <= max_distance_voxels, labels, None)
        out.loc[rows.index] = labels
    return out
