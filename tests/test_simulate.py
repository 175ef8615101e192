"""Simulator: maps, subtomogram physics (SNR, wedge, centring, masks), determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cosnet_index.errors import InputError
from cosnet_index.simulate import (
    REAL_CLASSES,
    SimulationConfig,
    class_info,
    class_map,
    default_split,
    procedural_map,
    real_map,
    simulate_subtomograms,
    simulate_subtomograms_torch,
)
from cosnet_index.simulate._pose import pose_map, random_rotations

NAMES = ("apoferritin_6z6u", "ribosome70S_4v5d", "proc-00003", "proc-00007")


def test_real_maps_are_positive_centred_and_cached() -> None:
    assert len(REAL_CLASSES) == 10
    for name in REAL_CLASSES:
        density = real_map(name)
        assert density.dtype == np.float32 and density.ndim == 3
        assert len(set(density.shape)) == 1
        centre = density.shape[0] // 2
        positive = np.clip(density, 0, None)
        com = np.indices(density.shape).reshape(3, -1) @ positive.ravel() / positive.sum()
        np.testing.assert_allclose(com, centre, atol=0.5)
        assert density.max() > 1.0 > abs(density.min())
    assert class_info("apoferritin_6z6u") is class_info("apoferritin_6z6u")


def test_real_map_voxel_size_scales_the_map() -> None:
    fine, coarse = real_map("apoferritin_6z6u", 0.5), real_map("apoferritin_6z6u", 1.0)
    assert fine.shape[0] > 1.6 * coarse.shape[0]
    info = class_info("apoferritin_6z6u", 1.0)
    # 483 kDa at 810 Da/nm^3 -> ~596 voxels of 1 nm^3 in the mask
    assert abs((info.density > info.threshold).sum() - 596) <= 2


def test_unknown_class_is_an_input_error() -> None:
    with pytest.raises(InputError, match="proc-00042"):
        class_map("ribosome")


def test_default_split_is_disjoint_and_as_documented() -> None:
    split = default_split(40, 6)
    assert not set(split.train) & set(split.heldout)
    assert "apoferritin_6z6u" in split.heldout and "ribosome70S_4v5d" in split.train
    assert split.heldout[-1] == "proc-100005" and split.train[-1] == "proc-00039"
    assert len(split.train) == 45 and len(split.heldout) == 11


def _centred_similarity(a, b) -> tuple[float, float]:
    """Correlation of two centred maps and the Jaccard index of their masks."""
    size = max(a.density.shape[0], b.density.shape[0])
    x, y = (np.pad(v.density, (size - v.density.shape[0]) // 2) for v in (a, b))
    mx, my = (np.pad(v.density > v.threshold, (size - v.density.shape[0]) // 2) for v in (a, b))
    correlation = float(np.corrcoef(x.ravel(), y.ravel())[0, 1])
    return correlation, float((mx & my).sum() / (mx | my).sum())


def test_procedural_classes_are_distinct_and_size_matched_pairs_exist() -> None:
    ids = range(100_000, 100_024)
    infos = [class_info(f"proc-{i:05d}") for i in ids]
    maps = [info.density for info in infos]
    assert np.array_equal(procedural_map(100_000), maps[0])
    masses = np.array([info.mass_da for info in infos])
    radii = np.array([info.radius_voxels for info in infos])
    size_matched = 0
    for i in range(len(maps)):
        for j in range(i + 1, len(maps)):
            correlation, jaccard = _centred_similarity(infos[i], infos[j])
            assert correlation < 0.98 and jaccard < 0.8, (i, j, correlation, jaccard)
            if abs(masses[i] / masses[j] - 1) < 0.15 and abs(radii[i] - radii[j]) < 1.5:
                size_matched += 1
    assert size_matched >= 3
    assert radii.min() * 2 < 14 and radii.max() * 2 > 20  # ~8 to ~28 nm


@pytest.mark.parametrize("snr", [1000.0, 0.5, 0.1])
def test_measured_snr_matches_request(snr: float) -> None:
    batch = simulate_subtomograms(NAMES * 2, snr, seed=3, return_clean=True)
    noise = batch.volumes - batch.clean
    measured = batch.clean.var(axis=(1, 2, 3)) / noise.var(axis=(1, 2, 3))
    np.testing.assert_allclose(measured, snr, rtol=0.10)


def test_snr_inf_has_no_noise_and_shares_the_clean_part() -> None:
    clean = simulate_subtomograms(NAMES, float("inf"), seed=5)
    noisy = simulate_subtomograms(NAMES, 0.5, seed=5, return_clean=True)
    np.testing.assert_allclose(clean.volumes, noisy.clean, atol=1e-6)
    assert not np.allclose(noisy.volumes, noisy.clean)


def test_missing_wedge_region_is_empty() -> None:
    config = SimulationConfig()
    batch = simulate_subtomograms(NAMES, 0.1, seed=11, config=config)
    spectrum = np.abs(np.fft.fftn(batch.volumes, axes=(1, 2, 3))) ** 2
    box = config.box
    kz = np.abs(np.fft.fftfreq(box))[:, None, None]
    kx = np.abs(np.fft.fftfreq(box))[None, None, :]
    inside = kz > np.tan(np.radians(config.tilt_max_deg)) * kx + 1e-9  # (z, 1, x)
    inside = np.broadcast_to(inside, (box, box, box))
    assert inside.mean() > 0.1
    wedge_power = spectrum[:, inside].sum(axis=1)
    total_power = spectrum.sum(axis=(1, 2, 3))
    assert (wedge_power / total_power < 1e-10).all()
    # and the sampled region is not empty
    assert (spectrum[:, ~inside].sum(axis=1) / total_power > 0.99).all()


def test_centred_molecule_stays_centred_under_random_rotations() -> None:
    density = torch.from_numpy(class_map("apoferritin_6z6u"))
    rotations = torch.as_tensor(
        random_rotations(np.random.default_rng(0), 100), dtype=torch.float32
    )
    posed = pose_map(density, rotations, torch.zeros(100, 3), box=32).clamp_min(0).numpy()
    grid = np.indices((32, 32, 32)).reshape(3, -1)
    weights = posed.reshape(100, -1)
    centroids = weights @ grid.T / weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(centroids, 16.0, atol=0.25)


def test_shift_and_rotation_convention() -> None:
    # a point at offset q from the reference centre lands at box centre + R q + s (x, y, z)
    density = torch.zeros(15, 15, 15)
    density[7, 7, 11] = 1.0  # z, y, x: offset q = (4, 0, 0) in x
    rotation = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # x -> y
    posed = pose_map(density, rotation, torch.tensor([[0.0, 0.0, 2.0]]), box=32)[0]
    assert tuple(int(i) for i in np.unravel_index(int(posed.argmax()), posed.shape)) == (18, 20, 16)


def test_masks_overlap_the_noise_free_density_support() -> None:
    batch = simulate_subtomograms(NAMES * 2, float("inf"), seed=2, config=SimulationConfig())
    for i, name in enumerate(batch.names):
        mask = batch.masks[i]
        info = class_info(name)
        expected = (info.density > info.threshold).sum()
        assert 0.6 * expected < mask.sum() <= 1.2 * expected
        # the molecule is dark: the imaged volume is lower inside its mask than outside
        assert batch.volumes[i][mask].mean() < batch.volumes[i][~mask].mean()


def test_masks_are_inside_the_posed_density_support() -> None:
    names = ("proc-00001", "glua3_3o21")
    out = simulate_subtomograms_torch(names, float("inf"), seed=4)
    rot, shift = out.rotations.float(), out.shifts.float()
    for i, name in enumerate(names):
        posed = pose_map(torch.from_numpy(class_map(name)), rot[i : i + 1], shift[i : i + 1], 32)[0]
        support = posed > 0.05 * posed.max()
        mask = out.masks[i]
        assert bool(mask.any()) and bool(support[mask].all())


def test_same_seed_same_bytes_and_different_seed_differs() -> None:
    a = simulate_subtomograms(NAMES, 0.5, seed=9, crowding=True)
    b = simulate_subtomograms(NAMES, 0.5, seed=9, crowding=True)
    c = simulate_subtomograms(NAMES, 0.5, seed=10, crowding=True)
    assert a.volumes.tobytes() == b.volumes.tobytes()
    assert a.masks.tobytes() == b.masks.tobytes()
    assert a.volumes.tobytes() != c.volumes.tobytes()


def test_crowding_adds_density_outside_the_mask_only() -> None:
    alone = simulate_subtomograms(NAMES * 4, float("inf"), seed=1, crowding=False)
    crowded = simulate_subtomograms(NAMES * 4, float("inf"), seed=1, crowding=True)
    np.testing.assert_array_equal(alone.masks, crowded.masks)
    assert not np.allclose(alone.volumes, crowded.volumes)


def test_shapes_dtypes_and_shift_range() -> None:
    config = SimulationConfig(box=24, max_shift_fraction=0.1)
    batch = simulate_subtomograms(["enolase_3enl"] * 20, [0.5] * 20, seed=0, config=config)
    assert batch.volumes.shape == (20, 24, 24, 24) and batch.volumes.dtype == np.float32
    assert batch.masks.dtype == bool and batch.rotations.shape == (20, 3, 3)
    assert np.abs(batch.shifts).max() <= 2.4
    np.testing.assert_allclose(
        batch.rotations @ batch.rotations.transpose(0, 2, 1),
        np.eye(3)[None].repeat(20, 0),
        atol=1e-9,
    )
    np.testing.assert_allclose(np.linalg.det(batch.rotations), 1.0)


def test_bad_arguments_raise_input_errors() -> None:
    with pytest.raises(InputError):
        simulate_subtomograms([], 1.0, seed=0)
    with pytest.raises(InputError):
        simulate_subtomograms(["enolase_3enl"], [1.0, 2.0], seed=0)
    with pytest.raises(InputError):
        simulate_subtomograms(["enolase_3enl"], -1.0, seed=0)
    with pytest.raises(InputError):
        SimulationConfig(box=31)


# ---------------------------------------------------------------------------- tomograms


def test_tomogram_star_coordinates_point_at_the_molecules(tmp_path) -> None:
    import mrcfile
    import pandas as pd
    import starfile

    from cosnet_index.simulate.tomogram import ROTATION_COLUMNS, simulate_tomogram

    classes = ["apoferritin_6z6u", "proc-00002", "proc-00009"]
    config = SimulationConfig()
    result = simulate_tomogram(
        tmp_path, "TS_01", classes, 25, snr=1000.0, seed=4, shape=(64, 128, 128), write_labels=True
    )
    with mrcfile.open(result.path) as mrc:
        tomo = np.array(mrc.data)
        assert tomo.dtype == np.float32 and tomo.shape == (64, 128, 128)
        assert float(mrc.voxel_size.x) == pytest.approx(10.0)
    star = starfile.read(tmp_path / "TS_01.star")
    truth = pd.read_parquet(tmp_path / "TS_01_truth.parquet")
    assert len(star) == len(truth) >= 15
    assert set(star["rlnTomoName"]) == {"TS_01"}
    np.testing.assert_allclose(star["rlnCoordinateX"], truth["x"], atol=1e-5)

    def box_at(xyz: np.ndarray) -> np.ndarray:
        lo = np.floor(xyz + 0.5).astype(int)[::-1] - config.box // 2
        lo = np.clip(lo, 0, np.array(tomo.shape) - config.box)
        return tomo[tuple(slice(a, a + config.box) for a in lo)]

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    # the reference: the class map posed with the truth rotation, imaged like the tomogram
    at_particles, at_random = [], []
    rng = np.random.default_rng(0)
    for _, row in truth.iterrows():
        rotation = row[list(ROTATION_COLUMNS)].to_numpy(dtype=float).reshape(1, 3, 3)
        xyz = np.array([row.x, row.y, row.z])
        frac = xyz - np.floor(xyz + 0.5)
        ref = pose_map(
            torch.from_numpy(class_map(row["class"])),
            torch.as_tensor(rotation, dtype=torch.float32),
            torch.as_tensor(frac[None], dtype=torch.float32),
            config.box,
        )[0].numpy()
        at_particles.append(-corr(box_at(xyz), ref))  # molecules are dark: anti-correlated
        random_xyz = rng.uniform([16, 16, 16], [111, 111, 47])
        at_random.append(-corr(box_at(random_xyz), ref))
    assert np.median(at_particles) > 0.5
    assert np.median(at_particles) > np.median(at_random) + 0.4
    with mrcfile.open(result.label_path) as mrc:
        labels = np.array(mrc.data)
    assert set(np.unique(labels)) == set(range(len(truth) + 1))


def test_tomogram_same_seed_same_bytes(tmp_path) -> None:
    from cosnet_index.simulate.tomogram import simulate_tomogram

    paths = []
    for sub in ("a", "b"):
        result = simulate_tomogram(
            tmp_path / sub, "t", ["enolase_3enl"], 5, snr=0.5, seed=1, shape=(32, 64, 64)
        )
        paths.append(result.path)
    assert paths[0].read_bytes() == paths[1].read_bytes()


# ---------------------------------------------------------------------------- datasets


def test_dataset_round_trip_is_memory_mapped_and_deterministic(tmp_path) -> None:
    from cosnet_index.simulate import load_dataset, make_dataset

    classes = ["enolase_3enl", "proc-00004"]
    a = make_dataset(tmp_path / "a", classes, 3, [float("inf"), 0.5], seed=2, batch_size=5)
    make_dataset(tmp_path / "b", classes, 3, [float("inf"), 0.5], seed=2, batch_size=5)
    assert len(a) == 12 and a.volumes.dtype == np.float16 and a.masks.dtype == bool
    assert isinstance(a.volumes, np.memmap)
    assert (tmp_path / "a" / "volumes.npy").read_bytes() == (
        tmp_path / "b" / "volumes.npy"
    ).read_bytes()
    assert list(a.labels["class"][:3]) == ["enolase_3enl"] * 3
    assert list(a.labels["snr"][-3:]) == [0.5] * 3
    loaded = load_dataset(tmp_path / "a")
    assert loaded.classes == tuple(classes) and loaded.config == SimulationConfig()
    assert loaded.masks[:6].any(axis=(1, 2, 3)).all()
    with pytest.raises(InputError):
        make_dataset(tmp_path / "a", classes, 3, [0.5], seed=2)


# ---------------------------------------------------------------------------- custom maps


def test_custom_mrc_map_can_be_registered_and_simulated(tmp_path) -> None:
    import mrcfile

    from cosnet_index.simulate import map_from_mrc_file, register_class_map

    grid = np.indices((40, 40, 40)).astype(np.float32) - 20
    rod = np.exp(-(grid[1] ** 2 + grid[2] ** 2) / 8 - grid[0] ** 2 / 200)  # along z, 0.5 nm voxels
    with mrcfile.new(tmp_path / "rod.mrc") as mrc:
        mrc.set_data(rod.astype(np.float32))
        mrc.voxel_size = 5.0
    name = f"my_rod_{tmp_path.name}"
    info = map_from_mrc_file(tmp_path / "rod.mrc", mass_da=100_000.0, name=name)
    assert abs((info.density > info.threshold).sum() - 123) <= 2  # 100 kDa / 810 Da/nm^3
    register_class_map(info)
    batch = simulate_subtomograms([name, "enolase_3enl"], 0.5, seed=0)
    assert batch.masks[0].sum() > 50
    with pytest.raises(InputError):
        register_class_map(map_from_mrc_file(tmp_path / "rod.mrc", name=name))


def test_atomic_model_map(tmp_path) -> None:
    pytest.importorskip("gemmi")
    from cosnet_index.simulate import map_from_atomic_model

    lines = []
    for i in range(400):  # a helix of carbon atoms, 4 nm long along x
        x, y, z = i * 0.1 - 20.0, 6 * np.cos(i * 0.5), 6 * np.sin(i * 0.5)
        xyz = f"{x:8.3f}{y:8.3f}{z:8.3f}"
        lines.append(f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {xyz}  1.00  0.00           C")
    (tmp_path / "helix.pdb").write_text("\n".join([*lines, "END", ""]))
    info = map_from_atomic_model(tmp_path / "helix.pdb")
    assert info.name == "helix" and info.mass_da == pytest.approx(400 * 12.011, rel=1e-3)
    density = info.density
    centre = density.shape[0] // 2
    profile_x = density.sum(axis=(0, 1))
    assert np.argmax(profile_x) == pytest.approx(centre, abs=1)
    assert profile_x[centre + 3] > 2 * density.sum(axis=(1, 2))[centre + 3]  # elongated along x


def test_tomogram_particle_boxes_have_about_the_requested_snr(tmp_path) -> None:
    import mrcfile

    from cosnet_index.simulate import simulate_tomogram

    result = simulate_tomogram(
        tmp_path,
        "t",
        ["apoferritin_6z6u", "proc-00003"],
        12,
        0.5,
        seed=3,
        shape=(48, 96, 96),
        write_clean=True,
    )
    with mrcfile.open(result.path) as mrc:
        noisy = np.array(mrc.data)
    with mrcfile.open(tmp_path / "t_clean.mrc") as mrc:
        clean = np.array(mrc.data)
    ratios = []
    for row in result.particles.itertuples():
        lo = np.clip(np.floor(np.array([row.z, row.y, row.x]) + 0.5).astype(int) - 16, 0, None)
        box = tuple(slice(a, a + 32) for a in lo)
        ratios.append(clean[box].var() / (noisy[box] - clean[box]).var())
    assert np.mean(ratios) == pytest.approx(0.5, rel=0.15)


def test_torch_api_returns_tensors_on_the_device() -> None:
    out = simulate_subtomograms_torch(["enolase_3enl"] * 3, 0.1, seed=0, device="cpu")
    assert isinstance(out.volumes, torch.Tensor) and out.volumes.device.type == "cpu"
    assert out.volumes.shape == (3, 32, 32, 32) and out.masks.dtype == torch.bool
    np.testing.assert_array_equal(
        out.numpy().volumes, simulate_subtomograms(["enolase_3enl"] * 3, 0.1, seed=0).volumes
    )


@settings(max_examples=25, deadline=None)
@given(
    quaternion=st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(
        lambda q: sum(v * v for v in q) > 0.1
    ),
    shift=st.tuples(*[st.floats(-3, 3) for _ in range(3)]),
    offset=st.tuples(*[st.integers(-5, 5) for _ in range(3)]),
)
def test_pose_moves_a_point_to_centre_plus_r_q_plus_s(quaternion, shift, offset) -> None:
    from scipy.spatial.transform import Rotation

    density = torch.zeros(17, 17, 17)
    blob = np.exp(-((np.indices((17, 17, 17)) - 8.0) ** 2).sum(axis=0) / 2.0)  # smooth, centred
    q = np.array(offset, dtype=float)  # x, y, z
    density += torch.from_numpy(np.roll(blob, offset[::-1], axis=(0, 1, 2))).float()
    rotation = Rotation.from_quat(np.array(quaternion) / np.linalg.norm(quaternion)).as_matrix()
    posed = pose_map(
        density,
        torch.tensor(rotation[None], dtype=torch.float32),
        torch.tensor([shift], dtype=torch.float32),
        box=32,
    )[0].numpy()
    centroid_zyx = np.indices(posed.shape).reshape(3, -1) @ posed.ravel() / posed.sum()
    expected_xyz = 16.0 + rotation @ q + np.array(shift)
    np.testing.assert_allclose(centroid_zyx[::-1], expected_xyz, atol=0.3)
