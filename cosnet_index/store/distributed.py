"""``index --workers N`` / ``--dask-scheduler ADDRESS``: embed tomograms on Dask workers.

Order of work (``docs/cluster.md``):

1. the client checks and plans every tomogram exactly as the single-process path does
   (``_inputs.py``, ``_planning.py``); a bad input raises before anything runs;
2. one Dask task per tomogram: the worker loads the store's checkpoint (hash verified), cuts and
   embeds the tomogram's boxes, and writes them to ``STORE/staging/<hash16>/<name>-<key>.parquet``
   (written to a temporary name and renamed: a staged file is whole or absent). ``key`` digests
   the tomogram, its positions and the options, so a task that runs twice (Dask retries it when
   its worker dies) writes the same file, and a re-run reuses finished staged files;
3. the client (the one committer) takes the store's writer lock, waiting for other writers,
   and commits finished tomograms in the order given: positions stored meanwhile by another
   writer are dropped, ids are allocated after the largest stored one, each part of
   ``commit_every`` rows is written as a shard, registered by the same
   :func:`~cosnet_index.store._committing._register_part` as the single-process path, and
   added to the FAISS index; then the staged file is deleted.

Staged files hold vectors, never catalog rows: the store's truth changes only in step 3.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cosnet_index.errors import InputError, StoreError
from cosnet_index.geometry import position_keys
from cosnet_index.store._inputs import _checked_inputs
from cosnet_index.store._planning import _Job, _plan_jobs
from cosnet_index.store._staged_commit import _Committer
from cosnet_index.store.indexer import DEFAULT_COMMIT_EVERY, IndexSummary, run_summary
from cosnet_index.store.shards import ShardWriter
from cosnet_index.store.store import Store

__all__ = ["STAGING", "index_distributed", "index_on_dask", "local_cluster"]

logger = logging.getLogger(__name__)

STAGING = "staging"
LOCK_WAIT_S = 3600.0  # how long the committer waits for another writer's lock

_MODELS: dict[str, Any] = {}  # per worker process: weights hash -> loaded model


def local_cluster(n_workers: int) -> Any:
    """A Dask ``LocalCluster`` of ``n_workers`` single-threaded worker processes.

    Raises:
        InputError: ``n_workers`` < 1, or dask.distributed is not installed.
    """
    import logging as _logging

    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise InputError(f"--workers must be a positive integer, got {n_workers!r}")
    distributed = _import_distributed()
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=_logging.ERROR,
    )


def index_on_dask(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout_s: float = 30.0,
    **options: Any,
) -> IndexSummary:
    """:func:`index_distributed` on a local cluster of ``workers`` processes, or on the
    cluster whose scheduler is at ``scheduler`` (e.g. one started by dask-jobqueue).

    Raises:
        InputError: both or neither of ``workers`` and ``scheduler``, or Dask missing; then as
            :func:`index_distributed`.
    """
    if (workers is None) == (scheduler is None):
        raise InputError("give either --workers N or --dask-scheduler ADDRESS, not both")
    distributed = _import_distributed()
    # the scheduler's and nannies' INFO lines (start, connect, retire ...) are not the user's news
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if workers is not None:
        import torch

        options.setdefault("torch_threads", max(1, torch.get_num_threads() // workers))
        with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
            return index_distributed(store, tomogram_paths, coords_path, client=client, **options)
    try:
        client = distributed.Client(scheduler, timeout=connect_timeout_s)
    except OSError as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address "
            "(tcp://HOST:PORT) and that the scheduler is running"
        ) from None
    with client:
        return index_distributed(store, tomogram_paths, coords_path, client=client, **options)


def _import_distributed() -> Any:
    try:
        import distributed
    except ModuleNotFoundError:
        raise InputError(
            "--workers and --dask-scheduler need Dask: pip install 'cosnet-index[cluster]'"
        ) from None
    return distributed


def index_distributed(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str],
    *,
    client: Any = None,
    voxel_size_angstrom: float | None = None,
    batch_size: int = 64,
    invert_contrast: bool = False,
    edge: str = "skip",
    device: str | None = None,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    torch_threads: int | None = None,
    lock_wait_s: float = LOCK_WAIT_S,
    contrast_check: str = "error",
    size_check: bool = True,
) -> IndexSummary:
    """Index like :func:`~cosnet_index.store.index_tomograms`, one Dask task per tomogram.

    Args:
        store: an open, writable store; its directory must be reachable by every worker at
            the same path (a shared filesystem), and so must the tomograms.
        client: a ``distributed.Client``; None runs the tasks here, one after the other (the
            staged path without Dask: several such processes may index one store at once).
        torch_threads: torch threads per task (default: torch's own choice).
        lock_wait_s: how long to wait for another writer before each commit.
        Others: as :func:`~cosnet_index.store.index_tomograms`.

    Returns:
        An :class:`~cosnet_index.store.indexer.IndexSummary`.

    Raises:
        InputError, MrcError, CoordinateError, StoreError: as the single-process path, before
            any task runs; StoreLockedError: another writer held the lock past ``lock_wait_s``;
            a task's own exception after Dask gave up on it (what was committed stays).
    """
    started = time.perf_counter()
    model_hash = store.model_hash
    inputs = _checked_inputs(  # contrast and voxel size too, before any task or write
        store,
        tomogram_paths,
        coords_path,
        voxel_size_angstrom=voxel_size_angstrom,
        batch_size=batch_size,
        device=device,
        edge=edge,
        commit_every=commit_every,
        invert_contrast=invert_contrast,
        contrast_check=contrast_check,
        size_check=size_check,
    )
    box, model_voxel_angstrom = inputs.box, inputs.model_voxel_angstrom
    jobs, skipped_tomograms, stored_done = _plan_jobs(store, inputs, edge=edge)
    staging = store.path / STAGING / model_hash[:16]
    staging.mkdir(parents=True, exist_ok=True)
    record = store.active_model_record()
    specs = [
        {
            "checkpoint": str(store.path / record.checkpoint),
            "weights_hash": model_hash,
            "job": job,
            "staged": str(staging / _staged_name(job, edge, invert_contrast, batch_size)),
            "box": box,
            "batch_size": batch_size,
            "edge": edge,
            "invert_contrast": invert_contrast,
            "device": device or "cpu",
            "torch_threads": torch_threads,
        }
        for job in jobs
    ]
    committer = _Committer(store, edge, invert_contrast, commit_every, lock_wait_s)
    for position, staged in _run_tasks(client, specs):
        committer.commit(jobs[position], Path(staged))
    return run_summary(
        model_hash,
        jobs,
        skipped_tomograms,
        indexed=committer.added,
        parts=committer.parts,
        stored_already=stored_done + committer.stored_meanwhile,
        model_voxel_angstrom=model_voxel_angstrom,
        started=started,
    )


def _staged_name(job: _Job, edge: str, invert: bool, batch_size: int) -> str:
    """``<safe name>-<key>.parquet``: the key digests everything the vectors depend on."""
    digest = hashlib.sha256()
    digest.update(job.tomogram.name.encode())
    digest.update(job.tomogram.header_sha256.encode())
    digest.update(np.ascontiguousarray(position_keys(job.xyz)).tobytes())
    digest.update(f"{edge}|{invert}|{batch_size}|{job.source_box}".encode())
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in job.tomogram.name)[:100]
    return f"{safe}-{digest.hexdigest()[:16]}.parquet"


def _run_tasks(client: Any, specs: list[dict[str, Any]]) -> Any:
    """Yield ``(job position, staged path)`` in job order as the tasks finish."""
    if client is None:
        for position, spec in enumerate(specs):
            yield position, embed_to_staging(spec)
        return
    distributed = _import_distributed()
    futures = {
        client.submit(embed_to_staging, spec, key=f"cosnet-embed-{Path(spec['staged']).stem}"): k
        for k, spec in enumerate(specs)
    }
    done: dict[int, str] = {}
    following = 0
    for future in distributed.as_completed(futures):
        done[futures[future]] = future.result()  # re-raises a task's error here
        future.release()
        while following in done:  # commit in the order given, whatever finishes first
            yield following, done.pop(following)
            following += 1


def embed_to_staging(spec: dict[str, Any]) -> str:
    """The Dask task: embed one tomogram's planned boxes into a staged Parquet file.

    Idempotent: a staged file that exists is whole (renamed into place) and is returned as is.
    Ids in the staged file are row numbers; the committer allocates the real ones.
    """
    import torch

    from cosnet_index.store._reading import _batches

    staged = Path(spec["staged"])
    if staged.is_file():
        return str(staged)
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    model = _load_model(spec["checkpoint"], spec["weights_hash"]).to(spec["device"])
    job: _Job = replace(spec["job"], writer=None, part_ids=[])
    writer = ShardWriter(
        staged, int(model.config.embed_dim), None if job.extra is None else job.extra.schema
    )
    try:
        batches = _batches(
            [job], spec["box"], spec["batch_size"], spec["edge"], spec["invert_contrast"], False
        )
        try:
            for batch in batches:
                if batch.boxes is None:
                    continue
                vectors = model.embed(batch.boxes.to(spec["device"]), spec["batch_size"]).numpy()
                offset = 0
                for _, start, n in batch.segments:
                    writer.write(
                        np.arange(start, start + n, dtype=np.int64),
                        job.xyz[start : start + n],
                        job.coordinate_row[start : start + n],
                        vectors[offset : offset + n],
                        None if job.extra is None else job.extra.slice(start, n),
                    )
                    offset += n
        finally:
            batches.close()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return str(staged)


def _load_model(checkpoint: str, weights_hash: str) -> Any:
    if weights_hash not in _MODELS:
        from cosnet_index.model import load_checkpoint

        model, info = load_checkpoint(checkpoint)
        if info.hash != weights_hash:
            raise StoreError(
                f"the checkpoint {checkpoint} has hash {info.hash[:12]}, not the store's "
                f"{weights_hash[:12]}; every worker must see the store's own files"
            )
        _MODELS[weights_hash] = model.eval()
    return _MODELS[weights_hash]
