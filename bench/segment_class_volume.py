"""Dice of masks with class volumes on the hard benchmark, same-collection imaging, per size tier.

The boxes of ``bench/segment_dice.py`` (held-out library molecules, ``shifted`` imaging, crowded
by 0-4 touching neighbours, truth = the centre molecule's mass-based mask), except that every
molecule's boxes come from ONE collection (``simulate_subtomograms(collections=...)``: one
microscope drawn per molecule, per-box defocus and pose), as the hits of one class in one
collection do. ``--boxes`` boxes per molecule and SNR.

Methods, on the same boxes, each what ``segment`` does for a class that knows (or not) its volume:

- ``decoder``: ``p > 0.5`` (a class without a volume, or ``segment --no-prior``);
- ``class volume (mass)``: the volume prior at ``mass / 0.81 Da/A^3`` (``classes add --mass-kda``
  or ``--model``, ``classes set-volume``; the truth uses the same mass: the prior's best case,
  short of the ``shifted`` preset's voxel-size mismatch, which one collection shares);
- ``class volume (map)``: the prior at the volume ``classes add --map`` records for the molecule's
  library map (2 nm resolution, 1 nm voxels, written as MRC) without a mass or contour: the
  estimated contour (``classes/_volume.py``);
- ``collection estimate``: the prior at the median, over the molecule's boxes at that SNR, of the
  decoder's ``p > 0.5`` component nearest the centre (``segment --estimate-volume``);
- ``segment default``: what ``segment`` does by default for a class with its mass: the
  ``class volume (mass)`` mask where the volume fits the box (``segment.prior.fits_box``: its
  equivalent sphere at most half the box side), else the ``decoder``'s;
- ``baseline``: classical, no learning (``segment_dice.baseline_masks``, at the mass volume).

Per band and SNR: mean Dice and mean surface distance with 95% bootstrap intervals over
molecules (``segment_dice.summarise``), then the median predicted / true mask volume per method,
and paired Dice differences per SNR: "collection estimate minus decoder" (the estimate becomes
``segment``'s default only where this interval lies above 0) and the prior's fill step
(``volume_prior_masks(fill=True)``, the default, minus the component alone, ``fill=False``).

    python bench/segment_class_volume.py --threads 2 --out runs/class-volume   # the table
    python bench/segment_class_volume.py --threads 1 --molecules 3 --boxes 2   # toy size
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_dice import (
    SNRS,
    baseline_masks,
    bootstrap,
    dice_np,
    markdown,
    reserved_ids,
    summarise,
    surface_distance,
)

METHODS = (
    "decoder",
    "class volume (mass)",
    "class volume (map)",
    "collection estimate",
    "segment default",
    "baseline",
)
NO_FILL = "class volume (mass), no fill"  # in the rows, for the paired line only


def map_volume_nm3(name: str, folder: Path) -> float:
    """What ``classes add --map`` records for the molecule's library map (estimated contour)."""
    from cosnet_index.classes import volume_of_map
    from cosnet_index.simulate.molecules.library import library_map

    path = folder / f"{name}.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(library_map(name, 1.0).astype(np.float32))
        mrc.voxel_size = 10.0
    return volume_of_map(path).volume_nm3


def molecule_rows(
    model: torch.nn.Module, name: str, index: int, args: argparse.Namespace, folder: Path
) -> list[dict]:
    """Per-box Dice, surface distance and volume ratio of every method, for one molecule."""
    from cosnet_index.geometry import mass_kda_to_volume_nm3
    from cosnet_index.segment.prior import fits_box
    from cosnet_index.segment.volume import centre_component_voxels, volume_prior_masks
    from cosnet_index.simulate import SimulationConfig, simulate_subtomograms
    from cosnet_index.simulate.molecules.library import library_manifest

    row = library_manifest().set_index("name").loc[name]
    config = SimulationConfig(crowding_gap_fraction=0.0, crowding_max_neighbours=4)
    voxel_nm3 = config.voxel_size_nm**3
    mass_voxels = round(mass_kda_to_volume_nm3(float(row["mass_kda"])) / voxel_nm3)
    map_voxels = round(map_volume_nm3(name, folder) / voxel_nm3)
    snrs = np.repeat(np.array(SNRS), args.boxes)
    batch = simulate_subtomograms(
        [name] * len(snrs),
        snrs,
        args.seed * 1_000_003 + index,
        config,
        crowding=True,
        imaging="shifted",
        collections=[index] * len(snrs),  # one microscope for the molecule's collection
    )
    with torch.no_grad():
        prob = model.decode(torch.from_numpy(batch.volumes)).numpy()  # (n, B, B, B)
    estimate = np.zeros(len(snrs), dtype=np.int64)
    for snr in SNRS:  # the class's members at this SNR
        same = snrs == snr
        estimate[same] = round(float(np.median(centre_component_voxels(prob[same]))))
    full = np.full(len(snrs), 1)
    masks = {
        "decoder": prob > 0.5,
        "class volume (mass)": volume_prior_masks(prob, full * mass_voxels),
        NO_FILL: volume_prior_masks(prob, full * mass_voxels, fill=False),
        "class volume (map)": volume_prior_masks(prob, full * map_voxels),
        "collection estimate": volume_prior_masks(prob, np.maximum(estimate, 0)),
        "baseline": baseline_masks(batch.volumes, full * mass_voxels),
    }
    box_nm = prob.shape[-1] * config.voxel_size_nm
    fits = fits_box(mass_voxels * voxel_nm3, box_nm)
    masks["segment default"] = masks["class volume (mass)"] if fits else masks["decoder"]
    rows = []
    for method, pred in masks.items():
        for i, snr in enumerate(snrs):
            truth = batch.masks[i]
            rows.append(
                {
                    "molecule": name,
                    "band": str(row["tier"]),
                    "snr": float(snr),
                    "box": i,
                    "method": method,
                    "dice": dice_np(pred[i], truth),
                    "msd_nm": surface_distance(pred[i], truth) * config.voxel_size_nm,
                    "volume_ratio": float(pred[i].sum()) / max(int(truth.sum()), 1),
                    "map_ratio": map_voxels / max(mass_voxels, 1),
                }
            )
    return rows


