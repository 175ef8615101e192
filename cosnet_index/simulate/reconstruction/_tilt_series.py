"""The real tilt-series path: project, per-tilt CTF and exposure filter, noise, back-project.

For each tilt ``t`` of the series (geometry in ``projection``):

1. the volume is projected slab by slab (z slabs of ``slab_voxels``);
2. each slab's projection gets, in detector strips of ``strip_voxels`` along x' (blended with
   linear weights between strip centres), the CTF of its height ``h = z / cos t - x' tan t`` (+ the
   offset of the volume in its specimen): the defocus gradient across the tilted specimen and
   through its thickness. Astigmatism, B-factor, phase plate / flip as in ``microscope.ctf``, and
   the Grant & Grigorieff exposure filter of the dose received before this tilt;
3. projection noise: white with the tilt's relative variance (ice path length, ``microscope.dose``),
   optionally times a per-pixel gain (ice-thickness gradient); with ``noise_colour="ctf"`` half of
   it is structural noise that passes the CTF too;
4. clean and noise projections are reconstructed by weighted back-projection, separately (the
   caller scales the noise to the requested SNR); ``noise_colour="white"`` adds 3D white noise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from cosnet_index.simulate.microscope.ctf import ctf_on_grid
from cosnet_index.simulate.microscope.dose import (
    accumulated_dose,
    critical_exposure,
    tilt_noise_variance,
)
from cosnet_index.simulate.microscope.imaging import Imaging
from cosnet_index.simulate.reconstruction.projection import (
    backproject_wbp,
    centred_positions,
    project_series,
)

__all__ = ["reconstruct_tilt_series"]


def _strip_weights(nx: int, strip_voxels: int, device: str) -> tuple[np.ndarray, torch.Tensor]:
    """Centres (centred voxels) of detector strips and their blending weights (k, nx)."""
    k = max(1, math.ceil(nx / strip_voxels))
    x = centred_positions(nx, device)
    if k == 1:
        return np.array([0.0]), torch.ones((1, nx), device=device)
    centres = np.linspace(float(x[0]), float(x[-1]), k)
    spacing = centres[1] - centres[0]
    c = torch.as_tensor(centres, dtype=torch.float32, device=device)[:, None]
    weights = (1.0 - (x[None, :] - c).abs() / spacing).clamp_min(0.0)  # partition of unity
    return centres, weights


def reconstruct_tilt_series(
    volume: torch.Tensor,
    imaging: Imaging,
    voxel_size_nm: float,
    generator: torch.Generator | None,
    offset_nm: tuple[float, float] = (0.0, 0.0),
    with_noise: bool = True,
    slab_voxels: int = 32,
    strip_voxels: int = 64,
    noise_gain: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Clean and noise-only WBP reconstructions of a (nz, ny, nx) density, each (nz, ny, nx).

    Args:
        volume: density (molecule positive) at the data's true voxel size ``voxel_size_nm``.
        imaging: the microscope, tilt series and noise colour.
        generator: noise generator (needed if ``with_noise``).
        offset_nm: (x, z) of the volume's centre from the tilt axis / specimen mid-plane.
        noise_gain: (ny, nx) relative noise amplitude per detector pixel (untilted frame).

    Returns:
        ``(clean, noise)``; ``noise`` is None without noise, else unit-less (to be scaled).
    """
    nz, ny, nx = volume.shape
    device = str(volume.device)
    angles = imaging.tilt_angles_deg()
    dose = accumulated_dose(angles, imaging.tilt_order, imaging.total_dose_e_per_a2)
    noise_var = tilt_noise_variance(angles, imaging.ice_thickness_nm, imaging.voltage_kv)
    edges = [*range(0, nz, slab_voxels), nz]
    slab_z = np.array([(a + b - 1) / 2 - nz // 2 for a, b in itertools.pairwise(edges)])
    centres, strip_w = _strip_weights(nx, strip_voxels, device)
    fy = torch.fft.fftfreq(ny, device=device)[:, None]
    fx = torch.fft.rfftfreq(nx, device=device)[None, :]
    k2_nm = (fx**2 + fy**2) / voxel_size_nm**2  # (ny, nx//2+1)
    alpha = torch.atan2(fy.expand_as(k2_nm), fx.expand_as(k2_nm))
    cos2 = torch.cos(2.0 * (alpha - math.radians(imaging.astigmatism_angle_deg)))
    critical = critical_exposure(torch.sqrt(k2_nm) / 10.0)
    ctf = ctf_on_grid(k2_nm, cos2, settings=imaging.ctf_settings())
    x0, z0 = offset_nm
    clean_proj = torch.zeros((len(angles), ny, nx), device=device)
    noise_proj = torch.zeros_like(clean_proj) if with_noise else None
    colour = imaging.noise_colour
    projections = project_series(volume, angles, edges)  # (T, g, ny, nx)
    for i, angle in enumerate(angles):
        t = math.radians(float(angle))
        spectra = torch.fft.rfft2(projections[i])
        exposure = torch.exp(-float(dose[i]) / (2.0 * critical))
        # height (nm) of slab g at strip j: h = z/cos t - x' tan t, plus the volume's offset
        h = (slab_z[:, None] / math.cos(t) - centres[None, :] * math.tan(t)) * voxel_size_nm
        h = h + z0 * math.cos(t) - x0 * math.sin(t)
        defocus = torch.as_tensor(imaging.defocus_um - h / 1000.0, dtype=torch.float32)
        transfer = ctf(defocus.to(device)[:, :, None, None]) * exposure  # (g, k, ny, fx)
        filtered = torch.fft.irfft2(spectra[:, None] * transfer, s=(ny, nx))  # (g, k, ny, nx)
        clean_proj[i] = (filtered * strip_w[None, :, None, :]).sum(dim=(0, 1))
        if noise_proj is None or colour == "white":
            continue
        white = torch.randn((ny, nx), generator=generator, device=device)
        if noise_gain is not None:
            white = white * _tilted_gain(noise_gain, t)
        if colour == "ctf":
            mid = ctf(torch.tensor(imaging.defocus_um))
            structural = torch.randn((ny, nx), generator=generator, device=device)
            structural = torch.fft.irfft2(torch.fft.rfft2(structural) * mid * exposure, s=(ny, nx))
            white = (white + structural) * math.sqrt(0.5)
        noise_proj[i] = white * math.sqrt(float(noise_var[i]))
    stacked = clean_proj[None] if noise_proj is None else torch.stack([clean_proj, noise_proj])
    recon = backproject_wbp(stacked, angles, (nz, ny, nx))
    clean = recon[0]
    if not with_noise:
        return clean, None
    noise = recon[1]
    if colour == "white":
        noise = torch.randn((nz, ny, nx), generator=generator, device=device)
    return clean, noise


def _tilted_gain(gain: torch.Tensor, t: float) -> torch.Tensor:
    """The (ny, nx) gain seen at tilt ``t``: detector x' looks at specimen x = x' / cos t."""
    nx = gain.shape[-1]
    x = centred_positions(nx, str(gain.device)) / math.cos(t)
    index = (x + nx // 2).round().long().clamp(0, nx - 1)
    return gain[:, index]
