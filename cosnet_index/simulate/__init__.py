"""Simulated cryo-ET data: class density maps, subtomograms, tomograms and datasets.

See ``docs/simulation.md`` for the physics and every parameter.
"""

from cosnet_index.simulate._real import map_from_mrc_file
from cosnet_index.simulate.atomic import map_from_atomic_model
from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.dataset import SimulatedDataset, load_dataset, make_dataset
from cosnet_index.simulate.imaging import (
    IMAGING_PRESETS,
    Imaging,
    ImagingRanges,
    image_by_projection,
    image_subtomograms,
    imaging_preset,
)
from cosnet_index.simulate.maps import (
    REAL_CLASSES,
    ClassMap,
    class_info,
    class_map,
    is_class_name,
    procedural_map,
    procedural_name,
    real_map,
    register_class_map,
)
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
_LIBRARY_NAMES = ("library_manifest", "library_map", "library_names", "register_library")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _LIBRARY_NAMES:
        from cosnet_index.simulate import library

        return getattr(library, name)
    raise AttributeError(f"module 'cosnet_index.simulate' has no attribute {name!r}")
