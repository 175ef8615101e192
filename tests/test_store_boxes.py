"""Boxes read back from the store are the boxes that were embedded (resampled, inverted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cosnet_index.geometry import source_box_side
from cosnet_index.model import CosNet
from cosnet_index.store import Store, index_tomograms
from cosnet_index.store.boxes import read_indexed_boxes
from tests._store_util import particle_table, write_tomogram


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_model):
    """TS_01 at 8 A (resampled for the 10 A model), TS_02 at 10 A indexed with inverted contrast."""
    root = tmp_path_factory.mktemp("boxes")
    table = particle_table(n_per_tomogram=5)
    table = table[(table["x"] > 20) & (table["x"] < 50)]  # whole boxes at either voxel size
    store_path = root / "store"
    embedded: list[np.ndarray] = []  # every box the model saw while indexing
    original = CosNet.embed

    def recording(self, volumes, *args, **kwargs):  # type: ignore[no-untyped-def]
        embedded.append(np.asarray(volumes.cpu(), dtype=np.float32).copy())
        return original(self, volumes, *args, **kwargs)

    with (
        pytest.MonkeyPatch.context() as patch,
        Store.create(store_path, model_path=tiny_model[0]) as store,
    ):
        patch.setattr(CosNet, "embed", recording)
        for k, (name, voxel, invert) in enumerate([("TS_01", 8.0, False), ("TS_02", 10.0, True)]):
            rows = table[table["tomogram"] == name]
            path = write_tomogram(
                root / f"{name}.mrc",
                voxel_size_angstrom=voxel,
                seed=k,
                centres_xyz=rows[["x", "y", "z"]].to_numpy(),
            )
            coords = root / f"{name}.csv"
            rows.to_csv(coords, index=False)
            index_tomograms(store, [path], coords, progress=False, invert_contrast=invert)
    return store_path, np.concatenate(embedded)


def _matches(boxes: np.ndarray, embedded: np.ndarray) -> np.ndarray:
    """Per box: is it (bit for bit, to float32 rounding) one of the boxes the model embedded."""
    flat = embedded.reshape(len(embedded), -1)
    return np.array([np.abs(flat - b.reshape(-1)).max(axis=1).min() < 1e-5 for b in boxes])


def test_a_box_read_back_is_the_box_that_was_embedded(indexed) -> None:
    path, embedded = indexed
    with Store.open(path, readonly=True) as store:
        table = store.subtomogram_table()
        assert set(table["tomogram"]) == {"TS_01", "TS_02"} and len(embedded) == len(table)
        boxes = read_indexed_boxes(store, table)
    assert boxes.shape == (len(table), 32, 32, 32)
    assert _matches(boxes, embedded).all()


def test_the_replay_matters(indexed) -> None:
    """Cut naively (no resampling, no inversion), no box is one the model saw."""
    from cosnet_index.io import extract_boxes, open_tomogram

    path, embedded = indexed
    with Store.open(path, readonly=True) as store:
        table = store.subtomogram_table().reset_index(drop=True)
    naive = np.zeros((len(table), 32, 32, 32), dtype=np.float32)
    for tomogram_path, part in table.groupby("tomogram_path"):
        with open_tomogram(tomogram_path) as tomogram:
            xyz = part[["x", "y", "z"]].to_numpy()
            naive[part.index] = extract_boxes(tomogram.data, xyz, 32, edge="pad")[0]
    assert not _matches(naive, embedded).any()  # TS_01 not resampled, TS_02 not inverted


def test_source_box_side_is_the_indexing_rule() -> None:
    assert source_box_side(32, 10.0, 10.0) == 32
    assert source_box_side(32, 10.05, 10.0) == 32  # within 1%: read as is
    assert source_box_side(32, 8.0, 10.0) == 40  # 40 voxels of 8 A cover 32 of 10 A
    assert source_box_side(64, 10.09, 10.0) == 64  # the rule, not round(64 * 10 / 10.09) = 63


def test_rows_come_back_in_the_order_asked(indexed) -> None:
    with Store.open(indexed[0], readonly=True) as store:
        table = store.subtomogram_table()
        shuffled = table.sample(frac=1.0, random_state=0)
        np.testing.assert_array_equal(
            read_indexed_boxes(store, shuffled),
            read_indexed_boxes(store, table)[
                pd.Index(table["id"]).get_indexer(shuffled["id"].to_numpy())
            ],
        )
