"""Large stores (issue 17): classify memory and time, search recall@100 and latency, reindex.

Builds a store of ``--n`` synthetic 512-d vectors (no network call; the shipped checkpoint gives
the head's bias), then measures, each figure with its own wall clock:

- reindex time for ``flat``, ``ivf-fp16`` and ``ivf-pq``;
- search: recall@100 of the compressed indexes against brute force (exact L1 over every vector,
  the flat index) for ``--queries`` class-like queries, and the mean latency of one top-100
  query (one shot);
- classify against 22 one-shot classes: in memory (``classify_store``) and streamed
  (``classify --stream``), each in a fresh child process whose peak RSS is read from
  ``wait4``.

Synthetic vectors: 22 class centres ``c_j ~ N(0, 1)^512``; a vector of class ``j`` is
``c_j + A z + e`` with a shared ``A`` (512 x 16, ``N(0, 0.5^2)``), ``z ~ N(0, I_16)`` and
``e ~ N(0, 0.3^2)^512``: clusters with a 16-d spread plus noise, like embeddings of particles.
Queries are fresh draws of the same model (support particles that are not stored).

    python bench/scale.py --n 1000000 --work /tmp/scale-1m          # build + every figure
    python bench/scale.py --n 1000000 --work /tmp/scale-1m --skip-build --only search
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

DIM, N_CLASSES, LATENT = 512, 22, 16
PART = 4096  # vectors per shard, as index's --commit-every


def _model(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (N_CLASSES, DIM)), rng.normal(0, 0.5, (DIM, LATENT))


def draw(n: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (n,), vectors (n, 512) float32)`` of the synthetic model."""
    centres, mixing = _model(seed)
    labels = rng.integers(0, N_CLASSES, n)
    z = rng.normal(0, 1, (n, LATENT))
    x = centres[labels] + z @ mixing.T + rng.normal(0, 0.3, (n, DIM))
    return labels, x.astype(np.float32)


def build(path: Path, n: int, seed: int) -> None:
    """A store of ``n`` synthetic vectors in shards of ``PART``, via the catalog's own commit."""
    from cosnet_index.io import TomogramInfo
    from cosnet_index.store import Store
    from cosnet_index.store._committing import _register_part
    from cosnet_index.store.shards import ShardWriter

    started = time.perf_counter()
    rng = np.random.default_rng(seed + 1)
    with Store.create(path) as store:
        model_id, model_hash = store._model_id(None)
        shard_dir = store.shard_dir(model_hash)
        next_id = 1
        per_tomogram = 25 * PART  # 102,400 particles a synthetic tomogram
        for start in range(0, n, PART):
            t = start // per_tomogram
            info = TomogramInfo(Path(f"/synthetic/TS_{t:04d}.mrc"), f"TS_{t:04d}",
                                (512, 4096, 4096), 10.0, f"{t:064x}")  # fmt: skip
            job = SimpleNamespace(tomogram=info, skipped={}, convention={}, resampled_from=None)
            m = min(PART, n - start)
            _, xb = draw(m, rng, seed)
            ids = np.arange(next_id, next_id + m, dtype=np.int64)
            xyz = rng.uniform(16, 4000, (m, 3))
            writer = ShardWriter(shard_dir / f"{info.name}-{start // PART}.parquet", DIM)
            writer.write(ids, xyz, np.arange(m), xb)
            writer.commit()
            _register_part(store, job, writer.final, ids, xyz, model_id=model_id,
                           first=start % per_tomogram == 0, edge="skip", invert=False)  # fmt: skip
            next_id += m
    print(f"built {n} vectors in {time.perf_counter() - started:.0f} s", flush=True)


