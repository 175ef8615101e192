"""``index``: embed every subtomogram of a tomogram collection once, atomically per tomogram.

Order of work for one run:

1. validate everything first (tomogram headers and voxels, the coordinate file, tomogram names,
   edge policy); a bad input raises before the store is touched;
2. take the writer lock, drop files an interrupted run left (temporary or uncommitted shards);
3. a reader thread cuts (and resamples) boxes from the memory-mapped tomograms while the main
   thread embeds them in batches and streams the vectors into the tomogram's shard;
4. per part (at most ``commit_every`` boxes of one tomogram, plus the rest of a batch): the
   shard part is renamed into place, then its catalog rows are committed in one transaction,
   then the vectors join the FAISS index, whose file is replaced atomically (at least every
   ``flush_interval_s``, at the end, and on an interrupt).

A particle is identified by its tomogram, model and position (rounded to 0.01 voxel,
:func:`~cosnet_index.geometry.position_keys`): a re-run embeds only positions the store does not
hold, so an interrupted run resumes, new picks of an indexed tomogram are added, and nothing is
ever stored twice. An interrupt loses at most the part being written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from cosnet_index.store._committing import (
    _commit_part,
    _open_part,
    next_subtomogram_id,
    remove_partial_files,
)
from cosnet_index.store._inputs import _checked_inputs
from cosnet_index.store._planning import _Job, _plan_jobs
from cosnet_index.store._reading import _batches
from cosnet_index.store._summary import IndexInterrupted, IndexSummary, run_summary
from cosnet_index.store.shards import iter_shard_vectors
from cosnet_index.store.store import Store
from cosnet_index.store.tables import TomogramRecord

__all__ = [
    "DEFAULT_COMMIT_EVERY",
    "IndexInterrupted",
    "IndexSummary",
    "index_tomograms",
    "remove_partial_files",
    "run_summary",
]

logger = logging.getLogger(__name__)


DEFAULT_COMMIT_EVERY = 4096
"""Boxes of a tomogram per committed part: an interrupt loses at most this many (plus a batch).
A part costs one small Parquet file and one transaction (~0.1 s per 4096 rows on SQLite)."""


def index_tomograms(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str] | None = None,
    *,
    candidates: pd.DataFrame | None = None,
    voxel_size_angstrom: float | None = None,
    batch_size: int = 64,
    invert_contrast: bool = False,
    edge: str = "skip",
    progress: bool = True,
    device: str | None = None,
    flush_interval_s: float = 60.0,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    contrast_check: str = "error",
    size_check: bool = True,
    replace: bool = False,
) -> IndexSummary:
    """Embed the subtomograms of ``tomogram_paths`` listed in ``coords_path`` into ``store``.

    Args:
        store: an open, writable store.
        tomogram_paths: MRC files; each is known by its name (file stem, see
            :func:`~cosnet_index.io.tomogram_name`), which the coordinate file must use.
        coords_path: STAR (RELION 3.1/4/5, Warp), CSV or Parquet coordinates.
        candidates: instead of ``coords_path``, a table ``tomogram, x, y, z`` (voxels of each
            tomogram) + any columns to store with each particle, e.g. picked candidates
            (``cosnet_index.pick``: ``pick_method``, ``pick_score``).
        voxel_size_angstrom: override the MRC headers' voxel size (required when they have none).
        batch_size: boxes per forward pass.
        invert_contrast: negate boxes (tomograms with bright molecules).
        edge: ``"skip"`` boxes that cross the volume edge, or ``"pad"`` them.
        progress: show a progress bar (subtomograms/s) on stderr.
        device: torch device (default: CUDA when available, else CPU).
        flush_interval_s: write the FAISS index file at least this often (and at the end).
        commit_every: boxes of a tomogram per committed part (an interrupt loses at most one
            part); new picks of an indexed tomogram become new parts.
        contrast_check: ``"error"``: molecules brighter than the background (and no
            ``invert_contrast``) stop the run before the store changes; ``"warn"``; ``"off"``
            (:func:`~cosnet_index.io.plausibility.check_plausibility`).
        size_check: warn when the apparent molecule size does not fit the voxel size.
        replace: re-index the given tomograms from scratch: those the store holds are removed
            (:func:`~cosnet_index.store.tomograms.remove_tomograms`, rows, shards and vectors)
            once every input is checked, then indexed with this run's settings (voxel size,
            contrast, box rule, coordinates). Without it, a stored tomogram must be indexed
            with the settings it was indexed with.

    Returns:
        An :class:`IndexSummary`.

    Raises:
        InputError: bad arguments; MrcError / CoordinateError: bad files (raised before the store
            changes); StoreError: name clashes with indexed tomograms, other settings than a
            stored tomogram's (without ``replace``), a class using a particle of a replaced
            tomogram; StoreLockedError: another writer is running; ContrastError: bright
            molecules (``--invert-contrast``).
        IndexInterrupted: Ctrl-C; what was committed stays and a re-run resumes.
    """
    import torch

    started = time.perf_counter()
    model_hash = store.model_hash
    inputs = _checked_inputs(
        store,
        tomogram_paths,
        coords_path,
        candidates,
        voxel_size_angstrom=voxel_size_angstrom,
        batch_size=batch_size,
        device=device,
        edge=edge,
        commit_every=commit_every,
        invert_contrast=invert_contrast,
        contrast_check=contrast_check,
        size_check=size_check,
    )
    model, box, model_voxel_angstrom = inputs.model, inputs.box, inputs.model_voxel_angstrom
    with store.write_lock():
        replaced = frozenset(t.name for t in inputs.tomograms) if replace else frozenset()
        jobs, skipped_tomograms, stored_done = _plan_jobs(
            store, inputs, edge=edge, replace=replaced
        )
        if replaced:
            from cosnet_index.store.tomograms import remove_tomograms

            with store.session() as session:
                stored = set(session.scalars(select(TomogramRecord.name)).all()) & replaced
            if stored:
                remove_tomograms(store, sorted(stored))
        for job in jobs:
            if job.resampled_from is not None:
                logger.warning(
                    "resampling %s from %.4g A to the model's %.4g A voxels: Fourier %s of "
                    "%d^3 regions to %d^3 boxes",
                    job.tomogram.name,
                    job.resampled_from,
                    model_voxel_angstrom,
                    "cropping" if job.source_box > box else "padding",
                    job.source_box,
                    box,
                )
        # the store changes from here on; everything above only read it
        remove_partial_files(store)
        indexed, parts = _run_jobs(
            store,
            jobs,
            model,
            box=box,
            batch_size=batch_size,
            edge=edge,
            invert_contrast=invert_contrast,
            progress=progress,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
            flush_interval_s=flush_interval_s,
            commit_every=commit_every,
        )
    return run_summary(
        model_hash,
        jobs,
        skipped_tomograms,
        indexed=indexed,
        parts=parts,
        stored_already=stored_done,
        model_voxel_angstrom=model_voxel_angstrom,
        started=started,
    )


def _run_jobs(
    store: Store,
    jobs: list[_Job],
    model: Any,
    *,
    box: int,
    batch_size: int,
    edge: str,
    invert_contrast: bool,
    progress: bool,
    device: str,
    flush_interval_s: float,
    commit_every: int,
) -> tuple[int, int]:
    """Embed, write and commit every job in parts; return (vectors added, parts committed).

    Raises:
        IndexInterrupted: on KeyboardInterrupt, after the index file caught up with the commits.
    """
    from tqdm.auto import tqdm

    model_id, model_hash = store._model_id(store.model_hash)
    index = store.cpu_index()
    index_dirty = index.ntotal != store.index_file_ntotal(model_hash)
    if not jobs:
        if index_dirty:  # an interrupted run committed rows after the last index write
            store.persist_index(index, model_hash)
        return 0, 0
    with store.session() as session:
        next_id = next_subtomogram_id(session)
    model.to(device)
    dim = int(model.config.embed_dim)
    shard_dir = store.shard_dir(model_hash)
    total = sum(len(job.xyz) for job in jobs)
    added = parts = 0
    last_flush = time.monotonic()
    bar = tqdm(total=total, unit="subtomo", desc="indexing", disable=not progress, smoothing=0.1)

    def commit(job: _Job) -> None:
        nonlocal added, parts, index_dirty, last_flush
        if job.writer is None:
            _open_part(job, shard_dir, dim)  # no box of this tomogram kept: an empty part
        n = len(np.concatenate(job.part_ids)) if job.part_ids else 0
        final = _commit_part(store, job, model_id, edge, invert_contrast)
        for ids, xb in iter_shard_vectors(final):  # read back in chunks
            index.add_with_ids(xb, ids)
            index_dirty = True
        added += n
        parts += 1
        bar.set_postfix_str(f"{job.tomogram.name}: {added} committed", refresh=False)
        if time.monotonic() - last_flush >= flush_interval_s:
            store.persist_index(index, model_hash)
            index_dirty = False
            last_flush = time.monotonic()

    batches = _batches(jobs, box, batch_size, edge, invert_contrast, pin=device.startswith("cuda"))
    try:
        for batch in batches:
            vectors = None
            if batch.boxes is not None:
                vectors = model.embed(batch.boxes.to(device, non_blocking=True), batch_size)
                vectors = vectors.numpy()  # (b, dim) float32
            offset = 0
            touched: list[int] = []
            for j, start, n in batch.segments:
                job = jobs[j]
                if job.writer is None:
                    _open_part(job, shard_dir, dim)
                assert job.writer is not None and vectors is not None
                ids = np.arange(next_id, next_id + n, dtype=np.int64)
                next_id += n
                job.part_ids.append(ids)
                job.writer.write(
                    ids,
                    job.xyz[start : start + n],
                    job.coordinate_row[start : start + n],
                    vectors[offset : offset + n],
                    None if job.extra is None else job.extra.slice(start, n),
                )
                offset += n
                touched.append(j)
            bar.update(offset)
            for j in dict.fromkeys([*touched, *batch.done]):  # in order, once each
                job = jobs[j]
                full = job.writer is not None and job.writer.n_rows >= commit_every
                last = j in batch.done and (job.writer is not None or job.parts == 0)
                if full or last:
                    commit(job)
    except KeyboardInterrupt:
        logger.warning(
            "interrupted: %d subtomograms committed by this run (%d parts) are kept", added, parts
        )
        raise IndexInterrupted(added, parts) from None
    finally:
        for job in jobs:
            if job.writer is not None:
                job.writer.abort()
        batches.close()  # stops and joins the reader thread
        bar.close()
        if index_dirty:
            store.persist_index(index, model_hash)
    return added, parts
