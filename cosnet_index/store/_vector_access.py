"""The vectors of a store, as methods of ``Store`` (mixed in): shards are the truth, the FAISS
index file a committed prefix of them that ``cpu_index`` brings up to date in memory."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from cosnet_index.errors import StoreDamagedError, StoreError
from cosnet_index.files import file_checksum
from cosnet_index.store.shards import read_shard_vectors
from cosnet_index.store.tables import (
    DamagedFileRecord,
    IndexFileRecord,
    ModelRecord,
    ShardRecord,
    Subtomogram,
)
from cosnet_index.store.vectors import (
    GPU_MAX_K,
    index_ids,
    new_index,
    read_index,
    search_index,
    to_gpu,
    write_index,
)

__all__ = ["VectorAccess"]

logger = logging.getLogger("cosnet_index.store.store")  # the store's log, as before the split


def _id_chunks(ids: np.ndarray, size: int = 10_000) -> Iterator[list[int]]:
    """Unique ids in chunks small enough for any database's bound-parameter limit."""
    unique = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
    for start in range(0, len(unique), size):
        yield [int(i) for i in unique[start : start + size]]


class VectorAccess:
    """``load_vectors``, ``cpu_index``, ``vector_index``, ``search`` (mixed into ``Store``)."""

    def load_vectors(
        self, ids: np.ndarray | None = None, *, model_hash: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors read from the Parquet shards (the truth, not the FAISS index).

        Args:
            ids: ``(n,)`` subtomogram ids, or None for every vector of the model.
            model_hash: the model the vectors must come from (default: the store's model).

        Returns:
            ``(ids (n,) int64, xb (n, dim) float32)``: in the order of ``ids`` when given, else
            in ascending id order (the order of :meth:`subtomogram_table`).

        Raises:
            StoreError: unknown ids, or ids embedded by another model (never mixed).
            StoreDamagedError: the last ``check`` found damaged files (``repair`` first).
        """
        self.refuse_if_damaged()
        model_id, model_hash = self._model_id(model_hash)
        with self.session() as session:
            if ids is None:
                shards = session.execute(
                    select(ShardRecord.path)
                    .where(ShardRecord.model_id == model_id)
                    .order_by(ShardRecord.id)
                ).all()
                parts = [read_shard_vectors(self.path / p) for (p,) in shards]
                dim = int(self._model_config(model_hash).get("embed_dim", 512))
                if not parts:
                    return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
                all_ids = np.concatenate([p[0] for p in parts])
                xb = np.concatenate([p[1] for p in parts])
                if len(all_ids) > 1 and not np.all(np.diff(all_ids) > 0):
                    order = np.argsort(all_ids, kind="stable")
                    all_ids, xb = all_ids[order], xb[order]
                return all_ids, xb
            ids = np.asarray(ids, dtype=np.int64).reshape(-1)
            query = select(
                Subtomogram.id, Subtomogram.model_id, Subtomogram.row, ShardRecord.path
            ).join(ShardRecord, Subtomogram.shard_id == ShardRecord.id)
            rows = pd.DataFrame(
                [
                    row
                    for chunk in _id_chunks(ids)
                    for row in session.execute(query.where(Subtomogram.id.in_(chunk))).all()
                ],
                columns=["id", "model_id", "row", "path"],
            )
        missing = np.setdiff1d(ids, rows["id"].to_numpy(dtype=np.int64))
        if len(missing):
            raise StoreError(
                f"unknown subtomogram ids {missing[:5].tolist()}"
                f"{' ...' if len(missing) > 5 else ''}; use ids listed by the store"
            )
        other = rows.loc[rows["model_id"] != model_id, "id"].to_numpy()
        if len(other):
            raise StoreError(
                f"subtomograms {other[:5].tolist()} were embedded by another model than "
                f"{model_hash[:12]}; queries never mix vectors of different models"
            )
        dim = int(self._model_config(model_hash).get("embed_dim", 512))
        xb = np.empty((len(ids), dim), dtype=np.float32)
        position = {int(i): k for k, i in enumerate(rows["id"])}
        out_rows = np.array([position[int(i)] for i in ids], dtype=np.int64)
        vectors_of_rows = np.empty((len(rows), dim), dtype=np.float32)
        for path, group in rows.groupby("path").indices.items():
            _, part = read_shard_vectors(self.path / path, rows["row"].to_numpy()[group])
            vectors_of_rows[group] = part
        xb[:] = vectors_of_rows[out_rows]
        return ids, xb

    def refuse_if_damaged(self) -> None:
        """Refuse a store whose last full ``check`` found damaged files (until ``repair``).

        Raises:
            StoreDamagedError: ``damaged_files`` has rows; the message names them and the fix.
        """
        if self.allow_damaged or self._damage_clear:
            return
        with self.session() as session:
            paths = session.scalars(
                select(DamagedFileRecord.path).order_by(DamagedFileRecord.id)
            ).all()
        if not paths:
            self._damage_clear = True
            return
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        raise StoreDamagedError(
            f"the last `cosnet-index check` of the store at {self.path} found {len(paths)} "
            f"damaged file(s) ({', '.join(paths[:3])}{more}); it is not queried until repaired: "
            f"run `cosnet-index repair --store {self.path}`, then `cosnet-index check`"
        )

    def _model_config(self, model_hash: str) -> dict[str, Any]:
        with self.session() as session:
            record = session.scalars(
                select(ModelRecord).where(ModelRecord.weights_hash == model_hash)
            ).one()
            return dict(record.config)

    def _count_vectors(self, model_id: int) -> int:
        """Vectors of a model: the sum of its shards' rows (a shard row and its subtomogram rows
        are committed in one transaction, so this equals their count; ``check`` verifies it),
        read from the small shards table: ~1 ms per search at a million vectors, where counting
        the subtomogram rows took ~60 ms on SQLite."""
        with self.session() as session:
            return int(
                session.scalar(
                    select(func.coalesce(func.sum(ShardRecord.n_rows), 0)).where(
                        ShardRecord.model_id == model_id
                    )
                )
                or 0
            )

    def cpu_index(self, *, model_hash: str | None = None) -> Any:
        """The CPU FAISS index of a model, brought up to date with the catalog in memory.

        The file holds a committed prefix of the catalog (it is written after the rows); vectors
        committed since are added from the shards here (and persisted by the next writer).

        Raises:
            StoreDamagedError: the last ``check`` found damaged files (``repair`` first).
        """
        self.refuse_if_damaged()
        model_id, model_hash = self._model_id(model_hash)
        path = self.index_path(model_hash)
        n_db = self._count_vectors(model_id)
        stat = path.stat() if path.exists() else None
        key = (stat.st_mtime_ns, stat.st_size, n_db) if stat else (0, 0, n_db)
        cached = self._index_cache.get(model_hash)
        if cached is not None and cached[0] == key:
            return cached[1]
        dim = int(self._model_config(model_hash).get("embed_dim", 512))
        index = read_index(path) if stat else new_index(dim)
        self._file_ntotal[model_hash] = int(index.ntotal) if stat else -1
        if index.ntotal != n_db:
            index = self._catch_up(index, model_id, model_hash, dim)
        self._index_cache[model_hash] = (key, index)
        return index

    def _catch_up(self, index: Any, model_id: int, model_hash: str, dim: int) -> Any:
        have = index_ids(index)
        with self.session() as session:
            db_ids = np.asarray(
                session.scalars(
                    select(Subtomogram.id).where(Subtomogram.model_id == model_id)
                ).all(),
                dtype=np.int64,
            )
        if len(np.setdiff1d(have, db_ids)):
            logger.warning("vector index of %s holds ids the catalog lacks: rebuilding", model_hash)
            index = new_index(dim)
            have = np.zeros(0, np.int64)
        missing = np.setdiff1d(db_ids, have)
        if len(missing):
            ids, xb = self.load_vectors(missing, model_hash=model_hash)
            index.add_with_ids(xb, ids)
            logger.info("added %d committed vectors missing from the index file", len(ids))
        return index

    def index_file_ntotal(self, model_hash: str | None = None) -> int:
        """Vectors in the index file as last read by :meth:`cpu_index` (-1: no file)."""
        _, model_hash = self._model_id(model_hash)
        if model_hash not in self._file_ntotal:
            self.cpu_index(model_hash=model_hash)
        return self._file_ntotal[model_hash]

    def persist_index(self, index: Any, model_hash: str | None = None) -> None:
        """Replace a model's index file atomically with ``index`` (writer lock required), and
        record its checksum in ``index_files``.

        Raises:
            WriteError: the disk is full (the previous file is unchanged).
        """
        if not self._lock_depth:
            raise StoreError("internal error: the index file is written only under the writer lock")
        model_id, model_hash = self._model_id(model_hash)
        path = self.index_path(model_hash)

        def record_checksum(tmp: Path) -> None:  # committed before the rename (see the table)
            with self.session() as session:
                record = session.scalars(
                    select(IndexFileRecord).where(IndexFileRecord.model_id == model_id)
                ).first()
                if record is None:
                    record = IndexFileRecord(model_id=model_id)
                    session.add(record)
                else:
                    record.previous_checksum = record.checksum
                record.path = path.relative_to(self.path).as_posix()
                record.checksum = file_checksum(tmp)
                record.n_vectors = int(index.ntotal)
                record.written_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

        write_index(index, path, before_replace=record_checksum)
        self._file_ntotal[model_hash] = int(index.ntotal)
        self._index_cache.pop(model_hash, None)

    def vector_index(self, *, gpu: bool | None = None, model_hash: str | None = None) -> Any:
        """The FAISS index to search: the CPU index, or its GPU copy when a GPU exists.

        Args:
            gpu: force (True) or forbid (False) the GPU; default: use one when present.
        """
        index = self.cpu_index(model_hash=model_hash)
        if gpu is None:
            import faiss

            gpu = faiss.get_num_gpus() > 0
        if not gpu:
            return index
        cached = self._gpu_cache.get(id(index))
        if cached is None:
            self._gpu_cache.clear()
            cached = self._gpu_cache[id(index)] = (index, to_gpu(index))
        return cached[1]

    def search(
        self, xq: np.ndarray, k: int, *, gpu: bool | None = None, candidates: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``D, I``: L1 distances and subtomogram ids of the ``k`` nearest stored vectors.

        A compressed index (``reindex --index-type ivf-fp16|ivf-pq``) proposes ``candidates``
        per query (default: as recorded at ``reindex``), re-scored exactly
        (:func:`~cosnet_index.store.compressed.rescored_search`).

        Raises:
            InputError: malformed queries (see :func:`~cosnet_index.store.vectors.search_index`).
        """
        if int(k) > GPU_MAX_K:
            gpu = False
        cpu = self.cpu_index()
        if not _is_compressed(cpu):
            return search_index(self.vector_index(gpu=gpu), xq, k)
        from cosnet_index.store import compressed
        from cosnet_index.store.vectors import check_queries

        if candidates is None:
            candidates = self._recorded_candidates()
        xq = check_queries(xq, cpu.d, k)
        index = self.vector_index(gpu=gpu)
        return compressed.rescored_search(
            index, self.index_path(), self.load_vectors, xq, int(k), candidates
        )

    def _recorded_candidates(self) -> int:
        from cosnet_index.store.compressed import DEFAULT_CANDIDATES
        from cosnet_index.store.tables import VectorIndexRecord

        model_id, _ = self._model_id(None)
        with self.session() as session:
            record = session.scalars(
                select(VectorIndexRecord).where(VectorIndexRecord.model_id == model_id)
            ).first()
        params = dict(record.params) if record is not None else {}
        return int(params.get("candidates", DEFAULT_CANDIDATES))


def _is_compressed(index: Any) -> bool:
    """An L2 IVF index with scalar-quantised or PQ codes (``store/compressed.py``)."""
    import faiss

    inner = faiss.downcast_index(getattr(index, "index", index))
    return isinstance(inner, faiss.IndexIVFScalarQuantizer | faiss.IndexIVFPQ)
