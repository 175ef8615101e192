"""The report directory: ``report.md`` plus a confusion-matrix PNG and one gallery PNG per class."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write
from cosnet_index.report._markdown import fmt, slug, table
from cosnet_index.report.confusion import UNKNOWN, plot_confusion
from cosnet_index.report.gallery import GalleryHit, plot_gallery
from cosnet_index.report.summary import (
    ClassificationSummary,
    attach_truth,
    summarize_classification,
)

__all__ = ["REPORT_NAME", "Gallery", "StageTime", "write_report"]

logger = logging.getLogger(__name__)

REPORT_NAME = "report.md"
CONFUSION_NAME = "confusion.png"


@dataclass(frozen=True)
class StageTime:
    """Wall time of one pipeline stage and how many items (subtomograms) it processed."""

    name: str
    seconds: float
    n_items: int | None = None
    unit: str = "subtomograms"

    @property
    def rate(self) -> float | None:
        """Items per second, or None when the stage has no item count."""
        if self.n_items is None or self.seconds <= 0:
            return None
        return self.n_items / self.seconds


@dataclass(frozen=True)
class Gallery:
    """What a gallery PNG shows: a class's support particle and its top hits, best first."""

    class_name: str
    support_box: np.ndarray  # (z, y, x)
    hits: Sequence[GalleryHit] = field(default_factory=tuple)
    support_mask: np.ndarray | None = None


def _true_classes(
    result: pd.DataFrame, truth: pd.DataFrame | None, truth_class_column: str
) -> pd.Series | None:
    if "true_class" in result.columns:
        return result["true_class"]
    if truth is None:
        return None
    return attach_truth(result, truth, class_column=truth_class_column)


def _summary_section(
    result: pd.DataFrame,
    class_column: str,
    classes: Sequence[str],
    min_prob: float | None,
) -> list[str]:
    pred = result[class_column].astype(str)
    n = len(result)
    n_unknown = int((pred == UNKNOWN).sum())
    lines = ["## Summary", ""]
    n_tomograms = result["tomogram"].nunique() if "tomogram" in result.columns else None
    where = f" in {n_tomograms} tomogram(s)" if n_tomograms is not None else ""
    lines.append(f"- particles classified: **{n}**{where}")
    lines.append(f"- support classes ({len(classes)}): {', '.join(f'`{c}`' for c in classes)}")
    threshold = f"; best probability below {min_prob:g}" if min_prob is not None else ""
    rate = n_unknown / n if n else math.nan
    lines.append(f"- unknown rate: **{fmt(rate)}** ({n_unknown} particles{threshold})")
    return lines


def _truth_section(summary: ClassificationSummary, n_unmatched: int) -> list[str]:
    low, high = summary.accuracy_ci95
    lines = [
        "",
        "## Accuracy against the truth",
        "",
        f"- accuracy on particles of the support classes: **{fmt(summary.accuracy)}** "
        f"({summary.n_correct}/{summary.n_known}; 95% CI {fmt(low)}–{fmt(high)})",
    ]
    if summary.n_novel:
        lines.append(
            f"- particles of classes outside the support set flagged `unknown`: "
            f"**{fmt(summary.open_set_recall)}** (of {summary.n_novel})"
        )
    if n_unmatched:
        lines.append(f"- {n_unmatched} particle(s) had no truth entry and are left out here")
    rows = [
        (
            name,
            "yes" if row.support else "no",
            int(row.n),
            int(row.correct),
            row.recall,
            int(row.predicted),
            row.precision,
        )
        for name, row in summary.per_class.iterrows()
    ]
    lines += [
        "",
        table(
            [
                "true class",
                "support class",
                "particles",
                "correct",
                "recall",
                "predicted as",
                "precision",
            ],
            rows,
        ),
    ]
    return lines


def _confusion_section(
    out_dir: Path, truth: Sequence[str], pred: Sequence[str], classes
) -> list[str]:
    counts = plot_confusion(truth, pred, classes, out_dir / CONFUSION_NAME)
    rows = [
        (name, *map(int, row)) for name, row in zip(counts.index, counts.to_numpy(), strict=True)
    ]
    return [
        "",
        "## Confusion matrix",
        "",
        f"![confusion matrix]({CONFUSION_NAME})",
        "",
        "Counts; rows are true classes, columns predicted classes.",
        "",
        table(["true \\ predicted", *map(str, counts.columns)], rows),
    ]


def _dice_heading(column: str) -> str:
    """``dice_decoder_crf`` -> ``Dice (decoder + CRF)``."""
    what = column.removeprefix("dice").strip("_").replace("_crf", " + CRF").replace("_", " ")
    return f"Dice ({what})" if what else "Dice"


def _segmentation_section(segmentation: pd.DataFrame, class_column: str) -> list[str]:
    dice_columns = [c for c in segmentation.columns if str(c).startswith("dice")]
    if not dice_columns:
        raise InputError(
            f"the segmentation table has no dice* column: it has {list(segmentation.columns)}"
        )
    grouped = (
        segmentation.groupby(class_column, sort=True) if class_column in segmentation else None
    )
    rows: list[tuple[object, ...]] = []
    if grouped is not None:
        for name, part in grouped:
            rows.append((name, len(part), *(part[c].mean() for c in dice_columns)))
    rows.append(("all hits", len(segmentation), *(segmentation[c].mean() for c in dice_columns)))
    return [
        "",
        "## Segmentation",
        "",
        "Mean Dice of the segmented hits against the simulator's truth masks.",
        "",
        table(["class", "hits", *(_dice_heading(c) for c in dice_columns)], rows),
    ]


