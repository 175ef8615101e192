"""``check``, ``reindex`` and ``stats``: verify and rebuild what is derived, report what is held."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, inspect, select

from cosnet_index.store.shards import read_shard_ids, read_shard_vectors
from cosnet_index.store.store import Store
from cosnet_index.store.tables import ModelRecord, ShardRecord, Subtomogram, TomogramRecord
from cosnet_index.store.vectors import INDEX_TYPES, index_ids, new_index, read_index

__all__ = ["CheckReport", "check_store", "reindex", "store_stats"]

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
    store: Store, *, index_type: str = "flat", nlist: int | None = None, seed: int = 0
) -> int:
    """Rebuild the store model's FAISS index from the Parquet shards (writer lock held).

    Args:
        index_type: ``"flat"`` (exact L1) or ``"ivf"`` (inverted lists, for millions of vectors).
        nlist: IVF lists (default ``4 * sqrt(n)``).
        seed: IVF k-means seed.

    Returns:
        The number of vectors in the new index.

    Raises:
        InputError: unknown index type, or IVF with too few vectors.
        StoreLockedError: another writer is running.
    """
    from cosnet_index.errors import InputError

    if index_type not in INDEX_TYPES:
        raise InputError(
            f"--index-type must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}"
        )
    from cosnet_index.store.indexer import remove_partial_files

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
        train = None
        if index_type == "ivf":
            _, train = store.load_vectors(model_hash=model_hash)
            rng = np.random.default_rng(seed)
            if len(train) > 256 * 1024:
                train = train[rng.choice(len(train), 256 * 1024, replace=False)]
        index = new_index(dim, index_type, train_vectors=train, nlist=nlist, seed=seed)
        for path in paths:
            ids, xb = read_shard_vectors(store.path / path)
            if len(ids):
                index.add_with_ids(xb, ids)
        store.persist_index(index, model_hash)
    logger.info("rebuilt the %s index of %s: %d vectors", index_type, model_hash[:12], index.ntotal)
    return int(index.ntotal)


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
    }
