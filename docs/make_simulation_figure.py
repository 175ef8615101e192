"""Make the figures of docs/simulation.md.

Run: python docs/make_simulation_figure.py  (seed 0; writes docs/simulation_classes.png and
docs/simulation_tomogram.png)

simulation_classes.png: for each real class (rows), the central xy slice of one simulated
subtomogram (same pose in every column) at SNR inf / 1000 / 0.5 / 0.1, its ground-truth mask, and
the central xz slice at SNR inf (the missing wedge elongates densities along z). Grey scale per
panel from the 1st to the 99th percentile; molecules are dark, as in real tomograms.
simulation_tomogram.png: a central xy slice of a simulated 64x256x256 tomogram at SNR 0.5.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mrcfile
import numpy as np

from cosnet_index.simulate import (
    REAL_CLASSES,
    SimulationConfig,
    default_split,
    simulate_subtomograms,
    simulate_tomogram,
)

OUT = Path(__file__).resolve().parent
SNRS = (float("inf"), 1000.0, 0.5, 0.1)


def _show(ax, image: np.ndarray, title: str | None = None) -> None:
    lo, hi = np.percentile(image, [1, 99])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def classes_figure(seed: int = 0) -> Path:
    config = SimulationConfig()
    c = config.box // 2
    batches = [simulate_subtomograms(REAL_CLASSES, snr, seed, config) for snr in SNRS]
    fig, axes = plt.subplots(len(REAL_CLASSES), 6, figsize=(6.6, 11.5))
    titles = ["SNR inf", "SNR 1000", "SNR 0.5", "SNR 0.1", "mask", "xz, SNR inf"]
    for row, name in enumerate(REAL_CLASSES):
        for col, batch in enumerate(batches):
            _show(axes[row, col], batch.volumes[row, c], titles[col] if row == 0 else None)
        _show(axes[row, 4], batches[0].masks[row, c].astype(float), titles[4] if row == 0 else None)
        _show(axes[row, 5], batches[0].volumes[row, :, c, :], titles[5] if row == 0 else None)
        axes[row, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Simulated 32^3 subtomograms at 1 nm (central slices; molecules dark)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path = OUT / "simulation_classes.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def tomogram_figure(seed: int = 0) -> Path:
    classes = default_split(0, 3).heldout
    with tempfile.TemporaryDirectory() as tmp:
        result = simulate_tomogram(tmp, "TS_fig", classes, 120, 0.5, seed, shape=(64, 256, 256))
        with mrcfile.open(result.path) as mrc:
            tomo = np.array(mrc.data)
    particles = result.particles
    near = particles[(particles["z"] - 32).abs() < 3]
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    _show(ax, tomo[32], "Simulated tomogram, central xy slice (SNR 0.5, 1 nm voxels)")
    ax.scatter(near["x"], near["y"], s=60, facecolors="none", edgecolors="tab:orange", lw=0.8)
    fig.tight_layout()
    path = OUT / "simulation_tomogram.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    for figure in (classes_figure(), tomogram_figure()):
        print(f"wrote {figure} ({figure.stat().st_size // 1024} KiB)")
