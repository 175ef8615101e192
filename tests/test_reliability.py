"""Crash safety (SIGKILL at seeded random moments, then re-run) and readers during a write.

``bench/crash.py`` runs the same trials in bulk (20 by default); CI runs one trial per command
here. The concurrency test runs ``cosnet-index index`` in a subprocess and, while it writes,
classifies and searches the same store from this process: every read must succeed and see whole
parts only (a part's rows, shard file and index entries appear together or not at all; ``index``
commits a tomogram in parts of ``--commit-every`` boxes).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests._crash_util import (
    CLASS_NAME,
    World,
    command_args,
    crash_trial,
    go,
    make_world,
    reference_run,
    start_child,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("crash-world"), n_tomograms=3, n_per_tomogram=8)


@pytest.mark.parametrize(
    ("command", "seed"), [("index", 0), ("index-pick", 3), ("classes-add", 1), ("reindex", 2)]
)
def test_sigkill_then_rerun_loses_and_duplicates_nothing(world, tmp_path, command, seed) -> None:
    reference = reference_run(world, command, tmp_path / "reference")
    assert len(reference.table) > 0
    result = crash_trial(world, reference, tmp_path / "trial", seed)
    assert result.rerun_exit == 0, result.notes
    assert result.check_ok, result.notes
    assert (result.lost, result.duplicated, result.extra, result.changed) == (0, 0, 0, 0)
    assert (result.class_mismatch, result.index_mismatch, result.leftovers) == (0, 0, 0)


@pytest.fixture(scope="module")
def two_indexed_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("remove-world"), n_tomograms=2, n_indexed=2)


def test_sigkill_during_tomogram_removal_then_rerun(two_indexed_world, tmp_path) -> None:
    """`tomograms remove` killed at a random moment: the re-run (or the next writer) leaves the
    store as the crash-free removal does, and `check` passes."""
    reference = reference_run(two_indexed_world, "tomograms-remove", tmp_path / "reference")
    assert set(reference.table["tomogram"]) == {"TS_01"}
    result = crash_trial(two_indexed_world, reference, tmp_path / "trial", 4)
    assert result.rerun_exit == 0, result.notes
    assert result.check_ok, result.notes
    assert (result.lost, result.duplicated, result.extra, result.changed) == (0, 0, 0, 0)
    assert (result.class_mismatch, result.leftovers) == (0, 0)


@pytest.fixture(scope="module")
def busy_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Enough tomograms that an index run lasts a few seconds."""
    return make_world(tmp_path_factory.mktemp("busy-world"), n_tomograms=10, n_per_tomogram=12)


def test_readers_see_whole_parts_while_index_writes(busy_world, tmp_path) -> None:
    from cosnet_index.query import classify_store, search_store
    from cosnet_index.store import Store, check_store
    from cosnet_index.store.shards import shard_num_rows

    store_path = busy_world.fresh_store(tmp_path)
    expected = pd.read_csv(busy_world.coords).groupby("tomogram").size().to_dict()
    proc = start_child(command_args(busy_world, "index", store_path, batch_size=4))
    go(proc)
    reads_during_write, seen_ids = 0, set()
    try:
        while proc.poll() is None:
            with Store.open(store_path) as store:
                table, _ = classify_store(store, classes=[CLASS_NAME])
                hits, _ = search_store(store, CLASS_NAME, k=5)
                parts = store.subtomogram_table(table["subtomogram_id"].to_numpy())
                for shard, rows in parts.groupby("shard"):  # every visible part is whole
                    assert len(rows) == shard_num_rows(store.path / shard), "a half-visible part"
            running = proc.poll() is None
            ids = table["subtomogram_id"].to_numpy()
            assert len(np.unique(ids)) == len(ids)
            counts = table.groupby("tomogram").size().to_dict()
            assert all(counts[name] <= expected[name] for name in counts)
            assert hits["subtomogram_id"].is_unique and len(hits) == min(5, len(ids))
            reads_during_write += running
            seen_ids |= set(ids) | set(hits["subtomogram_id"])
            time.sleep(0.05)
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert reads_during_write >= 1, "the index run ended before any read: make it longer"
    with Store.open(store_path) as store:
        assert check_store(store).ok
        table, _ = classify_store(store, classes=[CLASS_NAME])
    assert table.groupby("tomogram").size().to_dict() == expected
    assert seen_ids <= set(table["subtomogram_id"])  # no reader saw a vector that was not kept
