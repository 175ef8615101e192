"""The mass-based volume prior of segmentation (cosnet_index.segment.volume, segment --mass-kda)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

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


def test_prior_grows_the_centre_component_back_to_the_volume() -> None:
    side = 20
    p = np.full((1, side, side, side), 0.02, dtype=np.float32)
    core = _ball(side, (9.5, 9.5, 9.5), 3.0)
    rim = _ball(side, (9.5, 9.5, 9.5), 5.0) & ~core
    speck = _ball(side, (1.5, 1.5, 1.5), 1.2)  # bright noise far from the hit
    p[0, core], p[0, rim], p[0, speck] = 0.9, 0.3, 0.95
    n = int(core.sum() + speck.sum())
    grown = volume_prior_masks(p, np.array([n]))[0]
    assert grown.sum() == n and not (grown & speck).any()
    assert (grown & core).sum() == core.sum() and (grown & ~(core | rim)).sum() == 0
    assert ndimage.label(grown)[1] == 1  # one piece
    alone = volume_prior_masks(p, np.array([n]), fill=False)[0]
    assert np.array_equal(alone, core)  # the rule before: the component only
    # growing never takes the background (p = 0.02 <= 0.1), even short of the volume
    more = int((core | rim | speck).sum())
    short = volume_prior_masks(p, np.array([more]))[0]
    assert np.array_equal(short, core | rim) and short.sum() < more


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


# -- the class's volume as the default prior (segment/prior.py) -------------------------------


@pytest.fixture
def three_hits(tiny_model: tuple[Path, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    """A store of three particles; class ``big`` (486 kDa: 600 nm^3) and ``blob`` (no volume)."""
    from cosnet_index.classes import add_class
    from cosnet_index.store import Store, index_tomograms

    xyz = np.array([[20.0, 20.0, 20.0], [44.0, 40.0, 21.0], [20.0, 44.0, 20.0]])
    path = write_tomogram(
        tmp_path / "t.mrc", voxel_size_angstrom=VOXEL_ANGSTROM, seed=0, centres_xyz=xyz
    )
    coords = tmp_path / "c.csv"
    pd.DataFrame({"tomogram": "t", "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}).to_csv(
        coords, index=False
    )
    with Store.create(tmp_path / "store", model_path=tiny_model[0]) as store:
        index_tomograms(store, [path], coords, progress=False)
        ids = [int(i) for i in store.subtomogram_table()["id"]]
        add_class(store, "big", subtomogram_ids=ids[:1], mass_kda=486.0)
        add_class(store, "blob", subtomogram_ids=ids[1:2])
    return tmp_path / "store", ids


def _segment_spheres(store_path: Path, hits: pd.DataFrame, out: Path, **kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    from cosnet_index.segment.hits import segment_hits
    from cosnet_index.store import Store

    with Store.open(store_path, readonly=True) as store:
        fake = SphereModel(store.model().config)
        store.model = lambda: fake  # type: ignore[method-assign]
        return segment_hits(store, hits, out, crf_params=None, **kwargs).table


def test_segment_uses_the_class_volume_by_default(three_hits, tmp_path: Path) -> None:
    store, ids = three_hits
    hits = pd.DataFrame({"subtomogram_id": ids, "class": ["big", "blob", "none"]})
    sphere = int(_ball(33, (16, 16, 16), RADIUS).sum())
    table = _segment_spheres(store, hits, tmp_path / "a")
    assert list(table["volume_from"]) == ["prior", "threshold", "threshold"]
    assert list(table["prior_source"]) == ["mass-kda", "", ""]
    assert table["prior_volume_nm3"].iloc[0] == pytest.approx(600.0)
    assert table["prior_volume_nm3"].iloc[1:].isna().all()
    assert list(table["voxels"]) == [600, sphere, sphere]
    # the command line overrides the class's volume; --no-prior turns the class's off
    table = _segment_spheres(store, hits, tmp_path / "b", masses_kda={"big": 81.0, "blob": 81.0})
    assert list(table["voxels"]) == [100, 100, sphere]
    assert list(table["prior_source"]) == ["command-line", "command-line", ""]
    table = _segment_spheres(store, hits, tmp_path / "c", class_prior=False)
    assert list(table["volume_from"]) == ["threshold"] * 3 and (table["voxels"] == sphere).all()
    table = _segment_spheres(store, hits, tmp_path / "d", class_prior=False, masses_kda={None: 81})
    assert list(table["voxels"]) == [100, 100, 100]


def test_a_class_volume_too_large_for_the_box_is_kept_but_not_used(
    three_hits, tmp_path: Path
) -> None:
    from cosnet_index.classes import set_class_volume
    from cosnet_index.segment.prior import fits_box, prior_report
    from cosnet_index.store import Store

    # the equivalent sphere against half the box side: 32 nm box -> 16 nm -> 2,145 nm^3
    assert fits_box(2100.0, 32.0) and not fits_box(2200.0, 32.0) and fits_box(2200.0, 64.0)
    store, ids = three_hits
    with Store.open(store) as opened:
        box_nm = opened.model().config.box * opened.model().config.voxel_size_nm
        big = 1.05 * (3.14159265 / 6) * (box_nm / 2) ** 3  # just over the limit
        set_class_volume(opened, "big", volume_nm3=big)
    hits = pd.DataFrame({"subtomogram_id": ids, "class": ["big", "blob", "none"]})
    sphere = int(_ball(33, (16, 16, 16), RADIUS).sum())
    table = _segment_spheres(store, hits, tmp_path / "a")
    assert list(table["volume_from"]) == ["too-large", "threshold", "threshold"]
    assert table["prior_volume_nm3"].iloc[0] == pytest.approx(big)  # known, recorded, not used
    assert list(table["prior_voxels"]) == [0, 0, 0] and (table["voxels"] == sphere).all()
    report = prior_report(table)
    assert any("prior not used" in line and "big 1" in line for line in report), report
    # the command line still forces it
    table = _segment_spheres(store, hits, tmp_path / "b", masses_kda={"big": 81.0})
    assert table["volume_from"].iloc[0] == "prior" and table["voxels"].iloc[0] == 100


def test_segment_estimates_a_volume_from_the_class_members(three_hits, tmp_path: Path) -> None:
    store, ids = three_hits
    hits = pd.DataFrame({"subtomogram_id": ids, "class": "blob", "probability": [0.9, 0.8, 0.7]})
    table = _segment_spheres(store, hits, tmp_path / "a", estimate_volume=True)
    sphere = int(_ball(33, (16, 16, 16), RADIUS).sum())  # the decoder's p > 0.5 mask
    assert list(table["volume_from"]) == ["estimate"] * 3
    assert list(table["prior_source"]) == ["collection"] * 3
    assert table["prior_volume_nm3"].iloc[0] == pytest.approx(sphere)
    assert (table["voxels"] == sphere).all()
    # a class with a recorded volume is not estimated
    hits["class"] = "big"
    table = _segment_spheres(store, hits, tmp_path / "b", estimate_volume=True)
    assert list(table["volume_from"]) == ["prior"] * 3


def test_estimate_takes_the_median_of_the_most_probable_members() -> None:
    from cosnet_index.segment.prior import ESTIMATE_MEMBERS, estimate_priors

    n = ESTIMATE_MEMBERS + 10
    hits = pd.DataFrame(
        {"class": ["a"] * n + ["b"] * 2, "probability": np.r_[np.linspace(1, 0, n), 0.9, 0.9]}
    )
    hits["volume"] = np.r_[np.full(ESTIMATE_MEMBERS, 50.0), np.full(10, 1000.0), 7.0, 7.0]
    seen = []

    def volumes(rows: pd.DataFrame) -> np.ndarray:
        seen.append(len(rows))
        return rows["volume"].to_numpy()

    priors = estimate_priors(hits, ["a", "b"], volumes)
    assert seen == [ESTIMATE_MEMBERS]  # the least probable members are not decoded
    assert priors["a"].volume_nm3 == 50.0 and priors["a"].estimated
    assert "b" not in priors  # two hits: too few


def test_cli_segment_says_which_masks_used_a_prior(three_hits, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cosnet_index.cli._app import cli

    store, ids = three_hits
    hits = tmp_path / "hits.parquet"
    pd.DataFrame({"subtomogram_id": ids, "class": ["big", "blob", "big"]}).to_parquet(hits)
    base = ["segment", "--store", str(store), "--hits", str(hits)]
    runner = CliRunner()
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "volume prior: 2 of 3 masks: big 2 (600 nm^3, mass-kda)" in result.output
    assert "p > 0.5 (no known volume): 1 of 3 masks: blob 1" in result.output
    assert "classes set-volume" in result.output
    table = pd.read_parquet(tmp_path / "a" / "segments.parquet")
    assert list(table["volume_from"]) == ["prior", "threshold", "prior"]
    assert list(table["prior_voxels"]) == [600, 0, 600]
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "b"), "--no-prior"])
    assert result.exit_code == 0 and "volume prior" not in result.output
    assert (
        pd.read_parquet(tmp_path / "b" / "segments.parquet")["volume_from"] == "threshold"
    ).all()
    result = runner.invoke(cli, [*base, "--out", str(tmp_path / "c"), "--mass-kda", "blob=81"])
    assert "big 2 (600 nm^3, mass-kda), blob 1 (100 nm^3, command-line)" in result.output
    result = runner.invoke(
        cli, [*base, "--out", str(tmp_path / "d"), "--no-prior", "--estimate-volume"]
    )
    assert result.exit_code == 1 and "leave out --estimate-volume" in result.output
    assert not (tmp_path / "d").exists()
