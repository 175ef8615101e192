"""PostgreSQL catalog faults (issue 30): a connection killed inside a part's transaction, the
server restarted during `index`, and a SIGKILL trial of the crash harness on PostgreSQL.

Each gives a clear one-line error (or carries on), never a half-committed part, and a re-run
completes with the rows of an undisturbed store. The tests start a server of their own (they
restart it), which needs root and the server binaries; elsewhere they are skipped with the reason.
``bench/crash.py --catalog-url URL`` runs the SIGKILL trials in bulk.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._crash_util import compare_content, go, invoke, start_child, store_content
from tests._postgres_util import (
    create_database,
    private_server_unavailable,
    restart_private_server,
    start_private_server,
    stop_private_server,
)

NOTHING = {"lost": 0, "duplicated": 0, "extra": 0, "changed": 0}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    """``(folder, admin URL)`` of a private PostgreSQL server for this module."""
    reason = private_server_unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL fault tests: {reason}")
    folder = tempfile.mkdtemp(prefix="cosnet-pg-", dir="/tmp")  # user postgres must reach it
    try:
        url = start_private_server(folder)
        yield folder, url
    finally:
        stop_private_server(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _index_args(store: Path, collection: dict, db_url: str | None) -> list:
    return [
        "index", "--store", store, *collection["tomograms"], "--coords", collection["star"],
        "--batch-size", "1", "--commit-every", "1", "--no-progress",
        *(["--db-url", db_url] if db_url else []),
    ]  # fmt: skip


def _reference(tmp_path: Path, tiny_model, collection):  # type: ignore[no-untyped-def]
    """The rows of an undisturbed store (SQLite catalog)."""
    store = tmp_path / "reference"
    assert invoke(["init", "--store", store, "--model", tiny_model[0]]).exit_code == 0
    result = invoke(_index_args(store, collection, None))
    assert result.exit_code == 0, result.output
    return store_content(store)[0]


def _parts_are_whole(store: Path, db_url: str) -> int:
    """Every shard part the catalog holds is complete on disk; returns the parts."""
    from cosnet_index.store import Store
    from cosnet_index.store.shards import shard_num_rows

    with Store.open(store, db_url=db_url, readonly=True) as opened:
        table = opened.subtomogram_table()
    for shard, rows in table.groupby("shard"):
        assert shard_num_rows(store / shard) == len(rows), f"half-committed part {shard}"
    return int(table["shard"].nunique())


def _rerun_and_compare(store: Path, collection: dict, db_url: str, expected) -> None:  # type: ignore[no-untyped-def]
    rerun = invoke(_index_args(store, collection, db_url))
    assert rerun.exit_code == 0, rerun.output
    check = invoke(["check", "--store", store, "--db-url", db_url])
    assert check.exit_code == 0, check.output
    assert compare_content(expected, store_content(store, db_url)[0]) == NOTHING


def test_connection_killed_inside_a_commit(server, tmp_path, tiny_model, collection) -> None:
    """The catalog connection is terminated while a part's rows are being inserted: one line,
    the part is not committed (its shard is not in the catalog), a re-run completes."""
    from sqlalchemy import Engine, create_engine, event, text

    expected = _reference(tmp_path, tiny_model, collection)
    _, admin_url = server
    db_url = create_database(admin_url)
    store = tmp_path / "store"
    result = invoke(["init", "--store", store, "--model", tiny_model[0], "--db-url", db_url])
    assert result.exit_code == 0, result.output
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    inserts = {"n": 0}

    def kill_on_third_part(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith("INSERT INTO subtomograms"):
            return
        inserts["n"] += 1
        if inserts["n"] == 3:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with admin.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            time.sleep(0.2)  # the server closes the socket

    event.listen(Engine, "before_cursor_execute", kill_on_third_part)
    try:
        result = invoke(_index_args(store, collection, db_url))
    finally:
        event.remove(Engine, "before_cursor_execute", kill_on_third_part)
        admin.dispose()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "lost the connection to the catalog database" in line and "re-run" in line
    assert _parts_are_whole(store, db_url) == 2  # the third part was not committed
    _rerun_and_compare(store, collection, db_url, expected)


def test_server_restart_during_index(server, tmp_path, tiny_model, collection) -> None:
    """`index` in a subprocess; the server restarts after its first committed part. The run
    either carries on or stops with one line; a re-run completes with every row once."""
    from sqlalchemy import create_engine, text

    expected = _reference(tmp_path, tiny_model, collection)
    folder, admin_url = server
    db_url = create_database(admin_url)
    store = tmp_path / "store"
    result = invoke(["init", "--store", store, "--model", tiny_model[0], "--db-url", db_url])
    assert result.exit_code == 0, result.output
    proc = start_child([str(a) for a in _index_args(store, collection, db_url)])
    go(proc)
    engine = create_engine(db_url)
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with engine.connect() as connection:
                    parts = connection.execute(text("SELECT count(*) FROM shards")).scalar()
            except Exception:
                parts = 0
            if parts:
                break
            time.sleep(0.02)
        engine.dispose()
        restarted_while_running = proc.poll() is None
        restart_private_server(folder, mode="fast")
    finally:
        _, err = proc.communicate(timeout=600)
        engine.dispose()
    assert "Traceback" not in err, err[-3000:]
    if proc.returncode != 0:
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, err[-3000:]
        assert "catalog database" in errors[0] and "re-run" in errors[0]
    _parts_are_whole(store, db_url)
    _rerun_and_compare(store, collection, db_url, expected)
    assert restarted_while_running or proc.returncode == 0


def test_sigkill_trial_on_postgresql(server, tmp_path) -> None:
    """One trial of the crash harness (``bench/crash.py --catalog-url``) on PostgreSQL."""
    from tests._crash_util import crash_trial, make_world, reference_run

    _, admin_url = server
    world = make_world(tmp_path / "world", n_tomograms=2, n_per_tomogram=6, server=admin_url)
    try:
        reference = reference_run(world, "index", tmp_path / "reference")
        assert len(reference.table) > 0
        result = crash_trial(world, reference, tmp_path / "trial", seed=0)
    finally:
        world.drop_databases()
    assert result.rerun_exit == 0, result.notes
    assert result.check_ok, result.notes
    assert (result.lost, result.duplicated, result.extra, result.changed) == (0, 0, 0, 0)
    assert result.leftovers == 0
