"""``index``: embed every subtomogram of a tomogram collection once, atomically per tomogram.

Order of work for one run:

1. validate everything first (tomogram headers and voxels, the coordinate file, tomogram names,
   edge policy); a bad input raises before the store is touched;
2. take the writer lock, drop files an interrupted run left (temporary or uncommitted shards);
3. a reader thread cuts (and resamples) boxes from the memory-mapped tomograms while the main
   thread embeds them in batches and streams the vectors into the tomogram's shard;
4. per tomogram: the shard is renamed into place, then its catalog rows are committed in one
   transaction (the shard row is the "done" marker), then the vectors join the FAISS index,
   whose file is replaced atomically (at least every ``flush_interval_s`` and at the end).

A re-run skips tomograms that have a shard for the store's model and never duplicates a vector.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cosnet_index.errors import CoordinateError, InputError, StoreError
from cosnet_index.geometry import RESAMPLE_TOLERANCE, resampled_box_size
from cosnet_index.io import (
    EDGE_POLICIES,
    TomogramInfo,
    check_finite,
    extract_boxes,
    open_tomogram,
    parse_coordinates,
    plan_boxes,
    read_coordinates,
)
from cosnet_index.store._files import TMP_MARK
from cosnet_index.store.shards import ShardWriter, iter_shard_vectors
from cosnet_index.store.store import Store
from cosnet_index.store.tables import ShardRecord, Subtomogram, TomogramRecord

__all__ = ["IndexSummary", "index_tomograms", "remove_partial_files"]

logger = logging.getLogger(__name__)

_INSERT_CHUNK = 2_000  # rows per INSERT: memory stays flat however many particles a tomogram has


@dataclass(frozen=True)
class IndexSummary:
    """What an ``index`` run did.

    Attributes:
        model_hash: the model every new vector records.
        tomograms_indexed: names of the tomograms indexed in this run.
        tomograms_skipped: name -> reason (already indexed, no coordinates).
        subtomograms_indexed: vectors added.
        subtomograms_skipped: reason (``outside``, ``edge``) -> count of coordinates without a box.
        resampled: name -> (tomogram voxel size, model voxel size) in angstrom.
        seconds: wall time of the run.
    """

    model_hash: str
    tomograms_indexed: tuple[str, ...] = ()
    tomograms_skipped: dict[str, str] = field(default_factory=dict)
    subtomograms_indexed: int = 0
    subtomograms_skipped: dict[str, int] = field(default_factory=dict)
    resampled: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Subtomograms per second over the whole run."""
        return self.subtomograms_indexed / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [
            f"indexed {self.subtomograms_indexed} subtomograms from "
            f"{len(self.tomograms_indexed)} tomograms in {self.seconds:.1f} s "
            f"({self.rate:.1f} subtomograms/s) with model {self.model_hash[:12]}"
        ]
        for reason, count in sorted(self.subtomograms_skipped.items()):
            what = {
                "outside": "centre outside the volume",
                "edge": "box crosses the volume edge (edge policy 'skip'; --edge pad keeps them)",
            }.get(reason, reason)
            out.append(f"skipped {count} coordinates: {what}")
        for name, reason in sorted(self.tomograms_skipped.items()):
            out.append(f"skipped tomogram {name}: {reason}")
        for name, (source, target) in sorted(self.resampled.items()):
            out.append(
                f"resampled {name} from {source:.4g} A to the model's {target:.4g} A voxels "
                "(Fourier cropping/padding)"
            )
        return out


@dataclass
class _Job:
    tomogram: TomogramInfo  # reopened by the reader thread: few files open at a time
    xyz: np.ndarray  # (n, 3) kept coordinates, sorted by z, y, x
    coordinate_row: np.ndarray  # (n,)
    extra: pa.Table | None
    source_box: int
    skipped: dict[str, int]
    resampled_from: float | None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    writer: ShardWriter | None = None


def _extra_table(frame: pd.DataFrame) -> pa.Table | None:
    if frame.shape[1] == 0:
        return None
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    columns = {}
    for name in frame.columns:
        try:
            columns[name] = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(frame[name].astype(str))
    return pa.table(columns)


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


def _open_shard(job: _Job, next_id: int, shard_dir: Path, dim: int) -> int:
    """Allocate the job's ids and open its shard writer; return the next free id."""
    job.ids = np.arange(next_id, next_id + len(job.xyz), dtype=np.int64)
    job.writer = ShardWriter(
        _free_shard_path(shard_dir, job.tomogram.name),
        dim,
        None if job.extra is None else job.extra.schema,
    )
    return next_id + len(job.xyz)


