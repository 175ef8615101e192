"""Imaging posed densities through the tilt-series path: the two public verbs.

- :func:`image_subtomograms`: a batch through the Fourier form (``_fourier_form``), fast;
- :func:`image_by_projection`: one volume through the real path (``_tilt_series``: projection at
  every tilt, per-tilt CTF, noise in the projections, weighted back-projection), the reference
  the Fourier form is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cosnet_index.errors import InputError
from cosnet_index.simulate._fourier import extra_sigma_nm, gaussian_lowpass
from cosnet_index.simulate.microscope.imaging import Imaging
from cosnet_index.simulate.reconstruction._fourier_form import image_fourier
from cosnet_index.simulate.reconstruction._tilt_series import reconstruct_tilt_series

__all__ = ["image_by_projection", "image_subtomograms"]


def _check_batch(density: torch.Tensor, imaging: Sequence[Imaging], snr: np.ndarray) -> None:
    if density.ndim != 4 or len(set(density.shape[1:])) != 1:
        raise InputError(f"density must be (b, n, n, n), got {tuple(density.shape)}")
    if len(imaging) != density.shape[0] or np.shape(snr) != (density.shape[0],):
        raise InputError(
            f"need one Imaging and one snr per volume ({density.shape[0]}), "
            f"got {len(imaging)} and {np.shape(snr)}"
        )
    if np.isnan(snr).any() or (np.asarray(snr) <= 0).any():
        raise InputError("every snr must be > 0 (use inf for no noise)")


def image_subtomograms(
    density: torch.Tensor,
    imaging: Sequence[Imaging],
    snr: np.ndarray,
    generator: torch.Generator,
    voxel_size_nm: float = 1.0,
    density_resolution_nm: float = 0.0,
) -> torch.Tensor:
    """Image posed densities through the Fourier-space form of the tilt-series path.

    By the central-slice theorem each 3D frequency takes the CTF (defocus of its tilt at the
    particle's height, astigmatism in the detector plane), exposure filter and noise of the tilt
    whose central slice passes through it; nothing lies inside the missing wedge (except with
    ``noise_colour="white"``, 3D white noise). See ``docs/simulation.md``.

    Args:
        density: (b, n, n, n) posed noise-free densities (molecule positive), model voxels.
        imaging: one :class:`Imaging` per volume.
        snr: (b,) var(signal) / var(noise) in the box (``inf`` = no noise), as the fast path.
        generator: torch generator of the noise.
        voxel_size_nm: nominal (model) voxel size; the data's is ``voxel_size_nm * mismatch``.
        density_resolution_nm: resolution the density already has (the low-pass to
            ``imaging.resolution_nm`` only adds what is missing).

    Returns:
        (b, n, n, n) float32 imaged volumes (molecules dark unless ``invert_contrast``).

    Raises:
        InputError: shapes or snr do not match.
    """
    snr = np.asarray(snr, dtype=np.float64)
    _check_batch(density, imaging, snr)
    noisy, _ = image_fourier(
        density, list(imaging), snr, generator, voxel_size_nm, density_resolution_nm, False
    )
    return noisy


def image_by_projection(
    density: torch.Tensor,
    imaging: Imaging,
    snr: float,
    generator: torch.Generator,
    voxel_size_nm: float = 1.0,
    density_resolution_nm: float = 0.0,
) -> torch.Tensor:
    """Image one (n, n, n) posed density through the real tilt-series path (reference form).

    Projects at every tilt, applies the per-tilt CTF and exposure filter, adds noise in the
    projections and reconstructs by weighted back-projection; the reference the Fourier form
    of :func:`image_subtomograms` is tested against. Slower; voxel mismatch is not applied here.

    Raises:
        InputError: density not a cube or snr not > 0.
    """
    if density.ndim != 3 or len(set(density.shape)) != 1:
        raise InputError(f"density must be (n, n, n), got {tuple(density.shape)}")
    if math.isnan(snr) or snr <= 0:
        raise InputError("snr must be > 0 (use inf for no noise)")
    extra = extra_sigma_nm(imaging.resolution_nm, density_resolution_nm)
    volume = gaussian_lowpass(density, extra / voxel_size_nm) if extra > 0 else density
    clean, noise = reconstruct_tilt_series(
        volume,
        imaging,
        voxel_size_nm,
        generator,
        offset_nm=(imaging.particle_x_nm, imaging.particle_z_nm),
        with_noise=math.isfinite(snr),
    )
    out = clean
    if noise is not None:
        scale = math.sqrt(float(clean.var()) / (snr * max(float(noise.var()), 1e-30)))
        out = clean + scale * noise
    return -out if imaging.invert_contrast else out