def _child(code: str) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; return (its JSON output, peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def classify_figures(path: Path, seed: int, out: Path, modes: list[str]) -> dict:
    from cosnet_index.classes import add_class
    from cosnet_index.store import Store

    with Store.open(path) as store:
        from cosnet_index.classes import list_classes

        if not list_classes(store):
            for j in range(N_CLASSES):
                add_class(store, f"c{j:02d}", subtomogram_ids=[1 + j * 997])
    results = {}
    for mode in modes:
        target = out / f"classify-{mode}.parquet"
        if mode == "streamed":
            run = f"n = classify_store_streaming(s, {str(target)!r})[0]"
        else:
            run = f"table, meta = classify_store(s); write_table(table, {str(target)!r}, meta)"
            run += "; n = len(table)"
        code = f"""
import json, time
from cosnet_index.store import Store
from cosnet_index.query import classify_store, write_table
from cosnet_index.query._streaming import classify_store_streaming
s = Store.open({str(path)!r}, readonly=True); t = time.perf_counter()
{run}
print(json.dumps({{"n": int(n), "seconds": time.perf_counter() - t}}))
"""
        figures, peak = _child(code)
        results[mode] = {**figures, "peak_rss_mib": round(peak)}
        print(f"classify {mode}: {figures['seconds']:.1f} s, peak RSS {peak:.0f} MiB", flush=True)
    return results


def _flat_figures(store, xq: np.ndarray, results: dict) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Reindex flat (exact L1, the reference), time its search; return its top-100 ids."""
    from cosnet_index.store import reindex

    t = time.perf_counter()
    reindex(store, index_type="flat")
    results["flat"] = {"reindex_s": time.perf_counter() - t}
    store.search(xq[:1], 100, gpu=False)  # load
    t = time.perf_counter()
    _, truth = store.search(xq, 100, gpu=False)
    results["flat"]["latency_s"] = (time.perf_counter() - t) / len(xq)
    print(f"flat: reindex {results['flat']['reindex_s']:.0f} s, "
          f"{results['flat']['latency_s'] * 1e3:.0f} ms/query", flush=True)  # fmt: skip
    store.close()
    return truth


def _streamed_truth(store, xq: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Brute-force L1 top-100 by reading the shards chunk by chunk (no flat index in memory)."""
    from cosnet_index.store.compressed import exact_top_k
    from cosnet_index.store.shards import iter_shard_vectors

    def chunks():  # type: ignore[no-untyped-def]
        for shard, _ in store.shard_listing():
            yield from iter_shard_vectors(store.path / shard, batch_rows=65536)

    return exact_top_k(chunks(), xq, 100)


def search_figures(path: Path, n_queries: int, seed: int, kinds: list[str], nprobe: int,
                   candidates: int, nlist: int | None, sweep: list[int],
                   truth_mode: str = "flat") -> dict:  # fmt: skip
    from cosnet_index.store import Store, reindex
    from cosnet_index.store.compressed import recall_at_k
    from cosnet_index.store.maintenance import vector_index_record

    _, xq = draw(n_queries, np.random.default_rng(seed + 2), seed)
    results: dict = {}
    with Store.open(path) as store:
        if truth_mode == "streamed":
            t = time.perf_counter()
            truth = _streamed_truth(store, xq)
            results["exact_streamed"] = {"seconds": time.perf_counter() - t}
            print(f"exact top-100 streamed over the shards: {time.perf_counter() - t:.0f} s for "
                  f"{len(xq)} queries", flush=True)  # fmt: skip
        else:
            truth = _flat_figures(store, xq, results)
        for kind in kinds:
            t = time.perf_counter()
            reindex(store, index_type=kind, nprobe=nprobe, candidates=candidates, nlist=nlist,
                    recall_queries=100)  # fmt: skip
            took = time.perf_counter() - t
            record = vector_index_record(store) or {}
            store.search(xq[:1], 100, gpu=False)  # load index and exact copy
            import faiss

            ivf = faiss.extract_index_ivf(store.cpu_index().index)
            results[kind] = {
                "reindex_s": took,
                "recall_at_100_stored": record.get("recall_at_100"),
                "params": record.get("params"),
                "index_bytes": store.index_path().stat().st_size,
                "sweep": [],
            }
            for probe in sweep:
                ivf.nprobe = int(min(probe, ivf.nlist))
                lat, found = [], []
                for q in xq:
                    t = time.perf_counter()
                    found.append(store.search(q[None], 100, gpu=False)[1][0])
                    lat.append(time.perf_counter() - t)
                recall = recall_at_k(np.asarray(found), truth)
                row = {"nprobe": int(ivf.nprobe), "recall_at_100": recall,
                       "latency_s_mean": float(np.mean(lat)),
                       "latency_s_p95": float(np.percentile(lat, 95))}  # fmt: skip
                results[kind]["sweep"].append(row)
                print(f"{kind}: reindex {took:.0f} s, nprobe {ivf.nprobe}: recall@100 "
                      f"{recall:.3f} ({len(xq)} queries; {record.get('recall_at_100')} on stored "
                      f"vectors at nprobe {nprobe}), {np.mean(lat) * 1e3:.0f} ms/query "
                      f"(p95 {np.percentile(lat, 95) * 1e3:.0f})", flush=True)  # fmt: skip
            store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--work", required=True, help="folder for the store (kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--kinds", default="ivf-fp16,ivf-pq")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--sweep", default="32,64,128,256", help="nprobe values searched")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--classify-modes", default="in-memory,streamed")
    parser.add_argument("--only", choices=["search", "classify"], default=None)
    parser.add_argument(
        "--truth",
        choices=["flat", "streamed"],
        default="flat",
        help="brute force from a flat index (memory: every vector) or streamed over the shards "
        "(one chunk; for stores that do not fit in memory, e.g. 10M)",
    )
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    if not args.skip_build:
        build(store, args.n, args.seed)
    report: dict = {"n": args.n, "seed": args.seed, "args": vars(args)}
    if args.only != "classify":
        sweep = [int(p) for p in args.sweep.split(",")]
        kinds = args.kinds.split(",")
        report["search"] = search_figures(store, args.queries, args.seed, kinds, args.nprobe,
                                          args.candidates, args.nlist, sweep,
                                          args.truth)  # fmt: skip
    if args.only != "search":
        modes = args.classify_modes.split(",")
        report["classify"] = classify_figures(store, args.seed, work, modes)
    out = work / f"scale-{args.n}-{args.only or 'all'}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
