"""The realistic imaging path: tilt-series physics on tiny volumes, presets, and the simulators."""

from __future__ import annotations

import dataclasses
import json
import math

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from cosnet_index.errors import InputError
from cosnet_index.simulate import class_info, simulate_subtomograms, simulate_tomogram
from cosnet_index.simulate._fourier import gaussian_lowpass
from cosnet_index.simulate._pose import pose_maps
from cosnet_index.simulate.microscope import (
    IMAGING_PRESETS,
    SHIFTED_FIELDS,
    CTFSettings,
    Imaging,
    imaging_preset,
)
from cosnet_index.simulate.microscope.ctf import ctf_table, electron_wavelength_nm, tilt_ctf
from cosnet_index.simulate.microscope.tilt_scheme import acquisition_order, tilt_angles_deg
from cosnet_index.simulate.reconstruction import image_by_projection, image_subtomograms
from cosnet_index.simulate.reconstruction.paper import wedge_mask
from cosnet_index.simulate.reconstruction.projection import backproject_wbp, project_slabs

N = 32


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def _blobs(n: int = N, seed: int = 0) -> torch.Tensor:
    """A smooth random volume inside a sphere of radius n/2 - 4 (so no ray leaves the box)."""
    x = gaussian_lowpass(torch.randn((n, n, n), generator=torch.Generator().manual_seed(seed)), 1.5)
    r = torch.arange(n) - n // 2
    radius = torch.sqrt(r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2)
    return x * (radius < n / 2 - 4)


def _ribosome(n: int = N) -> torch.Tensor:
    info = class_info("ribosome70S_4v5d", 1.0, 2.5)
    return pose_maps(torch.tensor(info.density)[None], torch.eye(3)[None], torch.zeros(1, 3), n)[0]


