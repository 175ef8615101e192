"""What the demo prints and saves: the compact summary lines and demo.json."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosnet_index.demo._config import DemoResult

__all__ = ["as_json", "closed_set_accuracy", "summary_lines"]


def closed_set_accuracy(result: pd.DataFrame, classes: tuple[str, ...]) -> float:
    """Accuracy of the argmax over the support classes (no unknown threshold), on particles of
    the support classes: the figure comparable to ``cosnet-index evaluate``'s N-way accuracy."""
    columns = [f"p_{c}" for c in classes]
    known = result["true_class"].isin(list(classes)).to_numpy()
    if not known.any() or not all(c in result.columns for c in columns):
        return math.nan
    best = np.asarray(classes, dtype=object)[result[columns].to_numpy().argmax(axis=1)]
    return float((best[known] == result["true_class"].to_numpy()[known]).mean())


def as_json(demo: DemoResult) -> dict[str, Any]:
    """The figures of a demo run, JSON-serialisable (written to ``OUT/demo.json``)."""
    s = demo.summary
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(demo.config).items()}
    return {
        "config": config,
        "simulated": demo.n_simulated,
        "indexed": demo.n_indexed,
        "skipped": demo.n_skipped,
        "classified": len(demo.result),
        "accuracy": s.accuracy,
        "accuracy_ci95": list(s.accuracy_ci95),
        "scored": len(demo.scored),
        "closed_set_accuracy": closed_set_accuracy(demo.scored, demo.config.classes),
        "unknown_rate": s.unknown_rate,
        "open_set_recall": s.open_set_recall,
        "dice": {c: float(demo.segmentation[c].mean()) for c in demo.segmentation if "dice" in c},
        "supports": demo.supports,
        "stages": [asdict(st) for st in demo.stages],
        "total_seconds": demo.total_seconds,
    }


def _confusion_lines(demo: DemoResult) -> list[str]:
    """The confusion counts with numbered columns (class names are long)."""
    from cosnet_index.report import confusion_counts

    classes = demo.config.classes
    counts = confusion_counts(demo.scored["true_class"], demo.scored["class"], classes)
    keys = {name: str(i) for i, name in enumerate(classes, start=1)}
    header = [keys.get(str(col), "unk" if col == "unknown" else str(col)) for col in counts.columns]
    width = max(len(str(name)) for name in counts.index) + 5
    lines = ["confusion (rows: true class; columns: predicted class number, unk = unknown):"]
    lines.append(" " * width + "".join(f"{h:>5}" for h in header))
    for name, row in zip(counts.index, counts.to_numpy(), strict=True):
        label = f"{keys.get(str(name), '-'):>2} {name}"
        lines.append(f"{label:<{width}}" + "".join(f"{int(v):>5}" for v in row))
    return lines


def summary_lines(demo: DemoResult) -> list[str]:
    """The compact summary the ``demo`` command prints."""
    s, c = demo.summary, demo.config
    low, high = s.accuracy_ci95
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(demo.n_skipped.items())) or "none"
    lines = [
        f"collection: {c.n_tomograms} tomogram(s) of {'x'.join(map(str, c.shape_zyx))} (z,y,x) "
        f"voxels, {demo.n_simulated} molecules of {len(c.classes) + len(c.novel_classes)} "
        f"classes, SNR {c.snr:g}, seed {c.seed}",
        f"indexed: {demo.n_indexed} subtomograms (skipped at the volume edge: {skipped}); "
        f"classified: {len(demo.result)} ({len(demo.scored)} scored: all but the supports)",
        f"support: one particle per class for {len(c.classes)} classes; "
        f"{', '.join(c.novel_classes) or 'no class'} left without support (novel)",
        "",
        f"accuracy (particles of support classes, min-prob {demo.min_prob:g}): "
        f"{s.accuracy:.3f}  [{low:.3f}, {high:.3f}] 95% CI, {s.n_correct}/{s.n_known}",
        f"closed-set {len(c.classes)}-way accuracy (argmax, no threshold): "
        f"{closed_set_accuracy(demo.scored, c.classes):.3f}",
        f"unknown rate: {s.unknown_rate:.3f} ({s.n_unknown} particles); novel particles "
        f"flagged unknown: {s.open_set_recall:.3f} of {s.n_novel}",
    ]
    dice_columns = [col for col in demo.segmentation.columns if col.startswith("dice")]
    if dice_columns:
        figures = ", ".join(
            f"{col.removeprefix('dice_').replace('_', ' + ')} {demo.segmentation[col].mean():.3f}"
            for col in dice_columns
        )
        lines.append(
            f"Dice of the {len(demo.segmentation)} segmented hits of "
            f"{', '.join(c.searched)}: {figures}"
        )
    lines += ["", *_confusion_lines(demo)]
    lines += ["", f"{'stage':<26}{'seconds':>9}{'items':>8}  {'items/s':>9}"]
    for st in demo.stages:
        items = "" if st.n_items is None else str(st.n_items)
        rate = "" if st.rate is None or not st.unit else f"{st.rate:9.1f} {st.unit}/s"
        lines.append(f"{st.name:<26}{st.seconds:>9.2f}{items:>8}  {rate}")
    lines.append(f"{'total':<26}{demo.total_seconds:>9.2f}")
    lines += [
        "",
        f"report: {demo.report_path}",
        f"store: {demo.store_path}   result: {demo.result_path}",
    ]
    return lines
