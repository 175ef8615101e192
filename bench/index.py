"""Benchmark `index`: MRC files -> committed store, beside bare `embed` on the same boxes.

Prints, from one run on this machine:

- bare ``model.embed`` throughput on the boxes, already in memory (the reference);
- end-to-end ``index_tomograms`` throughput (memory-mapped MRC -> boxes -> embed -> Parquet shard
  -> catalog rows -> FAISS index file), on a fresh store;
- their ratio (target >= 0.8: reading, extraction and writes hidden behind the model);
- peak memory of ``index`` (a fresh subprocess each) for N and 10 N particles on the same four
  tomograms (10x denser): it must stay flat apart from the FAISS index itself (2 KiB per vector).

The model is the shipped checkpoint when present, otherwise a random model of the default
architecture (said in the output). Usage::

    python bench/index.py                      # 512 particles; memory at 1024 and 10240
    python bench/index.py --particles 256 --memory-particles 256 --scale 4 --tiny  # quick
    python bench/index.py --commit-every 64    # worst case of committed parts: 2 per tomogram
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd

SHAPE_ZYX = (96, 256, 256)  # 24 MiB of float32 per tomogram
N_TOMOGRAMS = 4


def make_collection(root: Path, n_particles: int, seed: int) -> tuple[list[Path], Path]:
    """``N_TOMOGRAMS`` noise tomograms at 10 A and a CSV of ``n_particles`` coordinates."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths, frames = [], []
    per = int(np.ceil(n_particles / N_TOMOGRAMS))
    for k in range(N_TOMOGRAMS):
        path = root / f"TS_{k:02d}.mrc"
        if not path.exists():
            data = rng.normal(size=SHAPE_ZYX).astype(np.float32)
            with mrcfile.new(path, overwrite=True) as mrc:
                mrc.set_data(data)
                mrc.voxel_size = 10.0
        paths.append(path)
        nz, ny, nx = SHAPE_ZYX
        frames.append(
            pd.DataFrame(
                {
                    "tomogram": path.stem,
                    "x": rng.uniform(16, nx - 17, per),
                    "y": rng.uniform(16, ny - 17, per),
                    "z": rng.uniform(16, nz - 17, per),
                }
            )
        )
    coords = root / f"coords_{n_particles}.csv"
    pd.concat(frames).iloc[:n_particles].to_csv(coords, index=False)
    return paths, coords


def make_model(path: Path, tiny: bool, seed: int) -> str:
    """Copy the shipped checkpoint to ``path``, or save a random one; return a description."""
    import torch

    from cosnet_index.model import CosNet, CosNetConfig, default_checkpoint_path, save_checkpoint

    shipped = default_checkpoint_path()
    if shipped.is_file() and not tiny:
        shutil.copyfile(shipped, path)
        return f"shipped checkpoint {shipped.name}"
    torch.manual_seed(seed)
    config = CosNetConfig(widths=(4, 8, 8)) if tiny else CosNetConfig()
    save_checkpoint(CosNet(config), path)
    kind = "tiny" if tiny else "default-architecture"
    return f"random {kind} model (widths {config.widths}, convs/level {config.convs_per_level})"


