"""Simulated cryo-ET data: class density maps, subtomograms, tomograms and datasets.

The folders follow the physics, from what is imaged to what a user would read:

- ``molecules/``: the density map of every class (shipped maps, procedural classes, the
  real-molecule library and its builder, user MRC / PDB maps), by name;
- ``specimen/``: where molecules sit (placement in a tomogram, crowding neighbours, background);
  ``_pose.py`` is the pose convention every part shares;
- ``microscope/``: the imaging parameters (:class:`Imaging`, :class:`ImagingRanges`, the presets,
  :class:`CTFSettings`) and the physics they describe (CTF, tilt scheme, dose);
- ``reconstruction/``: from images to a volume (the paper's fast Fourier path, projection and
  weighted back-projection, the tilt-series path and its Fourier form);
- the entry points: ``subtomograms.py``, ``tomogram.py``, ``dataset.py`` (and ``config.py``, the
  fast path's recipe; ``split.py``, the train / held-out classes).

See ``docs/simulation.md`` for the physics and every parameter.
"""

from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.dataset import SimulatedDataset, load_dataset, make_dataset
from cosnet_index.simulate.microscope import (
    IMAGING_PRESETS,
    CTFSettings,
    Imaging,
    ImagingRanges,
    imaging_preset,
)
from cosnet_index.simulate.molecules import (
    REAL_CLASSES,
    ClassMap,
    class_info,
    class_map,
    is_class_name,
    map_from_atomic_model,
    map_from_mrc_file,
    procedural_map,
    procedural_name,
    real_map,
    register_class_map,
    register_library,
)
from cosnet_index.simulate.reconstruction import image_by_projection, image_subtomograms
from cosnet_index.simulate.split import ClassSplit, default_split, resolve_classes
from cosnet_index.simulate.subtomograms import (
    SubtomogramBatch,
    SubtomogramTensors,
    simulate_subtomograms,
    simulate_subtomograms_torch,
)
from cosnet_index.simulate.tomogram import (
    SimulatedTomogram,
    simulate_collection,
    simulate_tomogram,
    write_particles_star,
)

__all__ = [
    "IMAGING_PRESETS",
    "REAL_CLASSES",
    "CTFSettings",
    "ClassMap",
    "ClassSplit",
    "Imaging",
    "ImagingRanges",
    "SimulatedDataset",
    "SimulatedTomogram",
    "SimulationConfig",
    "SubtomogramBatch",
    "SubtomogramTensors",
    "class_info",
    "class_map",
    "default_split",
    "image_by_projection",
    "image_subtomograms",
    "imaging_preset",
    "is_class_name",
    "library_manifest",
    "library_map",
    "library_names",
    "load_dataset",
    "make_dataset",
    "map_from_atomic_model",
    "map_from_mrc_file",
    "procedural_map",
    "procedural_name",
    "real_map",
    "register_class_map",
    "register_library",
    "resolve_classes",
    "simulate_collection",
    "simulate_subtomograms",
    "simulate_subtomograms_torch",
    "simulate_tomogram",
    "write_particles_star",
]

# the library module is imported on first use (it is also run as ``python -m``)
_LIBRARY_NAMES = ("library_manifest", "library_map", "library_names")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _LIBRARY_NAMES:
        from cosnet_index.simulate.molecules import library

        return getattr(library, name)
    raise AttributeError(f"module 'cosnet_index.simulate' has no attribute {name!r}")
