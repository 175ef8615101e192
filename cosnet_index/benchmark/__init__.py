"""Benchmarks beyond the paper's protocol: the hard benchmark (held-out real molecules, shifted
imaging, size-matched and large tiers, N-way K-shot beside template matching).

``tiers.py`` (the classes), ``hard.py`` (the episodes, COS-Net beside template matching),
``_hard_simulation.py`` (its subtomograms: preset, paired SNRs, collections), ``_hard_tables.py``
(accuracy and Markdown tables); ``open_set.py`` + ``_open_set_metrics.py`` (open set and
discovery on the same molecules).
"""

from cosnet_index.benchmark._hard_simulation import imaging_simulate, simulate_snrs
from cosnet_index.benchmark._hard_tables import (
    confused_pairs,
    hard_accuracy_table,
    hard_markdown,
    paired_markdown,
)
from cosnet_index.benchmark.hard import HardConfig, hard_cell_episodes, run_hard_benchmark
from cosnet_index.benchmark.tiers import (
    TIER_NAMES,
    Tier,
    benchmark_molecules,
    draw_classes,
    hard_tiers,
    mass_windows,
)

__all__ = [
    "TIER_NAMES",
    "HardConfig",
    "Tier",
    "benchmark_molecules",
    "confused_pairs",
    "draw_classes",
    "hard_accuracy_table",
    "hard_cell_episodes",
    "hard_markdown",
    "hard_tiers",
    "imaging_simulate",
    "mass_windows",
    "paired_markdown",
    "run_hard_benchmark",
    "simulate_snrs",
]