@pytest.mark.parametrize("tilt", [-60.0, -35.0, 0.0, 12.0, 47.0, 60.0])
def test_centred_delta_projects_to_a_centred_spot(tilt: float) -> None:
    volume = torch.zeros((N, N, N))
    volume[N // 2, N // 2, N // 2] = 1.0
    projection = project_slabs(volume, tilt, [0, N])[0]
    assert np.unravel_index(int(projection.argmax()), projection.shape) == (N // 2, N // 2)


def test_projection_conserves_mass_at_every_tilt() -> None:
    volume = _blobs() + 1.0 * (_blobs() != 0)
    for tilt in tilt_angles_deg(-60, 60, 15):
        assert float(project_slabs(volume, tilt, [0, 10, N]).sum()) == pytest.approx(
            float(volume.sum()), rel=0.02
        )


def test_wbp_recovers_the_volume_outside_the_missing_wedge() -> None:
    volume = _blobs()
    angles = tilt_angles_deg(-60, 60, 2)
    projections = torch.stack([project_slabs(volume, a, [0, N])[0] for a in angles])
    recon = backproject_wbp(projections[None], angles, (N, N, N))[0]
    sampled = wedge_mask((N, N, N), 60.0, "cpu")
    truth = torch.fft.irfftn(torch.fft.rfftn(volume) * sampled, s=(N, N, N))
    assert _corr(recon, truth) > 0.9
    assert _corr(recon, volume) < _corr(recon, truth)  # the wedge really is missing
    assert float(recon.std() / truth.std()) == pytest.approx(1.0, abs=0.15)  # WBP's scale


def test_ctf_first_zero_is_where_the_formula_puts_it() -> None:
    # chi(k) = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4 = -atan(A / sqrt(1 - A^2)) + pi at the
    # first zero; with A = 0 that is chi = pi, solved as a quadratic in k^2
    for defocus, voltage, cs in [(-5.0, 300.0, 2.7), (-2.0, 200.0, 2.0), (-8.0, 300.0, 0.01)]:
        lam, dz, cs_nm = electron_wavelength_nm(voltage), -defocus * 1e3, cs * 1e6
        a, b = 0.5 * math.pi * cs_nm * lam**3, -math.pi * lam * dz
        k2_zero = (-b - math.sqrt(b * b - 4 * a * math.pi)) / (2 * a)
        k2 = torch.linspace(0.05 * k2_zero, 1.5 * k2_zero, 20001, dtype=torch.float64)
        settings = CTFSettings(
            voltage_kv=voltage, cs_mm=cs, amplitude_contrast=0.0, bfactor_angstrom2=0.0
        )
        ctf = tilt_ctf(k2, torch.ones_like(k2), torch.tensor(defocus), settings=settings)
        # the CTF starts negative and first changes sign at the formula's zero
        first = int(torch.nonzero(ctf > 0)[0])
        assert float(k2[first]) == pytest.approx(k2_zero, rel=1e-3)


def test_ctf_single_values_by_keyword() -> None:
    """Hard-coded values (checked by hand: chi = 0.4947 rad at 0.2 / nm for the first row) from
    both evaluations of the one formula, the fast path's table and the tilt-series grid."""
    k2 = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64) ** 2
    cases = [
        (
            CTFSettings(
                voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, bfactor_angstrom2=0.0
            ),
            -2.0,
            [-0.07, -0.19254099, -0.53524101, -0.92577000],
        ),
        (
            CTFSettings(
                voltage_kv=200.0,
                cs_mm=2.0,
                amplitude_contrast=0.1,
                bfactor_angstrom2=100.0,
                phase_shift_rad=math.pi / 2,
            ),
            -0.5,
            [-0.99498744, -0.98780526, -0.95736670, -0.87857329],
        ),
    ]
    for settings, defocus, expected in cases:
        table = ctf_table(settings, torch.tensor([defocus]), k2)[0]
        grid = tilt_ctf(k2, torch.ones_like(k2), torch.tensor(defocus), settings=settings)
        np.testing.assert_allclose(table.numpy(), expected, atol=1e-7)
        np.testing.assert_allclose(grid.numpy(), expected, atol=1e-5)
    assert electron_wavelength_nm(300.0) == pytest.approx(0.0019687, abs=1e-7)


def test_both_imaging_paths_read_one_ctf_record() -> None:
    from cosnet_index.simulate import SimulationConfig

    assert SimulationConfig().ctf_settings() == Imaging().ctf_settings() == CTFSettings()
    plate = dataclasses.replace(Imaging(), phase_plate=True, phase_flip=True).ctf_settings()
    assert plate.phase_shift_rad == pytest.approx(math.pi / 2) and plate.phase_flip


def test_astigmatism_moves_the_zero_with_direction() -> None:
    k2 = torch.linspace(0.01, 0.5, 8001, dtype=torch.float64)

    def first_zero(cos2: float) -> float:
        settings = CTFSettings(
            voltage_kv=300.0,
            cs_mm=2.7,
            amplitude_contrast=0.0,
            bfactor_angstrom2=0.0,
            astigmatism_um=1.0,
        )
        values = tilt_ctf(k2, torch.full_like(k2, cos2), torch.tensor(-3.0), settings=settings)
        return float(k2[int(torch.nonzero(values > 0)[0])])

    assert first_zero(1.0) < first_zero(0.0) < first_zero(-1.0)  # more underfocus: earlier zero


@pytest.mark.parametrize("colour", ["white", "ctf", "wedge"])
@pytest.mark.parametrize("snr", [1000.0, 0.5, 0.1])
def test_noise_at_the_requested_snr(colour: str, snr: float) -> None:
    density = torch.stack([_ribosome()] * 4)
    imaging = [
        dataclasses.replace(Imaging(), noise_colour=colour, defocus_um=-3.0 - k) for k in range(4)
    ]
    snrs = np.full(4, snr)
    clean = image_subtomograms(density, imaging, np.full(4, np.inf), torch.Generator())
    noisy = image_subtomograms(density, imaging, snrs, torch.Generator().manual_seed(1))
    noise = noisy - clean
    measured = clean.flatten(1).var(dim=1) / noise.flatten(1).var(dim=1)
    np.testing.assert_allclose(measured.numpy(), snr, rtol=0.1)


def test_noise_stays_out_of_the_wedge_except_white() -> None:
    density = _ribosome()[None]
    sampled = wedge_mask((N, N, N), 50.0, "cpu")
    for colour, inside in [("wedge", False), ("ctf", False), ("white", True)]:
        imaging = Imaging(noise_colour=colour, tilt_min_deg=-50, tilt_max_deg=50)
        out = image_subtomograms(density, [imaging], np.array([0.1]), torch.Generator())
        power = torch.fft.rfftn(out[0]).abs() ** 2
        in_wedge = float(power[~sampled].sum() / power.sum())
        assert (in_wedge > 0.05) if inside else (in_wedge < 1e-8)


@pytest.mark.parametrize(
    "imaging",
    [
        Imaging(),
        Imaging(
            defocus_um=-3.0,
            astigmatism_um=0.4,
            astigmatism_angle_deg=30.0,
            tilt_min_deg=-50.0,
            tilt_max_deg=64.0,
            tilt_step_deg=2.0,
            tilt_order="bidirectional",
            particle_x_nm=1000.0,
            particle_z_nm=60.0,
            resolution_nm=3.0,
        ),
        Imaging(phase_plate=True, defocus_um=-0.5, phase_flip=False),
    ],
)
def test_fourier_form_matches_the_projection_path(imaging: Imaging) -> None:
    density = _ribosome()
    generator = torch.Generator()
    reference = image_by_projection(density, imaging, math.inf, generator, 1.0, 2.5)
    fourier = image_subtomograms(density[None], [imaging], np.array([np.inf]), generator, 1.0, 2.5)
    assert _corr(reference, fourier[0]) > 0.95  # documented bound (measured 0.98)


def test_presets_sample_reproducibly() -> None:
    for name in ("paper", "realistic", "shifted"):
        ranges = imaging_preset(name)
        a = [ranges.sample(np.random.default_rng(7)) for _ in range(3)]
        b = [ranges.sample(np.random.default_rng(7)) for _ in range(3)]
        assert a == b
        assert Imaging.from_dict(a[0].to_dict()) == a[0]
    with pytest.raises(InputError, match="realistic"):
        imaging_preset("realstic")


def test_shifted_draws_lie_outside_the_training_ranges() -> None:
    realistic, shifted = IMAGING_PRESETS["realistic"], IMAGING_PRESETS["shifted"]
    rng = np.random.default_rng(0)
    for _ in range(200):
        drawn = shifted.sample(rng)
        for field in SHIFTED_FIELDS:
            assert not realistic.contains(drawn, field), (field, drawn)
            assert shifted.contains(drawn, field)
    train = [realistic.sample(rng) for _ in range(200)]
    assert all(realistic.contains(d, f) for d in train for f in SHIFTED_FIELDS)


def test_paper_preset_is_the_fast_path_unchanged() -> None:
    names = ["apoferritin_6z6u", "proc-00003"]
    before = simulate_subtomograms(names, 0.5, 3)
    after = simulate_subtomograms(names, 0.5, 3, imaging="paper")
    np.testing.assert_array_equal(before.volumes, after.volumes)
    assert after.imaging == ()


def test_realistic_subtomograms_are_seeded_and_record_their_imaging() -> None:
    names = ["apoferritin_6z6u", "proc-00003", "ribosome70S_4v5d"]
    a = simulate_subtomograms(names, 0.5, 5, imaging="realistic")
    b = simulate_subtomograms(names, 0.5, 5, imaging="realistic")
    np.testing.assert_array_equal(a.volumes, b.volumes)
    assert len(a.imaging) == 3 and a.imaging == b.imaging
    np.testing.assert_array_equal(a.defocus_um, [im.defocus_um for im in a.imaging])
    assert a.masks.any(axis=(1, 2, 3)).all()
    with pytest.raises(InputError, match="preset"):
        simulate_subtomograms(names, 0.5, 5, imaging="nope")


def test_voxel_mismatch_shrinks_molecule_and_mask() -> None:
    base = dataclasses.replace(IMAGING_PRESETS["realistic"], voxel_mismatch=((1.0, 1.0),))
    big = dataclasses.replace(base, voxel_mismatch=((1.15, 1.15),))
    names = ["apoferritin_6z6u"]
    a = simulate_subtomograms(names, np.inf, 1, imaging=base)
    b = simulate_subtomograms(names, np.inf, 1, imaging=big)
    ratio = b.masks.sum() / a.masks.sum()
    assert ratio == pytest.approx(1 / 1.15**3, rel=0.1)


def test_realistic_tomogram_is_written_with_truth(tmp_path) -> None:
    result = simulate_tomogram(
        tmp_path,
        "TS_r",
        ["apoferritin_6z6u", "proc-00003"],
        6,
        0.5,
        2,
        shape=(48, 96, 96),
        write_labels=True,
        imaging="realistic",
    )
    with mrcfile.open(result.path) as mrc:
        volume = np.array(mrc.data)
    with mrcfile.open(result.label_path) as mrc:
        labels = np.array(mrc.data)
    assert volume.shape == labels.shape == (48, 96, 96) and np.isfinite(volume).all()
    particles = result.particles
    assert (particles["preset"] == "realistic").all()
    drawn = Imaging.from_dict(json.loads(particles["imaging"].iloc[0]))
    assert drawn.defocus_um == particles["defocus_um"].iloc[0]
    assert set(np.unique(labels)) <= set(range(len(particles) + 1)) and labels.max() > 0
    assert (tmp_path / "TS_r.star").exists()
    again = simulate_tomogram(
        tmp_path / "b", "TS_r", ["apoferritin_6z6u", "proc-00003"], 6, 0.5, 2,
        shape=(48, 96, 96), imaging="realistic",
    )  # fmt: skip
    with mrcfile.open(again.path) as mrc:
        np.testing.assert_array_equal(np.array(mrc.data), volume)


def test_acquisition_orders() -> None:
    angles = tilt_angles_deg(-6, 6, 2)  # -6 .. 6
    dose_sym = angles[acquisition_order(angles, "dose-symmetric")]
    np.testing.assert_array_equal(dose_sym, [0, 2, 4, -2, -4, 6, -6])
    bidir = angles[acquisition_order(angles, "bidirectional")]
    np.testing.assert_array_equal(bidir, [0, 2, 4, 6, -2, -4, -6])


def test_sharded_dataset_cache_is_the_same_with_worker_processes(tmp_path) -> None:
    from cosnet_index.simulate import make_dataset

    args = (["apoferritin_6z6u", "proc-00001"], 12, [0.5], 4)
    one = make_dataset(tmp_path / "one", *args, batch_size=8, imaging="realistic")
    two = make_dataset(tmp_path / "two", *args, batch_size=8, imaging="realistic", workers=2)
    pd.testing.assert_frame_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.masks, two.masks)
    # same draws; only float rounding may differ with the torch thread count (1 per worker)
    np.testing.assert_allclose(one.volumes, two.volumes, atol=2e-3)
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["imaging"] == "realistic"
    assert Imaging.from_dict(json.loads(two.labels["imaging"].iloc[0]))


