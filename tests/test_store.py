"""The store: create/open, index two tomograms from a STAR file, check, resume, FAISS == NumPy."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cosnet_index.errors import (
    CoordinateError,
    InputError,
    SchemaError,
    StoreError,
    StoreLockedError,
)
from cosnet_index.io import plan_boxes
from cosnet_index.store import Store, check_store, index_tomograms, reindex, store_stats
from cosnet_index.store import schema as store_schema
from tests._store_util import (
    SHAPE_ZYX,
    write_tomogram,
)


@pytest.fixture
def checkpoint(tiny_model) -> Path:
    return tiny_model[0]


@pytest.fixture
def store(tmp_path, checkpoint) -> Store:
    with Store.create(tmp_path / "store", model_path=checkpoint) as opened:
        yield opened


@pytest.fixture
def store_on(tmp_path, checkpoint, catalog_url) -> Store:
    """A new store on each catalog backend (SQLite; PostgreSQL when a test server is set)."""
    with Store.create(tmp_path / "store", model_path=checkpoint, db_url=catalog_url) as opened:
        yield opened


def _inside(table: pd.DataFrame, box: int = 32) -> int:
    return int(
        sum(
            plan_boxes(SHAPE_ZYX, group[["x", "y", "z"]].to_numpy(), box, "skip").keep.sum()
            for _, group in table.groupby("tomogram")
        )
    )


def test_index_two_tomograms_then_check_and_resume(store_on, collection) -> None:
    store = store_on
    summary = index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    expected = _inside(collection["table"])
    assert expected == 12
    assert summary.subtomograms_indexed == expected
    assert summary.subtomograms_skipped == {"edge": 2, "outside": 2}
    assert summary.tomograms_indexed == ("TS_01", "TS_02")

    report = check_store(store)
    assert report.ok, report.problems
    (counts,) = report.counts.values()
    assert counts == {"rows": expected, "shard_rows": expected, "index_ntotal": expected}

    again = index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    assert again.subtomograms_indexed == 0
    assert set(again.tomograms_skipped) == {"TS_01", "TS_02"}
    assert check_store(store).counts == report.counts

    table = store.subtomogram_table()
    assert len(table) == expected and table["id"].is_unique
    assert (table["model_hash"] == store.model_hash).all()
    stats = store_stats(store)
    assert (stats["tomograms"], stats["subtomograms"], stats["models"]) == (2, expected, 1)
    # the stored coordinates are the STAR file's, origin shifts applied
    ts01 = collection["table"].query("tomogram == 'TS_01'")
    stored = table.query("tomogram == 'TS_01'")[["x", "y", "z"]].to_numpy()
    truth = ts01[["x", "y", "z"]].to_numpy()
    assert all(np.abs(truth - p).sum(1).min() < 1e-4 for p in stored)  # STAR text precision


def test_faiss_l1_equals_numpy_brute_force(store, collection) -> None:
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    ids, xb = store.load_vectors()
    xq = xb[::3] + np.random.default_rng(0).normal(0, 1e-3, xb[::3].shape).astype(np.float32)
    k = 5
    D, I = store.search(xq, k, gpu=False)  # noqa: E741 (faiss names)
    l1 = np.abs(xq[:, None, :].astype(np.float64) - xb[None].astype(np.float64)).sum(-1)
    order = np.argsort(l1, axis=1, kind="stable")[:, :k]
    # the k smallest exact distances, and each returned id really is at the distance reported
    # (ids compared by distance: near-ties may swap between float32 FAISS and float64 NumPy)
    np.testing.assert_allclose(D, np.take_along_axis(l1, order, 1), rtol=1e-4)
    position = {int(i): n for n, i in enumerate(ids)}
    returned = np.vectorize(position.__getitem__)(I)
    np.testing.assert_allclose(np.take_along_axis(l1, returned, 1), D, rtol=1e-4)
    ranked = np.sort(l1, axis=1)[:, : k + 1]  # (q, k + 1)
    gaps = np.diff(ranked, axis=1, prepend=-np.inf)  # gap to the previous rank
    clear = (gaps[:, :k] > 1e-5 * ranked[:, :k]) & (gaps[:, 1:] > 1e-5 * ranked[:, :k])
    assert clear.sum() >= k  # ranks with no near-tie: compared exactly
    np.testing.assert_array_equal(I[clear], ids[order][clear])
    # the vectors are the model's embeddings of the boxes
    sub_ids, sub_xb = store.load_vectors(ids[[3, 0]])
    np.testing.assert_array_equal(sub_ids, ids[[3, 0]])
    np.testing.assert_array_equal(sub_xb, xb[[3, 0]])


def test_reindex_and_ivf(store_on, collection) -> None:
    store = store_on
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    _, xb = store.load_vectors()
    before = store.search(xb, 3, gpu=False)
    store.index_path().unlink()
    assert not check_store(store).ok
    assert reindex(store) == len(xb)
    assert check_store(store).ok
    after = store.search(xb, 3, gpu=False)
    np.testing.assert_array_equal(before[1], after[1])
    with pytest.raises(InputError, match="IVF"):
        reindex(store, index_type="ivf")  # 12 vectors: too few to train


def test_resampled_tomogram_says_so(store, tmp_path, caplog) -> None:
    # a 5 A tomogram: coordinates in its own (finer) voxels, boxes read 64^3 and cropped to 32^3
    shape = (80, 96, 96)
    xyz = np.array([[48.0, 48.0, 40.0], [40.0, 52.0, 38.0]])
    path = write_tomogram(
        tmp_path / "fine.mrc", shape_zyx=shape, voxel_size_angstrom=5.0, centres_xyz=xyz
    )
    coords = tmp_path / "fine.csv"
    pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(coords, index=False)
    with caplog.at_level(logging.WARNING, logger="cosnet_index"):
        summary = index_tomograms(store, [path], coords, progress=False)
    assert summary.resampled == {"fine": (5.0, 10.0)}
    assert summary.subtomograms_indexed == 2
    assert any("resampling fine from 5 A" in r.getMessage() for r in caplog.records)
    assert any("resampled fine from 5 A" in line for line in summary.lines())
    assert check_store(store).ok


def test_edge_pad_keeps_edge_boxes(store, collection) -> None:
    summary = index_tomograms(
        store, collection["tomograms"], collection["star"], edge="pad", progress=False
    )
    assert summary.subtomograms_indexed == 14
    assert summary.subtomograms_skipped == {"outside": 2}


def test_bad_input_leaves_the_store_unchanged(store, collection, tmp_path) -> None:
    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(store.path.rglob("*")) if p.is_file()}

    before = snapshot()
    far = tmp_path / "far.csv"
    pd.DataFrame({"x": [1000.0], "y": [1000.0], "z": [1000.0]}).to_csv(far, index=False)
    with pytest.raises(CoordinateError, match="outside its volume"):
        index_tomograms(store, collection["tomograms"][:1], far, progress=False)
    with pytest.raises(InputError, match="batch-size"):
        index_tomograms(store, collection["tomograms"], collection["star"], batch_size=0)
    elsewhere = tmp_path / "elsewhere.csv"
    pd.DataFrame({"tomogram": ["TS_09"], "x": [30.0], "y": [30.0], "z": [20.0]}).to_csv(
        elsewhere, index=False
    )
    with pytest.raises(CoordinateError, match="names none of the given tomograms"):
        index_tomograms(store, collection["tomograms"][:1], elsewhere, progress=False)
    assert snapshot() == before


def test_same_name_from_another_file_is_refused(store, collection, tmp_path) -> None:
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    other = tmp_path / "other"
    other.mkdir()
    clash = write_tomogram(other / "TS_01.mrc", seed=99, voxel_size_angstrom=10.5)
    with pytest.raises(StoreError, match="another file"):
        index_tomograms(
            store, [clash, collection["tomograms"][1]], collection["star"], progress=False
        )


def test_queries_refuse_to_mix_models(store, collection, tmp_path) -> None:
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    ids, _ = store.load_vectors()
    with pytest.raises(StoreError, match="no vectors of model"):
        store.load_vectors(ids, model_hash="0" * 64)
    with pytest.raises(StoreError, match="unknown subtomogram ids"):
        store.load_vectors(np.array([10_000]))
    # a second model's vectors (as a later `init`-time model would add) are refused when mixed
    from cosnet_index.store.tables import ModelRecord, Subtomogram

    with store.session() as session:
        session.add(
            ModelRecord(
                weights_hash="f" * 64, config={}, checkpoint="-", source_path="-", active=False
            )
        )
        session.flush()
        other = session.query(ModelRecord).filter_by(weights_hash="f" * 64).one()
        session.query(Subtomogram).filter(Subtomogram.id == int(ids[0])).update(
            {"model_id": other.id}
        )
    with pytest.raises(StoreError, match="never mix"):
        store.load_vectors(ids[:3])


def _hold_lock(path: str, ready, release) -> None:
    with Store.open(path) as store, store.write_lock():
        ready.set()
        release.wait(30)


def test_second_writer_gets_a_clear_lock_error(store) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(store.path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(StoreLockedError, match="another cosnet-index process"):
            with store.write_lock():
                pass
    finally:
        release.set()
        holder.join(30)
    with store.write_lock():  # free again
        pass


def test_open_errors(tmp_path, store) -> None:
    with pytest.raises(StoreError, match="cosnet-index init"):
        Store.open(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="not an empty directory"):
        Store.create(store.path)
    store_schema.downgrade(store.engine, "base")
    with pytest.raises(SchemaError, match="db upgrade"):
        Store.open(store.path)
    store_schema.upgrade(store.engine, "0001")
    if store_schema.head_revision() != "0001":
        with pytest.raises(SchemaError, match="db upgrade"):
            Store.open(store.path)
    store_schema.upgrade(store.engine)
    with store.engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="upgrade cosnet-index"):
        Store.open(store.path)


def test_readonly_store_refuses_writes(store, collection) -> None:
    with Store.open(store.path, readonly=True) as readonly:
        assert readonly.model_hash == store.model_hash
        with pytest.raises(StoreError, match="read-only"):
            index_tomograms(readonly, collection["tomograms"], collection["star"], progress=False)


def test_ivf_probing_every_list_equals_flat() -> None:
    import faiss

    from cosnet_index.store.vectors import new_index, search_index

    rng = np.random.default_rng(0)
    xb = rng.normal(size=(2000, 512)).astype(np.float32)
    ids = np.arange(2000, dtype=np.int64) * 7 + 3
    flat = new_index(512)
    flat.add_with_ids(xb, ids)
    ivf = new_index(512, "ivf", train_vectors=xb, nlist=16)
    ivf.add_with_ids(xb, ids)
    faiss.extract_index_ivf(ivf).nprobe = 16
    xq = xb[:50] + rng.normal(0, 0.1, (50, 512)).astype(np.float32)
    np.testing.assert_array_equal(search_index(flat, xq, 10)[1], search_index(ivf, xq, 10)[1])
    with pytest.raises(InputError, match="shape"):
        search_index(flat, xq[:, :10], 3)


def test_batches_across_tomograms_store_each_box_own_vector(store, collection, tmp_path) -> None:
    import torch

    from cosnet_index.io import extract_boxes, open_tomogram

    # a third tomogram whose only coordinate gives no box: committed as an empty shard
    lonely = write_tomogram(tmp_path / "TS_03.mrc", seed=5)
    table = pd.concat(
        [
            collection["table"],
            pd.DataFrame({"tomogram": ["TS_03"], "x": [2.0], "y": [30.0], "z": [20.0]}),
        ]
    )
    coords = tmp_path / "all.csv"
    table.to_csv(coords, index=False)
    paths = [*collection["tomograms"], lonely]
    summary = index_tomograms(store, paths, coords, batch_size=5, progress=False)
    assert summary.subtomograms_indexed == 12
    assert check_store(store).ok
    again = index_tomograms(store, paths, coords, batch_size=5, progress=False)
    assert again.subtomograms_indexed == 0 and "TS_03" in again.tomograms_skipped

    stored = store.subtomogram_table()
    _, xb = store.load_vectors(stored["id"].to_numpy())
    model = store.model()
    for name, rows in stored.groupby("tomogram"):
        with open_tomogram(tmp_path / f"{name}.mrc") as tomogram:
            boxes, _ = extract_boxes(tomogram.data, rows[["x", "y", "z"]].to_numpy(), 32)
        expected = model.embed(torch.from_numpy(boxes)).numpy()
        np.testing.assert_allclose(xb[rows.index.to_numpy()], expected, rtol=1e-4, atol=1e-6)


def test_index_simulated_tomograms_from_their_star_file(store, tmp_path) -> None:
    from cosnet_index.io import read_coordinates
    from cosnet_index.simulate import REAL_CLASSES, simulate_collection

    shape = (48, 80, 80)
    simulate_collection(tmp_path / "sim", 2, REAL_CLASSES[:2], 4, 1.0, seed=0, shape=shape)
    star = tmp_path / "sim" / "particles.star"
    tomograms = sorted((tmp_path / "sim").glob("TS_*.mrc"))
    assert len(tomograms) == 2
    summary = index_tomograms(store, tomograms, star, progress=False)
    coords = read_coordinates(star)
    inside = sum(
        int(plan_boxes(shape, rows[["x", "y", "z"]].to_numpy(), 32, "skip").keep.sum())
        for _, rows in coords.groupby("tomogram")
    )
    report = check_store(store)
    assert report.ok, report.problems
    (counts,) = report.counts.values()
    assert summary.subtomograms_indexed == inside > 0
    assert counts == {"rows": inside, "shard_rows": inside, "index_ntotal": inside}
    # the class names of the STAR file travel into the shards
    import pyarrow.parquet as pq

    shard = pq.read_table(store.path / store.subtomogram_table()["shard"].iloc[0]).to_pandas()
    assert "rlnClassName" in shard.columns
    assert index_tomograms(store, tomograms, star, progress=False).subtomograms_indexed == 0


def test_one_tomogram_from_a_project_wide_star_file(store, collection) -> None:
    """`index TS_02.mrc --coords particles.star` (naming TS_01 too) indexes TS_02 only."""
    summary = index_tomograms(
        store, collection["tomograms"][1:], collection["star"], progress=False
    )
    assert summary.tomograms_indexed == ("TS_02",)
    assert summary.subtomograms_indexed == _inside(collection["table"].query("tomogram == 'TS_02'"))
    assert check_store(store).ok
    # the shard keeps each particle's row of the file (TS_02's rows come after TS_01's 8)
    import pyarrow.parquet as pq

    shard = pq.read_table(store.path / store.subtomogram_table()["shard"].iloc[0]).to_pandas()
    assert shard["coordinate_row"].min() >= 8


def _picks(n: int, seed: int = 3) -> pd.DataFrame:
    """``n`` distinct positions well inside TS_01 (x, y on a grid, z in the middle)."""
    grid = np.array([(x, y) for x in range(18, 55, 3) for y in range(18, 47, 3)], dtype=float)
    rng = np.random.default_rng(seed)
    xy = grid[rng.permutation(len(grid))[:n]] + 0.25
    return pd.DataFrame({"tomogram": "TS_01", "x": xy[:, 0], "y": xy[:, 1], "z": 20.0})


def test_rerun_with_more_picks_adds_only_the_new_ones(store_on, collection, tmp_path) -> None:
    """Issue 19: index 30 picks, then all 90: it said 'already indexed' and kept 30."""
    store = store_on
    picks = _picks(90)
    first, everything = tmp_path / "first.csv", tmp_path / "all.csv"
    picks.iloc[:30].to_csv(first, index=False)
    picks.sample(frac=1.0, random_state=0).to_csv(everything, index=False)  # another order
    tomogram = collection["tomograms"][:1]
    assert index_tomograms(store, tomogram, first, progress=False).subtomograms_indexed == 30
    summary = index_tomograms(store, tomogram, everything, progress=False)
    assert summary.subtomograms_indexed == 60
    assert summary.subtomograms_stored_already == 30
    assert any("30 coordinates already stored" in line for line in summary.lines())
    stored = store.subtomogram_table()
    assert len(stored) == 90 and not stored[["x", "y", "z"]].round(2).duplicated().any()
    assert check_store(store).ok
    again = index_tomograms(store, tomogram, everything, progress=False)
    assert again.subtomograms_indexed == 0 and "TS_01" in again.tomograms_skipped
    assert len(store.subtomogram_table()) == 90


def test_interrupt_keeps_committed_parts_and_rerun_completes(store_on, collection, tmp_path):
    """Issue 19: Ctrl-C lost whole tomograms; now at most one part, and a re-run resumes."""
    store = store_on
    from cosnet_index.store.indexer import IndexInterrupted

    picks = _picks(40)
    coords = tmp_path / "picks.csv"
    picks.to_csv(coords, index=False)
    tomogram = collection["tomograms"][:1]
    model = store.model()
    embed, calls = model.embed, []

    def interrupted_embed(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return embed(*args, **kwargs)

    model.embed = interrupted_embed
    try:
        with pytest.raises(IndexInterrupted) as info:
            index_tomograms(store, tomogram, coords, batch_size=4, commit_every=8, progress=False)
    finally:
        model.embed = embed
    assert info.value.committed == 16 and info.value.parts == 2
    assert "run the same command again" in str(info.value)
    assert check_store(store).ok
    assert len(store.subtomogram_table()) == 16
    summary = index_tomograms(store, tomogram, coords, batch_size=4, progress=False)
    assert summary.subtomograms_indexed == 24 and summary.subtomograms_stored_already == 16
    assert check_store(store).ok
    stored = store.subtomogram_table()
    assert len(stored) == 40 and stored["id"].is_unique
    # the resumed store holds the same vectors as an uninterrupted run would
    _, xb = store.load_vectors(stored["id"].to_numpy())
    from cosnet_index.io import extract_boxes, open_tomogram

    with open_tomogram(tomogram[0]) as opened:
        boxes, _ = extract_boxes(opened.data, stored[["x", "y", "z"]].to_numpy(), 32)
    import torch

    np.testing.assert_allclose(xb, embed(torch.from_numpy(boxes)).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("convention", ["relion4", "relion5", "voxels"])
def test_export_round_trips_the_coordinate_convention(convention, collection, checkpoint, tmp_path):
    """Issue 19: RELION 4 picks (2.5 A tilt-series pixels) came back in 10 A voxels, 4x too
    small, and RELION 5 as plain voxels. Index from each convention, export, index the export
    into a new store: the same positions to 0.01 voxel, and the same convention in the file."""
    import starfile

    from cosnet_index.classes import add_class
    from cosnet_index.query import classify_store, export_star, read_table, write_table
    from tests._store_util import write_star_relion4, write_star_relion5

    table = collection["table"]
    if convention == "relion4":
        coords = write_star_relion4(tmp_path / "in.star", table, tilt_series_pixel=2.5)
    elif convention == "relion5":
        coords = write_star_relion5(tmp_path / "in.star", table)
    else:
        coords = tmp_path / "in.csv"
        table.to_csv(coords, index=False)
    with Store.create(tmp_path / "a", model_path=checkpoint) as first:
        index_tomograms(first, collection["tomograms"], coords, progress=False)
        add_class(first, "blob", subtomogram_ids=[int(first.subtomogram_table()["id"].iloc[0])])
        result, meta = classify_store(first, min_prob=0.0)
        before = first.subtomogram_table()
    write_table(result, tmp_path / "result.parquet", meta)
    result, meta = read_table(tmp_path / "result.parquet")
    (path,) = export_star(result, tmp_path / "out", geometry=meta["tomogram_geometry"])
    blocks = starfile.read(path, always_dict=True)
    particles = blocks["particles"]
    if convention == "relion4":
        assert blocks["optics"]["rlnTomoTiltSeriesPixelSize"].tolist() == [2.5]
        written = particles.query("rlnTomoName == 'TS_01'")["rlnCoordinateX"].to_numpy()
        stored = before.query("tomogram == 'TS_01'")["x"].to_numpy()
        np.testing.assert_allclose(np.sort(written), np.sort(stored) * 4.0, atol=1e-4)
    elif convention == "relion5":
        assert "rlnCenteredCoordinateXAngst" in particles and "rlnCoordinateX" not in particles
    else:
        assert "rlnCoordinateX" in particles and "optics" not in blocks
    with Store.create(tmp_path / "b", model_path=checkpoint) as second:
        index_tomograms(second, collection["tomograms"], path, progress=False)
        after = second.subtomogram_table()
        recorded = {g["convention"] for g in second.tomogram_geometry().values()}
        assert recorded == {convention}
    key = ["tomogram", "x", "y", "z"]
    a = before[key].sort_values(key).to_numpy()
    b = after[key].sort_values(key).to_numpy()
    assert len(a) == len(b) == 12 and (a[:, 0] == b[:, 0]).all()
    np.testing.assert_allclose(a[:, 1:].astype(float), b[:, 1:].astype(float), atol=0.01)
    # --convention overrides: voxels from any input
    (plain,) = export_star(result, tmp_path / "plain", geometry=meta["tomogram_geometry"],
                           convention="voxels")  # fmt: skip
    voxels = starfile.read(plain)
    np.testing.assert_allclose(np.sort(voxels["rlnCoordinateX"]), np.sort(before["x"]), atol=1e-4)


def _catalog_counts(store: Store) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from cosnet_index.store.tables import ShardRecord, Subtomogram, TomogramRecord

    with store.session() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table))
            for table in (TomogramRecord, ShardRecord, Subtomogram)
        )


def test_reindex_with_the_other_contrast_is_refused(store, collection) -> None:
    """Vectors of both contrasts never mix: the second run is refused, the rows unchanged."""
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False)
    before = _catalog_counts(store)
    with pytest.raises(StoreError, match="indexed without --invert-contrast"):
        index_tomograms(
            store,
            collection["tomograms"],
            collection["star"],
            progress=False,
            invert_contrast=True,
            contrast_check="off",
        )
    assert _catalog_counts(store) == before
    assert check_store(store).ok


def test_a_voxel_size_that_leaves_no_box_is_an_error(store, collection) -> None:
    """A 4x too small voxel size reads boxes larger than the tomogram: an error, nothing stored."""
    with pytest.raises(CoordinateError, match="--voxel-size"):
        index_tomograms(
            store,
            collection["tomograms"][:1],
            collection["star"],
            progress=False,
            voxel_size_angstrom=2.5,
        )
    assert _catalog_counts(store) == (0, 0, 0)
