"""Picking of every shape and size: candidate recall and centring per molecule, shape and tier.

Data: crowded tomograms of the tilt-series simulator (per-tilt CTF, exposure filter and noise,
weighted back-projection, the preset's background clutter) holding held-out molecules of the
library (``simulate/molecules/manifest.csv``, split ``heldout``, none from RESERVED.txt) of
every shape class (compact, membrane-like, hollow, ring, elongated) and every size tier up to
35 nm, under the ``realistic`` and the ``shifted`` imaging presets, at one SNR. Seeds
``seed * 1000 + 100 * preset + t``.

- DoG candidates (``cosnet_index.pick.pick_candidates``, default diameters and threshold, the
  preset's contrast passed as a user who knows the data would): per molecule, shape class and
  size tier the candidate recall (a molecule is hit by a candidate within half its radius, one
  candidate per molecule, best score first), the median distance of each molecule's nearest
  candidate (voxels), and candidates per particle over all molecules;
- template matching (``bench/_pick_tm.py``, as in ``bench/pick.py``): per molecule, a box cut
  around its first copy in the preset's first tomogram is the single reference; the score
  map's peaks, the best ``k`` of them with ``k`` the molecule's copies times DoG's candidates
  per particle (the same candidate budget), scored like DoG on the tomograms given
  ``--tm-tomograms`` (the reference's copy left out);
- the cost of ``index``'s contrast check (DoG on the other polarity, ``pick/index.py``):
  detection time of both polarities beside one.

    python bench/pick_shapes.py --seed 0          # the tables of docs/picking.md
    python bench/pick_shapes.py --quick           # one small tomogram per preset
    python bench/pick_shapes.py --seed 0 --diameters 120,170,240,400 --tm-tomograms 0
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, setup_run, write_json
from _pick_score import greedy_hits
from _pick_tm import match_tomogram, peaks

MOLECULES = (  # held out, <= 35 nm: one or more per shape class and mass tier
    "lib-19hc",  # globular, tiny (62 kDa, 9 nm)
    "lib-19hc-d2",  # globular, small (124 kDa, 15 nm)
    "lib-3bof-d4",  # globular, medium (499 kDa, 19 nm)
    "lib-6wwe-c4",  # membrane-like, small (160 kDa, 15 nm)
    "lib-2a79",  # elongated, tiny (69 kDa, 15 nm)
    "lib-3pwp",  # elongated, small (93 kDa, 14 nm)
    "lib-3bof-c2",  # elongated, small (125 kDa, 17 nm)
    "lib-6wwe-c2",  # elongated, small (97 kDa, 13 nm)
    "lib-6x2z-c8",  # ring, medium (363 kDa, 22 nm)
    "lib-6wwe-o",  # hollow, medium (1163 kDa, 22 nm)
    "lib-6wwe-i",  # hollow, large (2906 kDa, 33 nm)
    "lib-6wwe-ia",  # hollow, large (2400 kDa, 35 nm)
)
PRESETS = ("realistic", "shifted")
SHAPE_NAMES = {"globular": "compact"}


def manifest() -> pd.DataFrame:
    from cosnet_index.simulate.molecules.library import library_manifest

    table = library_manifest().set_index("name").loc[list(MOLECULES)]
    return table.assign(shape=table["shape"].replace(SHAPE_NAMES))


def simulate(folder: Path, preset_index: int, args) -> list[tuple[Path, pd.DataFrame]]:  # type: ignore[no-untyped-def]
    from cosnet_index.simulate.tomogram import simulate_tomogram

    out = []
    for t in range(args.tomograms):
        sim = simulate_tomogram(
            folder,
            f"TS_{t + 1:02d}",
            MOLECULES,
            args.particles,
            args.snr,
            args.seed * 1000 + 100 * preset_index + t,
            shape=args.shape,
            imaging=PRESETS[preset_index],
            write_tables=False,
        )
        out.append((sim.path, sim.particles))
    return out


def score(found: pd.DataFrame, truth: pd.DataFrame, score_column: str) -> pd.DataFrame:
    """Per true molecule: hit (one-to-one within half its radius) and nearest distance."""
    xyz = found[["x", "y", "z"]].to_numpy(np.float64)
    true_xyz = truth[["x", "y", "z"]].to_numpy(np.float64)
    hits = greedy_hits(
        xyz, found[score_column].to_numpy(), true_xyz, truth["radius_voxels"].to_numpy()
    )
    hit = np.zeros(len(truth), dtype=bool)
    hit[hits[hits >= 0]] = True
    if len(xyz):
        nearest = np.linalg.norm(true_xyz[:, None] - xyz[None], axis=2).min(axis=1)
    else:
        nearest = np.full(len(truth), np.inf)
    return pd.DataFrame(
        {
            "class": truth["class"].to_numpy(),
            "radius": truth["radius_voxels"].to_numpy(),
            "hit": hit,
            "nearest": nearest,
        }
    )


def run_preset(preset_index: int, root: Path, args) -> dict:  # type: ignore[no-untyped-def]
    import mrcfile

    from cosnet_index.io import open_tomogram
    from cosnet_index.pick import pick_candidates

    preset = PRESETS[preset_index]
    started = time.perf_counter()
    tomos = simulate(root / preset, preset_index, args)
    out: dict = {"preset": preset, "simulate_s": time.perf_counter() - started}
    rows, n_candidates, seconds, both_seconds = [], 0, 0.0, 0.0
    for path, truth in tomos:
        invert = bool(json.loads(truth["imaging"].iloc[0])["invert_contrast"])
        with open_tomogram(path) as tomo:
            t0 = time.perf_counter()
            found = pick_candidates(
                tomo.data,
                tomo.voxel_size_angstrom,
                diameters_angstrom=args.diameters,
                invert_contrast=invert,
            )
            seconds += time.perf_counter() - t0
            # the contrast check of index (pick/index.py) picks the other polarity as well
            t0 = time.perf_counter()
            pick_candidates(
                tomo.data,
                tomo.voxel_size_angstrom,
                diameters_angstrom=args.diameters,
                invert_contrast=not invert,
            )
            both_seconds += time.perf_counter() - t0
        n_candidates += len(found)
        rows.append(score(found, truth, "pick_score").assign(tomogram=path.stem))
    per = pd.concat(rows, ignore_index=True)
    out["dog"] = per.to_dict(orient="list")
    out["candidates"] = n_candidates
    out["particles"] = len(per)
    out["dog_seconds_per_tomogram"] = seconds / len(tomos)
    out["contrast_check_seconds_per_tomogram"] = both_seconds / len(tomos)
    # template matching, one reference per molecule cut from the preset's first tomogram
    per_particle = n_candidates / max(1, len(per))
    first_path, first = tomos[0]
    reference_volume = mrcfile.mmap(first_path, mode="r").data
    tm_rows, tm_seconds = [], 0.0
    for c in MOLECULES:
        mine = first[first["class"] == c]
        if mine.empty:
            continue
        support = mine.iloc[0]
        half = max(16, int(np.ceil(support["radius_voxels"] + 4)))
        zyx = np.round([support["z"], support["y"], support["x"]]).astype(int)
        lo = np.maximum(zyx - half, 0)
        ref = np.array(reference_volume[lo[0] : lo[0] + 2 * half, lo[1] : lo[1] + 2 * half,
                                        lo[2] : lo[2] + 2 * half])  # fmt: skip
        if ref.shape != (2 * half,) * 3:
            continue
        for t, (path, truth) in enumerate(tomos[: args.tm_tomograms]):
            truth_c = truth[truth["class"] == c]
            if t == 0:
                truth_c = truth_c.drop(index=support.name)
            if truth_c.empty:
                continue
            tilt = float(json.loads(truth["imaging"].iloc[0])["tilt_max_deg"])
            volume = mrcfile.mmap(path, mode="r").data
            t0 = time.perf_counter()
            smap, factor = match_tomogram(volume, ref, n_rotations=args.rotations, factor=2,
                                          tilt_max_deg=tilt, seed=args.seed)  # fmt: skip
            xyz, s = peaks(smap, factor, 0.7 * support["radius_voxels"], 8)
            tm_seconds += time.perf_counter() - t0
            k = int(np.ceil(per_particle * len(truth_c)))
            found = pd.DataFrame(
                {"x": xyz[:k, 0], "y": xyz[:k, 1], "z": xyz[:k, 2], "score": s[:k]}
            )
            tm_rows.append(score(found, truth_c, "score").assign(tomogram=path.stem))
    out["tm"] = pd.concat(tm_rows, ignore_index=True).to_dict(orient="list") if tm_rows else {}
    out["tm_seconds"] = tm_seconds
    return out


def summary(per: pd.DataFrame, by: str, info: pd.DataFrame) -> pd.DataFrame:
    per = per.join(info[["shape", "tier", "diameter_nm"]], on="class")
    return per.groupby(by, sort=False).agg(
        particles=("hit", "size"),
        hits=("hit", "sum"),
        recall=("hit", "mean"),
        median_error=("nearest", "median"),
        median_radius=("radius", "median"),
    )


def _recall(row: pd.Series) -> str:
    return f"{row['recall']:.2f} ({int(row['hits'])}/{int(row['particles'])})"


def print_tables(results: dict) -> None:  # type: ignore[type-arg]
    info = manifest()
    for res in results["presets"]:
        dog = pd.DataFrame(res["dog"])
        tm = pd.DataFrame(res["tm"]) if res["tm"] else None
        print(
            f"\n## {res['preset']} (SNR {results['args']['snr']:g}): {res['candidates']} "
            f"candidates for {res['particles']} molecules, "
            f"{res['candidates'] / res['particles']:.2f} per molecule; DoG "
            f"{res['dog_seconds_per_tomogram']:.1f} s per tomogram, the other "
            f"polarity (contrast check) {res['contrast_check_seconds_per_tomogram']:.1f} s more\n"
        )
        print(
            "| molecule | shape | tier | diameter (nm) | DoG recall (hits / molecules) "
            "| DoG median error (voxels; radius) | TM recall (hits / molecules) "
            "| TM median error |"
        )
        print("|---|---|---|---|---|---|---|---|")
        d = summary(dog, "class", info)
        t = summary(tm, "class", info) if tm is not None else None
        for c in MOLECULES:
            if c not in d.index:
                continue
            r = d.loc[c]
            cells = "| |"
            if t is not None and c in t.index:
                q = t.loc[c]
                cells = f"| {_recall(q)} | {q['median_error']:.1f} |"
            print(
                f"| {c} | {info.loc[c, 'shape']} | {info.loc[c, 'tier']} | "
                f"{info.loc[c, 'diameter_nm']:.1f} | {_recall(r)} "
                f"| {r['median_error']:.1f}; {r['median_radius']:.1f} {cells}"
            )
        for by in ("shape", "tier"):
            print(f"\n| {by} | DoG recall (hits / molecules) | DoG median error (voxels) |")
            print("|---|---|---|")
            for key, r in summary(dog, by, info).iterrows():
                print(f"| {key} | {_recall(r)} | {r['median_error']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, quick="one 64 x 128 x 128 tomogram per preset")
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--tomograms", type=int, default=3, help="per preset")
    parser.add_argument("--particles", type=int, default=110, help="per tomogram")
    parser.add_argument("--shape", default="128,256,256", help="z,y,x voxels (1 nm)")
    parser.add_argument("--tm-tomograms", type=int, default=1, help="template matching on these")
    parser.add_argument("--rotations", type=int, default=100, help="template matching rotations")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--diameters", default=None, help="DoG diameters, A, comma-separated [picking's default]"
    )
    args = parser.parse_args(argv)
    if args.diameters:
        args.diameters = tuple(float(d) for d in args.diameters.split(","))
    if args.quick:
        args.tomograms, args.particles, args.shape = 1, 30, "64,128,128"
    args.shape = tuple(int(s) for s in args.shape.split(","))
    setup_run(args, torch_seed=True)
    results: dict = {"args": {k: v for k, v in vars(args).items() if k != "workdir"}}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        results["presets"] = [run_preset(i, Path(tmp), args) for i in range(len(PRESETS))]
    print_tables(results)
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
