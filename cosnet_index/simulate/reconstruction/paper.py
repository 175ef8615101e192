"""The paper's fast path: CTF, missing wedge and noise applied to the posed volume in Fourier space.

The COS-Net paper's recipe (Pei et al. 2016 / AITom): one isotropic CTF per volume
(:func:`~cosnet_index.simulate.microscope.ctf.ctf_table`, the settings of
:class:`~cosnet_index.simulate.config.SimulationConfig`), the missing wedge of a single-axis tilt
series over ``+-tilt_max_deg`` zeroed, and white noise at the requested SNR, half before the CTF
and half after. The reconstruction is this filter of the 3D spectrum: nothing is projected.
All filters live on the ``rfftn`` grid of a (..., z, y, x) volume: shape (nz, ny, nx // 2 + 1).
"""

from __future__ import annotations

import functools
import math

import torch

from cosnet_index.simulate._fourier import parseval_variance
from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.microscope.ctf import ctf_table

__all__ = ["apply_ctf_wedge", "ctf_wedge_filters", "wedge_mask"]


@functools.lru_cache(maxsize=32)
def wedge_mask(shape: tuple[int, int, int], tilt_max_deg: float, device: str) -> torch.Tensor:
    """Sampled region of a single-axis (y) tilt series, bool (nz, ny, nx//2+1).

    A projection at tilt ``t`` samples the Fourier plane spanned by ky and
    ``(cos t, 0, sin t)`` in (kx, kz), so the tilt range ``+-tilt_max_deg`` samples
    ``|kz| <= tan(tilt_max_deg) |kx|``; the missing wedge is the rest (around the kz axis).
    """
    nz, ny, nx = shape
    kz = torch.fft.fftfreq(nz, dtype=torch.float64).abs()[:, None, None]
    kx = torch.fft.rfftfreq(nx, dtype=torch.float64)[None, None, :]
    if tilt_max_deg >= 90:
        sampled = torch.ones(nz, 1, nx // 2 + 1, dtype=torch.bool)
    else:
        sampled = kz <= math.tan(math.radians(tilt_max_deg)) * kx + 1e-12
    return sampled.expand(nz, ny, nx // 2 + 1).contiguous().to(device)


def ctf_wedge_filters(
    shape: tuple[int, int, int], config: SimulationConfig, defocus_um: torch.Tensor, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal transfer ``W CTF`` and noise filter ``W sqrt(CTF^2 + 1)``, each (n, rfft grid).

    Both depend on |k| only inside the sampled region and are 0 in the wedge: they are
    evaluated once per distinct |k|^2 (plus a zero entry for the wedge) and gathered.
    """
    k2_values, k2_index = _freq2_table(tuple(shape), float(config.voxel_size_nm), device)
    sampled = wedge_mask(tuple(shape), config.tilt_max_deg, device)
    index = torch.where(sampled, k2_index, torch.full_like(k2_index, k2_values.numel()))
    table = ctf_table(config.ctf_settings(), defocus_um, k2_values)
    zero = torch.zeros(table.shape[0], 1, dtype=table.dtype, device=table.device)
    signal = torch.cat([table, zero], dim=1).float()
    noise = torch.cat([torch.sqrt(table**2 + 1.0), zero], dim=1).float()
    return signal[:, index], noise[:, index]


@functools.lru_cache(maxsize=32)
def _freq2_table(shape: tuple[int, int, int], voxel_size_nm: float, device: str):
    """Distinct |k|^2 values (1/nm^2, float64) and the index of each rfft bin into them."""
    nz, ny, nx = shape
    # integer |k|^2 in units of 1/(n voxel)^2 per axis, exact for the lookup
    iz = torch.fft.fftfreq(nz, 1.0 / nz).round().long()
    iy = torch.fft.fftfreq(ny, 1.0 / ny).round().long()
    ix = torch.fft.rfftfreq(nx, 1.0 / nx).round().long()
    # use a common denominator so that distinct frequencies get distinct keys
    lz, ly, lx = ny * nx, nz * nx, nz * ny
    key = (
        (iz[:, None, None] * lz) ** 2
        + (iy[None, :, None] * ly) ** 2
        + (ix[None, None, :] * lx) ** 2
    )
    values, index = torch.unique(key, return_inverse=True)
    k2 = values.double() / float(nz * ny * nx * voxel_size_nm) ** 2
    return k2.to(device), index.to(device)


def apply_ctf_wedge(
    signal: torch.Tensor,
    snr: torch.Tensor,
    config: SimulationConfig,
    defocus_um: torch.Tensor,
    generator: torch.Generator | None,
    want_clean: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Image posed densities: CTF, missing wedge, noise at the requested SNR.

    Args:
        signal: (n, nz, ny, nx) posed noise-free densities (molecules positive).
        snr: (n,) requested var(signal) / var(noise) after CTF and wedge; ``inf`` = no noise.
        defocus_um: (n,) defocus of each volume.
        generator: torch generator of the noise (only used where some snr is finite).

    Returns:
        ``(noisy, clean)``, both (n, nz, ny, nx): the imaged volume and its noise-free part
        (``clean`` is None unless ``want_clean`` or no SNR is finite).
        Noise is white Gaussian, half its variance added before the CTF and half after
        (Pei et al. 2016), and all of it passes through the wedge. Both halves are drawn as one
        white field filtered by ``W sqrt(CTF^2 + 1)`` (the same Gaussian process). Its scale is set
        per volume from the *realised* variances so the measured SNR is the requested one.
    """
    shape = tuple(signal.shape[-3:])
    device = str(signal.device)
    transfer, noise_filter = ctf_wedge_filters(shape, config, defocus_um, device)
    spectrum = torch.fft.rfftn(signal, dim=(-3, -2, -1)) * transfer
    finite = torch.isfinite(snr)
    clean = None
    if want_clean or not bool(finite.any()):
        clean = torch.fft.irfftn(spectrum, s=shape, dim=(-3, -2, -1))
    if not bool(finite.any()):
        return clean, clean
    noise = torch.randn(signal.shape, generator=generator, device=signal.device, dtype=signal.dtype)
    noise_spectrum = torch.fft.rfftn(noise, dim=(-3, -2, -1)) * noise_filter
    var_signal = parseval_variance(spectrum, shape)
    var_noise = parseval_variance(noise_spectrum, shape)
    safe_snr = torch.where(finite, snr.double(), torch.ones_like(snr, dtype=torch.float64))
    scale = torch.sqrt(var_signal / (safe_snr * var_noise.clamp_min(1e-30)))
    scale = torch.where(finite, scale, torch.zeros_like(scale)).to(signal.dtype)
    noisy = torch.fft.irfftn(
        spectrum + scale.view(-1, 1, 1, 1) * noise_spectrum, s=shape, dim=(-3, -2, -1)
    )
    return noisy, clean
