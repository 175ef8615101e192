"""copick round trip: index a local copick project, classify, write picks and segmentations
back, read them again with copick's own API (skipped where copick is not installed)."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cosnet_index.cli._app import cli

copick = pytest.importorskip("copick")

SHAPE = (40, 96, 96)
VOXEL = 10.0


def _project(tmp_path):  # type: ignore[no-untyped-def]
    """A filesystem-overlay project: run TS_01 (dark blobs at 20 picks of alice) and TS_02."""
    config = {
        "config_type": "filesystem",
        "name": "test project",
        "description": "made by tests/test_copick.py",
        "version": "1.0.0",
        "pickable_objects": [
            {"name": "blob", "is_particle": True, "label": 1, "color": [255, 0, 0, 255]}
        ],
        "overlay_root": f"local://{tmp_path / 'overlay'}",
        "overlay_fs_args": {"auto_mkdir": True},
    }
    path = tmp_path / "copick.json"
    path.write_text(json.dumps(config))
    root = copick.from_file(str(path))
    rng = np.random.default_rng(0)
    xyz = np.column_stack(
        [rng.uniform(18, 78, 20), rng.uniform(18, 78, 20), np.full(20, SHAPE[0] / 2)]
    )
    z, y, x = np.indices(SHAPE)
    for name in ("TS_01", "TS_02"):
        data = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
        for cx, cy, cz in xyz:
            data -= 3.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / 18.0)
        run = root.new_run(name)
        run.new_voxel_spacing(VOXEL).new_tomogram("wbp").from_numpy(data)
        picks = run.new_picks("blob", "0", "alice")
        picks.from_numpy(xyz * VOXEL)  # angstrom from the corner
    return path, xyz


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_copick_round_trip(tmp_path) -> None:
    config, xyz = _project(tmp_path)
    store = tmp_path / "store"
    _run("init", "--store", store)  # the shipped model: its decoder gives non-empty masks
    base = ["--store", store]
    out = _run("copick", "index", *base, "--config", config, "--run", "TS_01", "--no-progress")
    assert "indexed 20 subtomograms from 1 tomograms" in out
    # a re-run embeds nothing new and reuses the MRC copy
    out = _run("copick", "index", *base, "--config", config, "--run", "TS_01", "--no-progress")
    assert "indexed 0 subtomograms" in out and "20 coordinates already stored" in out
    from cosnet_index.store import Store

    with Store.open(store, readonly=True) as opened:
        table = opened.subtomogram_table()
    np.testing.assert_allclose(np.sort(table["x"]), np.sort(xyz[:, 0]), atol=1e-6)
    ids = table["id"].to_numpy()
    _run("classes", "add", *base, "left_blob", "--subtomogram", str(ids[0]), "--mass-kda", "81")
    _run("classes", "add", *base, "right", "--subtomogram", str(ids[1]))
    result = tmp_path / "result.parquet"
    _run("classify", *base, "--min-prob", "0", "--out", result)
    out = _run("copick", "picks", *base, "--config", config, "--result", result)
    assert "session 0" in out

    root = copick.from_file(str(config))  # read back with copick's own API
    assert root.get_object("left-blob") is not None  # '_' is not allowed in copick names
    # the class's volume (81 kDa: 100 nm^3) as the radius of its sphere; none when unknown
    assert root.get_object("left-blob").radius == pytest.approx(28.8, abs=0.05)
    assert root.get_object("right").radius is None
    classified = pd.read_parquet(result)
    run = root.get_run("TS_01")
    for class_name, object_name in (("left_blob", "left-blob"), ("right", "right")):
        (picks,) = run.get_picks(object_name=object_name, user_id="cosnet-index")
        assert picks.session_id == "0"
        points, transforms = picks.numpy()
        mine = classified[classified["class"] == class_name].sort_values("x")
        order = np.argsort(points[:, 0])
        np.testing.assert_allclose(
            points[order] / VOXEL, mine[["x", "y", "z"]].to_numpy(), atol=0.5
        )
        np.testing.assert_allclose(np.asarray(picks.scores())[order], mine["probability"])
        np.testing.assert_array_equal(transforms, np.tile(np.eye(4), (len(points), 1, 1)))
    # our own picks are not read back as input by default
    out = _run("copick", "index", *base, "--config", config, "--run", "TS_01", "--no-progress")
    assert "indexed 0 subtomograms" in out

    seg = tmp_path / "seg"
    _run("segment", *base, "--class", "right", "-k", "5", "--out", seg, "--merge")
    out = _run("copick", "segmentations", "--config", config, "--segments", seg)
    assert "session 1" in out  # a fresh session per call
    with mrcfile.open(seg / "labels" / "TS_01.mrc") as mrc:
        labels = np.asarray(mrc.data)
    segments = pd.read_parquet(seg / "segments.parquet")
    root = copick.from_file(str(config))
    (segmentation,) = root.get_run("TS_01").get_segmentations(
        voxel_size=VOXEL, user_id="cosnet-index"
    )
    assert segmentation.is_multilabel and segmentation.name == "cosnet-index"
    read = segmentation.numpy()
    label = root.get_object("right").label
    expected = np.where(np.isin(labels, segments["label"].to_numpy()), label, 0)
    assert (labels > 0).sum() > 0
    np.testing.assert_array_equal(read, expected)


def test_copick_errors_say_what_the_project_has(tmp_path, tiny_model) -> None:
    config, _ = _project(tmp_path)
    store = tmp_path / "store"
    _run("init", "--store", store, "--model", tiny_model[0])
    for args, message in (
        (["--run", "TS_09"], "not in the project"),
        (["--voxel-spacing", "7.5"], "has no voxel spacing 7.5 A"),
        (["--tomo-type", "denoised"], "has no 'denoised' tomogram"),
        (["--pick-object", "ribosome"], "no copick picks with object 'ribosome'"),
    ):
        result = CliRunner().invoke(
            cli, ["copick", "index", "--store", str(store), "--config", str(config), *args]
        )
        assert result.exit_code == 1 and message in result.output, result.output


def test_picks_of_tomograms_outside_the_project_are_left_out(tmp_path) -> None:
    from cosnet_index.errors import InputError
    from cosnet_index.io.copick_project import write_picks

    config, _ = _project(tmp_path)
    root = copick.from_file(str(config))
    table = pd.DataFrame(
        {
            "tomogram": ["TS_01", "elsewhere"],
            "x": [1.0, 2.0],
            "y": [1.0, 2.0],
            "z": [1.0, 2.0],
            "class": ["blob", "blob"],
            "probability": [0.9, 0.8],
        }
    )
    sizes = {"TS_01": VOXEL, "elsewhere": VOXEL}
    assert write_picks(root, table, sizes, session_id="3") == {("TS_01", "blob"): 1}
    with pytest.raises(InputError, match="no tomogram of the table is a run"):
        write_picks(root, table[table["tomogram"] == "elsewhere"], sizes, session_id="3")


def test_copick_index_without_picks_finds_candidates(tmp_path, tiny_model) -> None:
    config, xyz = _project(tmp_path)
    store = tmp_path / "store"
    _run("init", "--store", store, "--model", tiny_model[0])
    base = ["copick", "index", "--store", store, "--config", config, "--run", "TS_02"]
    out = _run(*base, "--pick", "dog", "--diameter", "70", "--no-progress")
    from cosnet_index.store import Store

    with Store.open(store, readonly=True) as opened:
        table = opened.subtomogram_table()
    assert set(table["tomogram"]) == {"TS_02"} and len(table) >= 15, out
    # most of the 20 blobs are found within 2 voxels
    d = np.linalg.norm(table[["x", "y", "z"]].to_numpy()[:, None] - xyz[None], axis=2)
    assert (d.min(axis=0) < 2.0).sum() >= 15
    result = CliRunner().invoke(cli, [str(a) for a in [*base, "--pick", "dog", "--pick-user", "x"]])
    assert result.exit_code == 2 and "one or the other" in result.output
