"""Property tests (hypothesis): coordinate parsers and box extraction never surprise.

- CSV and STAR files round-trip arbitrary finite coordinates exactly (written with ``repr``);
  the order and case of the columns do not matter; RELION 5 centred angstrom converts back.
- Box extraction: any coordinate (huge, negative, NaN, infinite) on any volume shape >= 1 gives a
  box of the right shape or a counted skip, following the documented edge policy; nothing
  raises (warnings are errors here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cosnet_index.geometry import box_bounds
from cosnet_index.io import extract_boxes, parse_coordinates, plan_boxes, read_coordinates

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
names = st.from_regex(r"TS_[0-9]{1,3}[a-z]?", fullmatch=True)


@st.composite
def coordinate_tables(draw: st.DrawFn, max_rows: int = 12) -> pd.DataFrame:
    n = draw(st.integers(1, max_rows))
    return pd.DataFrame(
        {
            "tomogram": draw(st.lists(names, min_size=n, max_size=n)),
            "x": draw(st.lists(finite, min_size=n, max_size=n)),
            "y": draw(st.lists(finite, min_size=n, max_size=n)),
            "z": draw(st.lists(finite, min_size=n, max_size=n)),
            "score": draw(st.lists(finite, min_size=n, max_size=n)),
        }
    )


def _write_csv(path: Path, table: pd.DataFrame, columns: list[str]) -> None:
    lines = [",".join(columns)]
    for row in table[columns].itertuples(index=False):
        lines.append(",".join(v if isinstance(v, str) else repr(float(v)) for v in row))
    path.write_text("\n".join(lines) + "\n")


def _write_star(path: Path, table: pd.DataFrame) -> None:
    columns = {
        "rlnTomoName": "tomogram",
        "rlnCoordinateX": "x",
        "rlnCoordinateY": "y",
        "rlnCoordinateZ": "z",
    }
    head = [f"_{name} #{k + 1}" for k, name in enumerate(columns)]
    rows = [
        " ".join(v if isinstance(v, str) else repr(float(v)) for v in row)
        for row in table[list(columns.values())].itertuples(index=False)
    ]
    path.write_text("\ndata_particles\n\nloop_\n" + "\n".join(head + rows) + "\n\n")


def _assert_same_xyz(parsed: pd.DataFrame, table: pd.DataFrame) -> None:
    assert list(parsed["tomogram"]) == list(table["tomogram"])
    for axis in "xyz":
        np.testing.assert_array_equal(parsed[axis].to_numpy(), table[axis].to_numpy())


@SETTINGS
@given(table=coordinate_tables(), order=st.permutations(["tomogram", "x", "y", "z", "score"]))
def test_csv_round_trip_any_column_order(
    tmp_path: Path, table: pd.DataFrame, order: list[str]
) -> None:
    path = tmp_path / "c.csv"
    _write_csv(path, table, order)
    parsed = read_coordinates(path)
    _assert_same_xyz(parsed, table)
    np.testing.assert_array_equal(parsed["score"].to_numpy(), table["score"].to_numpy())


@SETTINGS
@given(table=coordinate_tables(), upper=st.lists(st.booleans(), min_size=3, max_size=3))
def test_csv_column_names_any_case(tmp_path: Path, table: pd.DataFrame, upper: list[bool]) -> None:
    renamed = table.rename(columns={a: a.upper() for a, u in zip("xyz", upper, strict=True) if u})
    path = tmp_path / "c.csv"
    _write_csv(path, renamed, list(renamed.columns))
    _assert_same_xyz(read_coordinates(path), table)


@SETTINGS
@given(table=coordinate_tables())
def test_star_round_trip(tmp_path: Path, table: pd.DataFrame) -> None:
    path = tmp_path / "c.star"
    _write_star(path, table)
    _assert_same_xyz(read_coordinates(path), table)


@SETTINGS
@given(
    table=coordinate_tables(),
    csv_first=st.booleans(),
)
def test_star_and_csv_agree(tmp_path: Path, table: pd.DataFrame, csv_first: bool) -> None:
    _write_star(tmp_path / "c.star", table)
    _write_csv(tmp_path / "c.csv", table, ["x", "y", "z", "tomogram"])
    paths = [tmp_path / "c.csv", tmp_path / "c.star"]
    a, b = (read_coordinates(p) for p in (paths if csv_first else paths[::-1]))
    for axis in "xyz":
        np.testing.assert_array_equal(a[axis].to_numpy(), b[axis].to_numpy())


class _Geometry:
    def __init__(self, shape_zyx: tuple[int, int, int], voxel: float) -> None:
        self.shape_zyx = shape_zyx
        self.voxel_size_angstrom = voxel


@SETTINGS
@given(
    xyz=arrays(np.float64, (5, 3), elements=st.floats(-1e4, 1e4)),
    shape=st.tuples(*[st.integers(1, 4000)] * 3),
    voxel=st.floats(0.5, 50.0),
)
def test_relion5_centred_angstrom_converts_back(
    tmp_path: Path, xyz: np.ndarray, shape: tuple[int, int, int], voxel: float
) -> None:
    centre = np.asarray(shape, dtype=np.float64)[::-1] / 2.0  # x, y, z
    angstrom = (xyz - centre) * voxel
    head = ["_rlnTomoName #1"] + [
        f"_rlnCenteredCoordinate{a}Angst #{k + 2}" for k, a in enumerate("XYZ")
    ]
    rows = [" ".join(["TS_01", *(repr(float(v)) for v in row)]) for row in angstrom]
    path = tmp_path / "r5.star"
    path.write_text("\ndata_particles\n\nloop_\n" + "\n".join(head + rows) + "\n\n")
    parsed = read_coordinates(path, tomograms={"TS_01": _Geometry(shape, voxel)})
    np.testing.assert_allclose(
        parsed[["x", "y", "z"]].to_numpy(), xyz, rtol=1e-9, atol=1e-9 * (1 + voxel)
    )


# -- boxes -----------------------------------------------------------------------------------------

any_coordinate = st.one_of(
    st.floats(-40.0, 40.0),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-20, 20).map(lambda v: v + 0.5),  # exactly half-way: rounds up
)


@SETTINGS
@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    xyz=st.lists(st.tuples(any_coordinate, any_coordinate, any_coordinate), min_size=1, max_size=6),
    box=st.integers(1, 6),
    edge=st.sampled_from(["skip", "pad"]),
    source_extra=st.sampled_from([0, 0, 2]),
)
def test_any_coordinate_gives_a_box_or_a_counted_skip(
    shape: tuple[int, int, int],
    xyz: list[tuple[float, float, float]],
    box: int,
    edge: str,
    source_extra: int,
) -> None:
    volume = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # (z, y, x)
    coords = np.asarray(xyz, dtype=np.float64)  # (n, 3)
    source_box = box + source_extra
    boxes, plan = extract_boxes(volume, coords, box, source_box=source_box, edge=edge)
    kept = int(plan.keep.sum())
    assert boxes.shape == (kept, box, box, box)
    assert boxes.dtype == np.float32
    assert np.isfinite(boxes).all()
    assert sum(plan.skipped().values()) == len(coords) - kept
    assert set(plan.skipped()) <= {"outside", "edge"}
    for i, c in enumerate(coords):
        finite_centre = np.all(np.isfinite(c))
        r = np.floor(c + 0.5) if finite_centre else None
        inside = finite_centre and all(0 <= r[a] < shape[2 - a] for a in range(3))
        if not inside:
            assert not plan.keep[i] and plan.reason[i] == "outside"
        elif edge == "pad":
            assert plan.keep[i]
    if edge == "skip" and source_extra == 0:  # kept boxes are exactly the volume's voxels
        rows = np.flatnonzero(plan.keep)
        start, stop = box_bounds(coords[rows], box)
        for k, (lo, hi) in enumerate(zip(start, stop, strict=True)):
            expected = volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            np.testing.assert_array_equal(boxes[k], expected)


@SETTINGS
@given(
    shape=st.tuples(*[st.integers(1, 9)] * 3),
    xyz=arrays(np.float64, (4, 3), elements=st.floats(-12.0, 20.0)),
    box=st.integers(1, 7),
)
def test_pad_keeps_every_inside_centre_and_skip_keeps_whole_boxes(
    shape: tuple[int, int, int], xyz: np.ndarray, box: int
) -> None:
    skip, pad = plan_boxes(shape, xyz, box, "skip"), plan_boxes(shape, xyz, box, "pad")
    assert np.all(skip.keep <= pad.keep)  # skip keeps a subset of pad
    start, stop = box_bounds(xyz, box)
    whole = np.all((start >= 0) & (stop <= np.asarray(shape)), axis=1)
    np.testing.assert_array_equal(skip.keep, whole)


@pytest.mark.parametrize("bad", [0, -3])
def test_box_side_below_one_is_refused(bad: int) -> None:
    from cosnet_index.errors import InputError

    with pytest.raises(InputError, match="box side"):
        plan_boxes((4, 4, 4), np.zeros((1, 3)), bad)


@SETTINGS
@given(text=st.text(max_size=200), suffix=st.sampled_from([".csv", ".star", ".tsv"]))
def test_any_text_parses_or_raises_coordinate_error(tmp_path: Path, text: str, suffix: str) -> None:
    """Arbitrary file content: a table, or a CoordinateError (never another exception)."""
    from cosnet_index.errors import CoordinateError

    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        parsed = parse_coordinates(path)
    except CoordinateError:
        return
    assert np.isfinite(parsed.table[["x", "y", "z"]].to_numpy(dtype=np.float64)).all()
