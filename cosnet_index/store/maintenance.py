"""``reindex`` and ``stats``: rebuild what is derived, report what is held (``check``:
:mod:`cosnet_index.store.checking`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import func, inspect, select

from cosnet_index.store.checking import _damage_allowed, _forget_damage, _refuse_damaged_shards
from cosnet_index.store.shards import (
    iter_shard_vectors,
    shard_num_rows,
)
from cosnet_index.store.store import Store
from cosnet_index.store.tables import (
    ModelRecord,
    ShardRecord,
    Subtomogram,
    TomogramRecord,
    VectorIndexRecord,
)
from cosnet_index.store.vectors import INDEX_TYPES, new_index

__all__ = ["reindex", "store_stats", "vector_index_record"]

logger = logging.getLogger(__name__)


def reindex(
    store: Store,
    *,
    index_type: str = "flat",
    nlist: int | None = None,
    seed: int = 0,
    nprobe: int | None = None,
    pq_m: int | None = None,
    candidates: int | None = None,
    recall_queries: int = 100,
) -> int:
    """Rebuild the store model's FAISS index from the Parquet shards (writer lock held), and
    record it (kind, parameters, recall@100 against brute force) in ``vector_indexes``.

    Args:
        index_type: ``"flat"`` (exact L1), ``"ivf"`` (L1 inverted lists), ``"ivf-fp16"`` or
            ``"ivf-pq"`` (compressed, candidates re-scored exactly: ``store/compressed.py``).
        nlist: IVF lists (default ``4 * sqrt(n)``).
        seed: k-means seed (and of the recall queries).
        nprobe: lists searched per query (default 32 for ivf, 64 for the compressed kinds).
        pq_m: ivf-pq bytes per vector (default dim / 8).
        candidates: compressed kinds: vectors proposed per query and re-scored (default 1000).
        recall_queries: stored vectors used as queries to measure recall@100 (0: skip).

    Returns:
        The number of vectors in the new index.

    Raises:
        InputError: unknown index type, or too few vectors for an IVF kind.
        StoreLockedError: another writer is running.
    """
    import time

    from cosnet_index.errors import InputError
    from cosnet_index.store import compressed
    from cosnet_index.store.indexer import remove_partial_files

    if index_type not in INDEX_TYPES:
        raise InputError(
            f"--index-type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}"
        )
    started = time.perf_counter()
    with store.write_lock(), _damage_allowed(store):
        remove_partial_files(store)
        model_id, model_hash = store._model_id(None)
        _refuse_damaged_shards(store)
        with store.session() as session:
            paths = session.scalars(
                select(ShardRecord.path)
                .where(ShardRecord.model_id == model_id)
                .order_by(ShardRecord.id)
            ).all()
        dim = int(store._model_config(model_hash).get("embed_dim", 512))
        n_total = sum(shard_num_rows(store.path / p) for p in paths)

        def chunks():  # type: ignore[no-untyped-def]
            for path in paths:
                yield from iter_shard_vectors(store.path / path, batch_rows=65536)

        rng = np.random.default_rng(seed)
        sample = _sample(chunks(), n_total, 256 * 1024, rng) if index_type != "flat" else None
        if index_type in compressed.COMPRESSED_TYPES:
            assert sample is not None
            index = compressed.new_compressed_index(
                dim, index_type, sample, nlist=nlist, nprobe=nprobe, m=pq_m, seed=seed
            )
        else:
            index = new_index(dim, index_type, train_vectors=sample, nlist=nlist, seed=seed)
            if nprobe is not None and index_type == "ivf":
                index.index.nprobe = int(nprobe)
        for ids, xb in chunks():
            if len(ids):
                index.add_with_ids(xb, ids)
        path = store.index_path(model_hash)
        for stale in compressed.exact_paths(path):
            stale.unlink(missing_ok=True)
        if index_type in compressed.COMPRESSED_TYPES:
            compressed.write_exact_copy(path, n_total, dim, chunks())
        store.persist_index(index, model_hash)
        _forget_damage(store, [path.relative_to(store.path).as_posix()])
        build_seconds = time.perf_counter() - started
        params: dict[str, Any] = {}
        if index_type != "flat":
            import faiss

            ivf = faiss.extract_index_ivf(index.index)
            params = {"nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe)}
            if index_type == "ivf-pq":
                params["m"] = int(faiss.downcast_index(ivf).pq.M)
            if index_type in compressed.COMPRESSED_TYPES:
                params["candidates"] = int(candidates or compressed.DEFAULT_CANDIDATES)
        recall, n_queries = (1.0, None) if index_type == "flat" else (None, None)
        if index_type != "flat" and recall_queries > 0 and n_total:
            assert sample is not None
            xq = sample[rng.choice(len(sample), min(recall_queries, len(sample)), replace=False)]
            truth = compressed.exact_top_k(chunks(), xq, 100)
            _, found = store.search(xq, 100, gpu=False, candidates=params.get("candidates"))
            recall, n_queries = compressed.recall_at_k(found, truth), len(xq)
        _record_index(store, model_id, index_type, params, n_total, recall, n_queries,
                      build_seconds)  # fmt: skip
    logger.info(
        "rebuilt the %s index of %s: %d vectors, recall@100 %s",
        index_type,
        model_hash[:12],
        index.ntotal,
        "n/a" if recall is None else f"{recall:.3f}",
    )
    return int(index.ntotal)


def _sample(chunks: Any, n_total: int, max_n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``max_n`` stored vectors drawn uniformly from streamed chunks (memory: the sample)."""
    keep = min(1.0, max_n / max(1, n_total))
    parts = []
    for _, xb in chunks:
        parts.append(xb[rng.random(len(xb)) < keep] if keep < 1.0 else xb.copy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _record_index(
    store: Store,
    model_id: int,
    kind: str,
    params: dict[str, Any],
    n_vectors: int,
    recall: float | None,
    n_queries: int | None,
    build_seconds: float,
) -> None:
    from sqlalchemy import delete

    with store.session() as session:
        session.execute(delete(VectorIndexRecord).where(VectorIndexRecord.model_id == model_id))
        session.add(
            VectorIndexRecord(
                model_id=model_id,
                kind=kind,
                params=params,
                n_vectors=int(n_vectors),
                recall_at_100=recall,
                recall_queries=n_queries,
                build_seconds=float(build_seconds),
            )
        )


def vector_index_record(store: Store) -> dict[str, Any] | None:
    """The recorded vector index of the store's model (None: the default exact flat index)."""
    model_id, _ = store._model_id(None)
    with store.session() as session:
        record = session.scalars(
            select(VectorIndexRecord).where(VectorIndexRecord.model_id == model_id)
        ).first()
    if record is None:
        return None
    return {
        "kind": record.kind,
        "params": dict(record.params),
        "n_vectors": int(record.n_vectors),
        "recall_at_100": record.recall_at_100,
        "recall_queries": record.recall_queries,
        "build_seconds": round(float(record.build_seconds), 3),
    }


def store_stats(store: Store) -> dict[str, Any]:
    """Counts and size: tomograms, subtomograms, models, classes, bytes on disk, schema revision."""
    from cosnet_index.store.schema import current_revision

    with store.session() as session:
        tomograms = session.scalar(select(func.count(TomogramRecord.id))) or 0
        subtomograms = session.scalar(select(func.count(Subtomogram.id))) or 0
        models = session.scalar(select(func.count(ModelRecord.id))) or 0
        skipped = sum(int(n or 0) for n in session.scalars(select(ShardRecord.n_skipped)).all())
    classes = 0
    if inspect(store.engine).has_table("classes"):
        with store.engine.connect() as connection:
            from sqlalchemy import text

            classes = int(connection.execute(text("SELECT count(*) FROM classes")).scalar() or 0)
    return {
        "store": str(store.path),
        "schema_revision": current_revision(store.engine),
        "model_hash": store.model_hash,
        "tomograms": int(tomograms),
        "subtomograms": int(subtomograms),
        "coordinates_skipped": skipped,
        "models": int(models),
        "classes": classes,
        "size_bytes": store.size_bytes(),
        "vector_index": vector_index_record(store) or {"kind": "flat", "recall_at_100": 1.0},
    }