def bare_embed_rate(model, boxes: np.ndarray, batch_size: int, device: str) -> float:
    """Boxes/s of ``model.embed`` alone, boxes already in memory (after one warm-up batch)."""
    import torch

    model.to(device)
    model.embed(torch.from_numpy(boxes[:batch_size]).to(device))
    started = time.perf_counter()
    for start in range(0, len(boxes), batch_size):
        model.embed(torch.from_numpy(boxes[start : start + batch_size]).to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(boxes) / (time.perf_counter() - started)


def all_boxes(paths: list[Path], coords: Path, box: int) -> np.ndarray:
    from cosnet_index.io import extract_boxes, open_tomogram, read_coordinates

    table = read_coordinates(coords)
    out = []
    for path in paths:
        with open_tomogram(path) as tomogram:
            rows = table[table["tomogram"] == tomogram.name]
            boxes, _ = extract_boxes(tomogram.data, rows[["x", "y", "z"]].to_numpy(), box)
            out.append(boxes)
    return np.concatenate(out)


def index_once(
    paths, coords, model_path, store_dir, batch_size, device, commit_every=None
) -> tuple[float, int]:
    from cosnet_index.store import Store, check_store, index_tomograms

    shutil.rmtree(store_dir, ignore_errors=True)
    with Store.create(store_dir, model_path=model_path) as store:
        store.model()  # load outside the timed part, like the bare reference
        started = time.perf_counter()
        extra = {} if commit_every is None else {"commit_every": commit_every}
        summary = index_tomograms(
            store, paths, coords, batch_size=batch_size, progress=False, device=device, **extra
        )
        seconds = time.perf_counter() - started
        assert check_store(store).ok
    return summary.subtomograms_indexed / seconds, summary.subtomograms_indexed


def _rss_mib() -> float:
    """Current anonymous resident memory (Linux ``RssAnon``: heap, not the page cache of the
    memory-mapped tomograms); falls back to the high-water mark elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_memory(args: argparse.Namespace) -> None:
    """In a fresh process: index ``args.particles`` particles; print peak memory as JSON."""
    import tracemalloc

    from cosnet_index.store import Store, index_tomograms

    work = Path(args.workdir)
    paths, coords = make_collection(work / "data", args.particles, args.seed)
    store_dir = work / f"store_mem_{args.particles}"
    shutil.rmtree(store_dir, ignore_errors=True)
    with Store.create(store_dir, model_path=work / "model.pt") as store:
        store.model()
        import faiss  # noqa: F401
        import torch

        torch.zeros(1)
        baseline = _rss_mib()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:  # resident set size every 20 ms while indexing
            while not done.wait(0.02):
                peak[0] = max(peak[0], _rss_mib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tracemalloc.start()
        summary = index_tomograms(
            store, paths, coords, batch_size=args.batch_size, progress=False, device=args.device
        )
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        done.set()
        sampler.join()
        index_bytes = store.index_path().stat().st_size
    print(
        json.dumps(
            {
                "particles": summary.subtomograms_indexed,
                "baseline_rss_mib": round(baseline, 1),
                "peak_rss_mib": round(peak[0], 1),
                "traced_peak_mib": round(traced_peak / 2**20, 1),
                "index_file_mib": round(index_bytes / 2**20, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--particles", type=int, default=512, help="throughput runs")
    parser.add_argument(
        "--memory-particles",
        type=int,
        default=1024,
        help="memory runs at this many particles and at scale times more (the reader's bounded "
        "queue is full from ~1000 particles on)",
    )
    parser.add_argument("--scale", type=int, default=10, help="memory run at particles * scale")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--commit-every",
        type=int,
        default=None,
        help="boxes per committed part in the throughput runs (default: index's, 4096)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="bare/index rounds (best of)")
    parser.add_argument("--tiny", action="store_true", help="tiny random model (quick check)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.child_memory:
        child_memory(args)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cosnet-bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt"
    described = make_model(model_path, args.tiny, args.seed)
    paths, coords = make_collection(work / "data", args.particles, args.seed)

    from cosnet_index.model import load_checkpoint

    model, _ = load_checkpoint(model_path)
    boxes = all_boxes(paths, coords, model.config.box)
    print(f"model: {described}; device {args.device}; torch threads {torch.get_num_threads()}")
    print(
        f"collection: {N_TOMOGRAMS} tomograms of {SHAPE_ZYX} (z, y, x) float32, {len(boxes)} boxes"
    )
    import faiss  # noqa: F401  (a one-off import cost, not throughput)

    # alternate the two measurements to share out the noise of a busy machine; best of N rounds
    bares, e2es = [], []
    for _ in range(args.rounds):
        bares.append(bare_embed_rate(model, boxes, args.batch_size, args.device))
        rate, n = index_once(
            paths,
            coords,
            model_path,
            work / "store",
            args.batch_size,
            args.device,
            args.commit_every,
        )
        e2es.append(rate)
    bare, e2e = max(bares), max(e2es)
    runs = ", ".join(f"{r:.1f}" for r in bares)
    print(f"bare embed        {bare:9.1f} subtomograms/s  (best of runs {runs})")
    runs = ", ".join(f"{r:.1f}" for r in e2es)
    print(f"index end-to-end  {e2e:9.1f} subtomograms/s  (best of runs {runs}; {n} each)")
    print(f"ratio             {e2e / bare:9.2f}  (target >= 0.8)")
    ratios = ", ".join(f"{e / b:.2f}" for b, e in zip(bares, e2es, strict=True))
    print(f"ratio per round   {ratios}")

    rows = []
    for particles in (args.memory_particles, args.memory_particles * args.scale):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-memory",
                "--particles",
                str(particles),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
                "--seed",
                str(args.seed),
                "--workdir",
                str(work),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("memory while indexing (fresh process each; anonymous RSS sampled every 20 ms):")
    for row in rows:
        growth = row["peak_rss_mib"] - row["baseline_rss_mib"]
        print(
            f"  {row['particles']:7d} particles: peak RSS {row['peak_rss_mib']:.0f} MiB "
            f"(+{growth:.0f} MiB over the loaded model and store), numpy/python peak "
            f"{row['traced_peak_mib']:.1f} MiB, FAISS index {row['index_file_mib']:.1f} MiB"
        )
    small, large = rows
    grow = (large["peak_rss_mib"] - large["baseline_rss_mib"]) - (
        small["peak_rss_mib"] - small["baseline_rss_mib"]
    )
    extra_index = large["index_file_mib"] - small["index_file_mib"]
    print(
        f"growth at {args.scale}x particles: {grow:+.0f} MiB RSS, of which the FAISS index itself "
        f"accounts for {extra_index:.1f} MiB"
    )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