def _free_shard_path(shard_dir: Path, tomogram: str) -> Path:
    """``<safe name>.parquet``, or ``<safe name>-<k>.parquet`` when two names sanitise alike."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in tomogram)[:100] or "tomogram"
    path, k = shard_dir / f"{safe}.parquet", 1
    while path.exists():
        path, k = shard_dir / f"{safe}-{k}.parquet", k + 1
    return path


def _plan_jobs(
    store: Store,
    tomograms: list[TomogramInfo],
    coordinates: pd.DataFrame,
    *,
    box: int,
    model_voxel_angstrom: float,
    edge: str,
    source: str,
) -> tuple[list[_Job], dict[str, str]]:
    """Validate and plan every tomogram (no writes); return jobs and skipped tomograms."""
    model_hash = store.model_hash
    with store.session() as session:
        known = {r.name: r for r in session.scalars(select(TomogramRecord)).all()}
        done = set(
            session.scalars(
                select(TomogramRecord.name)
                .join(ShardRecord, ShardRecord.tomogram_id == TomogramRecord.id)
                .where(ShardRecord.model_id == store._model_id(model_hash)[0])
            ).all()
        )
    groups = coordinates.groupby("tomogram", sort=False).indices
    extra_columns = [c for c in coordinates.columns if c not in ("tomogram", "x", "y", "z")]
    jobs, skipped = [], {}
    for tomogram in tomograms:
        record = known.get(tomogram.name)
        if record is not None and record.header_sha256 != tomogram.header_sha256:
            raise StoreError(
                f"the store already holds a tomogram named {tomogram.name!r} from another file "
                f"({record.path}); rename one of them (names must be unique in a store)"
            )
        if record is not None and abs(record.voxel_size_angstrom - tomogram.voxel_size_angstrom) > (
            1e-6 * record.voxel_size_angstrom
        ):
            raise StoreError(
                f"tomogram {tomogram.name!r} was indexed at {record.voxel_size_angstrom} A voxels, "
                f"not {tomogram.voxel_size_angstrom}; use the same --voxel-size as before"
            )
        if tomogram.name in done:
            skipped[tomogram.name] = "already indexed with this model"
            continue
        rows = groups.get(tomogram.name)
        if rows is None or len(rows) == 0:
            skipped[tomogram.name] = f"no coordinates in {source}"
            continue
        xyz = coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[rows]
        resampled_from = None
        source_box = box
        ratio = tomogram.voxel_size_angstrom / model_voxel_angstrom
        if abs(ratio - 1.0) > RESAMPLE_TOLERANCE:
            resampled_from = tomogram.voxel_size_angstrom
            source_box = resampled_box_size(box, tomogram.voxel_size_angstrom, model_voxel_angstrom)
        plan = plan_boxes(tomogram.shape_zyx, xyz, source_box, edge)
        if not plan.keep.any() and set(plan.skipped()) == {"outside"}:
            raise CoordinateError(
                f"all {len(rows)} coordinates of tomogram {tomogram.name!r} lie outside its volume "
                f"(x, y, z up to {tomogram.shape_zyx[::-1]} voxels); are they in voxels of this "
                "tomogram (not angstrom, not another binning)?"
            )
        with tomogram.open() as opened:
            check_finite(opened)
        kept = rows[plan.keep]
        order = np.lexsort(xyz[plan.keep].T)  # last key first: by z, then y, then x (mmap)
        kept = kept[order]
        extra = _extra_table(coordinates.iloc[kept][extra_columns].reset_index(drop=True))
        jobs.append(
            _Job(
                tomogram=tomogram,
                xyz=coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[kept],
                coordinate_row=coordinates.index.to_numpy(dtype=np.int64)[kept],  # the file's rows
                extra=extra,
                source_box=source_box,
                skipped=plan.skipped(),
                resampled_from=resampled_from,
            )
        )
    return jobs, skipped


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


@dataclass
class _Batch:
    """Boxes of one forward pass, possibly from several tomograms (sparse tomograms fill it).

    ``segments``: ``(job, start, n)`` slices of the boxes, in order; ``done``: jobs whose last
    box is in this batch (or earlier), to commit once the batch is written.
    """

    segments: list[tuple[int, int, int]]
    boxes: Any  # (b, box, box, box) torch tensor, or None for a batch without boxes
    done: list[int]


def _read_boxes(
    jobs: list[_Job],
    box: int,
    batch_size: int,
    edge: str,
    invert_contrast: bool,
    pin: bool,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    """Reader thread: full :class:`_Batch` es across tomograms, then None (or an exception)."""
    import torch

    parts: list[np.ndarray] = []
    segments: list[tuple[int, int, int]] = []
    done: list[int] = []

    def emit() -> bool:
        boxes = None
        if parts:
            boxes = torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])
            if pin:
                boxes = boxes.pin_memory()
        ok = _put(out, _Batch(list(segments), boxes, list(done)), stop)
        parts.clear()
        segments.clear()
        done.clear()
        return ok

    try:
        for j, job in enumerate(jobs):
            with job.tomogram.open() as tomogram:
                start = 0
                while start < len(job.xyz):
                    n = min(batch_size - sum(s[2] for s in segments), len(job.xyz) - start)
                    boxes, plan = extract_boxes(
                        tomogram.data,
                        job.xyz[start : start + n],
                        box,
                        source_box=job.source_box,
                        edge=edge,
                        invert_contrast=invert_contrast,
                    )
                    assert plan.keep.all()
                    parts.append(boxes)  # (n, box, box, box)
                    segments.append((j, start, n))
                    start += n
                    if sum(s[2] for s in segments) >= batch_size and not emit():
                        return
            done.append(j)
        if (segments or done) and not emit():
            return
        _put(out, None, stop)
    except BaseException as exc:  # handed to the main thread, which re-raises it
        _put(out, exc, stop)


def _batches(
    jobs: list[_Job], box: int, batch_size: int, edge: str, invert_contrast: bool, pin: bool
) -> Iterator[_Batch]:
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_boxes,
        args=(jobs, box, batch_size, edge, invert_contrast, pin, q, stop),
        name="cosnet-index-reader",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _commit_job(store: Store, job: _Job, model_id: int, edge: str, invert: bool) -> None:
    """Rename the shard into place, then commit the tomogram's rows in one transaction."""
    assert job.writer is not None
    job.writer.commit()
    relative = job.writer.final.relative_to(store.path).as_posix()
    tomogram = job.tomogram
    try:
        with Session(store.engine) as session, session.begin():
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
            session.flush()
            shard = ShardRecord(
                tomogram_id=record.id,
                model_id=model_id,
                path=relative,
                n_rows=len(job.ids),
                n_skipped=sum(job.skipped.values()),
                skipped=dict(job.skipped),
                edge=edge,
                resampled_from_angstrom=job.resampled_from,
                invert_contrast=invert,
            )
            session.add(shard)
            session.flush()
            for start in range(0, len(job.ids), _INSERT_CHUNK):
                stop = start + _INSERT_CHUNK
                xyz = job.xyz[start:stop]
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
                        for k, (i, p) in enumerate(zip(job.ids[start:stop], xyz, strict=True))
                    ],
                )
    except BaseException:
        job.writer.final.unlink(missing_ok=True)  # not committed: the shard must not stay
        raise


