"""The fast path's recipe: the simulator's physical and geometric parameters (one frozen dataclass).

Its microscope part is the same :class:`~cosnet_index.simulate.microscope.ctf.CTFSettings` record
the tilt-series path's :class:`~cosnet_index.simulate.microscope.imaging.Imaging` gives
(:meth:`SimulationConfig.ctf_settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosnet_index.errors import InputError
from cosnet_index.frozen import frozen_from_dict, frozen_to_dict
from cosnet_index.simulate.microscope.ctf import CTFSettings

__all__ = ["SimulationConfig"]


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of simulated subtomograms and tomograms.

    Defaults follow Pei et al. 2016 / the COS-Net paper (Zhou et al. 2021) where those give a
    value, and are our documented choice otherwise (see ``docs/simulation.md``).

    Attributes:
        box: side of a subtomogram in voxels.
        voxel_size_nm: voxel size of everything simulated, in nm.
        resolution_nm: density maps are low-passed to this resolution (raised-cosine edge).
        voltage_kv: acceleration voltage (sets the electron wavelength).
        cs_mm: spherical aberration.
        defocus_um: mean defocus; negative = underfocus (Pei et al.'s sign).
        defocus_spread_um: each subtomogram / tomogram draws its defocus uniformly in
            ``defocus_um +- defocus_spread_um``.
        amplitude_contrast: fraction of amplitude contrast.
        bfactor_angstrom2: B-factor of the CTF envelope ``exp(-B k^2 / 4)`` (k in 1/angstrom).
        phase_flip: if True the CTF is replaced by ``-|CTF|`` (phase-flipped data).
        tilt_max_deg: the tilt series covers ``+-tilt_max_deg`` about the y axis; the rest of
            Fourier space (a wedge around kz in the kx-kz plane) is zeroed.
        max_shift_fraction: each coordinate of the random shift is uniform in
            ``+-max_shift_fraction * box`` voxels (continuous, hence sub-voxel).
        crowding_max_neighbours: with crowding, each box gets 0..this many neighbour molecules.
        crowding_gap_fraction: neighbour centres are placed at
            ``(r_centre + r_neighbour) * (1 + U(0, gap))`` from the centre molecule.
    """

    box: int = 32
    voxel_size_nm: float = 1.0
    resolution_nm: float = 4.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.0
    defocus_um: float = -5.0
    defocus_spread_um: float = 0.5
    amplitude_contrast: float = 0.07
    bfactor_angstrom2: float = 400.0
    phase_flip: bool = False
    tilt_max_deg: float = 60.0
    max_shift_fraction: float = 0.1
    crowding_max_neighbours: int = 3
    crowding_gap_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.box < 8 or self.box % 2:
            raise InputError(f"box must be an even number >= 8, got {self.box}; use e.g. 32")
        if self.voxel_size_nm <= 0:
            raise InputError(f"voxel_size_nm must be > 0, got {self.voxel_size_nm}")
        if self.resolution_nm < 2 * self.voxel_size_nm:
            raise InputError(
                f"resolution_nm={self.resolution_nm} is finer than Nyquist "
                f"(2 x voxel_size_nm = {2 * self.voxel_size_nm}); raise it or use smaller voxels"
            )
        if not 0 < self.tilt_max_deg <= 90:
            raise InputError(f"tilt_max_deg must be in (0, 90], got {self.tilt_max_deg}")
        if not 0 <= self.amplitude_contrast < 1:
            raise InputError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}")
        if self.max_shift_fraction < 0 or self.crowding_max_neighbours < 0:
            raise InputError("max_shift_fraction and crowding_max_neighbours must be >= 0")

    def ctf_settings(self) -> CTFSettings:
        """This recipe's CTF (isotropic: no astigmatism, no phase plate)."""
        return CTFSettings.of(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable) of every field."""
        return frozen_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulationConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InputError`."""
        return frozen_from_dict(cls, values)
