"""Single-axis tilt series in torch: tilt schemes, dose, projection, weighted back-projection.

Convention (the same as the fast path's missing wedge in ``_fourier.wedge_mask``): volumes are
(z, y, x), the tilt axis is y, and the projection at tilt ``t`` integrates along the beam direction
``(-sin t, 0, cos t)`` in (x, z); its detector coordinate is ``x' = x cos t + z sin t`` (voxels from
the centre voxel ``n // 2``). By the central-slice theorem it samples the Fourier plane spanned by
ky and ``(cos t, 0, sin t)``. The height of a point along the beam, the coordinate that sets its
defocus, is ``h = z cos t - x sin t`` (positive towards the electron source).

Hand-written rather than teamtomo's torch-fourier-slice (which installs beside torch 2.13 CPU) for
two reasons: (1) a rotation about one axis is a shear of each z plane along x, so projection and
back-projection are 1D linear interpolations (2 nz ny nx multiply-adds per tilt, as one sparse
matrix product for the whole series; no 3D FFT of a padded volume, no Fourier-space gridding);
(2) the per-height CTF needs the projections of z slabs separately, which a central-slice
extractor does not give. Measurements: ``docs/simulation.md`` ("Libraries").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "accumulated_dose",
    "backproject_wbp",
    "centred_positions",
    "critical_exposure",
    "ctf_on_grid",
    "exposure_filter",
    "project_series",
    "project_slabs",
    "tilt_angles_deg",
    "tilt_weights_rad",
]


def tilt_angles_deg(tilt_min_deg: float, tilt_max_deg: float, step_deg: float) -> np.ndarray:
    """Tilt angles of a series, ascending: 0, +-step, ... within [tilt_min, tilt_max] (float64)."""
    lo = math.ceil(tilt_min_deg / step_deg - 1e-9)
    hi = math.floor(tilt_max_deg / step_deg + 1e-9)
    return np.arange(lo, hi + 1, dtype=np.float64) * step_deg


def acquisition_order(angles_deg: np.ndarray, scheme: str) -> np.ndarray:
    """Index (into ``angles_deg``) of each tilt in the order it was recorded.

    ``dose-symmetric`` (Hagen et al. 2017): 0, then groups of two on alternating sides
    (+1, +2, -1, -2, +3, +4, ... steps). ``bidirectional``: 0 up to the positive end, then from the
    first negative tilt down to the negative end.
    """
    angles = np.asarray(angles_deg)
    zero = int(np.argmin(np.abs(angles)))
    positive = [i for i in np.argsort(angles) if angles[i] > angles[zero]]
    negative = [i for i in np.argsort(-angles) if angles[i] < angles[zero]]
    if scheme == "bidirectional":
        return np.array([zero, *positive, *negative], dtype=np.int64)
    order = [zero]
    p = n = 0
    side = 0
    while p < len(positive) or n < len(negative):
        group = positive if side == 0 else negative
        start = p if side == 0 else n
        order.extend(group[start : start + 2])
        if side == 0:
            p += 2
        else:
            n += 2
        side = 1 - side
    return np.array(order, dtype=np.int64)


def accumulated_dose(angles_deg: np.ndarray, scheme: str, total_dose: float) -> np.ndarray:
    """Dose (e/A^2) each tilt has received at the middle of its own exposure, in angle order.

    The total dose is spread evenly over the tilts.
    """
    order = acquisition_order(angles_deg, scheme)
    per_tilt = total_dose / len(angles_deg)
    dose = np.empty(len(angles_deg))
    dose[order] = (np.arange(len(order)) + 0.5) * per_tilt
    return dose


def critical_exposure(k_per_angstrom: torch.Tensor) -> torch.Tensor:
    """Grant & Grigorieff 2015 critical exposure ``Ne(k) = 0.245 k^-1.665 + 2.81`` e/A^2.

    Their fit at 300 kV, k in 1/A; huge at k = 0 (the DC term is not attenuated).
    """
    return 0.245 * k_per_angstrom.clamp_min(1e-6).pow(-1.665) + 2.81


def exposure_filter(dose: torch.Tensor, k_per_angstrom: torch.Tensor) -> torch.Tensor:
    """Grant & Grigorieff 2015 exposure filter ``exp(-N / (2 Ne(k)))``, broadcast."""
    return torch.exp(-dose / (2.0 * critical_exposure(k_per_angstrom)))


def tilt_weights_rad(angles_deg: np.ndarray) -> np.ndarray:
    """Angular width (radians) each tilt stands for in the back-projection integral."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    if a.size == 1:
        return np.array([math.pi])
    edges = np.concatenate([[a[0] - (a[1] - a[0]) / 2], (a[1:] + a[:-1]) / 2])
    edges = np.concatenate([edges, [a[-1] + (a[-1] - a[-2]) / 2]])
    return np.diff(edges)