def test_projection_agrees_with_teamtomo_torch_fourier_slice() -> None:
    tfs = pytest.importorskip("torch_fourier_slice")  # optional: not a dependency
    volume = _blobs()
    angles = tilt_angles_deg(-60, 60, 15)
    mine = torch.stack([project_slabs(volume, a, [0, N])[0] for a in angles])
    rotations = []
    for a in np.radians(angles):
        c, s = math.cos(a), math.sin(a)
        rotations.append(torch.tensor([[c, 0, -s], [0, 1, 0], [s, 0, c]], dtype=torch.float32))
    theirs = tfs.project_3d_to_2d(volume, torch.stack(rotations))
    for k in range(len(angles)):
        assert _corr(mine[k], theirs[k]) > 0.99


def test_episode_sampler_draws_realistic_episodes() -> None:
    import functools

    from cosnet_index.data.episodes import EpisodeSampler

    realistic = functools.partial(simulate_subtomograms, imaging="realistic")
    sampler = EpisodeSampler(
        ["apoferritin_6z6u", "proc-00001", "proc-00002"], 2, simulate=realistic
    )
    a, b = sampler.episode(3), sampler.episode(3)
    assert a.volumes_a.shape == a.volumes_b.shape == (2, N, N, N)
    torch.testing.assert_close(a.volumes_a, b.volumes_a)


