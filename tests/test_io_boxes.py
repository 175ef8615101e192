"""MRC validation, box extraction with the edge policy, Fourier resampling."""

from __future__ import annotations

import warnings

import mrcfile
import numpy as np
import pytest

from cosnet_index.errors import InputError, MrcError
from cosnet_index.geometry import box_bounds, resampled_box_size, round_half_up
from cosnet_index.io import check_finite, extract_boxes, fourier_resample, open_tomogram, plan_boxes
from tests._store_util import write_tomogram


def test_open_tomogram_is_memory_mapped(tmp_path) -> None:
    path = write_tomogram(tmp_path / "TS_01.mrc", voxel_size_angstrom=8.0)
    with open_tomogram(path) as tomogram:
        assert isinstance(tomogram.data, np.memmap)
        assert tomogram.name == "TS_01"
        assert tomogram.voxel_size_angstrom == pytest.approx(8.0)
        assert tomogram.shape_zyx == (40, 64, 72)
        assert len(tomogram.header_sha256) == 64
    with open_tomogram(path, voxel_size_angstrom=5.0) as tomogram:
        assert tomogram.voxel_size_angstrom == 5.0


def test_a_symlinked_tomogram_is_named_after_the_link(tmp_path) -> None:
    """``TS_01.mrc -> tomo_00.mrc`` is TS_01 (the given file's stem), also when reopened."""
    target = write_tomogram(tmp_path / "tomo_00.mrc")
    link = tmp_path / "TS_01.mrc"
    link.symlink_to(target)
    with open_tomogram(link) as tomogram:
        assert tomogram.name == "TS_01"
        info = tomogram.info()
    with info.open() as reopened:
        assert reopened.name == "TS_01"


def _write_raw(path, data, voxel_size=10.0):
    with warnings.catch_warnings(), mrcfile.new(path, overwrite=True) as mrc:
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN voxels on purpose
        mrc.set_data(data)
        mrc.voxel_size = voxel_size
    return path


def test_bad_mrc_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(MrcError, match="does not exist"):
        open_tomogram(tmp_path / "missing.mrc")
    image = _write_raw(tmp_path / "image.mrc", np.zeros((32, 32), np.float32))
    with pytest.raises(MrcError, match="2D image"):
        open_tomogram(image)
    complex_ = _write_raw(tmp_path / "complex.mrc", np.zeros((4, 8, 8), np.complex64))
    with pytest.raises(MrcError, match="mode 4"):
        open_tomogram(complex_)
    no_size = _write_raw(tmp_path / "nosize.mrc", np.zeros((8, 8, 8), np.float32), voxel_size=0.0)
    with pytest.raises(MrcError, match="--voxel-size"):
        open_tomogram(no_size)
    with open_tomogram(no_size, voxel_size_angstrom=10.0) as tomogram:
        assert tomogram.voxel_size_angstrom == 10.0
    with pytest.raises(MrcError, match="positive"):
        open_tomogram(no_size, voxel_size_angstrom=0.0)
    good = write_tomogram(tmp_path / "good.mrc")
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(MrcError, match="not a valid MRC"):
        open_tomogram(truncated)
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(b"not an mrc file" * 100)
    with pytest.raises(MrcError, match="not a valid MRC"):
        open_tomogram(garbage)


def test_non_finite_voxels_are_found(tmp_path) -> None:
    data = np.zeros((40, 8, 8), np.float32)
    data[37, 3, 3] = np.nan
    path = _write_raw(tmp_path / "nan.mrc", data)
    with open_tomogram(path) as tomogram, pytest.raises(MrcError, match="NaN"):
        check_finite(tomogram)


