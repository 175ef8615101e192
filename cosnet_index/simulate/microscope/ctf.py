"""The contrast transfer function: one settings record, one formula, two ways to evaluate it.

``CTF(k) = -(sqrt(1 - A^2) sin chi + A cos chi) exp(-B k^2 / 4)`` with
``chi = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4 + phase_shift`` and the underfocus
``dz = -defocus + astig / 2 * cos(2 (alpha - alpha_ast))``. It is negative at low frequency, so
positive density comes out dark.

:class:`CTFSettings` is the microscope record both imaging paths share: the fast path's
:class:`~cosnet_index.simulate.config.SimulationConfig` and the tilt-series path's
:class:`~cosnet_index.simulate.microscope.imaging.Imaging` each give one through their
``ctf_settings()``. The formula is evaluated two ways:

- :func:`ctf_table` (the fast path): isotropic, float64, one row per defocus over the distinct
  ``|k|^2`` of a grid;
- :func:`ctf_on_grid` / :func:`tilt_ctf` (the tilt-series path and its Fourier form): a fixed
  2D or 3D frequency grid with astigmatism, everything but the defocus term precomputed, float32.

The two keep their own floating-point order (the simulator's bytes for a seed depend on it);
``tests/test_simulate_imaging.py`` checks them against each other and against hard-coded values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CTFSettings", "ctf_on_grid", "ctf_table", "electron_wavelength_nm", "tilt_ctf"]


@dataclass(frozen=True)
class CTFSettings:
    """Everything the CTF needs but the defocus and the frequencies.

    Attributes:
        voltage_kv: acceleration voltage (sets the electron wavelength).
        cs_mm: spherical aberration.
        amplitude_contrast: fraction of amplitude contrast ``A``, in [0, 1).
        bfactor_angstrom2: envelope ``exp(-B k^2 / 4)``, ``k`` in 1/angstrom (0 = none).
        astigmatism_um: difference between the two principal defoci (tilt-series path only).
        phase_shift_rad: added to ``chi`` (pi / 2 with a Volta phase plate).
        phase_flip: the data were phase-flipped: the CTF becomes ``-|CTF|``.
    """

    voltage_kv: float = 300.0
    cs_mm: float = 2.0
    amplitude_contrast: float = 0.07
    bfactor_angstrom2: float = 400.0
    astigmatism_um: float = 0.0
    phase_shift_rad: float = 0.0
    phase_flip: bool = False

    @classmethod
    def of(
        cls, microscope: Any, *, astigmatism_um: float = 0.0, phase_shift_rad: float = 0.0
    ) -> CTFSettings:
        """The CTF of any record with ``voltage_kv``, ``cs_mm``, ``amplitude_contrast``,
        ``bfactor_angstrom2`` and ``phase_flip`` fields (a ``SimulationConfig``, an
        ``Imaging``), with the astigmatism and phase shift given."""
        return cls(
            voltage_kv=microscope.voltage_kv,
            cs_mm=microscope.cs_mm,
            amplitude_contrast=microscope.amplitude_contrast,
            bfactor_angstrom2=microscope.bfactor_angstrom2,
            astigmatism_um=astigmatism_um,
            phase_shift_rad=phase_shift_rad,
            phase_flip=microscope.phase_flip,
        )


def electron_wavelength_nm(voltage_kv: float) -> float:
    """Relativistic electron wavelength in nm (0.00197 nm at 300 kV)."""
    volts = voltage_kv * 1e3
    return 1.22639 / math.sqrt(volts + 0.97845e-6 * volts**2)


def ctf_table(settings: CTFSettings, defocus_um: torch.Tensor, k2_nm: torch.Tensor) -> torch.Tensor:
    """Isotropic CTF at squared frequencies ``k2_nm`` (1/nm^2) for each defocus, float64.

    Args:
        settings: the microscope; ``astigmatism_um`` must be 0 (the table is isotropic).
        defocus_um: (n,) defocus of each row; negative = underfocus.
        k2_nm: (m,) squared frequencies.

    Returns:
        (n, m) float64.

    Raises:
        ValueError: an astigmatic ``settings``.
    """
    if settings.astigmatism_um:
        raise ValueError("ctf_table is isotropic: use ctf_on_grid for an astigmatic CTF")
    lam = electron_wavelength_nm(settings.voltage_kv)
    cs_nm = settings.cs_mm * 1e6
    dz_nm = (-defocus_um.to(device=k2_nm.device, dtype=torch.float64) * 1e3).view(-1, 1)
    k2 = k2_nm.to(torch.float64)[None, :]
    chi = math.pi * lam * dz_nm * k2 - 0.5 * math.pi * cs_nm * lam**3 * k2**2
    if settings.phase_shift_rad:
        chi = chi + settings.phase_shift_rad
    amp = settings.amplitude_contrast
    table = -(math.sqrt(1.0 - amp**2) * torch.sin(chi) + amp * torch.cos(chi))
    if settings.bfactor_angstrom2:
        table = table * torch.exp(-settings.bfactor_angstrom2 * (k2 / 100.0) / 4.0)
    if settings.phase_flip:
        table = -table.abs()
    return table


def ctf_on_grid(
    k2_nm: torch.Tensor, cos2: torch.Tensor, *, settings: CTFSettings
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The CTF of a fixed frequency grid as a function of defocus (see :func:`tilt_ctf`).

    Everything but the defocus term is computed once (float64, stored float32), so each call
    costs one multiply-add, a sine and a cosine per element: ``chi = a * dz + b``.

    Args:
        k2_nm: squared frequencies (1/nm^2) of the grid.
        cos2: ``cos(2 (alpha - alpha_ast))`` of each frequency's direction (same shape).
        settings: the microscope.

    Returns:
        ``ctf(defocus_um)``: float32, ``k2_nm``'s shape broadcast against the defocus.
    """
    lam = electron_wavelength_nm(settings.voltage_kv)
    k2 = k2_nm.to(torch.float64)
    a = math.pi * lam * k2 * 1e3  # per um of underfocus
    b = (
        math.pi * lam * 0.5 * settings.astigmatism_um * 1e3 * cos2.to(torch.float64) * k2
        - 0.5 * math.pi * settings.cs_mm * 1e6 * lam**3 * k2**2
        + settings.phase_shift_rad
    )
    envelope = torch.exp(-settings.bfactor_angstrom2 * (k2 / 100.0) / 4.0)
    amp = settings.amplitude_contrast
    sin_weight = (-math.sqrt(1.0 - amp**2) * envelope).float()
    cos_weight = (-amp * envelope).float()
    a32, b32 = a.float(), b.float()
    phase_flip = settings.phase_flip

    def ctf(defocus_um: torch.Tensor) -> torch.Tensor:
        chi = torch.addcmul(b32, a32, -defocus_um.float())
        value = sin_weight * torch.sin(chi) + cos_weight * torch.cos(chi)
        return -value.abs() if phase_flip else value

    return ctf


def tilt_ctf(
    k2_nm: torch.Tensor, cos2: torch.Tensor, defocus_um: torch.Tensor, *, settings: CTFSettings
) -> torch.Tensor:
    """CTF of a projection, broadcast over its arguments (float32).

    The formula of the module docstring, with astigmatism (``cos2`` is the cosine of twice the
    angle to the astigmatism axis) and the phase shift of a phase plate.

    Args:
        k2_nm: squared frequencies (1/nm^2).
        cos2: ``cos(2 (alpha - alpha_ast))``, broadcast against ``k2_nm``.
        defocus_um: defocus (negative = underfocus), broadcast against both.
        settings: the microscope.
    """
    k2, cos2 = torch.broadcast_tensors(k2_nm, cos2)
    return ctf_on_grid(k2, cos2, settings=settings)(defocus_um)
