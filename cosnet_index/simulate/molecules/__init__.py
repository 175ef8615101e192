"""Molecules: the density map of every class the simulator can image, by name.

- ``maps.py``: the names (real maps, ``proc-<id>``, ``lib-<pdb id>...``, registered maps) and
  :func:`class_info`, the cached :class:`ClassMap` of a name;
- ``_density.py``: the steps every map goes through (low-pass, centre, normalise, mask rule);
- ``_real.py``: the ten shipped PDB-derived maps (``simulate/structures/``) and any MRC file;
  ``atomic.py``: maps from atomic models (gemmi);
- ``_procedural.py``: seeded procedural classes; ``_assembly.py``: symmetric assemblies of real
  chains;
- ``library.py``: the real-molecule library (``manifest.csv`` and ``maps.npz`` in this folder),
  rebuilt by ``_library_build/`` (``python -m cosnet_index.simulate.molecules.library build``).
  It is imported on first use, not here (it also runs as ``python -m``).
"""

from cosnet_index.simulate.molecules._density import ClassMap
from cosnet_index.simulate.molecules._real import REAL_MASS_KDA, map_from_mrc_file
from cosnet_index.simulate.molecules.atomic import map_from_atomic_model
from cosnet_index.simulate.molecules.maps import (
    REAL_CLASSES,
    class_info,
    class_map,
    is_class_name,
    procedural_map,
    procedural_name,
    real_map,
    register_class_map,
    register_library,
)

__all__ = [
    "REAL_CLASSES",
    "REAL_MASS_KDA",
    "ClassMap",
    "class_info",
    "class_map",
    "is_class_name",
    "map_from_atomic_model",
    "map_from_mrc_file",
    "procedural_map",
    "procedural_name",
    "real_map",
    "register_class_map",
    "register_library",
]
