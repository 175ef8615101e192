"""Benchmarks beyond the paper's protocol: the hard benchmark (held-out real molecules, shifted
imaging, size-matched and large tiers, N-way K-shot beside template matching)."""

from cosnet_index.benchmark.hard import (
    HardConfig,
    confused_pairs,
    hard_accuracy_table,
    hard_cell_episodes,
    hard_markdown,
    imaging_simulate,
    paired_markdown,
    run_hard_benchmark,
    simulate_snrs,
)
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
