"""Contrast and voxel-size checks at index time (cosnet_index/io/plausibility.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError
from cosnet_index.io import open_tomogram
from cosnet_index.io.plausibility import ContrastError, check_plausibility, estimate_plausibility
from cosnet_index.store import Store, check_store, index_tomograms

SHAPE = (40, 96, 96)


def _picks(n: int = 20, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(18, 78, n), rng.uniform(18, 78, n), np.full(n, SHAPE[0] / 2)]
    )


def _tomogram(
    path: Path, *, voxel: float = 10.0, sign: float = -1.0, sigma: float = 3.0, blobs: bool = True
) -> tuple[Path, Path]:
    """Noise + blobs (dark for sign -1) at 20 picks; returns (mrc, csv of the picks)."""
    xyz = _picks()
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 1.0, size=SHAPE).astype(np.float32)
    z, y, x = np.indices(SHAPE)
    for cx, cy, cz in xyz if blobs else []:
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        data += sign * 3.0 * np.exp(-r2 / (2 * sigma**2))
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    csv = path.with_suffix(".csv")
    pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(csv, index=False)
    return path, csv


def _estimate(path: Path):  # type: ignore[no-untyped-def]
    with open_tomogram(path) as tomogram:
        info = tomogram.info()
    return estimate_plausibility(info, pd.read_csv(path.with_suffix(".csv")).to_numpy())


def _check(path: Path, **kwargs):  # type: ignore[no-untyped-def]
    with open_tomogram(path) as tomogram:
        info = tomogram.info()
    table = pd.read_csv(path.with_suffix(".csv")).assign(tomogram=info.name)
    return check_plausibility([info], table, box=32, model_voxel_angstrom=10.0, **kwargs)


def test_dark_bright_and_noise_are_told_apart(tmp_path) -> None:
    dark = _estimate(_tomogram(tmp_path / "dark.mrc")[0])
    assert dark.contrast == "dark" and dark.t < -10
    # a Gaussian of sigma 3 voxels of 10 A: FWHM 2.355 * 30 = 71 A
    assert 50 < dark.diameter_angstrom < 90 and dark.size_problem is None
    bright = _estimate(_tomogram(tmp_path / "bright.mrc", sign=1.0)[0])
    assert bright.contrast == "bright" and bright.t > 10
    noise = _estimate(_tomogram(tmp_path / "noise.mrc", blobs=False)[0])
    assert noise.contrast == "unclear" and np.isnan(noise.diameter_angstrom)
    few = _tomogram(tmp_path / "few.mrc", sign=1.0)[0]
    with open_tomogram(few) as tomogram:
        assert estimate_plausibility(tomogram.info(), _picks()[:5]).contrast == "unclear"


def test_bright_molecules_stop_indexing_before_anything_is_written(tmp_path, tiny_model) -> None:
    mrc, csv = _tomogram(tmp_path / "TS_bright.mrc", sign=1.0)
    store_path = tmp_path / "store"
    with Store.create(store_path, model_path=tiny_model[0]):
        pass
    before = {str(p): p.read_bytes() for p in sorted(store_path.rglob("*")) if p.is_file()}
    base = ["index", "--store", str(store_path), str(mrc), "--coords", str(csv), "--no-progress"]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 1
    assert "--invert-contrast" in result.output and "nothing was written" in result.output
    after = {str(p): p.read_bytes() for p in sorted(store_path.rglob("*")) if p.is_file()}
    assert after == before
    result = CliRunner().invoke(cli, [*base, "--invert-contrast"])
    assert result.exit_code == 0, result.output
    with Store.open(store_path, readonly=True) as store:
        assert check_store(store).ok
    with pytest.raises(ContrastError, match="--invert-contrast"):
        _check(mrc)
    assert _check(mrc, contrast_check="off", size_check=False) == []
    with pytest.raises(InputError, match="--contrast-check"):
        _check(mrc, contrast_check="maybe")


def test_dark_molecules_with_invert_contrast_get_a_warning(tmp_path, caplog) -> None:
    mrc, _ = _tomogram(tmp_path / "dark.mrc")
    with caplog.at_level(logging.WARNING, logger="cosnet_index"):
        _check(mrc, invert_contrast=True)
    assert any("drop --invert-contrast" in r.getMessage() for r in caplog.records)


def test_header_voxel_size_4x_too_small_gets_the_warning(tmp_path, tiny_model, caplog) -> None:
    # 20 A data (blobs of FWHM 2.355 * 1.5 voxels = 71 A) whose header says 5 A (binned 4x,
    # header not updated): they look 18 A across
    mrc, csv = _tomogram(tmp_path / "binned.mrc", voxel=5.0, sigma=1.5)
    with Store.create(tmp_path / "store", model_path=tiny_model[0]) as store:
        with caplog.at_level(logging.WARNING, logger="cosnet_index"):
            index_tomograms(store, [mrc], csv, edge="pad", progress=False)
    warned = [r.getMessage() for r in caplog.records if "smaller than any" in r.getMessage()]
    assert len(warned) == 1 and "--voxel-size" in warned[0] and "size of 5 A" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cosnet_index"):
        _check(mrc, size_check=False)
        right, _ = _tomogram(tmp_path / "right.mrc", voxel=20.0, sigma=1.5)
        (found,) = _check(right)  # the same data with its true voxel size: no warning
    assert not caplog.records
    assert 50 < found.diameter_angstrom < 90


def test_molecules_filling_the_box_get_the_warning(tmp_path, caplog) -> None:
    # sigma 5 voxels of 10 A data whose header says 40 A: FWHM ~470 A, more than the 320 A box
    mrc, _ = _tomogram(tmp_path / "large.mrc", voxel=40.0, sigma=5.0)
    with caplog.at_level(logging.WARNING, logger="cosnet_index"):
        found = _check(mrc)
    assert np.isinf(found[0].diameter_angstrom)
    assert any("fill the whole 320 A box" in r.getMessage() for r in caplog.records)


def test_the_distributed_path_checks_too(tmp_path, tiny_model) -> None:
    from cosnet_index.store.distributed import index_distributed

    mrc, csv = _tomogram(tmp_path / "TS_bright.mrc", sign=1.0)
    with Store.create(tmp_path / "store", model_path=tiny_model[0]) as store:
        with pytest.raises(ContrastError, match="--invert-contrast"):
            index_distributed(store, [mrc], csv)  # client=None: the staged path, here
        assert store.subtomogram_table().empty
        summary = index_distributed(store, [mrc], csv, contrast_check="warn")
        assert summary.subtomograms_indexed == 20


def test_nearest_distances_match_a_kd_tree() -> None:
    # the check's hand-written nearest neighbours (no scipy.spatial import in `index`), blocked
    from scipy.spatial import cKDTree

    from cosnet_index.io import plausibility

    rng = np.random.default_rng(3)
    picks = rng.uniform(0, 200, (400, 3))  # 3000 queries: two blocks of distances
    picks[7] = picks[8]  # a duplicated pick is at distance 0 of its twin, as in the tree
    queries = rng.uniform(0, 200, (3000, 3))
    expected = cKDTree(picks).query(queries, k=1)[0]
    np.testing.assert_allclose(
        plausibility._nearest_distance(queries, picks), expected, rtol=1e-9, atol=1e-6
    )
    spacing = plausibility._nearest_distance(picks, picks, exclude_self=True)
    expected = cKDTree(picks).query(picks, k=2)[0][:, 1]
    np.testing.assert_allclose(spacing, expected, rtol=1e-9, atol=1e-6)
    assert spacing[7] < 1e-6


def test_boxes_are_read_once_when_no_resampling_is_needed(tmp_path, monkeypatch) -> None:
    # at the model's voxel size the two scales are the same boxes: one pass, the same verdict
    from cosnet_index.io import plausibility

    calls = []
    measure = plausibility._measure

    def counting(volume, particles, background, box, source_box, centre):  # type: ignore[no-untyped-def]
        calls.append(source_box)
        return measure(volume, particles, background, box, source_box, centre)

    monkeypatch.setattr(plausibility, "_measure", counting)
    at_model = _estimate(_tomogram(tmp_path / "ten.mrc")[0])
    assert calls == [32] and at_model.contrast == "dark"
    calls.clear()
    finer = _estimate(_tomogram(tmp_path / "five.mrc", voxel=5.0, sigma=6.0)[0])
    assert calls == [64, 32] and finer.contrast == "dark"  # 64 voxels of 5 A resampled, native
