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

from cosnet_index.errors import CoordinateError, InputError, MrcError, StoreError
from cosnet_index.geometry import RESAMPLE_TOLERANCE, position_keys, source_box_side
from cosnet_index.io import (
    EDGE_POLICIES,
    TomogramInfo,
    check_finite,
    coordinate_conventions,
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

__all__ = [
    "DEFAULT_COMMIT_EVERY",
    "IndexInterrupted",
    "IndexSummary",
    "index_tomograms",
    "remove_partial_files",
]

logger = logging.getLogger(__name__)

_INSERT_CHUNK = 2_000  # rows per INSERT: memory stays flat however many particles a tomogram has

DEFAULT_COMMIT_EVERY = 4096
"""Boxes of a tomogram per committed part: an interrupt loses at most this many (plus a batch).
A part costs one small Parquet file and one transaction (~0.1 s per 4096 rows on SQLite)."""


class IndexInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGINT) during ``index``: what was committed stays; re-running resumes.

    Attributes:
        committed: subtomograms committed by this run before the interrupt.
        parts: shard parts committed by this run.
    """

    def __init__(self, committed: int, parts: int) -> None:
        self.committed = committed
        self.parts = parts
        super().__init__(
            f"interrupted: the {committed} subtomograms committed by this run ({parts} parts) "
            "are kept and the part being written was dropped; run the same command again to "
            "resume (it embeds only what the store does not hold)"
        )


@dataclass(frozen=True)
class IndexSummary:
    """What an ``index`` run did.

    Attributes:
        model_hash: the model every new vector records.
        tomograms_indexed: names of the tomograms indexed in this run.
        tomograms_skipped: name -> reason (nothing new to index, no coordinates).
        subtomograms_indexed: vectors added.
        subtomograms_stored_already: coordinates whose position the store already held (not
            embedded again).
        parts: shard parts committed.
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
    subtomograms_stored_already: int = 0
    parts: int = 0

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
        if self.subtomograms_stored_already:
            out.append(
                f"skipped {self.subtomograms_stored_already} coordinates already stored "
                "(same tomogram and position: not embedded again)"
            )
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
    new_tomogram: bool = True  # no part of it is stored yet (its skip counts go on its 1st part)
    stored_already: int = 0
    convention: dict[str, Any] = field(default_factory=dict)
    part_start: int = 0  # first row of xyz in the open part
    part_ids: list[np.ndarray] = field(default_factory=list)
    parts: int = 0
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


def _plan_jobs(
    store: Store,
    tomograms: list[TomogramInfo],
    coordinates: pd.DataFrame,
    *,
    box: int,
    model_voxel_angstrom: float,
    edge: str,
    source: str,
    conventions: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[_Job], dict[str, str], int]:
    """Validate and plan every tomogram (no writes).

    Returns:
        ``(jobs, skipped tomograms, coordinates of skipped tomograms already stored)``.
    """
    model_id = store._model_id(store.model_hash)[0]
    with store.session() as session:
        known = {r.name: r for r in session.scalars(select(TomogramRecord)).all()}
        with_parts = set(
            session.scalars(
                select(ShardRecord.tomogram_id).where(ShardRecord.model_id == model_id)
            ).all()
        )
    groups = coordinates.groupby("tomogram", sort=False).indices
    extra_columns = [c for c in coordinates.columns if c not in ("tomogram", "x", "y", "z")]
    jobs, skipped, stored_done = [], {}, 0
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
        rows = groups.get(tomogram.name)
        if rows is None or len(rows) == 0:
            skipped[tomogram.name] = f"no coordinates in {source}"
            continue
        xyz = coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[rows]
        resampled_from = None
        source_box = source_box_side(box, tomogram.voxel_size_angstrom, model_voxel_angstrom)
        if abs(tomogram.voxel_size_angstrom / model_voxel_angstrom - 1.0) > RESAMPLE_TOLERANCE:
            resampled_from = tomogram.voxel_size_angstrom
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
        # identity: (tomogram, model, position to 0.01 voxel); stored or repeated ones are dropped
        keys = position_keys(coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[kept])
        _, first = np.unique(keys, return_index=True)
        fresh = np.zeros(len(kept), bool)
        fresh[first] = True
        stored = 0
        new_tomogram = record is None or record.id not in with_parts
        if not new_tomogram:
            existing = position_keys(_stored_positions(store, record.id, model_id))
            fresh &= ~np.isin(keys, existing)
            stored = int(len(kept) - fresh.sum())
            if not fresh.any():
                stored_done += stored
                skipped[tomogram.name] = (
                    f"already indexed with this model ({stored} of its coordinates stored, "
                    "none new)"
                )
                continue
        kept = kept[fresh]
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
                new_tomogram=new_tomogram,
                stored_already=stored,
                convention=(conventions or {}).get(tomogram.name, {}),
            )
        )
    return jobs, skipped, stored_done


