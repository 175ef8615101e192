"""The mass-based volume prior of segmentation (cosnet_index.segment.volume, segment --mass-kda)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cosnet_index.errors import InputError
from cosnet_index.segment.volume import mass_voxels, parse_masses, volume_prior_masks
from tests._store_util import write_tomogram
from tests.test_segment import RADIUS, VOXEL_ANGSTROM, SphereModel


def _ball(side: int, centre: tuple[float, float, float], radius: float) -> np.ndarray:
    z, y, x = np.indices((side,) * 3)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_mass_voxels_follows_the_protein_density() -> None:
    # 81 kDa / 0.81 Da/A^3 = 1e5 A^3 = 100 voxels of 10 A, 12.5 voxels of 20 A
    assert mass_voxels(81.0, 10.0) == 100
    assert mass_voxels(81.0, 20.0) == 12
    with pytest.raises(InputError, match="positive"):
        mass_voxels(0.0, 10.0)


def test_prior_keeps_the_mass_volume_of_the_most_probable_voxels() -> None:
    side = 16
    p = np.full((2, side, side, side), 0.1, dtype=np.float32)
    core = _ball(side, (7.5, 7.5, 7.5), 2.0)
    p[:, core] = 0.9  # the decoder's p > 0.5 mask: too small
    rim = _ball(side, (7.5, 7.5, 7.5), 4.0) & ~core
    p[:, rim] = 0.4  # the rest of the molecule, below 0.5
    n = int(core.sum() + rim.sum())
    masks = volume_prior_masks(p, np.array([n, 0]))
    assert masks[0].sum() == n and np.array_equal(masks[0], core | rim)
    assert np.array_equal(masks[1], core)  # no prior: p > 0.5 unchanged


def test_prior_keeps_the_component_nearest_the_centre() -> None:
    side = 16
    p = np.zeros((1, side, side, side), dtype=np.float32)
    centre = _ball(side, (7.5, 7.5, 7.5), 2.5)
    neighbour = _ball(side, (7.5, 7.5, 1.5), 1.5)  # a touching-but-separate neighbour, brighter
    p[0, centre] = 0.8
    p[0, neighbour] = 0.99
    masks = volume_prior_masks(p, np.array([int(centre.sum() + neighbour.sum())]))
    assert np.array_equal(masks[0], centre)


def test_prior_breaks_ties_towards_the_centre() -> None:
    p = np.ones((1, 9, 9, 9), dtype=np.float32)  # saturated everywhere
    mask = volume_prior_masks(p, np.array([7]))[0]
    assert mask.sum() == 7 and mask[4, 4, 4]
    assert np.array_equal(np.argwhere(mask).mean(axis=0), [4, 4, 4])  # the centre and its 6 faces


def test_parse_masses() -> None:
    assert parse_masses(["ribosome=3300", "120"]) == {"ribosome": 3300.0, None: 120.0}
    for bad in (["ribosome="], ["=12"], ["-5"], ["heavy"], ["a=1", "a=2"]):
        with pytest.raises(InputError, match="--mass-kda"):
            parse_masses(bad)


def test_segment_hits_uses_the_class_mass(tiny_model: tuple[Path, str], tmp_path: Path) -> None:
    from cosnet_index.segment.hits import segment_hits
    from cosnet_index.store import Store, index_tomograms

    xyz = np.array([[20.0, 20.0, 20.0], [44.0, 40.0, 21.0]])
    path = write_tomogram(
        tmp_path / "t.mrc", voxel_size_angstrom=VOXEL_ANGSTROM, seed=0, centres_xyz=xyz
    )
    coords = tmp_path / "c.csv"
    pd.DataFrame({"tomogram": "t", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(
        coords, index=False
    )
    with Store.create(tmp_path / "store", model_path=tiny_model[0]) as store:
        index_tomograms(store, [path], coords, progress=False)
        ids = store.subtomogram_table()["id"].to_numpy()
        fake = SphereModel(store.model().config)
        store.model = lambda: fake  # type: ignore[method-assign]
        hits = pd.DataFrame({"subtomogram_id": ids, "class": ["big", "other"]})
        # 600 voxels of 1 nm^3: 486 kDa; the sphere of radius RADIUS has fewer voxels
        table = segment_hits(
            store, hits, tmp_path / "seg", crf_params=None, masses_kda={"big": 486.0}
        ).table
    sphere = int(_ball(33, (16, 16, 16), RADIUS).sum())
    assert sphere < 600
    big, other = table.iloc[0], table.iloc[1]
    assert big["prior_voxels"] == 600 and big["voxels"] == 600
    assert other["prior_voxels"] == 0 and other["voxels"] == sphere
