"""``repair``: restore what ``check`` found damaged, from the files the store was made from.

Each damaged file is rebuilt from what it was derived from, never guessed:

- a **model file** (``models/<hash16>.pt``) is copied again from the checkpoint ``init`` copied
  it from, when that file still has the recorded checksum (else the user must copy it back);
- a **shard** (missing, unreadable, or with another checksum than the one committed with its
  rows) is embedded again: exactly its subtomograms, by the catalog's ids, rows and positions,
  with the boxes cut as they were indexed (:func:`~cosnet_index.store.boxes.read_indexed_boxes`)
  from the tomogram at its recorded path (or one given by name); the ``coordinate_row`` and the
  coordinate file's columns are kept from the damaged file where they can still be read. The new
  file replaces the old one atomically and its checksum is recorded; catalog rows do not change;
- the **FAISS file** is rebuilt from the shards (``reindex``, with the recorded kind and
  parameters), also after any shard was embedded again.

Then files without a checksum yet (stores made before schema revision 0006) get one when the
store passes ``check``, and the record of damage is cleared, so that queries run again.
``tests/test_checksums.py`` flips a byte in each kind of file and repairs it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from cosnet_index.errors import MrcError, StoreError
from cosnet_index.files import atomic_write, file_checksum
from cosnet_index.store.checking import (
    CheckReport,
    _damage_allowed,
    _forget_damage,
    check_store,
    record_damage,
)
from cosnet_index.store.maintenance import reindex, vector_index_record
from cosnet_index.store.store import Store
from cosnet_index.store.tables import (
    IndexFileRecord,
    ModelRecord,
    ShardRecord,
    Subtomogram,
    TomogramRecord,
)

__all__ = ["RepairSummary", "repair_store"]

logger = logging.getLogger(__name__)

_CHUNK = 256  # boxes cut and embedded at a time (memory stays flat)


@dataclass(frozen=True)
class RepairSummary:
    """What :func:`repair_store` did, and the ``check`` after it.

    Attributes:
        models_restored: model files copied again from their source checkpoint.
        shards_reembedded: shard files embedded again (paths relative to the store).
        tomograms: the tomograms those shards belong to.
        vectors_reembedded: vectors embedded again.
        index_rebuilt: the FAISS file was rebuilt from the shards.
        checksums_recorded: files that had no checksum and got one.
        report: ``check`` after the repair.
    """

    models_restored: tuple[str, ...]
    shards_reembedded: tuple[str, ...]
    tomograms: tuple[str, ...]
    vectors_reembedded: int
    index_rebuilt: bool
    checksums_recorded: int
    report: CheckReport

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [f"restored model file {p} from its source checkpoint" for p in self.models_restored]
        if self.shards_reembedded:
            out.append(
                f"embedded {self.vectors_reembedded} vectors again into "
                f"{len(self.shards_reembedded)} shards (tomograms {', '.join(self.tomograms)})"
            )
        if self.index_rebuilt:
            out.append("rebuilt the vector index from the shards")
        if self.checksums_recorded:
            out.append(f"recorded the checksums of {self.checksums_recorded} files")
        if not (self.models_restored or self.shards_reembedded or self.index_rebuilt):
            out.append("nothing was damaged")
        return out


def repair_store(
    store: Store,
    *,
    tomogram_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> RepairSummary:
    """Check every file (checksums included), rebuild what is damaged, check again.

    Args:
        store: an open, writable store.
        tomogram_paths: tomogram name -> MRC file, for tomograms that moved since they were
            indexed (default: the recorded paths).
        batch_size: boxes per forward pass when shards are embedded again.
        device: torch device (default: CUDA when available, else CPU).

    Returns:
        A :class:`RepairSummary`; its ``report`` is the ``check`` after the repair.

    Raises:
        StoreError: a model file whose source checkpoint changed or is gone (the message says
            which file to copy back), or a damaged shard of a model that is not the store's.
        MrcError: a tomogram needed to embed a shard again is missing or unreadable.
        StoreLockedError: another writer is running.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tomogram_paths = dict(tomogram_paths or {})
    with store.write_lock(), _damage_allowed(store):
        from cosnet_index.store.indexer import remove_partial_files

        remove_partial_files(store)
        before = check_store(store)
        kinds: dict[str, list[str]] = {"model": [], "shard": [], "index": []}
        for damage in before.damaged:
            kinds[damage.kind].append(damage.path)
        for path in kinds["model"]:
            _restore_model(store, path)
        repaired, tomograms, vectors = [], [], 0
        for path in kinds["shard"]:
            name, n = _reembed_shard(store, path, tomogram_paths, batch_size, device)
            repaired.append(path)
            tomograms.append(name)
            vectors += n
        _forget_damage(store, kinds["model"] + kinds["shard"])
        rebuild = bool(kinds["index"] or repaired)
        if rebuild:
            recorded = vector_index_record(store) or {"kind": "flat", "params": {}}
            params = recorded["params"]
            reindex(
                store,
                index_type=recorded["kind"],
                nlist=params.get("nlist"),
                nprobe=params.get("nprobe"),
                pq_m=params.get("m"),
                candidates=params.get("candidates"),
            )
            _forget_damage(store, kinds["index"])
        report = check_store(store)
        recorded_n = _record_missing_checksums(store) if report.ok else 0
        if recorded_n:
            report = check_store(store)
        record_damage(store, report)
    return RepairSummary(
        models_restored=tuple(kinds["model"]),
        shards_reembedded=tuple(repaired),
        tomograms=tuple(dict.fromkeys(tomograms)),
        vectors_reembedded=vectors,
        index_rebuilt=rebuild,
        checksums_recorded=recorded_n,
        report=report,
    )


