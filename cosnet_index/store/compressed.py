"""Compressed vector indexes for stores of millions of vectors: propose, then re-score exactly.

``reindex --index-type ivf-fp16`` (inverted lists of float16 vectors, 1 KiB a vector) or
``ivf-pq`` (product-quantised, ``m`` bytes a vector) keeps the FAISS index small enough for
memory at 10 million vectors. FAISS supports neither with the L1 metric, so they are built on L2
and used only to *propose* ``candidates`` vectors per query (default 1000); the candidates are
then re-scored exactly with L1 distances, the head's own measure, on the stored float32 vectors.
Those come from ``index/<hash16>.vectors.npy`` (``(n, dim)`` float32, memory-mapped: only the
candidates' rows are read) and ``index/<hash16>.ids.npy``, written by the same ``reindex``;
vectors indexed after it are read from their shards. Both files are derived, like the index.

Recall@100 against brute force (exact L1 over every stored vector) is measured at ``reindex``
on stored vectors as queries, and recorded in the catalog's ``vector_indexes`` (``stats``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write

__all__ = [
    "COMPRESSED_TYPES",
    "DEFAULT_CANDIDATES",
    "exact_top_k",
    "new_compressed_index",
    "recall_at_k",
    "rescored_search",
    "write_exact_copy",
]

logger = logging.getLogger(__name__)

COMPRESSED_TYPES = ("ivf-fp16", "ivf-pq")
DEFAULT_CANDIDATES = 1000
MIN_TRAIN = 39  # FAISS wants >= 39 training points per list


def new_compressed_index(
    dim: int,
    index_type: str,
    train_vectors: np.ndarray,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int | None = None,
    seed: int = 0,
) -> Any:
    """An empty, trained ``IndexIDMap2`` over an L2 ``IndexIVFScalarQuantizer`` (fp16) or
    ``IndexIVFPQ`` (``m`` sub-quantisers of 8 bits; default ``dim // 8``).

    Raises:
        InputError: unknown type, too few training vectors, ``m`` not dividing ``dim``.
    """
    import faiss

    if index_type not in COMPRESSED_TYPES:
        raise InputError(f"compressed index type must be one of {COMPRESSED_TYPES}")
    n = len(train_vectors)
    if n < MIN_TRAIN:
        raise InputError(
            f"an {index_type} index needs at least {MIN_TRAIN} stored vectors to train on; "
            "use the flat index (--index-type flat) for small stores"
        )
    if nlist is None:
        nlist = int(4 * math.sqrt(n))
    nlist = int(max(1, min(nlist, n // MIN_TRAIN)))
    quantizer = faiss.IndexFlatL2(dim)
    if index_type == "ivf-fp16":
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2
        )
    else:
        m = m or dim // 8
        if dim % m:
            raise InputError(f"--pq-m {m} must divide the vector size {dim}")
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8)
        if n < 256 * MIN_TRAIN:
            raise InputError(
                f"an ivf-pq index needs at least {256 * MIN_TRAIN} stored vectors to train its "
                "256-entry codebooks; use ivf-fp16 or flat"
            )
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = 64  # k-means on <= 64 points a list: minutes, not hours
    ivf.train(np.ascontiguousarray(train_vectors, dtype=np.float32))
    ivf.nprobe = int(min(nlist, nprobe or 64))
    return faiss.IndexIDMap2(ivf)


def exact_paths(index_path: Path) -> tuple[Path, Path]:
    """``(vectors.npy, ids.npy)`` next to an index file."""
    stem = index_path.with_suffix("")
    return stem.with_name(stem.name + ".vectors.npy"), stem.with_name(stem.name + ".ids.npy")


def write_exact_copy(
    index_path: Path, n: int, dim: int, chunks: Iterator[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Write the float32 vectors (``chunks`` of ``(ids (b,), xb (b, dim))``, ``n`` rows in all)
    beside the index, streaming (memory flat), each file atomically."""
    vectors_path, ids_path = exact_paths(index_path)
    ids = np.empty(n, np.int64)
    with atomic_write(vectors_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        row = 0
        for chunk_ids, xb in chunks:
            out[row : row + len(chunk_ids)] = xb
            ids[row : row + len(chunk_ids)] = chunk_ids
            row += len(chunk_ids)
        out.flush()
        del out
        if row != n:
            raise RuntimeError(f"internal error: {row} vectors written, {n} expected")
    with atomic_write(ids_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, ids)


class _ExactVectors:
    """Stored float32 vectors by id: the memory-mapped copy, then the shards for newer ids."""

    def __init__(self, index_path: Path, load_vectors: Any) -> None:
        vectors_path, ids_path = exact_paths(index_path)
        self.load_vectors = load_vectors
        self.xb = None
        if vectors_path.is_file() and ids_path.is_file():
            self.xb = np.load(vectors_path, mmap_mode="r")
            ids = np.load(ids_path)
            self.order = np.argsort(ids, kind="stable")
            self.sorted_ids = ids[self.order]

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        out = np.empty((len(ids), 0), np.float32)
        found = np.zeros(len(ids), bool)
        if self.xb is not None and len(self.sorted_ids):
            pos = np.clip(np.searchsorted(self.sorted_ids, ids), 0, len(self.sorted_ids) - 1)
            found = self.sorted_ids[pos] == ids
            rows = self.order[pos[found]]
            out = np.empty((len(ids), self.xb.shape[1]), np.float32)
            sort = np.argsort(rows)  # ascending rows: sequential reads of the memory map
            part = np.empty((len(rows), self.xb.shape[1]), np.float32)
            part[sort] = self.xb[rows[sort]]
            out[found] = part
        if not found.all():
            _, newer = self.load_vectors(ids[~found])
            if out.shape[1] == 0:
                out = np.empty((len(ids), newer.shape[1]), np.float32)
            out[~found] = newer
        return out


_EXACT_CACHE: dict[tuple[str, int], _ExactVectors] = {}


def rescored_search(
    index: Any,
    index_path: Path,
    load_vectors: Any,
    xq: np.ndarray,
    k: int,
    candidates: int = DEFAULT_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """``D, I``: exact L1 top-``k`` among the ``max(k, candidates)`` vectors the compressed
    ``index`` proposes for each query (``I`` = -1 where fewer exist).

    Args:
        index: a compressed ``IndexIDMap2`` (:func:`new_compressed_index`).
        index_path: its file (the exact copy lies beside it).
        load_vectors: ``ids -> (ids, xb)``, for vectors newer than the exact copy.
        xq: ``(nq, dim)`` float32 queries.
    """
    stat = index_path.stat() if index_path.exists() else None
    key = (str(index_path), stat.st_mtime_ns if stat else 0)
    exact = _EXACT_CACHE.get(key)
    if exact is None:
        _EXACT_CACHE.clear()
        exact = _EXACT_CACHE[key] = _ExactVectors(index_path, load_vectors)
    _, proposed = index.search(xq, int(max(k, candidates)))  # (nq, c) ids
    D = np.full((len(xq), k), np.inf, np.float32)
    I = np.full((len(xq), k), -1, np.int64)  # noqa: E741 (faiss names)
    for q in range(len(xq)):
        ids = proposed[q][proposed[q] >= 0]
        if not len(ids):
            continue
        d = np.abs(exact(ids) - xq[q]).sum(axis=1, dtype=np.float32)  # (c,) exact L1
        order = np.lexsort((ids, d))[:k]
        D[q, : len(order)], I[q, : len(order)] = d[order], ids[order]
    return D, I


def exact_top_k(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]], xq: np.ndarray, k: int
) -> np.ndarray:
    """Brute-force L1 top-``k`` ids ``(nq, k)`` over streamed ``(ids, xb)`` chunks (the truth
    recall is measured against; memory: one chunk)."""
    import faiss

    best_d = np.full((len(xq), 0), np.inf, np.float32)
    best_i = np.zeros((len(xq), 0), np.int64)
    for ids, xb in chunks:
        flat = faiss.IndexFlat(xq.shape[1], faiss.METRIC_L1)
        flat.add(np.ascontiguousarray(xb, dtype=np.float32))
        d, rows = flat.search(np.ascontiguousarray(xq, dtype=np.float32), min(k, len(ids)))
        best_d = np.concatenate([best_d, d], axis=1)
        best_i = np.concatenate([best_i, ids[rows]], axis=1)
        order = np.lexsort((best_i, best_d), axis=-1)[:, :k] if best_d.size else None
        if order is not None:
            best_d = np.take_along_axis(best_d, order, axis=1)
            best_i = np.take_along_axis(best_i, order, axis=1)
    return best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k ids among the found ones."""
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in
            zip(found, truth, strict=True)]  # fmt: skip
    return float(np.mean(hits)) if hits else float("nan")
