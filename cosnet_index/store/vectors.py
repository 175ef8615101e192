"""The FAISS side of a store: exact L1 (default) or IVF indexes, persisted atomically.

The CPU index file is the persisted truth for search; it is derived from the Parquet shards and
can always be rebuilt from them (``cosnet-index reindex``). A GPU copy is made for searching when
``faiss.get_num_gpus() > 0``; brute-force L1 on the GPU gives the same neighbours.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cosnet_index.errors import InputError, StoreError
from cosnet_index.files import atomic_write

__all__ = [
    "GPU_MAX_K",
    "INDEX_TYPES",
    "index_ids",
    "new_index",
    "read_index",
    "search_index",
    "to_gpu",
    "write_index",
]

logger = logging.getLogger(__name__)

INDEX_TYPES = ("flat", "ivf", "ivf-fp16", "ivf-pq")  # the last two: store/compressed.py


def _faiss() -> Any:
    import faiss

    return faiss


def new_index(
    dim: int,
    index_type: str = "flat",
    *,
    train_vectors: np.ndarray | None = None,
    nlist: int | None = None,
    seed: int = 0,
) -> Any:
    """An empty ``IndexIDMap2`` over an L1 ``IndexFlat`` or a trained L1 ``IndexIVFFlat``.

    Args:
        dim: vector size (512).
        index_type: ``"flat"`` (exact) or ``"ivf"`` (inverted lists; needs ``train_vectors``).
        train_vectors: ``(n, dim)`` sample to train the IVF coarse quantiser on.
        nlist: IVF lists (default ``4 * sqrt(n)``, between 1 and ``n // 39``).
        seed: k-means seed.

    Raises:
        InputError: unknown index type, or IVF without enough training vectors.
    """
    faiss = _faiss()
    if index_type == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlat(dim, faiss.METRIC_L1))
    if index_type != "ivf":
        raise InputError(f"index type must be 'flat' or 'ivf' here, got {index_type!r}")
    if train_vectors is None or len(train_vectors) < 39:
        raise InputError(
            "an IVF index needs at least 39 stored vectors to train on; use the flat index "
            "(--index-type flat) for small stores"
        )
    n = len(train_vectors)
    if nlist is None:
        nlist = int(4 * math.sqrt(n))
    nlist = int(max(1, min(nlist, n // 39)))
    quantizer = faiss.IndexFlat(dim, faiss.METRIC_L1)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L1)
    ivf.cp.seed = seed
    ivf.train(np.ascontiguousarray(train_vectors, dtype=np.float32))
    ivf.nprobe = min(nlist, 32)
    return faiss.IndexIDMap2(ivf)  # the Python wrappers keep quantizer and ivf alive


def index_ids(index: Any) -> np.ndarray:
    """The ids an ``IndexIDMap2`` holds, ``(ntotal,)`` int64, in insertion order."""
    return _faiss().vector_to_array(index.id_map).astype(np.int64, copy=False)


def read_index(path: Path) -> Any:
    """Load a persisted index.

    Raises:
        StoreError: unreadable or corrupt file (``cosnet-index reindex`` rebuilds it).
    """
    try:
        return _faiss().read_index(str(path))
    except RuntimeError as exc:
        raise StoreError(
            f"the vector index {path} cannot be read ({str(exc).splitlines()[0]}); rebuild it from "
            "the shards with `cosnet-index reindex`"
        ) from None


def write_index(
    index: Any, path: Path, before_replace: Callable[[Path], None] | None = None
) -> None:
    """Write ``index`` to ``path`` atomically (temporary file, fsync, rename).

    ``before_replace(tmp)`` runs once the temporary file is complete, before the rename (the
    store records the new file's checksum there).

    Raises:
        WriteError: the disk is full (FAISS's "No space left on device") or the file system
            failed; the previous file is unchanged.
    """
    if hasattr(index, "index") and type(index).__name__.startswith("Gpu"):
        index = _faiss().index_gpu_to_cpu(index)
    needed = int(index.ntotal) * (4 * int(index.d) + 8) + 4096  # flat codes + ids + header
    with atomic_write(path, needed_bytes=needed) as tmp:
        _faiss().write_index(index, str(tmp))
        if before_replace is not None:
            before_replace(tmp)


GPU_MAX_K = 2048  # faiss GPU k-selection limit


def to_gpu(index: Any) -> Any:
    """A GPU copy of a CPU index on every visible GPU (the CPU index stays the truth).

    FAISS GPU supports L1 for flat indexes only: an L1 IVF index stays on the CPU (logged).
    """
    faiss = _faiss()
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError as exc:
        logger.warning("searching on the CPU: this index cannot go to the GPU (%s)", exc)
        return index


def search_index(index: Any, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``D, I = index.search(xq, k)`` with input checks; ``I`` are subtomogram ids (-1 = none).

    Raises:
        InputError: ``xq`` not ``(n, d)`` finite, or ``k < 1``.
    """
    xq = check_queries(xq, index.d, k)
    D, I = index.search(xq, int(k))  # noqa: E741 (faiss names)
    return D, I


def check_queries(xq: np.ndarray, dim: int, k: int) -> np.ndarray:
    """``xq`` as a C-contiguous ``(n, dim)`` float32 array.

    Raises:
        InputError: ``xq`` not ``(n, dim)`` finite, or ``k < 1``.
    """
    xq = np.ascontiguousarray(np.asarray(xq, dtype=np.float32))
    if xq.ndim == 1:
        xq = xq[None, :]
    if xq.ndim != 2 or xq.shape[1] != dim:
        raise InputError(f"query vectors must have shape (n, {dim}), got {xq.shape}")
    if not np.isfinite(xq).all():
        raise InputError("query vectors contain NaN or infinite values")
    if int(k) < 1:
        raise InputError(f"k must be at least 1, got {k}")
    return xq