def _gallery_section(out_dir: Path, galleries: Sequence[Gallery]) -> list[str]:
    lines = ["", "## Galleries", ""]
    lines.append(
        "Central XY (top) and XZ (bottom) slices: the support particle (blue frame) then the top "
        "hits with their probability and mask contour; where the truth is known, a hit's caption "
        "is green when it is of the class and red when not."
    )
    used: set[str] = set()
    for gallery in galleries:
        name = f"gallery_{slug(gallery.class_name)}"
        while name in used:
            name += "_"
        used.add(name)
        plot_gallery(
            gallery.class_name,
            gallery.support_box,
            gallery.hits,
            out_dir / f"{name}.png",
            support_mask=gallery.support_mask,
        )
        lines += ["", f"### {gallery.class_name}", "", f"![{gallery.class_name}]({name}.png)"]
    return lines


def _timing_section(stage_times: Sequence[StageTime]) -> list[str]:
    rows = [
        (s.name, s.seconds, s.n_items, s.unit if s.n_items is not None else None, s.rate)
        for s in stage_times
    ]
    total = sum(s.seconds for s in stage_times)
    rows.append(("total", total, None, None, None))
    return [
        "",
        "## Stage times",
        "",
        table(["stage", "seconds", "items", "unit", "items/s"], rows, digits=2),
    ]


def write_report(
    out_dir: str | Path,
    result: pd.DataFrame,
    *,
    classes: Sequence[str] | None = None,
    truth: pd.DataFrame | None = None,
    galleries: Sequence[Gallery] = (),
    stage_times: Sequence[StageTime] = (),
    segmentation: pd.DataFrame | None = None,
    min_prob: float | None = None,
    title: str = "cosnet-index report",
    notes: Sequence[str] = (),
    class_column: str = "class",
    truth_class_column: str = "class",
    extra_sections: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and its PNGs from a classify result.

    Args:
        out_dir: the report folder (created).
        result: one row per classified particle with ``class_column`` (a support class or
            ``unknown``) and, to match a truth table, ``tomogram``, ``x``, ``y``, ``z``; a
            ``true_class`` column, if present, is used as the truth directly; rows whose
            ``is_support`` is true (the support particles) are left out of the accuracy.
        classes: the support classes in display order (default: the predicted names).
        truth: a truth table (``tomogram, x, y, z, <truth_class_column>``) matched to the result
            by nearest coordinate; adds accuracy, per-class recall and the confusion matrix.
        galleries: one gallery PNG each.
        stage_times: the pipeline's stages, shown with items/s.
        segmentation: one row per segmented hit with ``class_column`` and ``dice*`` columns.
        min_prob: the unknown threshold used by classify (shown in the summary).
        title, notes: the report's heading and lines of text under it.
        extra_sections: more ``{heading: markdown}`` appended at the end.

    Returns:
        The path of ``report.md``.

    Raises:
        InputError: if ``result`` lacks ``class_column`` or a table lacks a needed column.
    """
    if class_column not in result.columns:
        raise InputError(
            f"the result table has no '{class_column}' column (it has {list(result.columns)}): "
            "give the Parquet written by `cosnet-index classify`"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = result[class_column].astype(str)
    if classes is None:
        classes = sorted(set(pred) - {UNKNOWN})
    classes = [str(c) for c in classes]

    lines = [f"# {title}", ""]
    lines += [*notes, ""] if notes else []
    lines += _summary_section(result, class_column, classes, min_prob)

    true_classes = _true_classes(result, truth, truth_class_column)
    support = (
        result["is_support"].fillna(False).astype(bool).to_numpy()
        if "is_support" in result.columns
        else np.zeros(len(result), bool)
    )
    if support.any():
        lines.append(
            f"- {int(support.sum())} support particle(s) (the classes' own examples, matches by "
            "construction) are left out of the accuracy, the confusion matrix and the galleries"
        )
    if true_classes is not None:
        matched = true_classes.notna().to_numpy() & ~support
        truth_labels = true_classes[matched].astype(str).tolist()
        pred_labels = pred[matched].tolist()
        summary = summarize_classification(truth_labels, pred_labels, classes)
        lines += _truth_section(summary, int((true_classes.isna().to_numpy() & ~support).sum()))
        lines += _confusion_section(out_dir, truth_labels, pred_labels, classes)
    if segmentation is not None and len(segmentation):
        lines += _segmentation_section(segmentation, class_column)
    if galleries:
        lines += _gallery_section(out_dir, galleries)
    if stage_times:
        lines += _timing_section(stage_times)
    for heading, body in (extra_sections or {}).items():
        lines += ["", f"## {heading}", "", body]

    path = out_dir / REPORT_NAME
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    logger.info("wrote report %s", path)
    return path