def ratio_line(frame: pd.DataFrame) -> str:
    """Median predicted / true mask volume per method (all bands and SNRs)."""
    medians = frame.groupby("method", sort=False)["volume_ratio"].median()
    parts = [f"{m} {medians[m]:.2f}" for m in METHODS]
    maps = frame.drop_duplicates("molecule")["map_ratio"]
    return (
        "median predicted / true mask volume: " + ", ".join(parts) + "; the map's estimated "
        f"volume / the mass volume: median {maps.median():.2f} "
        f"[{maps.quantile(0.1):.2f}, {maps.quantile(0.9):.2f}] (10th-90th percentile)"
    )


def gain_line(frame: pd.DataFrame, seed: int, method: str, against: str = "decoder") -> str:
    """``method`` minus ``against`` Dice per SNR (all bands; paired per box), 95% molecule
    intervals."""
    rng = np.random.default_rng(seed + 2)
    keys = ["molecule", "snr", "box"]
    ours = frame[frame["method"] == method].set_index(keys)["dice"]
    plain = frame[frame["method"] == against].set_index(keys)["dice"]
    diff = (ours - plain).rename("gain").reset_index()
    parts = []
    for snr in SNRS:
        mean, lo, hi = bootstrap(diff[diff["snr"] == snr], "gain", rng)
        label = "inf" if math.isinf(snr) else f"{snr:g}"
        parts.append(f"SNR {label}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    head = f"{method} minus {against}, mean Dice of the same boxes (all bands): "
    return head + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--boxes", type=int, default=8, help="boxes per molecule and SNR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default="lib-heldout")
    parser.add_argument("--molecules", type=int, default=None, help="only this many (spread)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument(
        "--reserved",
        default="../shared/structures/RESERVED.txt",
        help="RESERVED.txt: refuse molecules made from these PDB entries",
    )
    parser.add_argument("--out", default=None, help="write per-box rows and the summary here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    from cosnet_index.model import load_checkpoint, load_default_model
    from cosnet_index.simulate import resolve_classes
    from cosnet_index.simulate.molecules.library import library_manifest

    t_start = time.perf_counter()
    model, info = load_checkpoint(args.checkpoint) if args.checkpoint else load_default_model()
    names = list(resolve_classes(args.classes))
    manifest = library_manifest().set_index("name")
    reserved = reserved_ids(args.reserved)
    for name in names:
        ids = set(str(manifest.at[name, "pdb_id"]).upper().split(";"))
        if ids & reserved:
            raise SystemExit(f"{name} is made from reserved PDB entries {sorted(ids & reserved)}")
    if args.molecules:
        names = names[:: max(1, len(names) // args.molecules)][: args.molecules]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(names):
            rows += molecule_rows(model, name, index, args, Path(tmp))
    frame = pd.DataFrame(rows)
    summary = summarise(frame, args.seed, METHODS)
    print(
        f"{len(names)} held-out molecules ({args.classes}), {args.boxes} boxes per molecule and "
        f"SNR, one collection per molecule, imaging 'shifted', crowded (0-4 touching "
        f"neighbours), seed {args.seed}; model {info.hash[:12]}; "
        f"{time.perf_counter() - t_start:.0f} s"
    )
    print(markdown(summary, METHODS))
    print(ratio_line(frame))
    print(gain_line(frame, args.seed, "collection estimate"))
    print(gain_line(frame, args.seed, "segment default"))
    print(gain_line(frame, args.seed, "class volume (mass)", NO_FILL))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out / "class_volume_boxes.parquet", index=False)
        summary.to_parquet(out / "class_volume_summary.parquet", index=False)


if __name__ == "__main__":
    main()