def index_tomograms(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str],
    *,
    voxel_size_angstrom: float | None = None,
    batch_size: int = 64,
    invert_contrast: bool = False,
    edge: str = "skip",
    progress: bool = True,
    device: str | None = None,
    flush_interval_s: float = 60.0,
) -> IndexSummary:
    """Embed the subtomograms of ``tomogram_paths`` listed in ``coords_path`` into ``store``.

    Args:
        store: an open, writable store.
        tomogram_paths: MRC files; each is known by its name (file stem, see
            :func:`~cosnet_index.io.tomogram_name`), which the coordinate file must use.
        coords_path: STAR (RELION 3.1/4/5, Warp), CSV or Parquet coordinates.
        voxel_size_angstrom: override the MRC headers' voxel size (required when they have none).
        batch_size: boxes per forward pass.
        invert_contrast: negate boxes (tomograms with bright molecules).
        edge: ``"skip"`` boxes that cross the volume edge, or ``"pad"`` them.
        progress: show a progress bar (subtomograms/s) on stderr.
        device: torch device (default: CUDA when available, else CPU).
        flush_interval_s: write the FAISS index file at least this often (and at the end).

    Returns:
        An :class:`IndexSummary`.

    Raises:
        InputError: bad arguments; MrcError / CoordinateError: bad files (raised before the store
            changes); StoreError: name clashes with indexed tomograms; StoreLockedError: another
            writer is running.
    """
    import torch

    started = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if device is not None:
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise InputError(
                f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N"
            ) from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if edge not in EDGE_POLICIES:
        raise InputError(f"--edge must be one of {', '.join(EDGE_POLICIES)}, got {edge!r}")
    if not tomogram_paths:
        raise InputError("give at least one tomogram (MRC file) to index")
    model_hash = store.model_hash
    tomograms: list[TomogramInfo] = []
    for path in tomogram_paths:
        with open_tomogram(path, voxel_size_angstrom=voxel_size_angstrom) as tomogram:
            tomograms.append(tomogram.info())
    names = [t.name for t in tomograms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(
            f"several tomograms are named {duplicates}: names (file stems) must be unique"
        )
    parsed = parse_coordinates(coords_path)
    coordinates = read_coordinates(parsed, tomograms={t.name: t for t in tomograms})
    model = store.model()
    box = int(model.config.box)
    model_voxel_angstrom = float(model.config.voxel_size_nm) * 10.0
    with store.write_lock():
        jobs, skipped_tomograms = _plan_jobs(
            store,
            tomograms,
            coordinates,
            box=box,
            model_voxel_angstrom=model_voxel_angstrom,
            edge=edge,
            source=str(coords_path),
        )
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
        indexed = _run_jobs(
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
        )
    summary_skipped = {}
    for job in jobs:
        for reason, count in job.skipped.items():
            summary_skipped[reason] = summary_skipped.get(reason, 0) + count
    summary = IndexSummary(
        model_hash=model_hash,
        tomograms_indexed=tuple(job.tomogram.name for job in jobs),
        tomograms_skipped=skipped_tomograms,
        subtomograms_indexed=indexed,
        subtomograms_skipped=summary_skipped,
        resampled={
            job.tomogram.name: (job.resampled_from, model_voxel_angstrom)
            for job in jobs
            if job.resampled_from is not None
        },
        seconds=time.perf_counter() - started,
    )
    for line in summary.lines():
        logger.info(line)
    return summary


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
) -> int:
    """Embed, write and commit every job; return the number of vectors added."""
    from tqdm.auto import tqdm

    model_id, model_hash = store._model_id(store.model_hash)
    index = store.cpu_index()
    index_dirty = index.ntotal != store.index_file_ntotal(model_hash)
    if not jobs:
        if index_dirty:  # an interrupted run committed rows after the last index write
            store.persist_index(index, model_hash)
        return 0
    with store.session() as session:
        next_id = int(session.scalar(select(func.max(Subtomogram.id))) or 0) + 1
    model.to(device)
    dim = int(model.config.embed_dim)
    shard_dir = store.shard_dir(model_hash)
    total = sum(len(job.xyz) for job in jobs)
    added = 0
    last_flush = time.monotonic()
    bar = tqdm(total=total, unit="subtomo", desc="indexing", disable=not progress, smoothing=0.1)
    batches = _batches(jobs, box, batch_size, edge, invert_contrast, pin=device.startswith("cuda"))
    try:
        for batch in batches:
            vectors = None
            if batch.boxes is not None:
                vectors = model.embed(batch.boxes.to(device, non_blocking=True), batch_size)
                vectors = vectors.numpy()  # (b, dim) float32
            offset = 0
            for j, start, n in batch.segments:
                job = jobs[j]
                if job.writer is None:
                    next_id = _open_shard(job, next_id, shard_dir, dim)
                assert vectors is not None
                job.writer.write(
                    job.ids[start : start + n],
                    job.xyz[start : start + n],
                    job.coordinate_row[start : start + n],
                    vectors[offset : offset + n],
                    None if job.extra is None else job.extra.slice(start, n),
                )
                offset += n
            bar.update(offset)
            for j in batch.done:
                job = jobs[j]
                if job.writer is None:  # no box of this tomogram was kept: an empty shard
                    next_id = _open_shard(job, next_id, shard_dir, dim)
                assert job.writer is not None
                _commit_job(store, job, model_id, edge, invert_contrast)
                for ids, xb in iter_shard_vectors(job.writer.final):  # read back in chunks
                    index.add_with_ids(xb, ids)
                    index_dirty = True
                added += len(job.ids)
                job.writer = None
                if time.monotonic() - last_flush >= flush_interval_s:
                    store.persist_index(index, model_hash)
                    index_dirty = False
                    last_flush = time.monotonic()
    except BaseException:
        for job in jobs:
            if job.writer is not None:
                job.writer.abort()
        raise
    finally:
        batches.close()  # stops and joins the reader thread
        bar.close()
        if index_dirty:
            store.persist_index(index, model_hash)
    return added
