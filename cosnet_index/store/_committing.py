"""Indexing, step 3: a part of a tomogram's vectors becomes durable (shard, rows, index).

Also :func:`remove_partial_files`, which every writer calls first to drop what a killed run
left behind.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cosnet_index.errors import CatalogConnectionError
from cosnet_index.store._engine import catalog_errors
from cosnet_index.store._files import TMP_MARK
from cosnet_index.store._planning import _Job
from cosnet_index.store.shards import ShardWriter
from cosnet_index.store.store import Store
from cosnet_index.store.tables import ShardRecord, Subtomogram, TomogramRecord

logger = logging.getLogger("cosnet_index.store.indexer")  # the messages index always logged

_INSERT_CHUNK = 2_000  # rows per INSERT: memory stays flat however many particles a tomogram has


def remove_partial_files(store: Store) -> list[Path]:
    """Delete what an interrupted writer left: temporary files and shards the catalog lacks.

    Call with the writer lock held. Returns the removed paths.
    """
    with store.session() as session:
        known = {store.path / p for p in session.scalars(select(ShardRecord.path)).all()}
    removed = []
    for folder in (store.path / "shards", store.path / "index"):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if not path.is_file():
                continue
            partial = TMP_MARK in path.name
            orphan = folder.name == "shards" and path.suffix == ".parquet" and path not in known
            if partial or orphan:
                path.unlink(missing_ok=True)
                removed.append(path)
                logger.warning("removed %s left by an interrupted run", path)
    return removed


def next_subtomogram_id(session: Session) -> int:
    """The first free subtomogram (FAISS) id: after every stored id and every removed one
    (``models.max_removed_subtomogram_id``), so that an id never names two particles."""
    from sqlalchemy import func

    from cosnet_index.store.tables import ModelRecord

    stored = session.scalar(select(func.max(Subtomogram.id))) or 0
    removed = session.scalar(select(func.max(ModelRecord.max_removed_subtomogram_id))) or 0
    return int(max(stored, removed)) + 1


def _open_part(job: _Job, shard_dir: Path, dim: int) -> None:
    """Open the writer of the job's next part."""
    job.part_ids = []
    job.writer = ShardWriter(
        _free_shard_path(shard_dir, job.tomogram.name),
        dim,
        None if job.extra is None else job.extra.schema,
    )


def _free_shard_path(shard_dir: Path, tomogram: str) -> Path:
    """``<safe name>.parquet``, or ``<safe name>-<k>.parquet`` when two names sanitise alike."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in tomogram)[:100] or "tomogram"
    path, k = shard_dir / f"{safe}.parquet", 1
    while path.exists():
        path, k = shard_dir / f"{safe}-{k}.parquet", k + 1
    return path


def _commit_part(store: Store, job: _Job, model_id: int, edge: str, invert: bool) -> Path:
    """Rename the open part into place, then commit its rows in one transaction; return it."""
    assert job.writer is not None
    writer = job.writer
    writer.commit()
    ids = np.concatenate(job.part_ids) if job.part_ids else np.zeros(0, np.int64)
    first = job.new_tomogram and job.parts == 0
    try:
        _register_part(
            store,
            job,
            writer.final,
            ids,
            job.xyz[job.part_start : job.part_start + len(ids)],
            model_id=model_id,
            first=first,
            edge=edge,
            invert=invert,
            checksum=writer.checksum,
        )
    except CatalogConnectionError:
        # the outcome of the commit is unknown: the next writer's remove_partial_files drops
        # the shard if its rows are not in the catalog, and keeps it if they are
        job.writer = None
        raise
    except BaseException:
        writer.final.unlink(missing_ok=True)  # not committed: the shard must not stay
        job.writer = None
        raise
    job.part_start += len(ids)
    job.part_ids = []
    job.parts += 1
    job.writer = None
    return writer.final


def _register_part(
    store: Store,
    job: _Job,
    final: Path,
    ids: np.ndarray,
    xyz: np.ndarray,
    *,
    model_id: int,
    first: bool,
    edge: str,
    invert: bool,
    checksum: str | None = None,
) -> None:
    """Commit one shard part's catalog rows in one transaction (the shard file is in place).

    Shared by the single-process path and the Dask committer (``store/distributed.py``):
    the tomogram row (made on its first part), the shard row, and ``ids`` ``(n,)`` at ``xyz``
    ``(n, 3)``. ``first``: the tomogram's first part of this model (its skip counts go on it).
    ``checksum``: the shard file's :func:`~cosnet_index.files.file_checksum` (recorded with it).
    Raises whatever the database raises; the caller removes ``final`` then.
    """
    relative = final.relative_to(store.path).as_posix()
    skipped = dict(job.skipped) if first else {}
    tomogram = job.tomogram
    with (
        catalog_errors(store.engine, store.path),
        Session(store.engine) as session,
        session.begin(),
    ):
        record = session.scalars(
            select(TomogramRecord).where(TomogramRecord.name == tomogram.name)
        ).first()
        if record is None:
            record = TomogramRecord(
                name=tomogram.name,
                path=str(tomogram.path),
                shape_z=tomogram.shape_zyx[0],
                shape_y=tomogram.shape_zyx[1],
                shape_x=tomogram.shape_zyx[2],
                voxel_size_angstrom=tomogram.voxel_size_angstrom,
                header_sha256=tomogram.header_sha256,
            )
            session.add(record)
        else:
            record.path = str(tomogram.path)
        if job.convention and (first or record.coordinate_convention is None):
            record.coordinate_convention = job.convention.get("convention")
            record.coordinate_pixel_size_angstrom = job.convention.get("pixel_size_angstrom")
            record.coordinate_optics = job.convention.get("optics")
        session.flush()
        shard = ShardRecord(
            tomogram_id=record.id,
            model_id=model_id,
            path=relative,
            n_rows=len(ids),
            n_skipped=sum(skipped.values()),
            skipped=skipped,
            edge=edge,
            resampled_from_angstrom=job.resampled_from,
            invert_contrast=invert,
            checksum=checksum,
        )
        session.add(shard)
        session.flush()
        for start in range(0, len(ids), _INSERT_CHUNK):
            stop = start + _INSERT_CHUNK
            session.execute(
                insert(Subtomogram),
                [
                    {
                        "id": int(i),
                        "tomogram_id": record.id,
                        "model_id": model_id,
                        "shard_id": shard.id,
                        "row": start + k,
                        "x": float(p[0]),
                        "y": float(p[1]),
                        "z": float(p[2]),
                    }
                    for k, (i, p) in enumerate(zip(ids[start:stop], xyz[start:stop], strict=True))
                ],
            )
