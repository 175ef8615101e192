"""One microscope setting and the distributions it is drawn from (the imaging path's parameters).

An :class:`Imaging` is ONE sampled setting (a microscope, a tilt series, a reconstruction, a
sample); an :class:`ImagingRanges` is the distribution it is drawn from. The named distributions
(``paper``, ``realistic``, ``shifted``, ``broad``) are in
:mod:`~cosnet_index.simulate.microscope.presets`.

A real collection has ONE microscope: :meth:`ImagingRanges.sample_collection` draws one setting
and gives each particle of the collection its own small variation (defocus within about 1 um,
position in the tomogram), the rest shared.

A leaf of the simulator: it imports the CTF record and the tilt scheme it describes, never the
code that images with it (``tests/test_layout.py``). Every range and its reason is in
``docs/simulation.md`` ("Domain randomisation").
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.frozen import frozen_from_dict, frozen_to_dict
from cosnet_index.simulate.microscope.ctf import CTFSettings
from cosnet_index.simulate.microscope.tilt_scheme import TILT_ORDERS, tilt_angles_deg

__all__ = ["NOISE_COLOURS", "Imaging", "ImagingRanges"]

NOISE_COLOURS = ("white", "ctf", "wedge")

Interval = tuple[float, float]


@dataclass(frozen=True)
class Imaging:
    """One sampled microscope, tilt series, reconstruction and sample setting.

    Attributes:
        voltage_kv: acceleration voltage.
        cs_mm: spherical aberration.
        amplitude_contrast: fraction of amplitude contrast.
        defocus_um: defocus at the tilt axis of the untilted specimen; negative = underfocus.
        astigmatism_um: difference between the two principal defoci (>= 0).
        astigmatism_angle_deg: direction of the more-underfocused axis in the detector plane.
        bfactor_angstrom2: CTF envelope ``exp(-B k^2 / 4)``.
        phase_plate: Volta phase plate: 90 degree phase shift added to the CTF phase.
        phase_flip: the data were phase-flipped (CTF replaced by ``-|CTF|``).
        tilt_min_deg, tilt_max_deg, tilt_step_deg: the tilt series (about y, 0 included).
        tilt_order: ``dose-symmetric`` or ``bidirectional`` (sets each tilt's prior dose).
        total_dose_e_per_a2: electron dose of the whole series, spread evenly over the tilts.
        noise_colour: ``wedge`` (white in the projections, back-projected), ``ctf`` (half of it
            structural noise before the CTF), ``white`` (3D white noise, also in the wedge).
        resolution_nm: the density map is low-passed to this resolution (Gaussian, molmap).
        voxel_mismatch: true data voxel size / nominal (model) voxel size; 1.0 = none.
        invert_contrast: a contrast-inversion mistake (molecules come out bright).
        ice_gradient: amplitude of a linear background gradient across the field, relative to
            the signal's standard deviation (subtomograms) or the protein density (tomograms).
        ice_gradient_angle_deg: its direction in the xy plane.
        ice_thickness_nm: specimen thickness; sets the tilt-dependent noise
            (``exp(t / (L cos tilt))`` inelastic loss, L = mean free path).
        particle_x_nm, particle_z_nm: position of a subtomogram in its tomogram (from the tilt
            axis and the specimen mid-plane): the height of each tilt, hence its defocus.
        carbon_edge, n_membranes, n_gold, crowder_fraction: tomogram background (a carbon film
            edge, planar membrane patches, gold beads, low-density crowders: volume fraction).
    """

    voltage_kv: float = 300.0
    cs_mm: float = 2.0
    amplitude_contrast: float = 0.07
    defocus_um: float = -5.0
    astigmatism_um: float = 0.0
    astigmatism_angle_deg: float = 0.0
    bfactor_angstrom2: float = 400.0
    phase_plate: bool = False
    phase_flip: bool = False
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    tilt_order: str = "dose-symmetric"
    total_dose_e_per_a2: float = 120.0
    noise_colour: str = "wedge"
    resolution_nm: float = 4.0
    voxel_mismatch: float = 1.0
    invert_contrast: bool = False
    ice_gradient: float = 0.0
    ice_gradient_angle_deg: float = 0.0
    ice_thickness_nm: float = 150.0
    particle_x_nm: float = 0.0
    particle_z_nm: float = 0.0
    carbon_edge: bool = False
    n_membranes: int = 0
    n_gold: int = 0
    crowder_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.noise_colour not in NOISE_COLOURS:
            raise InputError(
                f"noise_colour must be one of {NOISE_COLOURS}, got {self.noise_colour!r}"
            )
        if self.tilt_order not in TILT_ORDERS:
            raise InputError(f"tilt_order must be one of {TILT_ORDERS}, got {self.tilt_order!r}")
        if not -90 < self.tilt_min_deg <= 0 <= self.tilt_max_deg < 90:
            raise InputError(
                "the tilt range must contain 0 and lie inside (-90, 90) degrees, got "
                f"[{self.tilt_min_deg}, {self.tilt_max_deg}]"
            )
        if not self.tilt_step_deg > 0:
            raise InputError(f"tilt_step_deg must be > 0, got {self.tilt_step_deg}")
        if not 0 <= self.amplitude_contrast < 1:
            raise InputError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}")
        if not self.voxel_mismatch > 0 or not self.resolution_nm > 0:
            raise InputError("voxel_mismatch and resolution_nm must be > 0")
        if self.total_dose_e_per_a2 < 0 or self.astigmatism_um < 0 or self.ice_thickness_nm < 0:
            raise InputError("dose, astigmatism and ice thickness must be >= 0")

    def tilt_angles_deg(self) -> np.ndarray:
        """The series' tilt angles, ascending (float64)."""
        return tilt_angles_deg(self.tilt_min_deg, self.tilt_max_deg, self.tilt_step_deg)

    def ctf_settings(self) -> CTFSettings:
        """This microscope's CTF (a phase plate shifts the phase by pi / 2)."""
        return CTFSettings.of(
            self,
            astigmatism_um=self.astigmatism_um,
            phase_shift_rad=math.pi / 2 if self.phase_plate else 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable) of every field."""
        return frozen_to_dict(self)

    def to_json(self) -> str:
        """The fields as one JSON object (sorted keys), e.g. for a truth-table column."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Imaging:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InputError`."""
        return frozen_from_dict(cls, values)


def _uniform(rng: np.random.Generator, intervals: Sequence[Interval]) -> float:
    """Uniform on a union of intervals (each chosen in proportion to its length)."""
    lengths = np.array([hi - lo for lo, hi in intervals], dtype=np.float64)
    k = (
        0
        if len(intervals) == 1 or lengths.sum() == 0
        else rng.choice(len(intervals), p=lengths / lengths.sum())
    )
    lo, hi = intervals[int(k)]
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _inside(value: float, intervals: Sequence[Interval]) -> bool:
    return any(lo <= value <= hi for lo, hi in intervals)


@dataclass(frozen=True)
class ImagingRanges:
    """A distribution of :class:`Imaging` (uniform on each interval union, choices uniform).

    Interval fields are tuples of ``(low, high)`` intervals (a union); ``*_choices`` are drawn
    uniformly; ``*_probability`` are Bernoulli. ``fast_path`` marks the ``paper`` preset: the
    simulators then use the fast Fourier-space path of ``SimulationConfig`` and ignore the rest.
    Reasons for every range: ``docs/simulation.md``.
    """

    name: str = "custom"
    fast_path: bool = False
    voltage_kv_choices: tuple[float, ...] = (300.0,)
    cs_mm: tuple[Interval, ...] = ((2.0, 2.0),)
    amplitude_contrast: tuple[Interval, ...] = ((0.07, 0.07),)
    defocus_um: tuple[Interval, ...] = ((-5.5, -4.5),)
    astigmatism_um: tuple[Interval, ...] = ((0.0, 0.0),)
    bfactor_angstrom2: tuple[Interval, ...] = ((400.0, 400.0),)
    phase_plate_probability: float = 0.0
    phase_plate_defocus_um: tuple[Interval, ...] = ((-1.0, -0.3),)
    phase_flip_probability: float = 0.0
    tilt_max_deg: tuple[Interval, ...] = ((60.0, 60.0),)
    tilt_offset_deg: tuple[Interval, ...] = ((0.0, 0.0),)
    tilt_step_choices: tuple[float, ...] = (3.0,)
    tilt_order_choices: tuple[str, ...] = ("dose-symmetric",)
    total_dose_e_per_a2: tuple[Interval, ...] = ((120.0, 120.0),)
    noise_colour_choices: tuple[str, ...] = ("ctf",)
    resolution_nm: tuple[Interval, ...] = ((4.0, 4.0),)
    voxel_mismatch: tuple[Interval, ...] = ((1.0, 1.0),)
    invert_contrast_probability: float = 0.0
    ice_gradient: tuple[Interval, ...] = ((0.0, 0.0),)
    ice_thickness_nm: tuple[Interval, ...] = ((150.0, 150.0),)
    particle_x_nm: tuple[Interval, ...] = ((0.0, 0.0),)
    carbon_edge_probability: float = 0.0
    n_membranes: tuple[int, int] = (0, 0)
    n_gold: tuple[int, int] = (0, 0)
    crowder_fraction: tuple[Interval, ...] = ((0.0, 0.0),)

    def sample(self, rng: np.random.Generator) -> Imaging:
        """Draw one :class:`Imaging` (a fixed number of draws in a fixed order: reproducible)."""
        voltage = float(rng.choice(self.voltage_kv_choices))
        cs = _uniform(rng, self.cs_mm)
        amp = _uniform(rng, self.amplitude_contrast)
        defocus = _uniform(rng, self.defocus_um)
        astig = _uniform(rng, self.astigmatism_um)
        astig_angle = float(rng.uniform(0.0, 180.0))
        bfactor = _uniform(rng, self.bfactor_angstrom2)
        phase_plate = bool(rng.random() < self.phase_plate_probability)
        pp_defocus = _uniform(rng, self.phase_plate_defocus_um)
        phase_flip = bool(rng.random() < self.phase_flip_probability) and not phase_plate
        tilt_max = _uniform(rng, self.tilt_max_deg)
        offset = _uniform(rng, self.tilt_offset_deg)
        step = float(rng.choice(self.tilt_step_choices))
        order = str(rng.choice(self.tilt_order_choices))
        dose = _uniform(rng, self.total_dose_e_per_a2)
        colour = str(rng.choice(self.noise_colour_choices))
        resolution = _uniform(rng, self.resolution_nm)
        mismatch = _uniform(rng, self.voxel_mismatch)
        invert = bool(rng.random() < self.invert_contrast_probability)
        gradient = _uniform(rng, self.ice_gradient)
        gradient_angle = float(rng.uniform(0.0, 360.0))
        thickness = _uniform(rng, self.ice_thickness_nm)
        px = _uniform(rng, self.particle_x_nm)
        pz = float(rng.uniform(-0.4, 0.4)) * thickness
        carbon = bool(rng.random() < self.carbon_edge_probability)
        membranes = int(rng.integers(self.n_membranes[0], self.n_membranes[1] + 1))
        gold = int(rng.integers(self.n_gold[0], self.n_gold[1] + 1))
        crowders = _uniform(rng, self.crowder_fraction)
        return Imaging(
            voltage_kv=voltage,
            cs_mm=cs,
            amplitude_contrast=amp,
            defocus_um=pp_defocus if phase_plate else defocus,
            astigmatism_um=astig,
            astigmatism_angle_deg=astig_angle,
            bfactor_angstrom2=bfactor,
            phase_plate=phase_plate,
            phase_flip=phase_flip,
            tilt_min_deg=max(-tilt_max + offset, -89.0),
            tilt_max_deg=min(tilt_max + offset, 89.0),
            tilt_step_deg=step,
            tilt_order=order,
            total_dose_e_per_a2=dose,
            noise_colour=colour,
            resolution_nm=resolution,
            voxel_mismatch=mismatch,
            invert_contrast=invert,
            ice_gradient=gradient,
            ice_gradient_angle_deg=gradient_angle,
            ice_thickness_nm=thickness,
            particle_x_nm=px,
            particle_z_nm=pz,
            carbon_edge=carbon,
            n_membranes=membranes,
            n_gold=gold,
            crowder_fraction=crowders,
        )

    def sample_collection(
        self, rng: np.random.Generator, n: int, defocus_jitter_um: float = 0.5
    ) -> tuple[Imaging, ...]:
        """``n`` particles of ONE collection: one microscope, per-particle variation.

        One :class:`Imaging` is drawn (:meth:`sample`); each particle then gets its own defocus
        (the collection's + U(-``defocus_jitter_um``, +``defocus_jitter_um``): tomograms of one
        session differ by about 1 um), its own position in the tomogram (``particle_x_nm`` from
        this distribution, ``particle_z_nm`` within the ice) and ice-gradient direction. Tilt
        scheme, dose, voxel-size error, resolution, noise colour, contrast and ice thickness are
        shared, as in a real data set.
        """
        base = self.sample(rng)
        jitter = rng.uniform(-defocus_jitter_um, defocus_jitter_um, n)
        px = [_uniform(rng, self.particle_x_nm) for _ in range(n)]
        pz = rng.uniform(-0.4, 0.4, n) * base.ice_thickness_nm
        angles = rng.uniform(0.0, 360.0, n)
        return tuple(
            dataclasses.replace(
                base,
                defocus_um=min(base.defocus_um + float(jitter[k]), -0.05),
                particle_x_nm=float(px[k]),
                particle_z_nm=float(pz[k]),
                ice_gradient_angle_deg=float(angles[k]),
            )
            for k in range(n)
        )

    def finest_resolution_nm(self) -> float:
        """The finest map resolution this distribution can draw."""
        return min(lo for lo, _ in self.resolution_nm)

    def contains(self, imaging: Imaging, field: str) -> bool:
        """Whether ``imaging``'s value of a shifted-able ``field`` lies in these ranges.

        ``field`` is one of ``defocus_um, resolution_nm, voxel_mismatch, ice_thickness_nm,
        tilt_max_deg, noise_colour``.
        """
        if field == "noise_colour":
            return imaging.noise_colour in self.noise_colour_choices
        if field == "tilt_max_deg":
            half = (imaging.tilt_max_deg - imaging.tilt_min_deg) / 2
            return _inside(half, self.tilt_max_deg)
        if field == "defocus_um" and imaging.phase_plate:
            return _inside(imaging.defocus_um, self.phase_plate_defocus_um)
        return _inside(float(getattr(imaging, field)), getattr(self, field))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (intervals stay tuples; JSON makes them lists)."""
        return frozen_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImagingRanges:
        """Inverse of :meth:`to_dict` (also of its JSON: intervals become tuples again);
        unknown keys raise :class:`InputError`."""
        return frozen_from_dict(cls, values)
