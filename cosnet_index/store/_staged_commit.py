"""The Dask path's committer: staged tomograms become shards, catalog rows and index entries.

One writer-lock hold per tomogram (waiting for other writers): positions another writer stored
since planning are dropped, ids are allocated after the largest stored one, and each part of
``commit_every`` rows goes through :func:`~cosnet_index.store._committing._register_part`, the
single-process path's own catalog commit. See ``store/distributed.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cosnet_index.errors import CatalogConnectionError
from cosnet_index.files import TMP_MARK
from cosnet_index.geometry import position_keys
from cosnet_index.store._committing import (
    _free_shard_path,
    _register_part,
    next_subtomogram_id,
    remove_partial_files,
)
from cosnet_index.store._planning import _Job, _stored_positions
from cosnet_index.store.shards import ShardWriter
from cosnet_index.store.store import Store
from cosnet_index.store.tables import ShardRecord, TomogramRecord

logger = logging.getLogger("cosnet_index.store.distributed")


class _Committer:
    """Commits staged tomograms into the store, one writer-lock hold per tomogram."""

    def __init__(
        self, store: Store, edge: str, invert: bool, commit_every: int, lock_wait_s: float
    ) -> None:
        self.store, self.edge, self.invert = store, edge, invert
        self.commit_every, self.lock_wait_s = commit_every, lock_wait_s
        self.added = self.parts = self.stored_meanwhile = 0
        self._cleaned = False

    def commit(self, job: _Job, staged: Path) -> None:
        """Commit one tomogram's staged vectors (positions stored meanwhile are dropped)."""
        import pyarrow.parquet as pq
        from sqlalchemy import func, select

        store = self.store
        table = pq.read_table(staged)
        with store.write_lock(wait_s=self.lock_wait_s):
            if not self._cleaned:
                remove_partial_files(store)
                self._cleaned = True
            model_id, model_hash = store._model_id(store.model_hash)
            with store.session() as session:
                record = session.scalars(
                    select(TomogramRecord).where(TomogramRecord.name == job.tomogram.name)
                ).first()
                has_parts = record is not None and (
                    session.scalar(
                        select(func.count(ShardRecord.id)).where(
                            ShardRecord.tomogram_id == record.id, ShardRecord.model_id == model_id
                        )
                    )
                    or 0
                )
                next_id = next_subtomogram_id(session)
            keep = np.ones(len(job.xyz), bool)
            if has_parts:  # another writer stored some of these positions since planning
                assert record is not None
                stored = position_keys(_stored_positions(store, record.id, model_id))
                keep = ~np.isin(position_keys(job.xyz), stored)
                self.stored_meanwhile += int((~keep).sum())
            rows = np.flatnonzero(keep)
            index = store.cpu_index()
            dim = int(table.schema.field("vector").type.list_size)
            extra_names = table.schema.names[6:]
            shard_dir = store.shard_dir(model_hash)
            first = not has_parts
            for start in range(0, max(len(rows), 1 if first else 0), self.commit_every):
                part = rows[start : start + self.commit_every]
                ids = np.arange(next_id, next_id + len(part), dtype=np.int64)
                next_id += len(part)
                self._commit_part(job, table, part, ids, dim, extra_names, shard_dir, first)
                first = False
                if len(part):
                    index.add_with_ids(_vectors(table.column("vector").take(part), dim), ids)
                self.added += len(part)
                self.parts += 1
            store.persist_index(index, model_hash)
        for path in [staged, *staged.parent.glob(f".{staged.name}{TMP_MARK}*")]:
            path.unlink(missing_ok=True)  # retried tasks may have left temporary copies
        logger.info("committed %s: %d subtomograms", job.tomogram.name, len(rows))

    def _commit_part(
        self,
        job: _Job,
        table: Any,
        part: np.ndarray,
        ids: np.ndarray,
        dim: int,
        extra_names: list[str],
        shard_dir: Path,
        first: bool,
    ) -> None:
        import pyarrow as pa

        store = self.store
        model_id, _ = store._model_id(store.model_hash)
        rows = table.take(pa.array(part, type=pa.int64()))
        extra = rows.select(extra_names) if extra_names else None
        writer = ShardWriter(
            _free_shard_path(shard_dir, job.tomogram.name),
            dim,
            None if extra is None else extra.schema,
        )
        xyz = np.stack([rows.column(c).to_numpy() for c in ("x", "y", "z")], axis=1)
        try:
            if len(part):
                vectors = _vectors(rows.column("vector"), dim)
                writer.write(ids, xyz, rows.column("coordinate_row").to_numpy(), vectors, extra)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        try:
            _register_part(
                store,
                job,
                writer.final,
                ids,
                xyz,
                model_id=model_id,
                first=first,
                edge=self.edge,
                invert=self.invert,
                checksum=writer.checksum,
            )
        except CatalogConnectionError:
            raise  # outcome unknown: the next writer's remove_partial_files settles it
        except BaseException:
            writer.final.unlink(missing_ok=True)  # not committed: the shard must not stay
            raise


def _vectors(column: Any, dim: int) -> np.ndarray:
    """``(n, dim)`` float32 of a Parquet fixed-size-list column."""
    flat = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(-1, dim)
