"""Query throughput: classify 1M stored vectors x 22 classes, top-100 search over 1M.

The collection is "random but realistic": 22 class centres in the 512-d scaled-embedding
geometry (the head's bias separates members of a class, L1 ~ 0.6 b, from other classes,
L1 ~ 1.4 b), 1M members sampled around them plus 10% background vectors far from every
class. Each query runs through cosnet_index.query (FAISS L1) and beside a NumPy brute force on
the same data in the same run; the figures are wall-clock seconds and their ratio.

Targets (issue 5, 2 cores): classify 1M x 22 < 2 s; top-100 search over 1M < 0.5 s per class.

    python bench/query.py --threads 2            # 1M vectors (needs ~4.5 GB RAM)
    python bench/query.py --threads 2 --quick    # 100k vectors
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np
from _common import bench_parser

from cosnet_index.query import class_scores, classify_scores, search_class, search_vectors

DIM = 512
N_CLASSES = 22
BIAS = 9.0
CENTRE_STD, MEMBER_STD, BACKGROUND_STD = 0.02, 0.01, 0.03


def collection(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xb (n, 512) float32, labels (n,) with -1 = background, centres (22, 512))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, CENTRE_STD, (N_CLASSES, DIM)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, n)
    labels[rng.random(n) < 0.1] = -1
    xb = np.empty((n, DIM), np.float32)
    step = 65_536
    for s in range(0, n, step):  # chunks keep float temporaries small
        lab = labels[s : s + step]
        noise = rng.standard_normal((len(lab), DIM), dtype=np.float32)
        block = np.where((lab >= 0)[:, None], centres[np.maximum(lab, 0)] + MEMBER_STD * noise, 0.0)
        bg = lab < 0
        block[bg] = BACKGROUND_STD * noise[bg]
        xb[s : s + len(lab)] = block
    return xb, labels, centres


def numpy_scores(xb: np.ndarray, support: np.ndarray, bias: float) -> np.ndarray:
    """Reference: (n, C) sigmoid(b - L1) with NumPy only (one shot per class)."""
    out = np.empty((len(xb), len(support)), np.float32)
    step = 2_048  # (step, C, 512) float32 temporaries stay < 100 MB
    for s in range(0, len(xb), step):
        d = np.abs(xb[s : s + step, None, :] - support[None]).sum(-1)  # (b, C)
        out[s : s + step] = 1.0 / (1.0 + np.exp(d - bias))
    return out


def numpy_topk(xb: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    """Reference: ids of the k nearest (min L1 over shots) with NumPy only."""
    d = np.full(len(xb), np.inf, np.float32)
    step = 65_536
    for s in range(0, len(xb), step):
        blk = xb[s : s + step]
        for shot in support:
            np.minimum(d[s : s + step], np.abs(blk - shot).sum(1), out=d[s : s + step])
    top = np.argpartition(d, k - 1)[:k]
    return top[np.argsort(d[top], kind="stable")]


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    """(best wall seconds, CPU seconds of that run, last result) over ``repeat`` runs.

    CPU seconds (all threads of this process) / threads is what the wall time would be on an
    otherwise idle machine; on a shared machine the wall time alone overstates the cost.
    """
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, cpu = wall, used
    return best, cpu, out


def main() -> None:
    parser = bench_parser(__doc__, quick="100k vectors instead of 1M")
    parser.add_argument("--n", type=int, default=None, help="collection size (overrides --quick)")
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    n = args.n or (100_000 if args.quick else 1_000_000)
    t0 = time.perf_counter()
    xb, labels, _ = collection(n, args.seed)
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"collection: {n} x {DIM} float32, {N_CLASSES} classes, seed {args.seed}, "
        f"{args.threads} threads (built in {time.perf_counter() - t0:.1f} s)"
    )
    rng = np.random.default_rng(args.seed + 1)
    member = [rng.choice(np.flatnonzero(labels == c), 3, replace=False) for c in range(N_CLASSES)]
    one_shot = [xb[m[:1]] for m in member]
    three_shot = [xb[m] for m in member]
    support1 = np.concatenate(one_shot)  # (22, 512)

    print("\n## classify (probability of every vector against every class, best class, margin)")
    print("wall s = elapsed; CPU s = CPU time of all threads (CPU s / threads ~ wall when idle)")
    t_np, c_np, ref = timed(lambda: numpy_scores(xb, support1, BIAS))
    print(
        "| query | wall s | CPU s | target (wall, 2 cores) | NumPy brute force 1-shot wall s "
        "(CPU s) | speed-up (wall) |"
    )
    print("|---|---|---|---|---|---|")
    for name, protos, reduce in (
        ("1-shot x 22, max", one_shot, "max"),
        ("3-shot x 22, max", three_shot, "max"),
        ("3-shot x 22, mean", three_shot, "mean"),
    ):
        t, c, res = timed(
            lambda p=protos, r=reduce: classify_scores(
                class_scores(xb, p, BIAS, reduce=r), [str(i) for i in range(N_CLASSES)], 0.5
            ),
            repeat=3,
        )
        target = "< 2 s" if n >= 1_000_000 else f"< {2 * n / 1e6:.2g} s (scaled)"
        print(
            f"| classify {n} {name} | {t:.3f} | {c:.3f} | {target} | {t_np:.2f} ({c_np:.2f}) "
            f"| {t_np / t:.1f}x |"
        )
        if name.startswith("1-shot"):
            err = float(np.abs(res.scores - ref).max())
            acc = float((res.best == labels).mean())
            note = f"1-shot: max |p - NumPy p| = {err:.1e}, accuracy incl. background {acc:.3f}"

    print(f"\n({note})")
    print(f"\n## search (top-{args.k} of one class over {n}, mean of 5 classes)")
    index = faiss.IndexIDMap2(faiss.IndexFlat(DIM, faiss.METRIC_L1))
    ids = np.arange(n, dtype=np.int64)
    index.add_with_ids(xb, ids)
    classes = range(5)
    print(
        "| query | wall s per class | CPU s | target (wall) | NumPy brute force wall s | "
        "speed-up (wall) | same top-k as NumPy |"
    )
    print("|---|---|---|---|---|---|---|")
    for shots, reduce in ((1, "max"), (3, "max"), (3, "mean")):
        totals = {"faiss": [0.0, 0.0], "scan": [0.0, 0.0], "numpy": [0.0, 0.0]}
        same = True
        for c in classes:
            support = xb[member[c][:shots]]
            runs = {
                "faiss": lambda s=support, r=reduce: search_class(index, s, BIAS, args.k, reduce=r),
                "scan": lambda s=support, r=reduce: search_vectors(
                    xb, ids, s, BIAS, args.k, reduce=r
                ),
            }
            if reduce == "max":
                runs["numpy"] = lambda s=support: numpy_topk(xb, s, args.k)
            got = {}
            for key, fn in runs.items():
                t, cpu, got[key] = timed(fn)
                totals[key][0] += t
                totals[key][1] += cpu
            same &= bool(np.array_equal(got["faiss"].ids, got["scan"].ids))
            if "numpy" in got:
                same &= bool(np.array_equal(np.sort(got["faiss"].ids), np.sort(got["numpy"])))
        m = len(classes)
        t_n = totals["numpy"][0] / m
        for key, label in (("faiss", "FAISS index search"), ("scan", "scan (search_vectors)")):
            t, cpu = totals[key][0] / m, totals[key][1] / m
            ref_col = f"{t_n:.2f}" if reduce == "max" else "n/a"
            ratio = f"{t_n / t:.1f}x" if reduce == "max" else "n/a"
            check = same if reduce == "max" else f"{same} (vs scan)"
            print(
                f"| {shots}-shot {reduce} {label} | {t:.3f} | {cpu:.3f} | < 0.5 s | {ref_col} | "
                f"{ratio} | {check} |"
            )

    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
