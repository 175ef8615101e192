"""The hard benchmark's third table: supports made from maps, as ``classes add --map`` makes them.

A template-matching user starts from a structure, not a particle. In ``collection="map"`` the
queries are the same-collection table's (same seeds, same boxes) and each class of an episode
is one prototype made from its density map the way ``classes add --map`` does it
(:mod:`cosnet_index.classes._reference`): the map at the model's voxel size, low-passed to the
collection's resolution, posed in ``orientations`` random orientations, imaged noise-free with
the collection's microscope (CTF at its defocus, its tilt range, voltage, phase plate) and the
vectors averaged.

The collection's settings are what its user would type: the median over the episode's boxes
(each box has its own per-tomogram jitter in the simulator). The simulator's other draws (the
voxel-size error, B-factor, astigmatism, ice) are not known to the user and not given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from cosnet_index.model import CosNet

__all__ = ["collection_imaging", "map_prototypes"]

MAP_ORIENTATIONS = 16
"""Orientations imaged and averaged per class (``classes add --orientations`` default)."""


def collection_imaging(batch: object, members: Sequence[int], seed: int):  # -> ReferenceImaging
    """The :class:`~cosnet_index.classes._reference.ReferenceImaging` a user of this collection
    gives ``classes add --map``: the median defocus, tilt range and resolution of the
    ``members`` of ``batch``, their most common voltage, phase plate and phase flip; noise-free
    (defaults of ``ReferenceImaging`` when the simulator records no imaging, as for ``paper``)."""
    from cosnet_index.classes._reference import ReferenceImaging

    imaging = getattr(batch, "imaging", ())
    if not imaging:
        return ReferenceImaging(orientations=MAP_ORIENTATIONS, seed=seed)
    drawn = [imaging[i] for i in members]

    def median(field: str) -> float:
        return float(np.median([getattr(m, field) for m in drawn]))

    def most_common(field: str):  # type: ignore[no-untyped-def]
        values = [getattr(m, field) for m in drawn]
        return max(set(values), key=values.count)

    return ReferenceImaging(
        defocus_um=median("defocus_um"),
        tilt_min_deg=min(0.0, median("tilt_min_deg")),
        tilt_max_deg=max(0.0, median("tilt_max_deg")),
        voltage_kv=float(most_common("voltage_kv")),
        phase_plate=bool(most_common("phase_plate")),
        phase_flip=bool(most_common("phase_flip")),
        resolution_nm=median("resolution_nm"),
        orientations=MAP_ORIENTATIONS,
        seed=seed,
    )


def map_prototypes(
    model: CosNet, names: Sequence[Sequence[str]], imaging: Sequence[object]
) -> torch.Tensor:
    """``(episodes, N, 1, dim)`` prototypes: for each episode's class names, one vector made
    from the class's map under that episode's :func:`collection_imaging`."""
    from cosnet_index.classes._reference import image_reference
    from cosnet_index.simulate.molecules._density import ClassMap, lowpass
    from cosnet_index.simulate.molecules.maps import DEFAULT_RESOLUTION_NM, class_info

    box = int(model.config.box)
    voxel_nm = float(model.config.voxel_size_nm)
    out = []
    for classes, setting in zip(names, imaging, strict=True):
        boxes = []
        for name in classes:
            info = class_info(name, voxel_nm)
            # the shipped maps are at DEFAULT_RESOLUTION_NM: blur what the collection lacks
            # (Gaussian widths add in quadrature), as reference_map low-passes a user's map
            extra = math.sqrt(max(0.0, setting.resolution_nm**2 - DEFAULT_RESOLUTION_NM**2))
            if extra > 0:
                density = lowpass(np.asarray(info.density), voxel_nm, extra)
                info = ClassMap(
                    info.name, density, info.threshold, info.radius_voxels, info.mass_da, voxel_nm
                )
            boxes.append(image_reference(info, setting, box=box, voxel_size_nm=voxel_nm))
        stacked = torch.from_numpy(np.ascontiguousarray(np.concatenate(boxes)))
        vectors = model.embed(stacked).reshape(len(classes), MAP_ORIENTATIONS, -1)
        out.append(vectors.mean(dim=1, keepdim=True))  # (N, 1, dim)
    return torch.stack(out)