def test_broad_brackets_every_shifted_range_with_a_gap() -> None:
    """The campaign's training preset never draws what the hard benchmark draws."""
    broad, shifted = IMAGING_PRESETS["broad"], IMAGING_PRESETS["shifted"]
    gaps = {
        "defocus_um": 0.3,
        "resolution_nm": 0.2,
        "tilt_max_deg": 2.0,
        "voxel_mismatch": 0.02,
        "ice_thickness_nm": 10.0,
    }
    for field, gap in gaps.items():
        for lo, hi in getattr(shifted, field):
            for b_lo, b_hi in getattr(broad, field):  # wholly below or above, with the gap
                assert lo - b_hi >= gap - 1e-9 or b_lo - hi >= gap - 1e-9, field
    rng = np.random.default_rng(0)
    for _ in range(200):
        drawn = shifted.sample(rng)
        assert not any(broad.contains(drawn, field) for field in SHIFTED_FIELDS)


def test_a_collection_shares_its_microscope() -> None:
    ranges = IMAGING_PRESETS["broad"]
    particles = ranges.sample_collection(np.random.default_rng(3), 5)
    again = ranges.sample_collection(np.random.default_rng(3), 5)
    assert particles == again  # seeded
    per_particle = {"defocus_um", "particle_x_nm", "particle_z_nm", "ice_gradient_angle_deg"}
    shared = [{k: v for k, v in p.to_dict().items() if k not in per_particle} for p in particles]
    assert all(s == shared[0] for s in shared)
    assert len({p.defocus_um for p in particles}) == 5
    spread = max(p.defocus_um for p in particles) - min(p.defocus_um for p in particles)
    assert spread <= 1.0
