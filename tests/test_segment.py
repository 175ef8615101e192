"""Segmenting hits: masks land at the hits' coordinates, keep the voxel size; statistics; CLI."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from cosnet_index.cli._app import cli
from cosnet_index.model import CosNetConfig
from cosnet_index.segment import CRFParams, save_crf_params
from cosnet_index.segment.hits import segment_hits
from cosnet_index.segment.stats import mask_statistics
from tests._store_util import SHAPE_ZYX, write_tomogram

VOXEL_ANGSTROM = 10.0
RADIUS = 4.0


class SphereModel:
    """A stand-in decoder: a sphere of radius 4 around the box centre voxel, whatever the box.

    Lets the tests know exactly where every mask must land in the tomogram.
    """

    def __init__(self, config: CosNetConfig) -> None:
        self.config = config
        self.calls = 0

    def to(self, device: object) -> SphereModel:
        return self

    def decode(self, volumes: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        b = self.config.box
        c = torch.arange(b, dtype=torch.float32) - b // 2
        zz, yy, xx = torch.meshgrid(c, c, c, indexing="ij")
        inside = (zz**2 + yy**2 + xx**2).sqrt() <= RADIUS
        prob = torch.where(inside, 0.95, 0.05)
        return prob.expand(volumes.shape[0], b, b, b).clone()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_model: tuple[Path, str]) -> dict:
    """A store with two tiny tomograms indexed (tiny random model), and its particles."""
    from cosnet_index.store import Store, index_tomograms

    root = tmp_path_factory.mktemp("segment")
    nz = SHAPE_ZYX[0]
    frames = []
    paths = []
    for t, name in enumerate(("TS_01", "TS_02")):
        # four well separated particles (their masks never overlap), off the voxel grid
        corners = [[20.3, 20.6, nz / 2 - 0.3], [50.7, 21.2, nz / 2], [21.1, 44.4, 19.6]]
        xyz = np.array([*corners, [51.5, 43.8, 20.4]]) + np.array([t, -t, 0.0])
        frame = pd.DataFrame({"tomogram": name, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
        frames.append(frame)
        paths.append(
            write_tomogram(
                root / f"{name}.mrc", voxel_size_angstrom=VOXEL_ANGSTROM, seed=t, centres_xyz=xyz
            )
        )
    coords = root / "coords.csv"
    pd.concat(frames, ignore_index=True).to_csv(coords, index=False)
    checkpoint, model_hash = tiny_model
    with Store.create(root / "store", model_path=checkpoint) as store:
        index_tomograms(store, paths, coords, progress=False)
        table = store.subtomogram_table()
    return {"root": root, "store": root / "store", "table": table, "model_hash": model_hash}


def _sphere_store(path: Path):
    from cosnet_index.store import Store

    store = Store.open(path, readonly=True)
    fake = SphereModel(store.model().config)
    store.model = lambda: fake  # type: ignore[method-assign]
    return store, fake


def test_merged_masks_land_at_the_hits_coordinates(indexed: dict, tmp_path: Path) -> None:
    store, fake = _sphere_store(indexed["store"])
    hits = pd.DataFrame({"subtomogram_id": indexed["table"]["id"], "class": "blob"})
    with store:
        summary = segment_hits(store, hits, tmp_path, crf_params=None, merge=True, batch_size=3)
    table = summary.table
    assert len(table) == len(hits) and fake.calls >= 2  # batches of 3 over 4 hits per tomogram
    for name, rows in table.groupby("tomogram"):
        with mrcfile.open(tmp_path / "labels" / f"{name}.mrc") as mrc:
            labels = mrc.data.copy()
            assert labels.shape == SHAPE_ZYX
            assert float(mrc.voxel_size.x) == pytest.approx(VOXEL_ANGSTROM)
        for row in rows.itertuples():
            zyx = np.argwhere(labels == row.label)
            assert len(zyx) > 0
            expected_xyz = np.floor(np.array([row.x, row.y, row.z]) + 0.5)
            np.testing.assert_allclose(zyx.mean(axis=0)[::-1], expected_xyz, atol=0.5)
            # the statistics say the same thing
            np.testing.assert_allclose(
                [row.centroid_x, row.centroid_y, row.centroid_z], expected_xyz, atol=0.5
            )
    assert set(np.unique(labels)) <= {0, *table["label"].tolist()}


def test_per_hit_masks_keep_voxel_size_and_origin(indexed: dict, tmp_path: Path) -> None:
    store, _ = _sphere_store(indexed["store"])
    ids = indexed["table"]["id"].to_numpy()[:3]
    with store:
        summary = segment_hits(
            store, pd.DataFrame({"subtomogram_id": ids}), tmp_path, crf_params=CRFParams()
        )
    table = summary.table
    assert (tmp_path / "segments.parquet").is_file()
    stored = pd.read_parquet(tmp_path / "segments.parquet")
    assert list(stored["subtomogram_id"]) == list(ids)
    for row in table.itertuples():
        with mrcfile.open(tmp_path / row.mask_path) as mrc:
            assert mrc.data.shape == (32, 32, 32)
            assert float(mrc.voxel_size.x) == pytest.approx(VOXEL_ANGSTROM)
            corner_xyz = np.floor(np.array([row.x, row.y, row.z]) + 0.5) - 16
            origin = np.array([mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z])
            np.testing.assert_allclose(origin, corner_xyz * VOXEL_ANGSTROM)
            assert int(mrc.data.sum()) == row.voxels > 0
    # a sphere of radius 4 voxels of 1 nm: ~268 nm^3 and ~8 nm across on every axis
    assert table["volume_nm3"].between(220, 300).all()
    for axis in ("major", "mid", "minor"):
        assert table[f"extent_{axis}_nm"].between(7.0, 9.5).all()
    assert (table["mean_probability"] > 0.9).all()


def test_mask_statistics_of_an_ellipsoid() -> None:
    c = np.arange(40) - 20
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    mask = (xx / 12.0) ** 2 + (yy / 6.0) ** 2 + (zz / 3.0) ** 2 <= 1
    stats = mask_statistics(mask[None], mask[None].astype(np.float32), np.zeros((1, 3)), 5.0)
    # full axes 24, 12, 6 voxels of 0.5 nm
    assert stats["extent_major_nm"][0] == pytest.approx(12.0, rel=0.05)
    assert stats["extent_mid_nm"][0] == pytest.approx(6.0, rel=0.05)
    assert stats["extent_minor_nm"][0] == pytest.approx(3.0, rel=0.1)
    assert stats["centroid_x"][0] == pytest.approx(20.0)
    empty = mask_statistics(
        np.zeros((1, 4, 4, 4), bool), np.zeros((1, 4, 4, 4)), np.zeros((1, 3)), 10
    )
    assert empty["voxels"][0] == 0 and np.isnan(empty["centroid_x"][0])


def test_cli_segment_with_fitted_params_and_no_crf(indexed: dict, tmp_path: Path) -> None:
    ids = indexed["table"]["id"].to_numpy()[:2]
    hits = tmp_path / "hits.parquet"
    pd.DataFrame({"subtomogram_id": ids, "class": "blob", "probability": 0.9}).to_parquet(hits)
    params = save_crf_params(
        CRFParams(), tmp_path / "crf.json", metadata={"model_hash": indexed["model_hash"]}
    )
    runner = CliRunner()
    base = ["segment", "--store", str(indexed["store"]), "--hits", str(hits)]
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "a"), "--crf-params", str(params)])
    assert result.exit_code == 0, result.output
    assert "segmented 2 hits" in result.output and "decoder + CRF" in result.output
    table = pd.read_parquet(tmp_path / "a" / "segments.parquet")
    assert list(table["subtomogram_id"]) == list(ids) and (table["class"] == "blob").all()

    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "b"), "--no-crf", "--merge"])
    assert result.exit_code == 0, result.output
    assert "decoder alone" in result.output
    assert len(list((tmp_path / "b" / "labels").glob("*.mrc"))) == 1

    # the default is the decoder alone: no CRF parameters needed
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "decoder alone" in result.output

    # running again into the same folder refuses, unless --overwrite
    again = runner.invoke(cli, [*base, "--out", str(tmp_path / "b"), "--no-crf", "--merge"])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_cli_refuses_crf_params_of_another_model(indexed: dict, tmp_path: Path) -> None:
    hits = tmp_path / "hits.parquet"
    pd.DataFrame({"subtomogram_id": indexed["table"]["id"][:1]}).to_parquet(hits)
    params = save_crf_params(CRFParams(), tmp_path / "crf.json", metadata={"model_hash": "0" * 64})
    result = CliRunner().invoke(
        cli,
        [
            "segment",
            "--store",
            str(indexed["store"]),
            "--hits",
            str(hits),
            "--out",
            str(tmp_path / "o"),
            "--crf-params",
            str(params),
        ],
    )
    assert result.exit_code == 1
    assert "fitted for model" in result.output


def test_cli_needs_hits_or_class(indexed: dict, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["segment", "--store", str(indexed["store"]), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "--hits" in result.output


def test_cli_segments_the_top_hits_of_a_class(indexed: dict, tmp_path: Path) -> None:
    from cosnet_index.classes import add_class
    from cosnet_index.store import Store

    with Store.open(indexed["store"]) as store:
        add_class(store, "blob", subtomogram_ids=[int(indexed["table"]["id"][0])])
    result = CliRunner().invoke(
        cli,
        [
            "segment",
            "--store",
            str(indexed["store"]),
            "--class",
            "blob",
            "-k",
            "3",
            "--out",
            str(tmp_path / "o"),
            "--no-crf",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "o" / "segments.parquet")
    assert len(table) == 3 and (table["class"] == "blob").all()
    assert int(indexed["table"]["id"][0]) in set(table["subtomogram_id"])


def test_a_tomogram_changed_since_indexing_is_refused(indexed: dict, tmp_path: Path) -> None:
    import contextlib
    import shutil
    import sqlite3

    from cosnet_index.errors import MrcError

    copy = tmp_path / "copy"
    shutil.copytree(indexed["root"], copy)
    table = indexed["table"]
    ts01 = Path(table.loc[table["tomogram"] == "TS_01", "tomogram_path"].iloc[0])
    old, new = str(indexed["root"]), str(copy)
    with contextlib.closing(sqlite3.connect(copy / "store" / "catalog.sqlite")) as db, db:
        db.execute("UPDATE tomograms SET path = replace(path, ?, ?)", (old, new))  # the copies
    with mrcfile.open(copy / ts01.name, mode="r+") as mrc:  # same voxels, another header
        mrc.header.label[0] = b"edited after indexing"
    store, _ = _sphere_store(copy / "store")
    hits = pd.DataFrame({"subtomogram_id": table["id"]})
    with store, pytest.raises(MrcError, match="changed since tomogram 'TS_01' was indexed"):
        segment_hits(store, hits, tmp_path / "seg", crf_params=None)


def test_overlapping_hits_are_resolved_by_probability_not_write_order(tmp_path: Path) -> None:
    from cosnet_index.segment.write import LabelVolume

    c = np.arange(12) - 5.5
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    ball = zz**2 + yy**2 + xx**2 <= 25
    # two overlapping balls, 4 voxels apart along x; hit 1 is sure near its centre only
    prob_1 = np.where(ball, 0.6 + 0.39 * (xx < 0), 0.0).astype(np.float32)
    prob_2 = np.where(ball, 0.8, 0.0).astype(np.float32)
    starts = {1: (0, 0, 0), 2: (0, 0, 4)}
    results = []
    for order in ((1, 2), (2, 1)):
        path = tmp_path / f"{order[0]}{order[1]}.mrc"
        volume = LabelVolume(path, (12, 12, 20), voxel_size_angstrom=10.0, n_labels=2)
        for label in order:
            prob = prob_1 if label == 1 else prob_2
            volume.place(prob > 0.5, prob, starts[label], label)
        volume.close()
        with mrcfile.open(path) as mrc:
            results.append(mrc.data.copy())
    np.testing.assert_array_equal(results[0], results[1])
    labels = results[0]
    # the overlap (x 4..11 of the first box) goes to hit 2 where hit 1 is 0.6, to 1 where 0.99
    overlap = np.zeros((12, 12, 20), bool)
    overlap[:, :, 4:12] = ball[:, :, 4:12] & ball[:, :, 0:8]
    hit1_sure = np.zeros_like(overlap)
    hit1_sure[:, :, 0:12] = ball & (xx < 0)
    assert overlap.any() and (overlap & hit1_sure).any() and (overlap & ~hit1_sure).any()
    assert (labels[overlap & hit1_sure] == 1).all()
    assert (labels[overlap & ~hit1_sure] == 2).all()
    assert not list(tmp_path.glob(".*.tmp"))  # the scratch probability files are gone


def test_merge_of_a_resampled_store_is_in_the_tomograms_voxels_and_frame(
    tmp_path: Path, tiny_model: tuple[Path, str]
) -> None:
    """A 5 A tomogram (model: 10 A) with a header origin: labels in its own voxels and frame."""
    from cosnet_index.store import Store, index_tomograms

    shape = (72, 96, 96)
    xyz = np.array([[40.2, 47.6, 36.3], [52.8, 49.1, 35.7]])  # masks of radius 8 overlap
    path = write_tomogram(
        tmp_path / "TS_05.mrc", shape_zyx=shape, voxel_size_angstrom=5.0, centres_xyz=xyz
    )
    origin = (120.0, -35.0, 15.0)
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.origin = origin
    coords = tmp_path / "coords.csv"
    pd.DataFrame({"tomogram": "TS_05", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(
        coords, index=False
    )
    checkpoint, _ = tiny_model
    with Store.create(tmp_path / "store", model_path=checkpoint) as store:
        index_tomograms(store, [path], coords, progress=False)
        ids = store.subtomogram_table()["id"].to_numpy()
    store, _ = _sphere_store(tmp_path / "store")
    hits = pd.DataFrame({"subtomogram_id": ids, "class": "blob", "probability": [0.7, 0.9]})
    with store:
        table = segment_hits(store, hits, tmp_path / "seg", crf_params=None, merge=True).table
    assert list(table["probability"]) == [0.7, 0.9] and (table["class"] == "blob").all()
    with mrcfile.open(tmp_path / "seg" / "labels" / "TS_05.mrc") as mrc:
        labels = mrc.data.copy()
        assert labels.shape == shape
        assert float(mrc.voxel_size.x) == pytest.approx(5.0)
        got = (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z)
        np.testing.assert_allclose(got, origin)
    # radius 4 model voxels of 10 A = radius 8 tomogram voxels: ~2145 voxels per hit
    assert table["voxels"].between(1900, 2400).all()
    for row in table.itertuples():
        own = np.argwhere(labels == row.label)
        # each label is centred on its own hit (the overlap split between them moves it a bit)
        dist = np.abs(own.mean(axis=0)[::-1] - np.floor(np.array([row.x, row.y, row.z]) + 0.5))
        assert dist.max() < 3.0
    assert set(np.unique(labels)) == {0, 1, 2}
    assert int((labels > 0).sum()) < int(table["voxels"].sum())  # they overlapped

    with _sphere_store(tmp_path / "store")[0] as store:  # per-hit masks: the same frame
        table = segment_hits(store, hits, tmp_path / "per-hit", crf_params=None).table
    row = table.iloc[0]
    with mrcfile.open(tmp_path / "per-hit" / row["mask_path"]) as mrc:
        assert mrc.data.shape == (64, 64, 64)
        corner_xyz = np.floor(row[["x", "y", "z"]].to_numpy(float) + 0.5) - 32
        got = np.array([mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z])
        np.testing.assert_allclose(got, np.array(origin) + corner_xyz * 5.0)