def _stored_positions(store: Store, tomogram_id: int, model_id: int) -> np.ndarray:
    """``(n, 3)`` x, y, z of the particles stored for a tomogram and model."""
    with store.session() as session:
        rows = session.execute(
            select(Subtomogram.x, Subtomogram.y, Subtomogram.z).where(
                Subtomogram.tomogram_id == tomogram_id, Subtomogram.model_id == model_id
            )
        ).all()
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


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
                    if not plan.keep.all():  # planned on this file: it changed since
                        raise MrcError(
                            f"{tomogram.path} changed while it was being indexed (a box planned "
                            "inside it is not); index it again once it is complete"
                        )
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


def _commit_part(store: Store, job: _Job, model_id: int, edge: str, invert: bool) -> Path:
    """Rename the open part into place, then commit its rows in one transaction; return it."""
    assert job.writer is not None
    writer = job.writer
    writer.commit()
    relative = writer.final.relative_to(store.path).as_posix()
    ids = np.concatenate(job.part_ids) if job.part_ids else np.zeros(0, np.int64)
    xyz_part = job.xyz[job.part_start : job.part_start + len(ids)]
    first = job.new_tomogram and job.parts == 0
    skipped = dict(job.skipped) if first else {}
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
                        for k, (i, p) in enumerate(
                            zip(ids[start:stop], xyz_part[start:stop], strict=True)
                        )
                    ],
                )
    except BaseException:
        writer.final.unlink(missing_ok=True)  # not committed: the shard must not stay
        job.writer = None
        raise
    job.part_start += len(ids)
    job.part_ids = []
    job.parts += 1
    job.writer = None
    return writer.final


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
    commit_every: int = DEFAULT_COMMIT_EVERY,
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
        commit_every: boxes of a tomogram per committed part (an interrupt loses at most one
            part); new picks of an indexed tomogram become new parts.

    Returns:
        An :class:`IndexSummary`.

    Raises:
        InputError: bad arguments; MrcError / CoordinateError: bad files (raised before the store
            changes); StoreError: name clashes with indexed tomograms; StoreLockedError: another
            writer is running.
        IndexInterrupted: Ctrl-C; what was committed stays and a re-run resumes.
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
    if isinstance(commit_every, bool) or not isinstance(commit_every, int) or commit_every < 1:
        raise InputError(f"--commit-every must be a positive integer, got {commit_every!r}")
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
        jobs, skipped_tomograms, stored_done = _plan_jobs(
            store,
            tomograms,
            coordinates,
            box=box,
            model_voxel_angstrom=model_voxel_angstrom,
            edge=edge,
            source=str(coords_path),
            conventions=coordinate_conventions(parsed),
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
        subtomograms_stored_already=sum(job.stored_already for job in jobs) + stored_done,
        parts=parts,
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
        next_id = int(session.scalar(select(func.max(Subtomogram.id))) or 0) + 1
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
