"""Make the figures of docs/simulation.md.

Run: python docs/make_simulation_figure.py  (seed 0; writes docs/simulation_classes.png,
docs/simulation_tomogram.png and docs/simulation_realistic.png)

simulation_classes.png: for each real class (rows), the central xy slice of one simulated
subtomogram (same pose in every column) at SNR inf / 1000 / 0.5 / 0.1, its ground-truth mask, and
the central xz slice at SNR inf (the missing wedge elongates densities along z). Grey scale per
panel from the 1st to the 99th percentile; molecules are dark, as in real tomograms.
simulation_tomogram.png: a central xy slice of a simulated 64x256x256 tomogram at SNR 0.5.
simulation_realistic.png: the same 64x256x256 tomogram recipe through the fast ``paper`` path and
the ``realistic`` tilt-series path (rows): central xy and xz slices nearly noise-free (SNR 1000)
and at SNR 0.5, and the log power spectrum in the kx-kz plane (averaged over ky) at SNR 0.5.
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


def realistic_figure(seed: int = 27) -> Path:
    import json

    classes = default_split(0, 3).heldout
    shape = (64, 256, 256)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("paper", "realistic"):
            volumes = []
            for snr in (1000.0, 0.5):
                result = simulate_tomogram(
                    tmp, f"{preset}_{snr}", classes, 120, snr, seed, shape=shape, imaging=preset
                )
                with mrcfile.open(result.path) as mrc:
                    volumes.append(np.array(mrc.data))
            rows.append((preset, volumes, result.particles))
    fig, axes = plt.subplots(2, 5, figsize=(13.5, 6.0), width_ratios=[4, 4, 4, 4, 2.2])
    for r, (preset, (quiet, noisy), particles) in enumerate(rows):
        c = shape[0] // 2
        y = int(particles["y"].iloc[0])
        _show(axes[r, 0], quiet[c], f"{preset}: xy, SNR 1000")
        _show(axes[r, 1], quiet[:, y, :], f"{preset}: xz (y={y}), SNR 1000")
        _show(axes[r, 2], noisy[c], f"{preset}: xy, SNR 0.5")
        _show(axes[r, 3], noisy[:, y, :], f"{preset}: xz, SNR 0.5")
        power = np.abs(np.fft.fftshift(np.fft.fftn(noisy), axes=(0, 2))) ** 2
        kxkz = np.log10(power.mean(axis=1) + 1e-12)
        _show(axes[r, 4], kxkz, "log power (kx, kz)")
        axes[r, 1].set_aspect(1.0)
        axes[r, 3].set_aspect(1.0)
        axes[r, 4].set_aspect("auto")
        if preset != "paper":
            drawn = json.loads(particles["imaging"].iloc[0])
            text = (
                f"defocus {drawn['defocus_um']:.1f} um, tilts {drawn['tilt_min_deg']:.0f}.."
                f"{drawn['tilt_max_deg']:.0f} step {drawn['tilt_step_deg']:.0f}, "
                f"{drawn['noise_colour']} noise, res {drawn['resolution_nm']:.1f} nm, "
                f"{drawn['n_membranes']} membranes, {drawn['n_gold']} gold, "
                f"carbon edge {drawn['carbon_edge']}"
            )
            axes[r, 0].set_xlabel(text, fontsize=7, loc="left")
    fig.suptitle(
        f"64x256x256 tomograms at 1 nm (held-out classes, seed {seed}): fast path (top) vs "
        "realistic tilt-series path (bottom); molecules dark",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = OUT / "simulation_realistic.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


if __name__ == "__main__":
    for figure in (classes_figure(), tomogram_figure(), realistic_figure()):
        print(f"wrote {figure} ({figure.stat().st_size // 1024} KiB)")
