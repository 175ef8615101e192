"""Fourier-space imaging model in torch: CTF, missing wedge, and variance by Parseval.

All filters live on the ``rfftn`` grid of a (..., z, y, x) volume: shape (nz, ny, nx // 2 + 1).
"""

from __future__ import annotations

import functools
import math

import torch

from cosnet_index.simulate.config import SimulationConfig

__all__ = [
    "apply_ctf_wedge",
    "ctf",
    "ctf_table",
    "electron_wavelength_nm",
    "parseval_variance",
    "wedge_mask",
]


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength in nm (0.00197 nm at 300 kV)."""
    volts = voltage_kv * 1e3
    return 1.22639 / math.sqrt(volts + 0.97845e-6 * volts**2)


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


def ctf_table(config: SimulationConfig, defocus_um: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """CTF with envelope at squared frequencies ``k2`` (1/nm^2) for each defocus, (n, len(k2)).

    ``CTF(k) = -(sqrt(1 - A^2) sin(chi) + A cos(chi)) * exp(-B k^2 / 4)`` with
    ``chi = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4`` and ``dz = -defocus`` (underfocus > 0).
    It is negative at low frequency, so positive density comes out dark.
    """
    lam = electron_wavelength_nm(config.voltage_kv)
    cs_nm = config.cs_mm * 1e6
    dz_nm = (-defocus_um.to(device=k2.device, dtype=torch.float64) * 1e3).view(-1, 1)
    k2 = k2.to(torch.float64)[None, :]
    chi = math.pi * lam * dz_nm * k2 - 0.5 * math.pi * cs_nm * lam**3 * k2**2
    amp = config.amplitude_contrast
    table = -(math.sqrt(1.0 - amp**2) * torch.sin(chi) + amp * torch.cos(chi))
    if config.bfactor_angstrom2:
        table = table * torch.exp(-config.bfactor_angstrom2 * (k2 / 100.0) / 4.0)
    if config.phase_flip:
        table = -table.abs()
    return table


def ctf(
    shape: tuple[int, int, int], config: SimulationConfig, defocus_um: torch.Tensor, device: str
) -> torch.Tensor:
    """Isotropic 3D CTF (see :func:`ctf_table`) on the rfft grid, (n, nz, ny, nx//2+1)."""
    k2_values, k2_index = _freq2_table(tuple(shape), float(config.voxel_size_nm), str(device))
    return ctf_table(config, defocus_um, k2_values).float()[:, k2_index]


def _filters(
    shape: tuple[int, int, int], config: SimulationConfig, defocus_um: torch.Tensor, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal transfer ``W CTF`` and noise filter ``W sqrt(CTF^2 + 1)``, each (n, rfft grid).

    Both depend on |k| only inside the sampled region and are 0 in the wedge: they are
    evaluated once per distinct |k|^2 (plus a zero entry for the wedge) and gathered.
    """
    k2_values, k2_index = _freq2_table(tuple(shape), float(config.voxel_size_nm), device)
    sampled = wedge_mask(tuple(shape), config.tilt_max_deg, device)
    index = torch.where(sampled, k2_index, torch.full_like(k2_index, k2_values.numel()))
    table = ctf_table(config, defocus_um, k2_values)
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
    transfer, noise_filter = _filters(shape, config, defocus_um, device)
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


def _extra_sigma_nm(resolution_nm: float, density_resolution_nm: float) -> float:
    """Real-space sigma (nm) of the Gaussian that takes a map from one resolution to another.

    Chimera's molmap convention: sigma = 0.225 x resolution; Gaussians compose in quadrature.
    """
    return 0.225 * math.sqrt(max(resolution_nm**2 - density_resolution_nm**2, 0.0))
