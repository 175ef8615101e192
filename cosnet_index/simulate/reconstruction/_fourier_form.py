"""Fourier-space form of the tilt-series imaging path for batches of subtomograms.

Each rfft bin ``(fz, fy, fx)`` of an (n, n, n) box lies in the central slice of the tilt
``theta = atan2(fz, fx)`` (by the central-slice theorem, the projection at tilt ``t`` samples the
plane spanned by ky and ``(cos t, 0, sin t)``): it takes the CTF, exposure filter and noise of the
nearest tilt of the series, and is empty if ``theta`` lies outside the tilt range (the missing
wedge). Within that slice the detector frequency is ``(k_perp, fy)`` with
``k_perp = sqrt(fx^2 + fz^2)``: its direction sets the astigmatic defocus, and ``k_perp`` is the
weight that weighted back-projection gives to white projection noise (its power grows linearly
with ``k_perp``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from cosnet_index.simulate._fourier import extra_sigma_nm, parseval_variance
from cosnet_index.simulate.microscope.ctf import tilt_ctf
from cosnet_index.simulate.microscope.dose import (
    accumulated_dose,
    exposure_filter,
    tilt_noise_variance,
)
from cosnet_index.simulate.microscope.imaging import Imaging
from cosnet_index.simulate.reconstruction.projection import tilt_weights_rad

__all__ = ["image_fourier", "rescale_volumes"]


@functools.lru_cache(maxsize=16)
def _grid(n: int, device: str) -> dict[str, torch.Tensor]:
    """Per-bin geometry of the rfft grid of an (n, n, n) box, each (n, n, n//2+1) float32."""
    fz = torch.fft.fftfreq(n, dtype=torch.float64)[:, None, None]
    fy = torch.fft.fftfreq(n, dtype=torch.float64)[None, :, None]
    fx = torch.fft.rfftfreq(n, dtype=torch.float64)[None, None, :]
    shape = (n, n, n // 2 + 1)
    f2 = (fx**2 + fy**2 + fz**2).expand(shape)
    k_perp = torch.sqrt(fx**2 + fz**2).expand(shape)
    theta = torch.rad2deg(torch.atan2(fz, fx)).expand(shape)
    alpha = torch.atan2(fy.expand(shape), k_perp)
    dc = torch.zeros(shape, dtype=torch.bool)
    dc[0, 0, 0] = True
    out = {"f2": f2, "k_perp": k_perp, "theta": theta, "alpha": alpha}
    out = {k: v.contiguous().to(device) for k, v in out.items()}
    out["dc"] = dc.to(device)
    return out


# fields that vary between the particles of one collection (ImagingRanges.sample_collection):
# every other field is shared, so a collection's filters share all but the CTF
_PER_PARTICLE = ("defocus_um", "particle_x_nm", "particle_z_nm", "ice_gradient_angle_deg")


def _shared_key(imaging: Imaging) -> tuple:
    values = imaging.to_dict()
    return tuple(sorted((k, v) for k, v in values.items() if k not in _PER_PARTICLE))


def _filters(
    imaging: Imaging, n: int, voxel_size_nm: float, density_resolution_nm: float, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal transfer and noise amplitude of one volume, each (n, n, n//2+1) float32."""
    transfer, noise = _group_filters([imaging], n, voxel_size_nm, density_resolution_nm, device)
    return transfer[0], noise[0]


def _group_filters(
    imaging: list[Imaging], n: int, voxel_size_nm: float, density_resolution_nm: float, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal transfer and noise amplitude of k volumes that differ only in
    :data:`_PER_PARTICLE` fields, each (k, n, n, n//2+1) float32.

    The tilt geometry, exposure filter, low-pass and CTF grid are computed once; only the CTF's
    defocus (the particle's own, at each tilt's height) is evaluated per volume, in one batch.
    """
    first = imaging[0]
    grid = _grid(n, device)
    angles = first.tilt_angles_deg()
    theta = grid["theta"]
    if angles.size > 1:
        mids = torch.as_tensor((angles[1:] + angles[:-1]) / 2, dtype=torch.float64, device=device)
        index = torch.bucketize(theta, mids)
    else:
        index = torch.zeros_like(theta, dtype=torch.long)
    sampled = (theta >= angles[0] - 1e-6) & (theta <= angles[-1] + 1e-6)
    t = np.radians(angles)
    defocus = np.stack(  # (k, tilts): each particle's defocus at each tilt
        [
            im.defocus_um - (im.particle_z_nm * np.cos(t) - im.particle_x_nm * np.sin(t)) / 1000.0
            for im in imaging
        ]
    )
    dose = accumulated_dose(angles, first.tilt_order, first.total_dose_e_per_a2)
    noise_var = tilt_noise_variance(angles, first.ice_thickness_nm, first.voltage_kv)
    noise_var = noise_var * tilt_weights_rad(angles)
    defocus_t = torch.as_tensor(defocus, device=device)[:, index]  # (k, n, n, m)
    dose_t = torch.as_tensor(dose, device=device)[index]
    noise_t = torch.as_tensor(noise_var, device=device)[index]
    data_voxel_nm = voxel_size_nm * first.voxel_mismatch
    k2_nm = grid["f2"] / data_voxel_nm**2
    cos2 = torch.cos(2.0 * (grid["alpha"] - math.radians(first.astigmatism_angle_deg)))
    ctf = tilt_ctf(k2_nm, cos2, defocus_t, settings=first.ctf_settings())  # (k, n, n, m)
    exposure = exposure_filter(dose_t, torch.sqrt(k2_nm) / 10.0).float()
    sigma = extra_sigma_nm(first.resolution_nm, density_resolution_nm)
    lowpass = torch.exp(-2.0 * math.pi**2 * sigma**2 * k2_nm).float()
    transfer = torch.where(sampled, ctf * (exposure * lowpass), torch.zeros_like(ctf))
    if first.noise_colour == "white":
        power = torch.ones_like(transfer)
    else:
        power = torch.where(sampled, noise_t * grid["k_perp"], 0.0).float().expand_as(ctf)
        if first.noise_colour == "ctf":
            power = power * 0.5 * (1.0 + (ctf * exposure) ** 2)
    power = torch.where(grid["dc"], torch.zeros_like(power), power)
    return transfer.float(), torch.sqrt(power).float()


def _batch_filters(
    imaging: list[Imaging], n: int, voxel_size_nm: float, density_resolution_nm: float, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, n, n, n//2+1) transfer and noise amplitude of a batch, one group per collection."""
    groups: dict[tuple, list[int]] = {}
    for k, im in enumerate(imaging):
        groups.setdefault(_shared_key(im), []).append(k)
    m = n // 2 + 1
    transfer = torch.empty((len(imaging), n, n, m), dtype=torch.float32, device=device)
    noise = torch.empty_like(transfer)
    for members in groups.values():
        tr, no = _group_filters(
            [imaging[k] for k in members], n, voxel_size_nm, density_resolution_nm, device
        )
        transfer[members], noise[members] = tr, no
    return transfer, noise


def rescale_volumes(
    volumes: torch.Tensor, scales: np.ndarray, mode: str = "bilinear"
) -> torch.Tensor:
    """Shrink (scale > 1) or grow each (n, n, n) volume about voxel ``n // 2``.

    ``out(p) = in(c + scale * (p - c))``: data whose true voxel is ``scale`` times the nominal
    one show the molecule ``1 / scale`` times as big, in voxels. Items with scale 1 are copied.
    """
    out = volumes.clone()
    todo = [i for i, s in enumerate(scales) if abs(float(s) - 1.0) > 1e-9]
    if not todo:
        return out
    n = volumes.shape[-1]
    c = (n // 2) / (n - 1) * 2.0 - 1.0  # voxel n // 2 in align_corners=True coordinates
    theta = torch.zeros((len(todo), 3, 4), dtype=volumes.dtype, device=volumes.device)
    for row, i in enumerate(todo):
        s = float(scales[i])
        theta[row, :, :3] = torch.eye(3) * s
        theta[row, :, 3] = c * (1.0 - s)
    grid = torch.nn.functional.affine_grid(theta, [len(todo), 1, n, n, n], align_corners=True)
    sampled = torch.nn.functional.grid_sample(
        volumes[todo].unsqueeze(1).float(), grid, mode=mode, align_corners=True
    )
    out[todo] = sampled.squeeze(1).to(volumes.dtype)
    return out


def _ice_ramp(imaging: Imaging, n: int, device: str) -> torch.Tensor:
    """(n, n, n) linear ramp along the gradient's xy direction, +-1 at the box faces."""
    axis = (torch.arange(n, dtype=torch.float32, device=device) - n // 2) / (n / 2)
    angle = math.radians(imaging.ice_gradient_angle_deg)
    ramp = math.cos(angle) * axis[None, None, :] + math.sin(angle) * axis[None, :, None]
    return ramp.expand(n, n, n)


def image_fourier(
    density: torch.Tensor,
    imaging: list[Imaging],
    snr: np.ndarray,
    generator: torch.Generator,
    voxel_size_nm: float,
    density_resolution_nm: float,
    want_clean: bool,
    rescale: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(noisy, clean) of a batch (see :func:`~.image.image_subtomograms`).

    ``rescale=False``: the voxel-size mismatch was already applied when posing.
    """
    n = density.shape[-1]
    shape = (n, n, n)
    device = str(density.device)
    mismatch = np.array([im.voxel_mismatch for im in imaging])
    volume = rescale_volumes(density.float(), mismatch) if rescale else density.float()
    transfer, noise_filter = _batch_filters(
        imaging, n, voxel_size_nm, density_resolution_nm, device
    )
    spectrum = torch.fft.rfftn(volume, dim=(-3, -2, -1)) * transfer
    clean = torch.fft.irfftn(spectrum, s=shape, dim=(-3, -2, -1))
    finite = np.isfinite(snr)
    noisy = clean
    if finite.any():
        noise = torch.randn(volume.shape, generator=generator, device=density.device)
        noise_spectrum = torch.fft.rfftn(noise, dim=(-3, -2, -1)) * noise_filter
        var_signal = parseval_variance(spectrum, shape)
        var_noise = parseval_variance(noise_spectrum, shape)
        safe = torch.as_tensor(np.where(finite, snr, 1.0), device=density.device)
        scale = torch.sqrt(var_signal / (safe * var_noise.clamp_min(1e-30)))
        scale = torch.where(torch.as_tensor(finite, device=density.device), scale, 0.0)
        noisy = torch.fft.irfftn(
            spectrum + scale.float().view(-1, 1, 1, 1) * noise_spectrum, s=shape, dim=(-3, -2, -1)
        )
    signs = torch.tensor(
        [-1.0 if im.invert_contrast else 1.0 for im in imaging], device=density.device
    ).view(-1, 1, 1, 1)
    gradients = [k for k, im in enumerate(imaging) if im.ice_gradient > 0]
    if gradients:
        std = clean.flatten(1).std(dim=1)
        noisy = noisy.clone()
        for k in gradients:
            ramp = _ice_ramp(imaging[k], n, device)
            noisy[k] = noisy[k] + imaging[k].ice_gradient * std[k] * ramp
    return noisy * signs, (clean * signs if want_clean else None)
