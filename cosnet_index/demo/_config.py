"""What the demo runs (:class:`DemoConfig`) and what it produced (:class:`DemoResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.report import ClassificationSummary, StageTime

__all__ = ["DEMO_CLASSES", "DEMO_NOVEL_CLASSES", "N_STAGES", "DemoConfig", "DemoResult"]

DEMO_CLASSES: tuple[str, ...] = (
    "apoferritin_6z6u",
    "ruvab_7pbl",
    "casx_6ny1",
    "enolase_3enl",
    "glua3_3o21",
    "proc-100000",
    "proc-100001",
    "proc-100002",
)
"""Support classes of the demo: the five real maps held out from training and three held-out
procedural classes (see :func:`cosnet_index.simulate.default_split`)."""

N_STAGES = 8
"""simulate, create store, index, add classes, classify, search, segment, report."""

DEMO_NOVEL_CLASSES: tuple[str, ...] = ("proc-100003",)
"""Classes present in the tomograms without a support particle (expected answer: unknown)."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates and runs.

    Attributes:
        out_dir: everything is written under it (``data/``, ``store/``, ``report/``...).
        seed: seeds the simulation and the support picks.
        n_tomograms, shape_zyx: the collection's tomograms, (z, y, x) voxels at 1 nm.
        n_particles: molecules over the whole collection (near-equal per class).
        snr: var(signal) / var(noise) of the tomograms.
        classes: support classes (one support particle each).
        novel_classes: classes simulated without a support particle.
        search_classes: classes whose top hits are searched and segmented (default: first two).
        top_k: hits per searched class.
        min_prob: open-set threshold (default: ``cosnet_index.query.DEFAULT_MIN_PROB``).
        crf: refine the decoder masks with the dense CRF.
        weights: checkpoint to index with (default: the shipped weights).
        batch_size: boxes per forward pass when indexing.
        force: first remove the output of a previous demo in ``out_dir`` (marked by its
            ``demo.json``; anything else there is left alone).
    """

    out_dir: Path
    seed: int = 0
    n_tomograms: int = 3
    shape_zyx: tuple[int, int, int] = (128, 256, 256)
    n_particles: int = 600
    snr: float = 0.5
    classes: tuple[str, ...] = DEMO_CLASSES
    novel_classes: tuple[str, ...] = DEMO_NOVEL_CLASSES
    search_classes: tuple[str, ...] = ()
    top_k: int = 8
    min_prob: float | None = None
    crf: bool = True
    weights: Path | None = None
    batch_size: int = 64
    force: bool = False

    def __post_init__(self) -> None:
        if self.n_tomograms < 1 or self.n_particles < 1:
            raise InputError("the demo needs at least one tomogram and one particle")
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 48:
            raise InputError(
                f"--shape {self.shape_zyx} is too small: give Z Y X of at least 48 voxels each"
            )
        if not self.classes:
            raise InputError("the demo needs at least one support class")
        unknown = set(self.search_classes) - set(self.classes)
        if unknown:
            raise InputError(f"search classes {sorted(unknown)} are not support classes")
        if self.top_k < 1:
            raise InputError(f"top_k must be >= 1, got {self.top_k}")
        if not (self.snr > 0):
            raise InputError(f"--snr must be > 0 (inf for no noise), got {self.snr}")

    @property
    def searched(self) -> tuple[str, ...]:
        return self.search_classes or self.classes[:2]


@dataclass
class DemoResult:
    """What the demo produced (paths under ``config.out_dir``) and its figures."""

    config: DemoConfig
    n_simulated: int
    n_indexed: int
    n_skipped: dict[str, int]
    result: pd.DataFrame  # the classification table (+ true_class)
    scored: pd.DataFrame  # the same without the support particles: what the figures count
    summary: ClassificationSummary
    segmentation: pd.DataFrame  # one row per segmented hit: class, subtomogram_id, dice_*
    stages: list[StageTime] = field(default_factory=list)
    store_path: Path = Path()
    result_path: Path = Path()
    report_path: Path = Path()
    supports: dict[str, int] = field(default_factory=dict)
    min_prob: float = math.nan

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)
