"""Picking molecules of every shape and size (issue 27): scale groups, hollow shells, crowds.

Tiny seeded volumes at 10 A voxels: a hollow shell is centred, a crowd of small spheres keeps one
candidate per sphere (it is not merged into one large molecule), two touching spheres (a dimer)
are centred as one molecule, and diameters an octave apart are computed at their own binning (so
searching both costs about the sum of each alone).
"""

from __future__ import annotations

import numpy as np
import pytest


def _shell(radius: float, seed: int, centre=(33.0, 30.0, 31.0), shape=(64, 64, 64)) -> np.ndarray:
    """A dark hollow shell (wall 3 voxels) of ``radius`` voxels in white noise, (z, y, x)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    cx, cy, cz = centre
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    data = rng.normal(0.0, 1.0, shape).astype(np.float32)
    data -= (1.0 * (np.abs(r - radius) <= 1.5)).astype(np.float32)
    return data


def test_scale_groups_bin_each_octave_for_its_own_smallest_sigma() -> None:
    from cosnet_index.pick import scale_groups

    both = scale_groups([100.0, 290.0], 10.0)
    assert [(g.factor, g.diameters_angstrom, g.first) for g in both] == [
        (1, (100.0,), 0),
        (5, (290.0,), 1),
    ]
    # the groups of both are those of each alone: the cost is the sum of the two
    assert [g.factor for g in both] == [
        scale_groups([100.0], 10.0)[0].factor,
        scale_groups([290.0], 10.0)[0].factor,
    ]
    # within an octave the diameters share the binning of the smallest
    default = scale_groups([120.0, 170.0, 240.0, 350.0], 10.0)
    assert [(g.factor, g.diameters_angstrom) for g in default] == [
        (2, (120.0, 170.0)),
        (4, (240.0, 350.0)),
    ]
    for g in default:  # every group's smallest sigma is at least 1.5 binned voxels
        assert g.diameters_angstrom[0] / 2 / np.sqrt(3) / 10.0 / g.factor >= 1.5
    # a small volume caps the binning (3 binned voxels a side at least)
    assert scale_groups([2000.0], 10.0, (12, 64, 64))[0].factor == 4


def test_scale_groups_find_the_same_blobs_as_each_diameter_alone() -> None:
    from cosnet_index.pick import detect_blobs

    rng = np.random.default_rng(2)
    z, y, x = np.indices((48, 96, 96))
    data = rng.normal(0.0, 1.0, (48, 96, 96)).astype(np.float32)
    small, large = np.array([20.0, 24.0, 24.0]), np.array([62.0, 60.0, 24.0])  # x, y, z
    for (cx, cy, cz), sigma in ((small, 3.0), (large, 8.0)):
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        data -= (2.0 * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)
    found = detect_blobs(data, 10.0, [100.0, 280.0], threshold=6.0)
    xyz = found[["x", "y", "z"]].to_numpy()
    for centre, tolerance in ((small, 1.5), (large, 3.5)):  # a quarter of a ball's radius
        assert np.linalg.norm(xyz - centre, axis=1).min() <= tolerance
    near = found[np.linalg.norm(xyz - large, axis=1) <= 3.5]
    assert 280.0 in set(near["pick_diameter_angstrom"])  # the large blob is centred by its scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_hollow_shell_is_centred_within_a_quarter_of_its_radius(seed: int) -> None:
    from cosnet_index.pick import detect_blobs

    radius = 14.0  # a 28 nm shell: the default diameters, no hint of its size
    centre = np.array([33.0, 30.0, 31.0])
    found = detect_blobs(_shell(radius, seed), 10.0, threshold=4.0)
    xyz = found[["x", "y", "z"]].to_numpy()
    assert np.linalg.norm(xyz - centre, axis=1).min() <= radius / 4
    # the refinement's copies of the wall peaks collapse onto the centre, not a cloud
    near = np.linalg.norm(xyz - centre, axis=1) <= 1.5 * radius
    assert near.sum() <= 4


@pytest.mark.parametrize("radius", [17.0, 18.5])
def test_a_shell_larger_than_the_largest_diameter_is_centred_by_a_grown_sphere(
    radius: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cosnet_index.pick import _recentre, detect_blobs

    # a 34-37 nm shell: a 33-35 nm capsid whose voxel size is 5-10% smaller than the header's,
    # larger than the largest default diameter (350 A); that sphere alone leaves it 11-13
    # voxels off, on its wall, with ~20 candidates (measured before the grown spheres)
    centre = np.array([40.0, 40.0, 40.0])
    data = _shell(radius, 0, centre=tuple(centre), shape=(80, 80, 80))
    found = detect_blobs(data, 10.0, threshold=4.0)
    xyz = found[["x", "y", "z"]].to_numpy()
    nearest = np.linalg.norm(xyz - centre, axis=1)
    assert nearest.min() <= radius / 4
    assert found["pick_diameter_angstrom"].iloc[nearest.argmin()] > 350.0
    assert (nearest <= 1.5 * radius).sum() <= 2  # the wall peaks collapse onto the centre
    # the same diameters given by the user are not grown (who gives --diameter knows the
    # sizes), and 350 A alone does not centre it: what the grown spheres add
    given = detect_blobs(data, 10.0, [120.0, 170.0, 240.0, 350.0], threshold=4.0)
    assert np.linalg.norm(given[["x", "y", "z"]].to_numpy() - centre, axis=1).min() > radius / 2
    assert given["pick_diameter_angstrom"].max() <= 350.0
    monkeypatch.setattr(_recentre, "GROWTH", ())
    found = detect_blobs(data, 10.0, threshold=4.0)
    assert np.linalg.norm(found[["x", "y", "z"]].to_numpy() - centre, axis=1).min() > radius / 2


def _balls(centres: np.ndarray, radius: float, seed: int, shape=(48, 80, 80)) -> np.ndarray:
    """Dark balls of ``radius`` voxels at ``centres`` (x, y, z) in white noise, (z, y, x)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    data = rng.normal(0.0, 1.0, shape).astype(np.float32)
    for cx, cy, cz in centres:
        ball = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2
        data -= 1.5 * ball.astype(np.float32)
    return data


