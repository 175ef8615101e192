"""``check``, ``reindex`` and ``stats``: verify and rebuild what is derived, report what is held."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, inspect, select

from cosnet_index.store.shards import (
    iter_shard_vectors,
    read_shard_ids,
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
from cosnet_index.store.vectors import INDEX_TYPES, index_ids, new_index, read_index

__all__ = ["CheckReport", "check_store", "reindex", "store_stats", "vector_index_record"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check_store`.

    Attributes:
        counts: per model hash (16 chars): ``{"rows": .., "shard_rows": .., "index_ntotal": ..}``.
        problems: one line per difference found (empty: the store is consistent).
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No difference found."""
        return not self.problems


def check_store(store: Store) -> CheckReport:
    """Verify that catalog rows, Parquet shards and FAISS index agree, id by id.

    For every model: each shard file exists, has as many rows as the catalog says and the same ids
    in the same order; the index file holds exactly the model's ids; no file in ``shards/`` lacks
    a catalog row. Reads only.
    """
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    with store.session() as session:
        models = session.scalars(select(ModelRecord).order_by(ModelRecord.id)).all()
        shards = session.scalars(select(ShardRecord).order_by(ShardRecord.id)).all()
        rows_by_shard: dict[int, np.ndarray] = {}
        for shard_id, ids in _ids_by_shard(session):
            rows_by_shard[shard_id] = ids
    known_files = {store.path / s.path for s in shards}
    for model in models:
        short = model.weights_hash[:16]
        model_ids = []
        shard_rows = 0
        for shard in (s for s in shards if s.model_id == model.id):
            db_ids = rows_by_shard.get(shard.id, np.zeros(0, np.int64))
            model_ids.append(db_ids)
            path = store.path / shard.path
            if not path.is_file():
                problems.append(f"shard {shard.path} is missing ({len(db_ids)} catalog rows)")
                continue
            try:
                file_ids = read_shard_ids(path)
            except Exception as exc:
                problems.append(f"shard {shard.path} is unreadable: {exc}")
                continue
            shard_rows += len(file_ids)
            if len(file_ids) != shard.n_rows or len(file_ids) != len(db_ids):
                problems.append(
                    f"shard {shard.path} has {len(file_ids)} rows; the catalog says "
                    f"{shard.n_rows} (shard record) and {len(db_ids)} (subtomogram rows)"
                )
            elif not np.array_equal(file_ids, db_ids):
                problems.append(f"shard {shard.path}: ids differ from the catalog's")
        all_ids = np.sort(np.concatenate(model_ids)) if model_ids else np.zeros(0, np.int64)
        path = store.index_path(model.weights_hash)
        index_ntotal = -1
        if path.exists():
            try:
                index = read_index(path)
                index_ntotal = int(index.ntotal)
                have = np.sort(index_ids(index))
                if len(have) != len(all_ids) or not np.array_equal(have, all_ids):
                    problems.append(
                        f"index {path.name} holds {len(have)} vectors, the catalog {len(all_ids)}"
                        f" ({len(np.setdiff1d(all_ids, have))} missing, "
                        f"{len(np.setdiff1d(have, all_ids))} unknown); run `cosnet-index reindex`"
                    )
            except Exception as exc:
                problems.append(
                    f"index {path.name} is unreadable ({exc}); run `cosnet-index reindex`"
                )
        elif len(all_ids):
            problems.append(
                f"index {path.name} is missing for {len(all_ids)} vectors; "
                "run `cosnet-index reindex`"
            )
        counts[short] = {
            "rows": len(all_ids),
            "shard_rows": shard_rows,
            "index_ntotal": max(index_ntotal, 0),
        }
    shard_root = store.path / "shards"
    if shard_root.is_dir():
        for path in sorted(shard_root.rglob("*")):
            if path.is_file() and path not in known_files:
                problems.append(
                    f"{path.relative_to(store.path)} is not in the catalog (left by an interrupted "
                    "run; the next `index` removes it)"
                )
    return CheckReport(counts=counts, problems=tuple(problems))


def _ids_by_shard(session: Any) -> list[tuple[int, np.ndarray]]:
    result = session.execute(
        select(Subtomogram.shard_id, Subtomogram.row, Subtomogram.id).order_by(
            Subtomogram.shard_id, Subtomogram.row
        )
    ).all()
    if not result:
        return []
    arr = np.asarray(result, dtype=np.int64)  # (n, 3)
    out = []
    for shard_id in np.unique(arr[:, 0]):
        part = arr[arr[:, 0] == shard_id]
        out.append((int(shard_id), part[:, 2]))
    return out


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
    with store.write_lock():
        remove_partial_files(store)
        model_id, model_hash = store._model_id(None)
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
