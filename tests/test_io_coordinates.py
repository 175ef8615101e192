"""Coordinate tables: every STAR flavour, CSV and Parquet parse to the same voxel coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import starfile

from cosnet_index.errors import CoordinateError
from cosnet_index.geometry import table_to_voxels, voxels_to_angstrom, xyz_to_zyx, zyx_to_xyz
from cosnet_index.io import parse_coordinates, read_coordinates, tomogram_name
from tests._store_util import (
    SHAPE_ZYX,
    particle_table,
    write_star_relion4,
    write_star_relion5,
    write_star_relion31,
    write_star_warp,
)


@dataclass
class _Geometry:
    shape_zyx: tuple[int, int, int]
    voxel_size_angstrom: float


GEOMETRY = {n: _Geometry(SHAPE_ZYX, 10.0) for n in ("TS_01", "TS_02")}


def _sorted(frame: pd.DataFrame) -> np.ndarray:
    return frame[["x", "y", "z"]].to_numpy(dtype=np.float64)


@pytest.mark.parametrize(
    "writer", [write_star_relion31, write_star_relion5, write_star_warp, write_star_relion4]
)
def test_star_variants_parse_to_the_same_coordinates(tmp_path, writer) -> None:
    table = particle_table()
    path = writer(tmp_path / "particles.star", table)
    parsed = read_coordinates(path, tomograms=GEOMETRY)
    assert list(parsed["tomogram"]) == list(table["tomogram"])
    np.testing.assert_allclose(_sorted(parsed), _sorted(table), atol=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".tsv"])
def test_csv_and_parquet(tmp_path, suffix) -> None:
    table = particle_table()
    path = tmp_path / f"coords{suffix}"
    if suffix == ".parquet":
        table.assign(label="ribosome").to_parquet(path)
    else:
        table.assign(label="ribosome").to_csv(
            path, index=False, sep="\t" if suffix == ".tsv" else ","
        )
    parsed = read_coordinates(path)
    np.testing.assert_allclose(_sorted(parsed), _sorted(table))
    assert list(parsed.columns[:4]) == ["tomogram", "x", "y", "z"]
    assert (parsed["label"] == "ribosome").all()  # extra columns are kept


def test_single_tomogram_file_without_name_column(tmp_path) -> None:
    path = tmp_path / "picks.csv"
    pd.DataFrame({"X": [1.0, 2.0], "Y": [3.0, 4.0], "Z": [5.0, 6.0]}).to_csv(path, index=False)
    parsed = read_coordinates(path, tomograms={"TS_09": _Geometry(SHAPE_ZYX, 10.0)})
    assert list(parsed["tomogram"]) == ["TS_09", "TS_09"]
    with pytest.raises(CoordinateError, match="no tomogram name column"):
        read_coordinates(path, tomograms=GEOMETRY)


def test_relion30_origin_in_pixels(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "rlnMicrographName": ["TS_01.mrc"],
            "rlnCoordinateX": [10.0],
            "rlnCoordinateY": [20.0],
            "rlnCoordinateZ": [30.0],
            "rlnOriginX": [1.0],
            "rlnOriginY": [-2.0],
            "rlnOriginZ": [0.5],
        }
    )
    path = tmp_path / "old.star"
    starfile.write(frame, path)
    parsed = read_coordinates(path)
    np.testing.assert_allclose(_sorted(parsed), [[9.0, 22.0, 29.5]])


def test_relion5_needs_tomogram_geometry(tmp_path) -> None:
    path = write_star_relion5(tmp_path / "p.star", particle_table())
    with pytest.raises(CoordinateError, match="angstrom"):
        read_coordinates(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("a,b\n1,2\n", "no x, y, z columns"),
        ("x,y,z\n1,2,abc\n", "non-numeric"),
        ("x,y,z\n1,2,\n", "non-numeric or missing"),
        ("x,y,z,tomogram\n1,2,3,\n", "empty in data row 1"),
        ("x,y,z\n", "no particle rows"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path, content, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CoordinateError, match=message):
        read_coordinates(path)


def test_bad_star_and_unknown_names(tmp_path) -> None:
    path = tmp_path / "bad.star"
    path.write_text("data_\nloop_\n_rlnAngleRot #1\n1.0\n")
    with pytest.raises(CoordinateError, match="rlnCoordinateX"):
        parse_coordinates(path)
    star = write_star_warp(tmp_path / "w.star", particle_table(names=("TS_76", "TS_77")))
    with pytest.raises(CoordinateError, match=r"names none of the given tomograms.*TS_77"):
        read_coordinates(star, tomograms=GEOMETRY)
    with pytest.raises(CoordinateError, match="does not exist"):
        parse_coordinates(tmp_path / "missing.star")


def test_tomogram_names() -> None:
    assert tomogram_name("/data/TS_01.mrc") == "TS_01"
    assert tomogram_name("TS_01.tomostar") == "TS_01"
    assert tomogram_name("TS_01_10.00Apx.mrc") == "TS_01"
    assert tomogram_name("tomograms/TS_01/TS_01_aligned.st:mrc") == "TS_01_aligned"
    assert tomogram_name("TS_01") == "TS_01"


def test_geometry_round_trips() -> None:
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 100, (20, 3))
    np.testing.assert_array_equal(zyx_to_xyz(xyz_to_zyx(xyz)), xyz)
    assert xyz_to_zyx(np.array([1, 2, 3])).tolist() == [3, 2, 1]
    # centred angstrom -> voxels -> angstrom
    centre = np.array(SHAPE_ZYX[::-1]) / 2
    angstrom = voxels_to_angstrom(xyz - centre, 7.5)
    back = table_to_voxels(
        angstrom, voxel_size_angstrom=7.5, centred_angstrom=True, shape_zyx=SHAPE_ZYX
    )
    np.testing.assert_allclose(back, xyz)


@pytest.mark.parametrize("writer", [write_star_warp, write_star_relion4, write_star_relion31])
def test_rows_of_tomograms_not_given_are_skipped_and_counted(tmp_path, writer, caplog) -> None:
    """A project-wide STAR file indexes one tomogram: other rows are skipped with one info line."""
    table = particle_table(names=("TS_01", "TS_77", "TS_78"))
    star = writer(tmp_path / "project.star", table)
    one = {"TS_01": GEOMETRY["TS_01"]}
    with caplog.at_level("INFO", logger="cosnet_index.io.coordinates"):
        parsed = read_coordinates(star, tomograms=one)
    assert set(parsed["tomogram"]) == {"TS_01"}
    expected = table[table["tomogram"] == "TS_01"]
    np.testing.assert_allclose(_sorted(parsed), _sorted(expected), atol=1e-4)
    # the rows keep their numbers in the file (stored as coordinate_row)
    assert list(parsed.index) == list(expected.index)
    lines = [r.getMessage() for r in caplog.records if "not given" in r.getMessage()]
    assert len(lines) == 1 and "skipped 16 rows naming 2 tomograms" in lines[0], lines