def test_a_crowd_of_small_spheres_is_not_merged_into_one_candidate() -> None:
    from cosnet_index.pick import detect_blobs

    # seven balls of radius 5 (d = 100 A) 2 voxels apart, a hexagon around one: 34 voxels
    # across, about the size of the largest default diameter, which fits them as one worse
    # than each ball's own sphere does
    angles = np.arange(6) * np.pi / 3
    centres = np.array(
        [[40.0, 40.0, 24.0]] + [[40 + 12 * np.cos(a), 40 + 12 * np.sin(a), 24.0] for a in angles]
    )
    found = detect_blobs(_balls(centres, 5.0, 5), 10.0, [100.0, 170.0, 240.0, 350.0])
    xyz = found[["x", "y", "z"]].to_numpy()
    nearest = np.linalg.norm(centres[:, None] - xyz[None], axis=2).min(axis=1)
    assert (nearest <= 3.0).all()  # every ball keeps its own candidate
    assert len(found) <= 2 * len(centres)


def test_two_touching_balls_are_centred_as_one_molecule() -> None:
    from cosnet_index.pick import detect_blobs

    # a dimer: two touching balls of radius 4.5 (9 nm), the molecule 18 voxels long; its centre
    # lies between them, where no blob peaks (docs/picking.md: two-lobed and elongated molecules)
    centre = np.array([40.0, 40.0, 24.0])
    lobes = centre + np.array([[-4.5, 0.0, 0.0], [4.5, 0.0, 0.0]])
    found = detect_blobs(_balls(lobes, 4.5, 3), 10.0)
    xyz = found[["x", "y", "z"]].to_numpy()
    assert np.linalg.norm(xyz - centre, axis=1).min() <= 9.0 / 4  # a quarter of its radius
    assert len(found) <= 3


def test_each_peak_keeps_its_blob_centred_by_the_second_sphere_and_its_molecule() -> None:
    from cosnet_index.pick._recentre import centres_kept as _centres_kept

    fit = np.array(  # (diameters, peaks): sphere fits of each peak's re-centred copies
        [
            [9.0, 1.0, 3.0, 0.5],  # the smallest diameter
            [1.0, 0.0, 2.5, 0.4],  # the blob's centring sphere
            [3.0, 1.0, 1.0, 0.3],
            [1.0, 6.0, 1.0, 0.3],  # the largest
        ]
    )
    # every peak keeps its blob (second row); peak 0 and 1 the largest significant sphere above
    # it (a molecule they are part of), peak 2 and 3 none; peak 3's second sphere strayed off
    # its blob, so its smallest centre stands in
    strayed = np.array([False, False, False, True])
    np.testing.assert_array_equal(
        _centres_kept(fit, strayed),
        [
            [False, False, False, True],
            [True, True, True, False],
            [True, False, False, False],
            [False, True, False, False],
        ],
    )
    np.testing.assert_array_equal(_centres_kept(fit[:1]), [[True] * 4])  # one diameter: itself
    # a peak whose largest significant sphere is not its best-fitting large one keeps both
    between = np.array([[9.0], [1.0], [7.0], [2.5]])
    np.testing.assert_array_equal(_centres_kept(between)[:, 0], [False, True, True, True])


def test_sphere_fit_prefers_the_sphere_that_holds_a_shell() -> None:
    from cosnet_index.pick import sphere_fit

    z, y, x = np.indices((48, 48, 48))
    r = np.sqrt((x - 24) ** 2 + (y - 24) ** 2 + (z - 24) ** 2)
    band = (np.abs(r - 8.0) <= 1.5).astype(np.float32)  # a shell of radius 8, no noise
    band += np.random.default_rng(0).normal(0.0, 0.05, band.shape).astype(np.float32)
    centre, wall = np.array([[24.0, 24.0, 24.0]]), np.array([[32.0, 24.0, 24.0]])
    fit = sphere_fit(band, [wall, centre], [6.0, 19.0])  # a small sphere on the wall, a large one
    assert fit[1, 0] > fit[0, 0] > 0


def test_the_blob_is_centred_by_the_next_diameter_only_when_it_is_a_small_step() -> None:
    from cosnet_index.pick._recentre import recentre_peaks

    centre = np.array([[40.0, 40.0, 24.0]])
    band = -_balls(centre, 5.0, 7)  # molecules positive, as the band-passed copy
    # 100 A then 140 A: the 140 A sphere centres the blob, the smallest's centre is dropped
    _, keep, _ = recentre_peaks(band, centre + 1.0, [10.0, 14.0])
    assert keep[:, 0].tolist() == [False, True]
    # 100 A then 290 A: far larger, it would reach across a crowd; the blob keeps its own
    _, keep, _ = recentre_peaks(band, centre + 1.0, [10.0, 29.0])
    assert keep[0, 0]
