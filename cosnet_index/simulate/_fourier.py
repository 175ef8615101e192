"""Fourier helpers every imaging path shares: variance by Parseval, the map resolution's low-pass.

- :func:`parseval_variance`: the variance of real volumes from their ``rfftn`` spectra (the
  noise of every path is scaled from realised variances to the requested SNR);
- :func:`extra_sigma_nm` and :func:`gaussian_lowpass`: the Gaussian (UCSF Chimera ``molmap``
  convention, sigma = 0.225 x resolution) that takes a density from one resolution to another.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["extra_sigma_nm", "gaussian_lowpass", "parseval_variance"]


@functools.lru_cache(maxsize=32)
def _rfft_weights(shape: tuple[int, int, int], device: str) -> torch.Tensor:
    """How many times each rfft bin appears in the full spectrum (1 or 2), DC set to 0."""
    nz, ny, nx = shape
    w = torch.full((nz, ny, nx // 2 + 1), 2.0)
    w[..., 0] = 1.0
    if nx % 2 == 0:
        w[..., -1] = 1.0
    w[0, 0, 0] = 0.0
    return w.to(device)


def parseval_variance(spectrum: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Variance (about the mean) of each real volume from its rfftn, (n,) float64."""
    n_vox = shape[0] * shape[1] * shape[2]
    weights = _rfft_weights(tuple(shape), str(spectrum.device))
    power = torch.view_as_real(spectrum).square().sum(-1) * weights
    return power.flatten(1).sum(dim=1, dtype=torch.float64) / float(n_vox) ** 2


def extra_sigma_nm(resolution_nm: float, density_resolution_nm: float) -> float:
    """Real-space sigma (nm) of the Gaussian that takes a map from one resolution to another.

    Chimera's molmap convention: sigma = 0.225 x resolution; Gaussians compose in quadrature.
    """
    return 0.225 * math.sqrt(max(resolution_nm**2 - density_resolution_nm**2, 0.0))


def gaussian_lowpass(volume: torch.Tensor, sigma_voxels: float) -> torch.Tensor:
    """Gaussian low-pass of the last three axes (Fourier space, periodic)."""
    shape = tuple(volume.shape[-3:])
    fz = torch.fft.fftfreq(shape[0])[:, None, None]
    fy = torch.fft.fftfreq(shape[1])[None, :, None]
    fx = torch.fft.rfftfreq(shape[2])[None, None, :]
    gain = torch.exp(-2.0 * math.pi**2 * sigma_voxels**2 * (fx**2 + fy**2 + fz**2))
    spectrum = torch.fft.rfftn(volume, dim=(-3, -2, -1)) * gain.to(volume.device)
    return torch.fft.irfftn(spectrum, s=shape, dim=(-3, -2, -1))