def centred_positions(n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Voxel coordinates relative to the centre voxel ``n // 2``, float32 (n,)."""
    return torch.arange(n, dtype=torch.float32, device=device) - n // 2


def _lerp_entries(
    position: torch.Tensor, m: int, weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear-interpolation weights of centred ``position`` (p, q) on an axis of length ``m``.

    Returns ``(flat, source, value)``, each (2 p q,): entry ``flat = p_index * q + q_index`` takes
    ``value`` times source sample ``source`` (0 .. m-1); samples outside the axis get weight 0.
    """
    index = position + m // 2
    base = torch.floor(index)
    frac = index - base
    i0 = base.long()
    i1 = i0 + 1
    w0 = (1.0 - frac) * ((i0 >= 0) & (i0 < m))
    w1 = frac * ((i1 >= 0) & (i1 < m))
    flat = torch.arange(position.numel(), device=position.device)
    return (
        torch.cat([flat, flat]),
        torch.cat([i0.clamp(0, m - 1).flatten(), i1.clamp(0, m - 1).flatten()]),
        torch.cat([w0.flatten(), w1.flatten()]) * weight,
    )


def _sparse(rows: list, cols: list, values: list, size: tuple[int, int]) -> torch.Tensor:
    """A coalesced COO matrix from lists of index / value pieces (zero entries dropped)."""
    r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(values)
    keep = v != 0
    matrix = torch.sparse_coo_tensor(
        torch.stack([r[keep], c[keep]]), v[keep], size, check_invariants=False
    )
    return matrix.coalesce()


def project_series(
    volume: torch.Tensor, angles_deg: np.ndarray, slab_edges: list[int]
) -> torch.Tensor:
    """Line integrals through a (nz, ny, nx) volume at every tilt, one projection per z slab.

    A ray at detector position ``x'`` crosses the plane ``z`` at ``x = x'/cos t - z tan t``; the
    integral is the sum over z planes of the linearly interpolated values times ``1 / cos t`` (the
    path length per plane). All tilts are one sparse matrix product (2 weights per plane and ray;
    measured 2-3x faster than gathering, which made large temporaries).

    Args:
        volume: (nz, ny, nx) float32.
        angles_deg: (T,) tilt angles.
        slab_edges: z plane boundaries ``[0, z1, ..., nz]``: slab ``g`` is planes
            ``edges[g]:edges[g+1]``.

    Returns:
        (T, n_slabs, ny, nx) projections (the detector has the width of the volume).
    """
    nz, ny, nx = volume.shape
    device = volume.device
    n_slabs = len(slab_edges) - 1
    slab_of = torch.zeros(nz, dtype=torch.long, device=device)
    for g, (a, b) in enumerate(itertools.pairwise(slab_edges)):
        slab_of[a:b] = g
    z = centred_positions(nz, device)
    xp = centred_positions(nx, device)
    plane = torch.arange(nz, device=device)[:, None].expand(nz, nx).flatten()
    detector = torch.arange(nx, device=device)[None, :].expand(nz, nx).flatten()
    rows, cols, values = [], [], []
    for i, angle in enumerate(np.asarray(angles_deg, dtype=np.float64)):
        t = math.radians(float(angle))
        position = xp[None, :] / math.cos(t) - z[:, None] * math.tan(t)  # (nz, nx')
        flat, source, value = _lerp_entries(position, nx, 1.0 / math.cos(t))
        # output row (tilt, slab of the plane, x'); column (plane, x) of the (z, x)-major volume
        row = (i * n_slabs + slab_of[plane]) * nx + detector
        rows.append(row[flat % (nz * nx)])
        cols.append(plane[flat % (nz * nx)] * nx + source)
        values.append(value)
    matrix = _sparse(rows, cols, values, (len(angles_deg) * n_slabs * nx, nz * nx))
    columns = volume.permute(0, 2, 1).reshape(nz * nx, ny)  # rows (z, x), columns y
    out = torch.sparse.mm(matrix, columns)  # (T * slabs * nx', ny)
    return out.reshape(len(angles_deg), n_slabs, nx, ny).transpose(2, 3)


def project_slabs(volume: torch.Tensor, tilt_deg: float, slab_edges: list[int]) -> torch.Tensor:
    """:func:`project_series` at one tilt: (n_slabs, ny, nx)."""
    return project_series(volume, np.array([tilt_deg]), slab_edges)[0]


def ramp_filter(projections: torch.Tensor) -> torch.Tensor:
    """Ramp ``|k'|`` (cycles per voxel) along the last axis, zero-padded to twice the width."""
    nx = projections.shape[-1]
    size = 2 * nx
    freq = torch.fft.rfftfreq(size, device=projections.device).abs()
    spectrum = torch.fft.rfft(projections, n=size, dim=-1) * freq
    return torch.fft.irfft(spectrum, n=size, dim=-1)[..., :nx]


def backproject_wbp(
    projections: torch.Tensor, angles_deg: np.ndarray, shape: tuple[int, int, int]
) -> torch.Tensor:
    """Weighted back-projection of a tilt series, (c, T, ny, nx') -> (c, nz, ny, nx).

    ``v(x, y, z) = sum_t dtheta_t * (ramp * p_t)(x cos t + z sin t, y)``: the discrete form of the
    inverse Radon transform in each y plane, exact (up to interpolation) in the sampled region of
    Fourier space and zero in the missing wedge. The mean (DC) is lost, as in real WBP. All tilts
    are one sparse matrix product (measured ~7x faster than gathering per tilt).
    """
    c, n_tilts, ny, nxp = projections.shape
    nz, ny_out, nx = shape
    if ny_out != ny:
        raise ValueError("projections and volume must have the same y size")
    filtered = ramp_filter(projections)
    weights = tilt_weights_rad(angles_deg)
    device = projections.device
    z = centred_positions(nz, device)
    x = centred_positions(nx, device)
    rows, cols, values = [], [], []
    for i, angle in enumerate(np.asarray(angles_deg, dtype=np.float64)):
        t = math.radians(float(angle))
        position = x[None, :] * math.cos(t) + z[:, None] * math.sin(t)  # (nz, nx)
        flat, source, value = _lerp_entries(position, nxp, float(weights[i]))
        rows.append(flat)  # row (z, x)
        cols.append(i * nxp + source)  # column (tilt, x')
        values.append(value)
    matrix = _sparse(rows, cols, values, (nz * nx, n_tilts * nxp))
    columns = filtered.permute(1, 3, 0, 2).reshape(n_tilts * nxp, c * ny)
    out = torch.sparse.mm(matrix, columns)  # (nz * nx, c * ny)
    return out.reshape(nz, nx, c, ny).permute(2, 0, 3, 1).contiguous()


def mean_free_path_nm(voltage_kv: float) -> float:
    """Inelastic mean free path in vitreous ice: ~350 nm at 300 kV, ~290 nm at 200 kV."""
    return 350.0 * math.sqrt(voltage_kv / 300.0)


def tilt_noise_variance(
    angles_deg: np.ndarray, thickness_nm: float, voltage_kv: float
) -> np.ndarray:
    """Relative projection-noise variance of each tilt (1 at 0 degrees).

    Each tilt gets the same dose; the beam crosses ``thickness / cos t`` of ice, so a fraction
    ``exp(-thickness / (L cos t))`` of the electrons stays elastic (zero-loss): the noise
    relative to the signal grows as ``exp(thickness / L * (1 / cos t - 1))``.
    """
    cos_t = np.cos(np.radians(np.asarray(angles_deg, dtype=np.float64)))
    return np.exp(thickness_nm / mean_free_path_nm(voltage_kv) * (1.0 / cos_t - 1.0))


def ctf_on_grid(
    k2_nm: torch.Tensor,
    cos2: torch.Tensor,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    bfactor_angstrom2: float,
    astigmatism_um: float,
    phase_shift_rad: float,
    phase_flip: bool,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The CTF of a fixed frequency grid as a function of defocus (see :func:`tilt_ctf`).

    Everything but the defocus term is computed once (float64, stored float32), so each call
    costs one multiply-add, a sine and a cosine per element: ``chi = a * dz + b``.
    """
    from cosnet_index.simulate._fourier import electron_wavelength_nm

    lam = electron_wavelength_nm(voltage_kv)
    k2 = k2_nm.to(torch.float64)
    a = math.pi * lam * k2 * 1e3  # per um of underfocus
    b = (
        math.pi * lam * 0.5 * astigmatism_um * 1e3 * cos2.to(torch.float64) * k2
        - 0.5 * math.pi * cs_mm * 1e6 * lam**3 * k2**2
        + phase_shift_rad
    )
    envelope = torch.exp(-bfactor_angstrom2 * (k2 / 100.0) / 4.0)
    sin_weight = (-math.sqrt(1.0 - amplitude_contrast**2) * envelope).float()
    cos_weight = (-amplitude_contrast * envelope).float()
    a32, b32 = a.float(), b.float()

    def ctf(defocus_um: torch.Tensor) -> torch.Tensor:
        chi = torch.addcmul(b32, a32, -defocus_um.float())
        value = sin_weight * torch.sin(chi) + cos_weight * torch.cos(chi)
        return -value.abs() if phase_flip else value

    return ctf


def tilt_ctf(
    k2_nm: torch.Tensor,
    cos2: torch.Tensor,
    defocus_um: torch.Tensor,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    bfactor_angstrom2: float,
    astigmatism_um: float,
    phase_shift_rad: float,
    phase_flip: bool,
) -> torch.Tensor:
    """CTF of a projection, broadcast over its arguments (float32).

    ``CTF = -(sqrt(1 - A^2) sin chi + A cos chi) exp(-B k^2 / 4)`` with
    ``chi = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4 + phase_shift`` and the underfocus
    ``dz = -defocus + astig / 2 * cos(2 (alpha - alpha_ast))`` (``cos2`` is that cosine): the
    fast path's formula (``_fourier.ctf_table``) with astigmatism and a phase plate added.
    """
    k2, cos2 = torch.broadcast_tensors(k2_nm, cos2)
    return ctf_on_grid(
        k2,
        cos2,
        voltage_kv,
        cs_mm,
        amplitude_contrast,
        bfactor_angstrom2,
        astigmatism_um,
        phase_shift_rad,
        phase_flip,
    )(defocus_um)
