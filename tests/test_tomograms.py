"""A store's tomograms are managed: list, remove (rows, shards, vectors), rename, --replace, and
a re-index with other settings than a tomogram's is refused (issue 31)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from cosnet_index.errors import StoreError
from cosnet_index.store import Store, check_store, index_tomograms
from cosnet_index.store.tomograms import (
    list_tomograms,
    remove_tomograms,
    rename_tomogram,
    tomogram_settings,
)


@pytest.fixture
def store(tmp_path, tiny_model) -> Store:
    with Store.create(tmp_path / "store", model_path=tiny_model[0]) as opened:
        yield opened


def _indexed(store: Store, collection: dict, **options) -> None:
    index_tomograms(store, collection["tomograms"], collection["star"], progress=False, **options)


def _ids_of(store: Store, name: str) -> np.ndarray:
    table = store.subtomogram_table()
    return table.loc[table["tomogram"] == name, "id"].to_numpy()


def test_remove_deletes_rows_shards_and_vectors_of_every_index(store, collection) -> None:
    _indexed(store, collection)
    removed_ids = _ids_of(store, "TS_01")
    kept_ids = _ids_of(store, "TS_02")
    shards_before = sorted(p.name for p in store.path.glob("shards/*/*.parquet"))
    summary = remove_tomograms(store, ["TS_01"])
    assert summary.tomograms == ("TS_01",) and summary.subtomograms == len(removed_ids) == 6
    assert [t["name"] for t in list_tomograms(store)] == ["TS_02"]
    assert sorted(p.name for p in store.path.glob("shards/*/*.parquet")) == [
        n for n in shards_before if not n.startswith("TS_01")
    ]
    report = check_store(store)
    assert report.ok, report.problems
    _, xb = store.load_vectors(kept_ids)
    _, found = store.search(xb, 20, gpu=False)
    assert not np.isin(found, removed_ids).any()
    assert set(found[found >= 0].tolist()) == set(kept_ids.tolist())
    with pytest.raises(StoreError, match="no tomogram named 'TS_01'"):
        remove_tomograms(store, ["TS_01"])


def test_remove_refuses_a_class_support_unless_forced(store, collection) -> None:
    from cosnet_index.classes import add_class, list_classes

    _indexed(store, collection)
    one, two = _ids_of(store, "TS_01"), _ids_of(store, "TS_02")
    add_class(store, "mixed", subtomogram_ids=[int(one[0]), int(two[0]), int(one[1])])
    add_class(store, "only01", subtomogram_ids=[int(one[2])])
    add_class(store, "ref", subtomogram_ids=[int(two[0])])
    with pytest.raises(StoreError, match=r"default/mixed \(2 shots\).*--force"):
        remove_tomograms(store, ["TS_01"])
    assert len(store.subtomogram_table()) == 12 and check_store(store).ok
    summary = remove_tomograms(store, ["TS_01"], force=True)
    assert summary.shots_lost == {"default/mixed": 2, "default/only01": 1}
    assert summary.classes_deleted == ("default/only01",)
    assert any("class default/mixed lost 2 shots" in line for line in summary.lines())
    mixed, ref = list_classes(store)
    assert mixed.name == "mixed" and mixed.shots == 1
    np.testing.assert_array_equal(mixed.vectors, ref.vectors)  # the TS_02 shot, now shot 0
    assert check_store(store).ok


def test_rename_keeps_the_vectors_under_the_new_name(store, collection) -> None:
    _indexed(store, collection)
    ids = _ids_of(store, "TS_01")
    rename_tomogram(store, "TS_01", "TS_09")
    assert sorted(t["name"] for t in list_tomograms(store)) == ["TS_02", "TS_09"]
    np.testing.assert_array_equal(_ids_of(store, "TS_09"), ids)
    with pytest.raises(StoreError, match="already holds a tomogram named 'TS_02'"):
        rename_tomogram(store, "TS_09", "TS_02")
    with pytest.raises(StoreError, match="no tomogram named 'TS_01'"):
        rename_tomogram(store, "TS_01", "TS_05")


def test_other_settings_are_refused_and_replace_reindexes(store, collection) -> None:
    _indexed(store, collection)
    before = len(store.subtomogram_table())
    for options in (
        {"invert_contrast": True, "contrast_check": "off"},
        {"edge": "pad"},
        {"voxel_size_angstrom": 12.0},
    ):
        with pytest.raises(StoreError, match="--replace"):
            _indexed(store, collection, **options)
        assert len(store.subtomogram_table()) == before
    summary = index_tomograms(
        store,
        collection["tomograms"][:1],
        collection["star"],
        progress=False,
        invert_contrast=True,
        contrast_check="off",
        edge="pad",
        replace=True,
    )
    assert summary.subtomograms_indexed == 7  # 6 inside + the edge box, padded
    settings = tomogram_settings(store, "TS_01")
    assert settings is not None and settings.invert_contrast and settings.edge == "pad"
    assert not tomogram_settings(store, "TS_02").invert_contrast  # untouched
    assert len(store.subtomogram_table()) == before + 1
    assert check_store(store).ok


def test_picking_a_tomogram_indexed_from_coordinates_is_refused(store, collection) -> None:
    from cosnet_index.pick import index_picked

    _indexed(store, collection)
    with pytest.raises(StoreError, match=r"from coordinates \(--coords\), not with --pick dog"):
        index_picked(
            store, collection["tomograms"][:1], diameters_angstrom=[60.0], progress=False,
            contrast_check="off",
        )  # fmt: skip


def test_tomograms_commands(store, collection, tmp_path) -> None:
    from cosnet_index.cli._app import cli

    _indexed(store, collection)
    path = str(store.path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["tomograms", "list", "--store", path])
    assert listed.exit_code == 0, listed.output
    assert "TS_01" in listed.output and "coordinates" in listed.output
    renamed = runner.invoke(cli, ["tomograms", "rename", "--store", path, "TS_02", "TS_05"])
    assert renamed.exit_code == 0 and "renamed tomogram TS_02 to TS_05" in renamed.output
    removed = runner.invoke(cli, ["tomograms", "remove", "--store", path, "TS_01", "TS_05"])
    assert removed.exit_code == 0, removed.output
    assert "removed 2 tomograms (TS_01, TS_05): 12 subtomograms" in removed.output
    missing = runner.invoke(cli, ["tomograms", "remove", "--store", path, "TS_01"])
    assert missing.exit_code == 1 and "no tomogram named 'TS_01'" in missing.output
    checked = runner.invoke(cli, ["check", "--store", path])
    assert checked.exit_code == 0, checked.output


def test_many_coordinates_without_a_whole_box_are_an_error(store, tmp_path) -> None:
    """Ten picks whose boxes all cross the volume's edge: a voxel-size error, nothing stored."""
    import pandas as pd

    from cosnet_index.errors import CoordinateError
    from tests._store_util import write_tomogram

    rng = np.random.default_rng(0)
    xyz = np.column_stack([rng.uniform(20, 50, 10), rng.uniform(20, 44, 10), np.full(10, 6.0)])
    tomogram = write_tomogram(tmp_path / "TS_07.mrc", seed=3, centres_xyz=xyz)
    coords = tmp_path / "edge.csv"
    pd.DataFrame({"tomogram": "TS_07", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(
        coords, index=False
    )
    with pytest.raises(CoordinateError, match=r"--replace.*nothing was stored"):
        index_tomograms(store, [tomogram], coords, progress=False, contrast_check="off")
    assert list_tomograms(store) == []


def test_picking_at_a_wrong_voxel_size_is_an_error(store, collection) -> None:
    from cosnet_index.errors import InputError
    from cosnet_index.pick import index_picked

    with pytest.raises(InputError, match="--voxel-size"):
        index_picked(store, collection["tomograms"][:1], voxel_size_angstrom=2.5, progress=False)
    assert list_tomograms(store) == []


def test_verbose_index_prints_one_indexed_line(store, collection, caplog) -> None:
    import logging

    from cosnet_index.cli._app import cli

    caplog.set_level(logging.INFO)
    result = CliRunner().invoke(
        cli,
        ["-v", "index", "--store", str(store.path), *map(str, collection["tomograms"]),
         "--pick", "dog", "--diameter", "60", "--no-progress", "--contrast-check", "off"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = [line for line in result.output.splitlines() if line.startswith("indexed ")]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("indexed ")]
    assert len(printed) + len(logged) == 1, (printed, logged)


def test_removed_ids_are_never_given_again(store, collection) -> None:
    _indexed(store, collection)
    last = int(store.subtomogram_table()["id"].max())
    remove_tomograms(store, ["TS_02"])  # indexed second: it held the largest ids
    index_tomograms(
        store, collection["tomograms"][1:], collection["star"], progress=False, replace=True
    )
    assert int(store.subtomogram_table()["id"].min()) == 1
    assert int(_ids_of(store, "TS_02").min()) == last + 1
    assert check_store(store).ok
