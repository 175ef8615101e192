"""Reports people can look at: a Markdown summary, a confusion-matrix PNG, per-class galleries.

Plots use matplotlib's object API (:class:`matplotlib.figure.Figure`, Agg canvas), never pyplot,
so they work headless and never touch global state.
"""

from __future__ import annotations

from cosnet_index.report.confusion import UNKNOWN, confusion_counts, plot_confusion
from cosnet_index.report.gallery import GalleryHit, plot_gallery
from cosnet_index.report.summary import (
    ClassificationSummary,
    attach_truth,
    summarize_classification,
    wilson_interval,
)
from cosnet_index.report.write import REPORT_NAME, Gallery, StageTime, write_report

__all__ = [
    "REPORT_NAME",
    "UNKNOWN",
    "ClassificationSummary",
    "Gallery",
    "GalleryHit",
    "StageTime",
    "attach_truth",
    "confusion_counts",
    "plot_confusion",
    "plot_gallery",
    "summarize_classification",
    "wilson_interval",
    "write_report",
]