def test_box_is_centred_on_the_rounded_coordinate() -> None:
    volume = np.zeros((40, 50, 60), np.float32)
    volume[20, 25, 30] = 1.0  # z, y, x
    for xyz in ([30.0, 25.0, 20.0], [30.4, 24.6, 19.5]):
        boxes, plan = extract_boxes(volume, np.array([xyz]), 8)
        assert plan.keep.all()
        assert np.unravel_index(boxes[0].argmax(), boxes[0].shape) == (4, 4, 4)
    assert round_half_up(np.array([12.5, -0.5, 3.49])).tolist() == [13, 0, 3]
    start, stop = box_bounds(np.array([[30.0, 25.0, 20.0]]), 8)
    assert start.tolist() == [[16, 21, 26]] and stop.tolist() == [[24, 29, 34]]


def test_edge_policy_skip_and_pad() -> None:
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(32, 32, 32)).astype(np.float32) + 5.0
    xyz = np.array([[16.0, 16.0, 16.0], [2.0, 16.0, 16.0], [40.0, 16.0, 16.0], [-0.6, 3.0, 3.0]])
    plan = plan_boxes(volume.shape, xyz, 16, "skip")
    assert plan.keep.tolist() == [True, False, False, False]
    assert plan.skipped() == {"edge": 1, "outside": 2}
    boxes, plan = extract_boxes(volume, xyz, 16, edge="pad")
    assert plan.keep.tolist() == [True, True, False, False]
    assert plan.skipped() == {"outside": 2}
    assert boxes.shape == (2, 16, 16, 16)
    padded = boxes[1]  # x = 2: columns x < 0 are filled with the mean of the rest
    inside = padded[:, :, 6:]
    np.testing.assert_allclose(padded[:, :, :6], inside.mean(), rtol=1e-5)
    np.testing.assert_array_equal(inside, volume[8:24, 8:24, 0:10])
    with pytest.raises(InputError, match="edge policy"):
        plan_boxes(volume.shape, xyz, 16, "wrap")


def test_invert_contrast() -> None:
    volume = np.arange(16**3, dtype=np.float32).reshape(16, 16, 16)
    a, _ = extract_boxes(volume, np.array([[8.0, 8.0, 8.0]]), 8)
    b, _ = extract_boxes(volume, np.array([[8.0, 8.0, 8.0]]), 8, invert_contrast=True)
    np.testing.assert_array_equal(a, -b)


def test_fourier_resampling_keeps_a_blob_centred_and_the_mean() -> None:
    side = 64
    z, y, x = np.indices((side, side, side))
    c = side // 2
    blob = np.exp(-((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2) / (2 * 6.0**2)).astype(np.float32)
    small = fourier_resample(blob[None] + 2.0, 32)[0]
    assert small.shape == (32, 32, 32)
    assert np.unravel_index(small.argmax(), small.shape) == (16, 16, 16)
    assert small.mean() == pytest.approx((blob + 2.0).mean(), rel=1e-4)
    # the blob's width halves (in voxels) when the voxel size doubles
    profile = small[16, 16] - small[16, 16].min()
    assert 2.0 < np.sum(profile > profile.max() / 2) < 9.0
    big = fourier_resample(small[None], 64)[0]
    assert np.unravel_index(big.argmax(), big.shape) == (32, 32, 32)
    assert resampled_box_size(32, 5.0, 10.0) == 64
    assert resampled_box_size(32, 20.0, 10.0) == 16


def test_extract_with_resampling_reads_the_larger_region(tmp_path) -> None:
    path = write_tomogram(
        tmp_path / "fine.mrc",
        shape_zyx=(80, 80, 80),
        voxel_size_angstrom=5.0,
        centres_xyz=np.array([[40.0, 40.0, 40.0]]),
    )
    with open_tomogram(path) as tomogram:
        boxes, plan = extract_boxes(
            tomogram.data, np.array([[40.0, 40.0, 40.0]]), 32, source_box=64
        )
    assert plan.keep.all() and boxes.shape == (1, 32, 32, 32)
    centre = np.unravel_index(boxes[0].argmin(), boxes[0].shape)  # the blob is dark
    assert all(abs(int(c) - 16) <= 1 for c in centre)
