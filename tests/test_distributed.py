"""Indexing on Dask workers and by several processes at once (issue 17).

- a LocalCluster of 2 worker processes makes the same store as the single-process path: the same
  ids, catalog rows and shard parts, and the same vectors to float32 round-off;
- a worker SIGKILLed in the middle of a task: Dask runs the task again elsewhere, and the store
  passes ``check`` with nothing lost or duplicated;
- several processes index different tomograms into one store (SQLite, and PostgreSQL when a test
  server is set) at once: every particle stored once, ids unique;
- the SLURM job script that dask-jobqueue renders for docs/cluster.md's example.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from cosnet_index.store import Store, check_store, index_tomograms
from cosnet_index.store.distributed import STAGING, index_distributed
from tests._crash_util import World, compare_content, make_world, store_content


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("dask-world"), n_tomograms=4, n_indexed=0)


@pytest.fixture(scope="module")
def reference(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process store of the world's tomograms."""
    path = world.fresh_store(tmp_path_factory.mktemp("dask-reference"))
    with Store.open(path) as store:
        index_tomograms(store, world.tomograms, world.coords, batch_size=4, progress=False)
    return path


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _catalog(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with Store.open(path, readonly=True) as store, store.engine.connect() as connection:
        rows = pd.read_sql(
            "SELECT id, tomogram_id, shard_id, row, x, y, z FROM subtomograms", connection
        )
        shards = pd.read_sql(
            "SELECT id, tomogram_id, path, n_rows, n_skipped, edge FROM shards ORDER BY id",
            connection,
        )
        tomograms = pd.read_sql("SELECT id, name, header_sha256 FROM tomograms", connection)
    return rows.sort_values("id", ignore_index=True), shards, tomograms


def test_two_workers_make_the_single_process_store(world, reference, client, tmp_path) -> None:
    path = world.fresh_store(tmp_path)
    with Store.open(path) as store:
        summary = index_distributed(
            store, world.tomograms, world.coords, client=client, batch_size=4
        )
        assert summary.subtomograms_indexed == 40 and summary.parts == 4
        assert check_store(store).ok
    for ours, theirs in zip(_catalog(path), _catalog(reference), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    with Store.open(path) as ours, Store.open(reference) as theirs:
        ids, xb = ours.load_vectors()
        ref_ids, ref_xb = theirs.load_vectors()
        np.testing.assert_array_equal(ids, ref_ids)
        # float32 round-off only: a worker embeds one tomogram per batch on one thread, the
        # single process fills batches across tomograms (other summation orders; ~1e-9 here)
        np.testing.assert_allclose(xb, ref_xb, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(
            ours.search(xb[:5], 3, gpu=False)[1], theirs.search(xb[:5], 3, gpu=False)[1]
        )
    assert not any((path / STAGING).rglob("*.parquet*"))  # nothing staged is left behind
    # a second run finds everything stored: no task, no change
    with Store.open(path) as store:
        again = index_distributed(store, world.tomograms, world.coords, client=client)
    assert again.subtomograms_indexed == 0 and len(again.tomograms_skipped) == 4


def _kill_a_busy_worker(client, staging: Path, killed: list[int], stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the worker whose task has started writing its staged file."""
    pids = client.run(os.getpid)
    while not stop.is_set():
        if any(".tmp-" in p.name for p in staging.glob("*/*")):  # a task is writing
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = pids[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.002)


def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(
    world, reference, client, tmp_path
) -> None:
    path = world.fresh_store(tmp_path)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_a_busy_worker, args=(client, path / STAGING, killed, stop), daemon=True
    )
    killer.start()
    try:
        with Store.open(path) as store:
            # batch_size 1: each task takes long enough to be caught while it writes
            summary = index_distributed(
                store, world.tomograms, world.coords, client=client, batch_size=1
            )
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed: the tasks finished too fast to catch one"
    assert summary.subtomograms_indexed == 40
    with Store.open(path, readonly=True) as store:
        report = check_store(store)
    assert report.ok, report.problems
    ours, _ = store_content(path)
    theirs, _ = store_content(reference)
    counts = compare_content(theirs, ours)
    assert counts == {"lost": 0, "duplicated": 0, "extra": 0, "changed": 0}
    assert sorted(ours["id"]) == list(range(1, 41))
    assert not any((path / STAGING).rglob("*.parquet*"))  # the killed task's partial file too
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it for the next test


def _index_some(path: str, url: str | None, tomograms: list[str], coords: str) -> int:
    with Store.open(path, db_url=url) as store:
        return index_distributed(store, tomograms, coords, batch_size=4).subtomograms_indexed


def _warm() -> None:
    import cosnet_index.model  # noqa: F401  (torch: imported once per pool process)


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    """Two fresh interpreters (spawned, as a second user's process would be), kept warm."""
    with multiprocessing.get_context("spawn").Pool(2, initializer=_warm) as pool:
        yield pool


def test_several_processes_index_one_store_at_once(world, reference, pool, tmp_path, catalog_url):
    path = tmp_path / "store"
    with Store.create(path, model_path=world.checkpoint, db_url=catalog_url):
        pass
    halves = [[str(t) for t in world.tomograms[k::2]] for k in (0, 1)]  # TS_01+03, TS_02+04
    added = pool.starmap(
        _index_some, [(str(path), catalog_url, half, str(world.coords)) for half in halves]
    )
    assert added == [20, 20]
    with Store.open(path, db_url=catalog_url, readonly=True) as store:
        report = check_store(store)
        assert report.ok, report.problems
        table = store.subtomogram_table()
        _, xb = store.load_vectors(table["id"].to_numpy())
    assert sorted(table["id"]) == list(range(1, 41))  # unique ids, none skipped
    ours = table[["tomogram", "x", "y", "z", "id"]].assign(vector=list(xb))
    theirs, _ = store_content(reference)
    counts = compare_content(theirs, ours)
    assert counts == {"lost": 0, "duplicated": 0, "extra": 0, "changed": 0}


def test_writers_exclude_each_other_through_postgresql(world, tmp_path, catalog_url) -> None:
    """Two machines whose shared filesystem does not pass flocks between them: simulated by two
    copies of one store directory on one PostgreSQL catalog; the database's lock still holds."""
    import shutil

    from cosnet_index.errors import StoreLockedError

    if catalog_url is None:
        pytest.skip("an advisory lock of the PostgreSQL catalog (SQLite: flock only)")
    path = tmp_path / "store"
    with Store.create(path, model_path=world.checkpoint, db_url=catalog_url):
        pass
    shutil.copytree(path, tmp_path / "elsewhere")
    with Store.open(path, db_url=catalog_url) as here, here.write_lock():
        with Store.open(tmp_path / "elsewhere", db_url=catalog_url) as there:
            with pytest.raises(StoreLockedError, match="another machine"):
                with there.write_lock(wait_s=0.2):
                    pass
    with Store.open(tmp_path / "elsewhere", db_url=catalog_url) as there, there.write_lock():
        pass  # released with the first writer


def test_slurm_job_script_renders() -> None:
    jobqueue = pytest.importorskip("dask_jobqueue")
    with jobqueue.SLURMCluster(
        cores=8,
        processes=2,
        memory="32GB",
        walltime="04:00:00",
        queue="cpu",
        job_extra_directives=["--output=dask-%j.log"],
        job_script_prologue=["source .venv/bin/activate"],
        scheduler_options={"dashboard_address": ":0"},
    ) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p cpu" in script and "#SBATCH -t 04:00:00" in script
    assert "--nworkers 2" in script and "--nthreads 4" in script
    assert "source .venv/bin/activate" in script and cluster.scheduler_address in script


def test_cli_dask_scheduler(world, client, tmp_path) -> None:
    from click.testing import CliRunner

    from cosnet_index.cli._app import cli

    path = world.fresh_store(tmp_path)
    args = [
        "index",
        "--store",
        str(path),
        str(world.tomograms[0]),
        "--coords",
        str(world.coords),
    ]
    address = client.scheduler.address
    result = CliRunner().invoke(cli, [*args, "--dask-scheduler", address, "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    assert "indexed 10 subtomograms from 1 tomograms" in result.output
    result = CliRunner().invoke(cli, [*args, "--dask-scheduler", address, "--workers", "2"])
    assert result.exit_code == 1 and "not both" in result.output
    from cosnet_index.errors import InputError
    from cosnet_index.store.distributed import index_on_dask

    with Store.open(path) as store, pytest.raises(InputError, match="cannot reach the Dask"):
        index_on_dask(
            store,
            world.tomograms,
            world.coords,
            scheduler="tcp://127.0.0.1:9",
            connect_timeout_s=0.5,
        )