def _restore_model(store: Store, relative: str) -> None:
    """Copy a model file again from the checkpoint ``init`` copied it from."""
    with store.session() as session:
        record = session.scalars(
            select(ModelRecord).where(ModelRecord.checkpoint == relative)
        ).one()
    source, target = Path(record.source_path), store.path / relative
    fix = (
        f"copy the original checkpoint (weights hash {record.weights_hash[:12]}) to {target}, "
        "then run `cosnet-index check`"
    )
    if not source.is_file():
        raise StoreError(
            f"the model file {relative} is damaged and its source {source} is gone; {fix}"
        )
    if record.checksum is not None:
        same = file_checksum(source) == record.checksum
    else:  # made before checksums: the weights hash decides
        from cosnet_index.model import load_checkpoint

        try:
            same = load_checkpoint(source)[1].hash == record.weights_hash
        except Exception:
            same = False
    if not same:
        raise StoreError(
            f"the model file {relative} is damaged and its source {source} has changed since "
            f"`init`; {fix}"
        )
    with atomic_write(target, needed_bytes=source.stat().st_size) as tmp:
        shutil.copyfile(source, tmp)
    with store.session() as session:
        session.get(ModelRecord, record.id).checksum = file_checksum(target)  # type: ignore[union-attr]
    store._model = None
    logger.warning("restored %s from %s", relative, source)


