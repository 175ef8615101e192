"""Parquet embedding shards: one file per (tomogram, model), written streaming and renamed.

Columns: ``id`` (int64, the FAISS id), ``x``, ``y``, ``z`` (float64, voxels of the tomogram),
``coordinate_row`` (int64, the row of the coordinate file), ``vector`` (fixed-size list of
float32, the model's storage vector), then the coordinate file's other columns as given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cosnet_index.errors import StoreError
from cosnet_index.files import atomic_replace, file_checksum, tmp_path_for, write_errors

__all__ = [
    "ShardWriter",
    "iter_shard_positions",
    "iter_shard_vectors",
    "read_shard_column",
    "read_shard_ids",
    "read_shard_vectors",
    "shard_num_rows",
]


class ShardWriter:
    """Stream batches into ``<final>.tmp-<pid>``; :meth:`commit` renames it to ``final``.

    A full disk or a failed file system raises :class:`~cosnet_index.errors.WriteError` (the
    temporary file is the only one touched). After :meth:`commit`, ``checksum`` is the file's
    :func:`~cosnet_index.files.file_checksum`.

    Args:
        final: the shard's path.
        dim: vector size.
        extra_schema: schema of the extra (coordinate-file) columns, or None.
    """

    def __init__(self, final: Path, dim: int, extra_schema: pa.Schema | None = None) -> None:
        self.final = final
        self.tmp = tmp_path_for(final)
        self.dim = dim
        fields = [
            pa.field("id", pa.int64()),
            pa.field("x", pa.float64()),
            pa.field("y", pa.float64()),
            pa.field("z", pa.float64()),
            pa.field("coordinate_row", pa.int64()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
        if extra_schema is not None:
            fields += [f for f in extra_schema if f.name not in {g.name for g in fields}]
        self.schema = pa.schema(fields)
        self.checksum: str | None = None
        self.n_rows = 0
        with write_errors(final, self._needed(0)):
            final.parent.mkdir(parents=True, exist_ok=True)
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, self.schema)

    def _needed(self, more_rows: int) -> int:
        """About the bytes of the file with ``more_rows`` more rows (uncompressed)."""
        return (self.n_rows + more_rows) * (4 * self.dim + 40) + 4096

    def write(
        self,
        ids: np.ndarray,
        xyz: np.ndarray,
        coordinate_row: np.ndarray,
        vectors: np.ndarray,
        extra: pa.Table | None = None,
    ) -> None:
        """Append ``n`` rows: ids ``(n,)``, xyz ``(n, 3)``, rows ``(n,)``, vectors ``(n, dim)``."""
        assert self._writer is not None, "shard already committed or aborted"
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        columns: dict[str, pa.Array] = {
            "id": pa.array(np.asarray(ids, dtype=np.int64)),
            "x": pa.array(xyz[:, 0].astype(np.float64)),
            "y": pa.array(xyz[:, 1].astype(np.float64)),
            "z": pa.array(xyz[:, 2].astype(np.float64)),
            "coordinate_row": pa.array(np.asarray(coordinate_row, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim),
        }
        if extra is not None:
            for name in self.schema.names[6:]:
                columns[name] = extra.column(name).cast(self.schema.field(name).type)
        with write_errors(self.final, self._needed(len(ids))):
            self._writer.write_table(pa.table(columns, schema=self.schema))
        self.n_rows += len(ids)

    def commit(self) -> None:
        """Close, checksum, fsync and rename into place."""
        assert self._writer is not None
        writer, self._writer = self._writer, None
        with write_errors(self.final, self._needed(0)):
            writer.close()
        self.checksum = file_checksum(self.tmp)
        atomic_replace(self.tmp, self.final)

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:  # e.g. the disk filled up: the file is dropped anyway
                pass
            finally:
                self._writer = None
        self.tmp.unlink(missing_ok=True)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"embedding shard {path} is missing or unreadable ({exc}); the store is damaged: "
            "run `cosnet-index check` to see what is affected"
        ) from None


def shard_num_rows(path: Path) -> int:
    """Rows of a shard, from its footer (no data read)."""
    return int(_open(path).metadata.num_rows)


def read_shard_ids(path: Path) -> np.ndarray:
    """The ``id`` column, ``(n,)`` int64."""
    table = _open(path).read(columns=["id"])
    return table.column("id").to_numpy().astype(np.int64, copy=False)


def read_shard_vectors(path: Path, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (n,) int64, vectors (n, dim) float32)`` of a shard, or of its ``rows`` in order."""
    table = _open(path).read(columns=["id", "vector"])
    if rows is not None:
        table = table.take(pa.array(np.asarray(rows, dtype=np.int64)))
    ids = table.column("id").to_numpy().astype(np.int64, copy=False)
    vector = table.column("vector").combine_chunks()
    dim = vector.type.list_size
    xb = vector.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return ids, xb.reshape(-1, dim)


def iter_shard_vectors(
    path: Path, batch_rows: int = 4096
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids (b,), vectors (b, dim))`` chunks of a shard, in file order (memory stays flat)."""
    for batch in _open(path).iter_batches(batch_size=batch_rows, columns=["id", "vector"]):
        ids = batch.column("id").to_numpy().astype(np.int64, copy=False)
        vector = batch.column("vector")
        dim = vector.type.list_size
        xb = vector.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        yield ids, xb.reshape(-1, dim)


def iter_shard_positions(
    path: Path, batch_rows: int = 65_536
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(ids (b,), xyz (b, 3) float64, vectors (b, dim))`` chunks of a shard, in file order."""
    for batch in _open(path).iter_batches(
        batch_size=batch_rows, columns=["id", "x", "y", "z", "vector"]
    ):
        ids = batch.column("id").to_numpy().astype(np.int64, copy=False)
        xyz = np.stack([batch.column(c).to_numpy() for c in ("x", "y", "z")], axis=1)
        vector = batch.column("vector")
        dim = vector.type.list_size
        xb = vector.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        yield ids, xyz.astype(np.float64, copy=False), xb.reshape(-1, dim)


def read_shard_column(path: Path, name: str) -> np.ndarray | None:
    """A column of a shard's extra fields as a NumPy array (None: the shard has no such column)."""
    file = _open(path)
    if name not in file.schema_arrow.names:
        return None
    return file.read(columns=[name]).column(name).to_numpy(zero_copy_only=False)
