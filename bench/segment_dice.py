"""Dice and mean surface distance of the masks on the hard benchmark, per molecule size band.

Held-out real molecules of the library (``lib-heldout``: no PDB entry of them was trained on),
imaged with the ``shifted`` preset (defocus, resolution, tilt range, voxel-size mismatch, ice and
noise colour outside the training ranges), in crowded boxes: 0-4 neighbour molecules each, placed
touching (``crowding_gap_fraction = 0``: centres at the sum of the two radii). The truth is the
centre molecule's mass-based mask (the contour enclosing ``mass / 0.81 Da/A^3``); neighbours are
not in it, so a mask that bleeds into them loses Dice. Every molecule gets ``--boxes`` boxes per
SNR (one simulation call and seed per molecule; each box its own pose, neighbours and imaging).

Methods, on the same boxes:

- ``decoder``: the shipped model's ``p > 0.5``;
- ``decoder + CRF``: ``crf_refine`` with the shipped ``crf.json``, ``Q_1 > 0.5``;
- ``decoder + volume prior``: the ``mass / 0.81 Da/A^3`` most probable voxels of the decoder's
  ``p``, then the component nearest the centre, grown back to the volume (``segment`` with a
  class volume or ``--mass-kda``, :func:`cosnet_index.segment.volume.volume_prior_masks`; the
  class's mass is known; the table in docs/segmentation.md predates the growing step);
- ``baseline``: classical, no learning: the box low-passed (Gaussian, sigma 1.5 voxels),
  thresholded at the mass-based contour (the darkest ``mass / 0.81 Da/A^3`` voxels at the
  nominal voxel size: the class's mass is known from its support), then the connected component
  nearest the box centre.

Per band (the library's mass tiers) and SNR: mean Dice and mean symmetric surface distance (nm,
nominal voxels; boxes with an empty predicted mask are left out of it and counted), each with a
95% interval from a bootstrap over molecules (boxes of one molecule are not independent).

    python bench/segment_dice.py --threads 2            # the table in docs/segmentation.md
    python bench/segment_dice.py --threads 2 --quick    # 12 molecules, 2 boxes each
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import bench_parser, load_model, setup_run
from scipy import ndimage

SNRS = (math.inf, 1000.0, 0.5, 0.1)
BASELINE_SIGMA = 1.5  # voxels; fixed before any result
METHODS = ("decoder", "decoder + CRF", "decoder + volume prior", "baseline")

log = logging.getLogger("segment_dice")


def reserved_ids(path: str | None) -> set[str]:
    """PDB ids of RESERVED.txt (``#`` comments), or an empty set when there is no such file."""
    if not path or not Path(path).is_file():
        return set()
    lines = Path(path).read_text().splitlines()
    return {line.split("#")[0].strip().upper() for line in lines if line.split("#")[0].strip()}


def baseline_masks(volumes: np.ndarray, n_inside: np.ndarray) -> np.ndarray:
    """Low-pass, keep the ``n_inside`` darkest voxels, then the component nearest the centre."""
    smooth = np.stack(
        [ndimage.gaussian_filter(vol.astype(np.float64), BASELINE_SIGMA) for vol in volumes]
    )
    return ranked_masks(smooth, n_inside)


def ranked_masks(score: np.ndarray, n_inside: np.ndarray) -> np.ndarray:
    """The ``n_inside`` lowest-score voxels of each box, then the component nearest the centre."""
    out = np.zeros(score.shape, dtype=bool)
    centre = (np.array(score.shape[1:]) - 1) / 2
    for i, smooth in enumerate(score):
        k = int(min(max(n_inside[i], 1), smooth.size - 1))
        mask = np.zeros(smooth.size, dtype=bool)
        mask[np.argpartition(smooth.ravel(), k - 1)[:k]] = True
        mask = mask.reshape(smooth.shape)
        labels, n = ndimage.label(mask)
        if n > 1:
            coms = np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1)))
            keep = 1 + int(np.argmin(((coms - centre) ** 2).sum(axis=1)))
            mask = labels == keep
        out[i] = mask
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distance(pred: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric mean surface distance in voxels (NaN when either mask is empty)."""
    sp, st = _surface(pred), _surface(truth)
    if not sp.any() or not st.any():
        return math.nan
    to_truth = ndimage.distance_transform_edt(~st)
    to_pred = ndimage.distance_transform_edt(~sp)
    return float((to_truth[sp].mean() + to_pred[st].mean()) / 2)


def dice_np(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (pred & truth).sum() / total)


def bootstrap(frame: pd.DataFrame, column: str, rng: np.random.Generator, n: int = 2000):
    """Mean of ``column`` and its 95% interval, resampling molecules (clusters) with replacement."""
    values = frame.dropna(subset=[column])
    if values.empty:
        return math.nan, math.nan, math.nan
    per = values.groupby("molecule")[column].agg(["sum", "count"])
    sums, counts = per["sum"].to_numpy(), per["count"].to_numpy()
    idx = rng.integers(0, len(per), (n, len(per)))
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(sums.sum() / counts.sum()), float(lo), float(hi)


def summarise(
    rows: pd.DataFrame, seed: int, methods: tuple[str, ...] = METHODS, snrs: tuple = SNRS
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    bands = [*sorted(rows["band"].unique(), key=_band_order), "all"]
    for band in bands:
        sub = rows if band == "all" else rows[rows["band"] == band]
        for snr in snrs:
            cell = sub[sub["snr"] == snr]
            for method in methods:
                m = cell[cell["method"] == method]
                d, dlo, dhi = bootstrap(m, "dice", rng)
                s, slo, shi = bootstrap(m, "msd_nm", rng)
                out.append(
                    {
                        "band": band,
                        "snr": snr,
                        "method": method,
                        "dice": d,
                        "dice_lo": dlo,
                        "dice_hi": dhi,
                        "msd_nm": s,
                        "msd_lo": slo,
                        "msd_hi": shi,
                        "boxes": len(m),
                        "molecules": m["molecule"].nunique(),
                        "empty": int(m["msd_nm"].isna().sum()),
                    }
                )
    return pd.DataFrame(out)


def crf_gain_line(rows: pd.DataFrame, seed: int) -> str:
    """CRF minus decoder Dice per SNR (all bands; paired per box), with 95% molecule intervals."""
    rng = np.random.default_rng(seed + 1)
    keys = ["molecule", "snr", "box"]
    crf = rows[rows["method"] == "decoder + CRF"].set_index(keys)["dice"]
    dec = rows[rows["method"] == "decoder"].set_index(keys)["dice"]
    diff = (crf - dec).rename("gain").reset_index()
    parts = []
    for snr in SNRS:
        mean, lo, hi = bootstrap(diff[diff["snr"] == snr], "gain", rng)
        parts.append(f"SNR {_snr(snr)}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return "CRF minus decoder, mean Dice of the same boxes (all bands): " + ", ".join(parts)


def _band_order(band: str) -> int:
    order = ["tiny-under-80kDa", "small-80-200kDa", "medium-0.2-2MDa", "large-2-5MDa"]
    return order.index(band) if band in order else len(order)


def _snr(snr: float) -> str:
    return "inf" if math.isinf(snr) else f"{snr:g}"


def markdown(summary: pd.DataFrame, methods: tuple[str, ...] = METHODS) -> str:
    names = " | ".join(methods[1:])
    lines = [
        f"| band | SNR | boxes (molecules) | Dice: {methods[0]} | {names} "
        f"| surface distance (nm): {methods[0]} | {names} |",
        "|---" * (3 + 2 * len(methods)) + "|",
    ]
    for (band, snr), cell in summary.groupby(["band", "snr"], sort=False):
        by = cell.set_index("method")
        d = [
            f"{by.at[m, 'dice']:.3f} [{by.at[m, 'dice_lo']:.3f}, {by.at[m, 'dice_hi']:.3f}]"
            for m in methods
        ]
        s = []
        for m in methods:
            text = f"{by.at[m, 'msd_nm']:.2f} [{by.at[m, 'msd_lo']:.2f}, {by.at[m, 'msd_hi']:.2f}]"
            if by.at[m, "empty"]:
                text += f" ({by.at[m, 'empty']} empty)"
            s.append(text)
        n = f"{by.at[methods[0], 'boxes']} ({by.at[methods[0], 'molecules']})"
        lines.append(f"| {band} | {_snr(snr)} | {n} | " + " | ".join(d + s) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="", quick="12 molecules, 2 boxes each")
    parser.add_argument("--boxes", type=int, default=4, help="boxes per molecule and SNR")
    parser.add_argument("--classes", default="lib-heldout")
    parser.add_argument("--crf-params", default=None)
    parser.add_argument(
        "--reserved",
        default=os.environ.get("COSNET_RESERVED", "../shared/structures/RESERVED.txt"),
        help="RESERVED.txt: refuse molecules made from these PDB entries",
    )
    parser.add_argument("--out", default=None, help="write per-box rows and the summary here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    setup_run(args, numba=True)

    from cosnet_index.segment import crf_refine, load_crf_params
    from cosnet_index.segment.volume import volume_prior_masks
    from cosnet_index.simulate import SimulationConfig, resolve_classes, simulate_subtomograms
    from cosnet_index.simulate.molecules.library import library_manifest

    t_start = time.perf_counter()
    model, info, _ = load_model(args.checkpoint)
    params, _ = load_crf_params(args.crf_params, model_hash=info.hash)
    names = list(resolve_classes(args.classes))
    manifest = library_manifest().set_index("name")
    reserved = reserved_ids(args.reserved)
    if not reserved:
        print(f"note: no RESERVED.txt at {args.reserved}; the library build already drops them")
    for name in names:
        ids = set(str(manifest.at[name, "pdb_id"]).upper().split(";"))
        if ids & reserved:
            raise SystemExit(f"{name} is made from reserved PDB entries {sorted(ids & reserved)}")
    if args.quick:
        names = names[:: max(1, len(names) // 12)][:12]
        args.boxes = 2
    config = SimulationConfig(crowding_gap_fraction=0.0, crowding_max_neighbours=4)
    voxel_nm = config.voxel_size_nm
    rows = []
    for m_index, name in enumerate(names):
        mass = float(manifest.at[name, "mass_kda"]) * 1000.0
        band = str(manifest.at[name, "tier"])
        n_inside = round(mass / 810.0 / voxel_nm**3)
        seed = args.seed * 1_000_003 + m_index
        snrs = np.repeat(np.array(SNRS), args.boxes)
        batch = simulate_subtomograms(
            [name] * len(snrs), snrs, seed, config, crowding=True, imaging="shifted"
        )
        boxes = torch.from_numpy(batch.volumes)
        with torch.no_grad():
            prob = model.decode(boxes)
        refined = crf_refine(prob, boxes, params)
        inside = np.full(len(snrs), n_inside)
        masks = {
            "decoder": (prob > 0.5).numpy(),
            "decoder + CRF": (refined > 0.5).numpy(),
            "decoder + volume prior": volume_prior_masks(prob.numpy(), inside),
            "baseline": baseline_masks(batch.volumes, inside),
        }
        for method, pred in masks.items():
            for i, snr in enumerate(snrs):
                rows.append(
                    {
                        "molecule": name,
                        "band": band,
                        "snr": float(snr),
                        "box": i,
                        "method": method,
                        "dice": dice_np(pred[i], batch.masks[i]),
                        "msd_nm": surface_distance(pred[i], batch.masks[i]) * voxel_nm,
                    }
                )
    frame = pd.DataFrame(rows)
    summary = summarise(frame, args.seed)
    print(
        f"{len(names)} held-out molecules ({args.classes}), {args.boxes} boxes per molecule and "
        f"SNR, imaging 'shifted', crowded (0-4 touching neighbours), seed {args.seed}; model "
        f"{info.hash[:12]}; {time.perf_counter() - t_start:.0f} s"
    )
    print(markdown(summary))
    print(crf_gain_line(frame, args.seed))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out / "segment_dice_boxes.parquet", index=False)
        summary.to_parquet(out / "segment_dice_summary.parquet", index=False)


if __name__ == "__main__":
    main()
