"""Particle picking: the detectors on tiny seeded volumes, and ``index`` without coordinates."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import starfile

from cosnet_index.geometry import centre_voxels
from cosnet_index.pick._peaks import non_maximum_suppression

SHAPE_ZYX = (48, 72, 72)
CENTRES = np.array(  # x, y, z voxels, at least 16 from every face and 14 apart
    [[20, 20, 20], [50, 22, 26], [24, 52, 30], [52, 52, 22], [36, 36, 28]], dtype=np.float64
)


def _volume(seed: int = 0, amplitude: float = 2.0, sigma: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE_ZYX)
    data = rng.normal(0.0, 1.0, SHAPE_ZYX).astype(np.float32)
    for cx, cy, cz in CENTRES:
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        data -= (amplitude * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)
    return data


def _write(path: Path, data: np.ndarray, voxel: float = 10.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return path


def _nearest(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(found[:, None] - truth[None], axis=2).min(axis=0)


def test_dog_finds_every_blob_and_suppresses_neighbours() -> None:
    from cosnet_index.pick import detect_blobs

    data = _volume()
    found = detect_blobs(data, 10.0, [100.0], threshold=6.0)
    xyz = found[["x", "y", "z"]].to_numpy()
    assert (_nearest(xyz, CENTRES) <= 1.5).all()  # recall 1, within 1.5 voxels
    assert len(found) == len(CENTRES)  # nothing else above threshold 6 in pure noise
    distances = np.linalg.norm(xyz[:, None] - xyz[None], axis=2) + np.eye(len(xyz)) * 1e9
    assert distances.min() >= 5.0  # NMS at half the diameter (50 A = 5 voxels)
    assert list(found["pick_score"]) == sorted(found["pick_score"], reverse=True)
    # bright molecules: the same picks with --invert-contrast on the negated volume
    bright = detect_blobs(-data, 10.0, [100.0], threshold=6.0, invert_contrast=True)
    pd.testing.assert_frame_equal(found, bright)


def test_dog_is_the_same_whatever_the_slab_and_finds_the_scale() -> None:
    from cosnet_index.pick import detect_blobs

    data = _volume(seed=1)
    whole = detect_blobs(data, 10.0, [40.0, 100.0, 300.0], threshold=4.0, slab=1000)
    slabs = detect_blobs(data, 10.0, [40.0, 100.0, 300.0], threshold=4.0, slab=5)
    pd.testing.assert_frame_equal(whole, slabs)
    raw = detect_blobs(data, 10.0, [40.0, 100.0, 300.0], threshold=4.0, refine=False)
    top = raw.head(len(CENTRES))
    assert (top["pick_diameter_angstrom"] == 100.0).sum() >= 4  # blobs of sigma 3 voxels


def test_refinement_centres_a_hollow_shell() -> None:
    from cosnet_index.pick import refine_centres

    rng = np.random.default_rng(4)
    z, y, x = np.indices((48, 64, 64))
    r = np.sqrt((x - 32) ** 2 + (y - 30) ** 2 + (z - 24) ** 2)
    data = rng.normal(0.0, 0.5, r.shape).astype(np.float32)
    data -= (2.0 * np.exp(-((r - 8.0) ** 2) / 2.0)).astype(np.float32)  # a shell, radius 8
    on_wall = np.array([[26.5, 26.0, 26.0], [24.0, 30.0, 24.0]])
    centred = refine_centres(data, on_wall, 24.0)  # a sphere that holds the whole shell
    assert np.abs(centred - [32.0, 30.0, 24.0]).max() <= 0.5
    stuck = refine_centres(data, on_wall, 12.0)  # a sphere smaller than the shell: on its wall
    assert np.linalg.norm(stuck - [32.0, 30.0, 24.0], axis=1).min() > 3.0


def test_dog_refuses_bad_diameters() -> None:
    from cosnet_index.errors import InputError
    from cosnet_index.pick import detect_blobs

    with pytest.raises(InputError, match="--diameter"):
        detect_blobs(_volume(), 10.0, [-5.0])
    with pytest.raises(InputError, match="too small"):
        detect_blobs(np.zeros((4, 4, 4), np.float32), 1.0, [100.0])


def test_nms_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    xyz = rng.uniform(0, 20, (300, 3))
    scores = rng.normal(size=300)
    kept = non_maximum_suppression(xyz, scores, 3.0)
    expected: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(np.linalg.norm(xyz[i] - xyz[j]) >= 3.0 for j in expected):
            expected.append(int(i))
    np.testing.assert_array_equal(kept, expected)


def test_decoder_objectness_map_tiles_the_volume(tmp_path) -> None:
    from cosnet_index.model import load_checkpoint
    from cosnet_index.pick import decoder_objectness, objectness_candidates
    from tests._store_util import tiny_checkpoint

    path, _ = tiny_checkpoint(tmp_path / "m.pt")
    model, _ = load_checkpoint(path)
    data = _volume()
    fmap, cell = decoder_objectness(data, 10.0, model, batch_size=16)
    assert cell == 2.0  # 16 voxels between boxes, 8 cells per tile
    assert fmap.shape == (3 * 8, 5 * 8, 5 * 8)  # ceil(48 / 16), ceil(72 / 16) tiles of 8 cells
    assert np.all((fmap >= 0) & (fmap <= 1))
    found = objectness_candidates(data, 10.0, model, [100.0], threshold=0.0)
    again = objectness_candidates(data, 10.0, model, [100.0], threshold=0.0)
    pd.testing.assert_frame_equal(found, again)  # deterministic
    assert found["pick_score"].between(0, 1).all()
    assert (found[["x", "y", "z"]].to_numpy() <= np.array(SHAPE_ZYX[::-1]) - 1).all()


@pytest.fixture()
def picked_store(tmp_path):
    from click.testing import CliRunner

    from cosnet_index.cli._app import cli
    from tests._store_util import tiny_checkpoint

    checkpoint, _ = tiny_checkpoint(tmp_path / "m.pt")
    tomograms = [
        _write(tmp_path / f"TS_0{i}.mrc", _volume(seed=10 + i, amplitude=3.0)) for i in (1, 2)
    ]
    store = tmp_path / "store"
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--store", store, "--model", checkpoint]).exit_code == 0
    args = ["index", "--store", store, *tomograms, "--diameter", "100", "--no-progress"]
    result = runner.invoke(cli, [str(a) for a in [*args, "--pick-threshold", "6"]])
    assert result.exit_code == 0, result.output
    return runner, cli, store, tomograms, args, result.output


def test_index_without_coords_stores_candidates_and_does_not_duplicate(picked_store) -> None:
    from cosnet_index.store import Store

    runner, cli, store, _, args, output = picked_store
    assert "indexed 10 subtomograms from 2 tomograms" in output
    with Store.open(store, readonly=True) as opened:
        table = opened.subtomogram_table()
    for name, part in table.groupby("tomogram"):
        assert (_nearest(part[["x", "y", "z"]].to_numpy(), CENTRES) <= 1.5).all(), name
        shard = pq.read_table(store / part["shard"].iloc[0]).to_pandas()
        assert set(shard["pick_method"]) == {"dog"}
        assert (shard["pick_score"] >= 6).all()
        assert set(shard["pick_diameter_angstrom"]) == {100.0}
    rerun = runner.invoke(cli, [str(a) for a in [*args, "--pick-threshold", "6"]])
    assert rerun.exit_code == 0, rerun.output
    assert "indexed 0 subtomograms" in rerun.output
    with Store.open(store, readonly=True) as opened:
        assert len(opened.subtomogram_table()) == 10
    # a lower threshold adds only the new candidates
    lower = runner.invoke(cli, [str(a) for a in [*args, "--pick-threshold", "3"]])
    assert lower.exit_code == 0, lower.output
    with Store.open(store, readonly=True) as opened:
        keys = opened.subtomogram_table()[["tomogram", "x", "y", "z"]]
    assert not keys.duplicated().any() and len(keys) >= 10


def test_search_classify_export_on_a_picked_store(picked_store, tmp_path) -> None:
    runner, cli, store, _, _, _ = picked_store

    def run(*args: object) -> str:
        result = runner.invoke(cli, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    run("classes", "add", "--store", store, "blob", "--subtomogram", "1")
    run("classify", "--store", store, "--out", tmp_path / "r.parquet")
    result = pd.read_parquet(tmp_path / "r.parquet")
    assert len(result) == 10 and {"tomogram", "x", "y", "z"} <= set(result.columns)
    run("search", "--store", store, "blob", "-k", "3", "--out", tmp_path / "h.parquet")
    assert len(pd.read_parquet(tmp_path / "h.parquet")) == 3
    run("export", "--result", tmp_path / "r.parquet", "--out", tmp_path / "star", "--min-prob", "0")
    star = starfile.read(tmp_path / "star" / "blob.star")
    blob = result[result["class"] == "blob"]
    np.testing.assert_allclose(np.sort(star["rlnCoordinateX"]), np.sort(blob["x"]), atol=0.01)
    # RELION 5: angstrom from the tomogram centre
    out5 = tmp_path / "star5"
    run("export", "--result", tmp_path / "r.parquet", "--out", out5, "--convention", "relion5")
    star5 = starfile.read(out5 / "blob.star")["particles"]  # with a data_optics block
    centre_x = centre_voxels(SHAPE_ZYX)[0]
    np.testing.assert_allclose(
        np.sort(star5["rlnCenteredCoordinateXAngst"]),
        np.sort((blob["x"] - centre_x) * 10.0),
        atol=0.1,
    )


def test_index_refuses_coords_and_pick_together(picked_store, tmp_path) -> None:
    runner, cli, store, tomograms, _, _ = picked_store
    csv = tmp_path / "c.csv"
    pd.DataFrame({"x": [30.0], "y": [30.0], "z": [24.0]}).to_csv(csv, index=False)
    args = ["index", "--store", store, tomograms[0], "--coords", csv, "--pick", "dog"]
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code != 0 and "not both" in result.output
