"""Particle picking: candidate recall/precision and per-class F1 after one-shot classification,
beside whole-tomogram template matching with the same single reference; and a timing.

Data: crowded tomograms of the realistic simulator (tilt series, CTF, background clutter: gold,
crowders, ice gradient, membranes and carbon when drawn) holding held-out real molecules of
150 kDa and more (none of them RESERVED), at each SNR; the same seeds give the same molecules at
every SNR. Per SNR:

- candidates by DoG (``cosnet_index.pick.detect_blobs``, default settings) and by the decoder
  objectness, each timed: recall and precision (a hit lies within half the molecule's radius of
  a true centre, one candidate per molecule, best score first), candidates per true particle;
- COS-Net: the DoG candidates indexed with the shipped weights; one support per class (the
  first molecule of that class in tomogram 1, added with ``classes add --at``; it is left out
  of the scoring); ``classify``: a candidate is predicted as its best class when p >= t; per
  class precision, recall, F1 and F-beta(4) at the defaults (pick threshold 4, t = 0.86) and at
  the best (pick threshold, t) pair (the best mean F1 over the classes), also after keeping one
  prediction per class and molecule (``pick.suppress_duplicates`` at 12 voxels);
- template matching: the support's box is the single reference of its class; the score map of
  the whole tomogram, its peaks, the best threshold per class (its most favourable operating
  point); wall time per tomogram and class.

Then (``--timing``): one 512 x 512 x 200 tomogram (fast ``paper`` simulator path), indexed
without coordinates (detect + embed + store, the contrast check included) in a fresh store,
DoG detection alone and on the other polarity (the contrast check's extra cost), beside
template matching of one class on it, all timed on this machine's CPU threads.

    python bench/pick.py --seed 0                      # the tables of docs/picking.md
    python bench/pick.py --quick                       # one small tomogram, SNR 0.5
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, setup_run, write_json
from _pick_score import at, candidate_metrics, per_class, prf
from _pick_tm import match_tomogram, peaks

from cosnet_index.defaults import DEFAULT_MIN_PROB
from cosnet_index.pick import DEFAULT_DOG_THRESHOLD, suppress_duplicates

CLASSES = ("lib-6wwe-c4", "lib-6x2z-c8", "lib-3bof-d4", "lib-6wwe-o")  # 160-1163 kDa, held out
NMS_VOXELS = 12.0  # half of 240 A at 10 A voxels: below any two molecules' centre distance
PICK_SWEEP = {"dog": (2.0, 3.0, 4.0, 5.0, 6.0, 8.0), "decoder": (0.02, 0.05, 0.1, 0.2)}
THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.01), 2)  # classify runs at min_prob 0.05


def simulate(folder: Path, snr: float, args) -> list[tuple[Path, pd.DataFrame]]:  # type: ignore[no-untyped-def]
    from cosnet_index.simulate.tomogram import simulate_tomogram

    out = []
    for t in range(args.tomograms):
        name = f"TS_{t + 1:02d}"
        sim = simulate_tomogram(
            folder,
            name,
            CLASSES,
            args.particles,
            snr,
            args.seed * 100 + t,
            shape=args.shape,
            imaging="realistic",
            write_tables=False,
        )
        out.append((sim.path, sim.particles))
    return out


def run_snr(snr: float, root: Path, args) -> dict:  # type: ignore[no-untyped-def]
    from cosnet_index.classes import add_class
    from cosnet_index.io import open_tomogram
    from cosnet_index.model import load_checkpoint
    from cosnet_index.model.checkpoint import default_checkpoint_path
    from cosnet_index.pick import pick_candidates
    from cosnet_index.query import classify_store
    from cosnet_index.store import Store, index_tomograms

    started = time.perf_counter()
    tomos = simulate(root / f"snr-{snr}", snr, args)
    sim_s = time.perf_counter() - started
    model = load_checkpoint(default_checkpoint_path())[0]
    # supports: the first molecule of each class in tomogram 1 (left out of every score)
    first = tomos[0][1]
    support = {c: first[first["class"] == c].iloc[0] for c in CLASSES}
    support_rows = {int(s.name) for s in support.values()}
    truths = []
    for t, (_, truth) in enumerate(tomos):
        keep = ~truth.index.isin(support_rows) if t == 0 else np.ones(len(truth), bool)
        truths.append(truth[keep].reset_index(drop=True))
    res: dict = {"snr": snr, "simulate_s": sim_s, "candidates": {}, "cosnet": {}, "tm": {}}
    picked = {}
    for method in ("dog", "decoder"):
        seconds = 0.0
        frames = []
        for path, truth in tomos:
            invert = bool(json.loads(truth["imaging"].iloc[0])["invert_contrast"])
            with open_tomogram(path) as tomo:
                t0 = time.perf_counter()
                found = pick_candidates(
                    tomo.data,
                    tomo.voxel_size_angstrom,
                    method=method,
                    threshold=PICK_SWEEP[method][0],  # the sweep's floor: higher ones are subsets
                    invert_contrast=invert,
                    model=model,
                )
                seconds += time.perf_counter() - t0
            found.insert(0, "tomogram", tomo.name)
            frames.append(found)
        picked[method] = pd.concat(frames, ignore_index=True)
        res["candidates"][method] = {
            "seconds_per_tomogram": seconds / len(tomos),
            "by_threshold": {
                t: candidate_metrics(picked[method], tomos, t) for t in PICK_SWEEP[method]
            },
        }
    # COS-Net on the DoG candidates
    store_path = root / f"store-{snr}"
    index_s = 0.0
    with Store.create(store_path) as store:
        for (path, truth), frame in zip(tomos, frames_of(picked["dog"], tomos), strict=True):
            invert = bool(json.loads(truth["imaging"].iloc[0])["invert_contrast"])
            t0 = time.perf_counter()
            index_tomograms(store, [path], candidates=frame, invert_contrast=invert, progress=False)
            index_s += time.perf_counter() - t0
        for c, row in support.items():
            add_class(store, c, at=[(row["tomogram"], row["x"], row["y"], row["z"])])
        table, _ = classify_store(store, min_prob=0.05)
    res["index_seconds_per_tomogram"] = index_s / len(tomos)
    keys = ["tomogram", "x", "y", "z"]
    scores = picked["dog"][[*keys, "pick_score"]].copy()
    table = table.assign(**{k: table[k].round(2) for k in "xyz"})
    table = table.merge(scores.assign(**{k: scores[k].round(2) for k in "xyz"}), on=keys)
    res["cosnet"] = score_cosnet(table, truths)
    # one prediction per molecule: per-class NMS at half the largest default diameter
    res["cosnet_nms"] = score_cosnet(suppress_duplicates(table, NMS_VOXELS), truths)
    # template matching with the same single references
    res["tm"] = score_tm(tomos, truths, support, args)
    return res


def frames_of(picked: pd.DataFrame, tomos) -> list[pd.DataFrame]:  # type: ignore[no-untyped-def]
    return [picked[picked["tomogram"] == p.stem].reset_index(drop=True) for p, _ in tomos]


def score_cosnet(table: pd.DataFrame, truths) -> dict:  # type: ignore[no-untyped-def]
    """Per class P/R/F1/F4 at the defaults and at the best (pick threshold, min-prob) pair."""
    curves = {}  # (pick threshold, class) -> curve over the class probability
    for tp in PICK_SWEEP["dog"]:
        kept = table[table["pick_score"] >= tp]
        for c in CLASSES:
            curves[tp, c] = per_class(kept[kept["class"] == c], truths, "probability", c)
    sweep = {
        (tp, float(t)): float(np.mean([at(*curves[tp, c], t)["f1"] for c in CLASSES]))
        for tp in PICK_SWEEP["dog"]
        for t in THRESHOLDS
    }
    best = max(sweep, key=lambda k: (sweep[k], k[0], -k[1]))
    default = (DEFAULT_DOG_THRESHOLD, DEFAULT_MIN_PROB)
    # non-particle candidates: farther than one radius from every molecule
    off, on = [], []
    for truth in truths:
        name = truth["tomogram"].iloc[0]
        mine = table[table["tomogram"] == name]
        xyz = truth[["x", "y", "z"]].to_numpy()
        mine = mine[mine["pick_score"] >= DEFAULT_DOG_THRESHOLD]
        d = np.linalg.norm(mine[["x", "y", "z"]].to_numpy()[:, None] - xyz[None], axis=2)
        far = (d > truth["radius_voxels"].to_numpy()[None]).all(axis=1)
        unknown = (mine["probability"] < DEFAULT_MIN_PROB).to_numpy()
        off += list(unknown[far])
        on += list(unknown[~far])
    return {
        "default": default,
        "best": best,
        "mean_f1": {f"{k[0]:g}/{k[1]:.2f}": v for k, v in sweep.items()},
        "at_default": {c: at(*curves[default[0], c], default[1]) for c in CLASSES},
        "at_best": {c: at(*curves[best[0], c], best[1]) for c in CLASSES},
        "unknown_rate_non_particle": (float(np.mean(off)) if off else math.nan, len(off)),
        "unknown_rate_on_particle": (float(np.mean(on)) if on else math.nan, len(on)),
    }


def score_tm(tomos, truths, support, args) -> dict:  # type: ignore[no-untyped-def]
    import mrcfile

    out = {}
    reference_volume = mrcfile.mmap(tomos[0][0], mode="r").data
    for c, row in support.items():
        zyx = np.round([row["z"], row["y"], row["x"]]).astype(int)
        ref = np.array(
            reference_volume[
                zyx[0] - 16 : zyx[0] + 16, zyx[1] - 16 : zyx[1] + 16, zyx[2] - 16 : zyx[2] + 16
            ]
        )
        frames, seconds = [], 0.0
        for (path, truth), _ in zip(tomos, truths, strict=True):
            tilt = float(json.loads(truth["imaging"].iloc[0])["tilt_max_deg"])
            volume = mrcfile.mmap(path, mode="r").data
            t0 = time.perf_counter()
            smap, factor = match_tomogram(
                volume,
                ref,
                n_rotations=args.rotations,
                factor=args.bin,
                tilt_max_deg=tilt,
                seed=args.seed,
            )
            xyz, s = peaks(smap, factor, 0.35 * 2 * row["radius_voxels"], 16)
            seconds += time.perf_counter() - t0
            frames.append(
                pd.DataFrame(
                    {
                        "tomogram": path.stem,
                        "x": xyz[:, 0],
                        "y": xyz[:, 1],
                        "z": xyz[:, 2],
                        "score": s,
                    }
                )
            )
        pred = pd.concat(frames, ignore_index=True)
        scores, cum, n_true = per_class(pred, truths, "score", c)
        results = [at(scores, cum, n_true, t) for t in scores[: 4 * n_true + 1]]
        bestr = max(results, key=lambda r: r["f1"]) if results else prf(0, 0, n_true)
        out[c] = {**bestr, "seconds_per_tomogram": seconds / len(tomos)}
    return out


def timing(root: Path, args) -> dict:  # type: ignore[no-untyped-def]
    import mrcfile

    from cosnet_index.pick import detect_blobs, index_picked
    from cosnet_index.simulate.tomogram import simulate_tomogram
    from cosnet_index.store import Store

    t0 = time.perf_counter()
    sim = simulate_tomogram(
        root / "timing",
        "BIG",
        CLASSES,
        args.timing_particles,
        0.5,
        args.seed,
        shape=(200, 512, 512),
        write_tables=False,
    )
    sim_s = time.perf_counter() - t0
    with Store.create(root / "store-timing") as store:
        t0 = time.perf_counter()
        summary = index_picked(store, [sim.path], progress=False)
        index_s = time.perf_counter() - t0
    with mrcfile.open(sim.path, header_only=True) as mrc:
        voxel = float(mrc.voxel_size.x)
    volume = mrcfile.mmap(sim.path, mode="r").data
    # detection alone, and both polarities as index's contrast check picks them (pick/index.py)
    t0 = time.perf_counter()
    detect_blobs(volume, voxel)
    detect_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    detect_blobs(volume, voxel, invert_contrast=True)
    other_s = time.perf_counter() - t0
    # what the spheres grown beyond the largest default diameter cost (pick/_recentre.py)
    from cosnet_index.pick import _recentre

    growth, _recentre.GROWTH = _recentre.GROWTH, ()
    try:
        t0 = time.perf_counter()
        detect_blobs(volume, voxel)
        ungrown_s = time.perf_counter() - t0
    finally:
        _recentre.GROWTH = growth
    # diameters an octave apart cost about the sum of each alone (scale groups, pick/blobs.py)
    diameters_s = {}
    for diameters in ([100.0], [290.0], [100.0, 290.0]):
        t0 = time.perf_counter()
        detect_blobs(volume, voxel, diameters)
        diameters_s["+".join(f"{d:g}" for d in diameters)] = time.perf_counter() - t0
    row = sim.particles.iloc[0]
    zyx = np.round([row["z"], row["y"], row["x"]]).astype(int)
    ref = np.array(
        volume[zyx[0] - 16 : zyx[0] + 16, zyx[1] - 16 : zyx[1] + 16, zyx[2] - 16 : zyx[2] + 16]
    )
    t0 = time.perf_counter()
    match_tomogram(volume, ref, n_rotations=args.rotations, factor=args.bin, seed=args.seed)
    tm_s = time.perf_counter() - t0
    return {
        "simulate_s": sim_s,
        "index_without_coords_s": index_s,
        "detect_s": detect_s,
        "contrast_check_other_polarity_s": other_s,
        "detect_without_grown_spheres_s": ungrown_s,
        "detect_by_diameters_s": diameters_s,
        "candidates": summary.subtomograms_indexed,
        "molecules": len(sim.particles),
        "template_matching_one_class_s": tm_s,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, threads=None, quick="")
    parser.add_argument("--snr", default="1000,0.5,0.1")
    parser.add_argument("--tomograms", type=int, default=2)
    parser.add_argument("--particles", type=int, default=80)
    parser.add_argument("--shape", default="96,192,192", help="z,y,x voxels (1 nm)")
    parser.add_argument("--rotations", type=int, default=100, help="template matching rotations")
    parser.add_argument("--bin", type=int, default=2, help="template matching binning")
    parser.add_argument("--timing", action="store_true", help="also time a 512x512x200 tomogram")
    parser.add_argument("--timing-particles", type=int, default=1500)
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.snr, args.tomograms, args.particles, args.shape = "0.5", 1, 40, "64,128,128"
    args.shape = tuple(int(s) for s in args.shape.split(","))
    setup_run(args, torch_seed=True)
    results = {"args": {k: v for k, v in vars(args).items() if k != "workdir"}, "snr": []}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for snr in [float(s) for s in args.snr.split(",") if s.strip()]:
            res = run_snr(snr, Path(tmp), args)
            results["snr"].append(res)
            print_snr(res)
        if args.timing:
            results["timing"] = timing(Path(tmp), args)
            print(json.dumps(results["timing"], indent=1))
    if args.out:
        write_json(args.out, results)
    return 0


def four(r: dict) -> str:  # type: ignore[type-arg]
    return f"{r['precision']:.2f} / {r['recall']:.2f} / {r['f1']:.2f} / {r['f4']:.2f}"


def print_snr(res: dict) -> None:  # type: ignore[type-arg]
    print(f"\n## SNR {res['snr']:g}\n")
    print(
        "| detector | threshold | candidates/particle | recall [95% CI] (hits/molecules) "
        "| precision | s/tomogram |"
    )
    print("|---|---|---|---|---|---|")
    for m, r in res["candidates"].items():
        for t, q in r["by_threshold"].items():
            lo, hi = q["r_ci"]
            print(
                f"| {m} | {t:g} | {q['per_particle']:.2f} | {q['recall']:.2f} [{lo:.2f}, "
                f"{hi:.2f}] ({q['tp']}/{q['true']}) | {q['precision']:.2f} | "
                f"{r['seconds_per_tomogram']:.1f} |"
            )
    cn = res["cosnet"]
    (dp, dt), (bp, bt) = cn["default"], cn["best"]
    off, on = cn["unknown_rate_non_particle"], cn["unknown_rate_on_particle"]
    print(
        f"\nCOS-Net index (embed + store) {res['index_seconds_per_tomogram']:.1f} s/tomogram. "
        f"Default: pick threshold {dp:g}, min-prob {dt:.2f}; best mean F1 at {bp:g}, {bt:.2f}. "
        f"Labelled unknown at the defaults: non-particle candidates {off[0]:.2f} (n={off[1]}), "
        f"candidates on a molecule {on[0]:.2f} (n={on[1]}).\n"
    )
    print(
        "| class (molecules) | COS-Net default P / R / F1 / F4 | COS-Net best P / R / F1 / F4 "
        "| TM (best threshold) P / R / F1 / F4 | TM s/tomogram |"
    )
    print("|---|---|---|---|---|")
    nms = res["cosnet_nms"]
    print(f"\nwith per-class NMS: best at {nms['best'][0]:g}, {nms['best'][1]:.2f}\n")
    for c in CLASSES:
        d, b, t = cn["at_default"][c], cn["at_best"][c], res["tm"][c]
        print(f"| {c} NMS | {four(nms['at_default'][c])} | {four(nms['at_best'][c])} | | |")
        print(
            f"| {c} ({d['true']}) | {four(d)} | {four(b)} | {four(t)} | "
            f"{t['seconds_per_tomogram']:.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
