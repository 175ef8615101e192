"""The named imaging distributions: :data:`IMAGING_PRESETS` and how a name is looked up.

- ``paper``: degenerate, today's :class:`~cosnet_index.simulate.config.SimulationConfig` defaults;
  the simulators use the fast Fourier-space path (identical bytes to before for the same seed).
- ``realistic``: the TRAINING distribution (wide domain randomisation).
- ``shifted``: the HARD-BENCHMARK distribution: defocus, map resolution, noise colour, tilt range,
  voxel-size mismatch and ice thickness drawn OUTSIDE the ``realistic`` ranges.
- ``broad``: the training distribution of the campaign (issue "A model for any microscope"): the
  ``realistic`` ranges widened on BOTH sides of every ``shifted`` range, with a gap around each, so
  that no value the hard benchmark draws is ever trained on (tested) while the model sees wedges,
  defoci, resolutions, voxel errors and ice thicknesses beyond it in both directions.

Every range and its reason is in ``docs/simulation.md`` ("Domain randomisation").
"""

from __future__ import annotations

import dataclasses

from cosnet_index.errors import InputError
from cosnet_index.simulate.microscope.imaging import ImagingRanges

__all__ = ["IMAGING_PRESETS", "SHIFTED_FIELDS", "imaging_preset", "resolve_imaging"]

_PAPER = ImagingRanges(name="paper", fast_path=True)

_REALISTIC = ImagingRanges(
    name="realistic",
    voltage_kv_choices=(300.0, 200.0),
    cs_mm=((2.0, 2.7),),
    amplitude_contrast=((0.05, 0.10),),
    defocus_um=((-6.0, -2.5),),
    astigmatism_um=((0.0, 0.5),),
    bfactor_angstrom2=((100.0, 800.0),),
    phase_plate_probability=0.1,
    phase_plate_defocus_um=((-1.0, -0.3),),
    phase_flip_probability=0.3,
    tilt_max_deg=((50.0, 70.0),),
    tilt_offset_deg=((-5.0, 5.0),),
    tilt_step_choices=(1.0, 2.0, 3.0, 4.0),
    tilt_order_choices=("dose-symmetric", "bidirectional"),
    total_dose_e_per_a2=((80.0, 180.0),),
    noise_colour_choices=("wedge", "ctf"),
    resolution_nm=((2.5, 4.5),),
    voxel_mismatch=((0.95, 1.05),),
    invert_contrast_probability=0.1,
    ice_gradient=((0.0, 0.3),),
    ice_thickness_nm=((100.0, 250.0),),
    particle_x_nm=((-1500.0, 1500.0),),
    carbon_edge_probability=0.3,
    n_membranes=(0, 3),
    n_gold=(0, 10),
    crowder_fraction=((0.0, 0.1),),
)

_SHIFTED = dataclasses.replace(
    _REALISTIC,
    name="shifted",
    defocus_um=((-8.0, -6.5), (-2.2, -1.5)),
    phase_plate_probability=0.0,
    tilt_max_deg=((40.0, 48.0),),
    noise_colour_choices=("white",),
    resolution_nm=((2.0, 2.3), (4.8, 6.0)),
    voxel_mismatch=((0.85, 0.9), (1.1, 1.15)),
    invert_contrast_probability=0.0,
    ice_thickness_nm=((260.0, 350.0),),
)

# every shifted range bracketed, never touched by a collection's nominal setting: a gap of at
# least 0.5 um of defocus (a collection's particles spread +-0.5 um about it, so particle defoci
# meet only at the very edges), 0.2 nm of resolution, 2 degrees of tilt, 0.02 of voxel error
# and 10 nm of ice around each (tests/test_campaign.py draws both and checks it); white noise
# stays unseen. Defocus is bracketed below only: nearer focus than -1.5 um is phase-plate data.
_BROAD = dataclasses.replace(
    _REALISTIC,
    name="broad",
    defocus_um=((-11.0, -9.0), (-6.0, -2.7)),
    tilt_max_deg=((30.0, 38.0), (50.0, 72.0)),
    resolution_nm=((2.5, 4.5), (6.3, 8.0)),
    voxel_mismatch=((0.76, 0.83), (0.93, 1.07), (1.17, 1.25)),
    ice_thickness_nm=((80.0, 250.0), (360.0, 450.0)),
)

IMAGING_PRESETS: dict[str, ImagingRanges] = {
    "paper": _PAPER,
    "realistic": _REALISTIC,
    "shifted": _SHIFTED,
    "broad": _BROAD,
}

SHIFTED_FIELDS = (
    "defocus_um",
    "resolution_nm",
    "noise_colour",
    "tilt_max_deg",
    "voxel_mismatch",
    "ice_thickness_nm",
)


def imaging_preset(name: str) -> ImagingRanges:
    """The named :class:`ImagingRanges` of :data:`IMAGING_PRESETS`.

    Raises:
        InputError: unknown name.
    """
    try:
        return IMAGING_PRESETS[name]
    except KeyError:
        raise InputError(
            f"unknown imaging preset {name!r}: use one of {', '.join(IMAGING_PRESETS)}"
        ) from None


def resolve_imaging(imaging: str | ImagingRanges) -> ImagingRanges:
    """A preset name or an :class:`ImagingRanges` -> :class:`ImagingRanges`."""
    if isinstance(imaging, ImagingRanges):
        return imaging
    if isinstance(imaging, str):
        return imaging_preset(imaging)
    raise InputError(f"imaging must be a preset name or an ImagingRanges, got {imaging!r}")