def _reembed_shard(
    store: Store,
    relative: str,
    tomogram_paths: Mapping[str, str | os.PathLike[str]],
    batch_size: int,
    device: str,
) -> tuple[str, int]:
    """Embed a shard's subtomograms again into a new file at its path; (tomogram, vectors)."""
    import torch

    from cosnet_index.store.boxes import read_indexed_boxes
    from cosnet_index.store.shards import ShardWriter

    model_id, _ = store._model_id(None)
    with store.session() as session:
        shard = session.scalars(select(ShardRecord).where(ShardRecord.path == relative)).one()
        tomogram = session.get(TomogramRecord, shard.tomogram_id)
        assert tomogram is not None
        rows = session.execute(
            select(Subtomogram.id, Subtomogram.row, Subtomogram.x, Subtomogram.y, Subtomogram.z)
            .where(Subtomogram.shard_id == shard.id)
            .order_by(Subtomogram.row)
        ).all()
    if shard.model_id != model_id:
        raise StoreError(
            f"the damaged shard {relative} holds vectors of another model than the store's; "
            "it cannot be embedded again here: index its tomogram into a store of that model"
        )
    frame = pd.DataFrame(rows, columns=["id", "row", "x", "y", "z"])
    frame["tomogram"] = tomogram.name
    frame["tomogram_path"] = str(tomogram_paths.get(tomogram.name, tomogram.path))
    frame["voxel_size_angstrom"] = float(tomogram.voxel_size_angstrom)
    frame["shard"] = relative
    final = store.path / relative
    coordinate_row, extra = _salvage(final, len(frame))
    model = store.model().to(device)
    dim = int(model.config.embed_dim)
    writer = ShardWriter(final, dim, None if extra is None else extra.schema)
    try:
        for start in range(0, len(frame), _CHUNK):
            part = frame.iloc[start : start + _CHUNK]
            try:
                boxes = torch.from_numpy(read_indexed_boxes(store, part))  # (b, box, box, box)
            except MrcError as exc:
                raise MrcError(
                    f"{exc}; the damaged shard {relative} is embedded again from tomogram "
                    f"{tomogram.name}: give its file with `cosnet-index repair --tomogram PATH`"
                ) from None
            xb = model.embed(boxes.to(device), batch_size).numpy()  # (b, dim)
            writer.write(
                part["id"].to_numpy(np.int64),
                part[["x", "y", "z"]].to_numpy(np.float64),
                coordinate_row[start : start + len(part)],
                xb,
                None if extra is None else extra.slice(start, len(part)),
            )
        writer.commit()  # replaces the damaged file atomically
    except BaseException:
        writer.abort()
        raise
    with store.session() as session:
        session.get(ShardRecord, shard.id).checksum = writer.checksum  # type: ignore[union-attr]
    logger.warning("embedded %d vectors of %s again into %s", len(frame), tomogram.name, relative)
    return tomogram.name, len(frame)


def _salvage(path: Path, n_rows: int) -> tuple[np.ndarray, Any]:
    """``(coordinate_row (n,), extra columns or None)`` of a damaged shard, where readable."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        extra_names = schema.names[6:]
        table = pq.read_table(path, columns=["coordinate_row", *extra_names])
        if table.num_rows != n_rows:
            raise ValueError(f"{table.num_rows} rows, the catalog {n_rows}")
        rows = table.column("coordinate_row").to_numpy().astype(np.int64)
        return rows, table.select(extra_names) if extra_names else None
    except Exception as exc:  # the damage reached these columns too
        logger.warning(
            "the coordinate rows and columns of %s are lost (%s); its vectors and positions "
            "are restored",
            path,
            exc,
        )
        return np.full(n_rows, -1, np.int64), None


def _record_missing_checksums(store: Store) -> int:
    """Record the checksum of every file that has none (the store just passed ``check``)."""
    n = 0
    with store.session() as session:
        for shard in session.scalars(select(ShardRecord).where(ShardRecord.checksum.is_(None))):
            shard.checksum = file_checksum(store.path / shard.path)
            n += 1
        for model in session.scalars(select(ModelRecord).where(ModelRecord.checksum.is_(None))):
            if (store.path / model.checkpoint).is_file():
                model.checksum = file_checksum(store.path / model.checkpoint)
                n += 1
        recorded = set(session.scalars(select(IndexFileRecord.model_id)).all())
        for model in session.scalars(select(ModelRecord)).all():
            path = store.index_path(model.weights_hash)
            if model.id in recorded or not path.is_file():
                continue
            from cosnet_index.store.vectors import read_index

            session.add(
                IndexFileRecord(
                    model_id=model.id,
                    path=path.relative_to(store.path).as_posix(),
                    checksum=file_checksum(path),
                    n_vectors=int(read_index(path).ntotal),
                )
            )
            n += 1
    return n
