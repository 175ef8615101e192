"""Make docs/segmentation_tomogram.png: a crowded tomogram, its true and predicted label volumes.

Run: python docs/make_segmentation_figure.py  (seed 0, about a minute on 2 cores)

What it does, with the same commands a user types (through click's test runner, in a scratch
folder):

1. ``simulate tomograms`` one crowded 64 x 192 x 192 tomogram (1 nm voxels) of the five
   held-out real molecules (``heldout-real``; none of RESERVED.txt), 70 particles, ``shifted``
   imaging (a microscope drawn outside the training ranges), SNR 1000, with its label volume;
2. ``init``, ``index`` it from its coordinates;
3. ``classes add`` one support particle per molecule (the first true particle of each: one-shot);
4. ``classify``, then ``segment --hits result.parquet --merge`` (decoder alone, the default): one
   label volume in the tomogram's frame, overlaps resolved by probability. As for a user, only
   particles that classify assigned to a class are segmented; the ones it called ``unknown``
   are not (their truth stays uncovered, which lowers the Dice in the title).

The figure shows, for three z slices through the particle layer: the tomogram, the truth
(each particle coloured by its molecule) and the prediction (each hit's mask coloured by the
class classify gave it; a wrong class shows as a wrong colour). The title gives the voxel Dice
of foreground vs background and the fraction of true particles whose predicted class is right,
both computed here from the two label volumes and the tables.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mrcfile
import numpy as np
import pandas as pd
from click.testing import CliRunner
from matplotlib.colors import ListedColormap

from cosnet_index.cli._app import cli

OUT = Path(__file__).resolve().parent / "segmentation_tomogram.png"
SHAPE = (64, 192, 192)


def _run(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        sys.exit(f"cosnet-index {' '.join(args)} failed:\n{result.output}")


def _class_volume(labels: np.ndarray, label_class: dict[int, int]) -> np.ndarray:
    """Map instance labels to class numbers (0 = background)."""
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int16)
    for label, cls in label_class.items():
        if label < lut.size:
            lut[label] = cls
    return lut[labels]


def main(seed: int = 0) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tomos, store = work / "tomos", work / "store"
        _run(
            "simulate",
            "tomograms",
            str(tomos),
            "--n-tomograms",
            "1",
            "--shape",
            *map(str, SHAPE),
            "--classes",
            "heldout-real",
            "--n-particles",
            "70",
            "--snr",
            "1000",
            "--seed",
            str(seed),
            "--preset",
            "shifted",
            "--labels",
        )
        truth = pd.read_parquet(tomos / "truth.parquet")
        name = str(truth["tomogram"].iloc[0])
        _run("init", "--store", str(store))
        _run(
            "index",
            "--store",
            str(store),
            str(tomos / f"{name}.mrc"),
            "--coords",
            str(tomos / "particles.star"),
        )
        classes = sorted(truth["class"].unique())
        for cls in classes:
            first = truth[truth["class"] == cls].iloc[0]
            _run(
                "classes",
                "add",
                cls,
                "--store",
                str(store),
                "--at",
                name,
                *(f"{first[a]:.3f}" for a in ("x", "y", "z")),
            )
        _run("classify", "--store", str(store), "--out", str(work / "result.parquet"))
        _run(
            "segment",
            "--store",
            str(store),
            "--hits",
            str(work / "result.parquet"),
            "--out",
            str(work / "seg"),
            "--merge",
        )
        segments = pd.read_parquet(work / "seg" / "segments.parquet")
        with mrcfile.open(tomos / f"{name}.mrc", permissive=True) as mrc:
            tomogram = np.asarray(mrc.data, dtype=np.float32)
        with mrcfile.open(tomos / f"{name}_labels.mrc", permissive=True) as mrc:
            true_labels = np.asarray(mrc.data, dtype=np.int64)
        with mrcfile.open(work / "seg" / "labels" / f"{name}.mrc", permissive=True) as mrc:
            pred_labels = np.asarray(mrc.data, dtype=np.int64)

    number = {cls: i + 1 for i, cls in enumerate(classes)}
    truth = truth.reset_index(drop=True)
    true_class = _class_volume(
        true_labels, {row + 1: number[c] for row, c in enumerate(truth["class"])}
    )
    hit_class = zip(segments["label"], segments["class"], strict=True)
    pred_class = _class_volume(pred_labels, {int(lab): number.get(c, 0) for lab, c in hit_class})
    fg_t, fg_p = true_class > 0, pred_class > 0
    dice = 2 * np.sum(fg_t & fg_p) / max(1, fg_t.sum() + fg_p.sum())
    overlap = fg_t & fg_p
    class_agreement = np.mean(true_class[overlap] == pred_class[overlap]) if overlap.any() else 0.0

    colours = plt.get_cmap("tab10")(np.arange(len(classes)))
    cmap = ListedColormap(np.vstack([[0, 0, 0, 0], colours]))
    z_levels = np.linspace(SHAPE[0] * 0.35, SHAPE[0] * 0.65, 3).astype(int)
    fig, axes = plt.subplots(3, 3, figsize=(9.0, 9.4))
    for row, z in enumerate(z_levels):
        lo, hi = np.percentile(tomogram[z], [1, 99])
        for col, (title, overlay) in enumerate(
            (("tomogram", None), ("truth", true_class[z]), ("prediction", pred_class[z]))
        ):
            ax = axes[row, col]
            ax.imshow(tomogram[z], cmap="gray", vmin=lo, vmax=hi, origin="lower")
            if overlay is not None:
                ax.imshow(
                    overlay,
                    cmap=cmap,
                    vmin=0,
                    vmax=len(classes),
                    alpha=0.55,
                    origin="lower",
                    interpolation="nearest",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title}, z = {z}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in range(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=len(classes), fontsize=8)
    fig.suptitle(
        f"held-out molecules, shifted imaging, SNR 1000, seed {seed}: foreground voxel Dice "
        f"{dice:.2f}; class right on {class_agreement:.0%} of overlapping voxels\n"
        f"{len(segments)} of {len(truth)} particles classified into a class and segmented "
        f"(the rest came out unknown)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(OUT, dpi=90)
    print(
        f"wrote {OUT}: foreground Dice {dice:.3f}, class agreement {class_agreement:.3f}, "
        f"{len(truth)} particles, {len(segments)} hits"
    )
    return OUT


if __name__ == "__main__":
    main()
