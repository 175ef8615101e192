"""A support class from a reference: a density map (MRC) or an atomic model (PDB/mmCIF).

Template-matching users start from a structure, not a particle. The reference is turned into
what an indexed particle looks like and embedded the same way:

1. the map is resampled to the model's voxel size (``--map-voxel-size`` overrides its header)
   and low-passed to the imaging resolution; an atomic model is splatted onto that grid
   (``gemmi``, the ``pdb`` extra);
2. it is posed in ``orientations`` random orientations (seeded) and imaged like the collection:
   CTF, missing wedge of the tilt range, exposure filter, dark molecules, optional noise at
   ``snr`` (:func:`cosnet_index.simulate.image_subtomograms`, the Fourier form of the
   tilt-series path). The collection's settings are given (:class:`ReferenceImaging`); the
   store does not record them;
3. the boxes are embedded with the store's model and their vectors averaged into ONE support
   vector (the prototype); the class records where it came from (path, voxel size, imaging,
   orientations, seed) in its catalog source.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cosnet_index.errors import InputError

if TYPE_CHECKING:
    from cosnet_index.model import CosNet
    from cosnet_index.simulate import ClassMap
    from cosnet_index.store import Store

__all__ = [
    "ReferenceImaging",
    "image_reference",
    "reference_map",
    "reference_vector",
    "vectors_of_reference",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceImaging:
    """How the collection was imaged, as far as the reference needs it.

    Attributes:
        defocus_um: defocus (negative: underfocus), micrometres.
        tilt_min_deg, tilt_max_deg: the tilt range (missing wedge).
        voltage_kv: acceleration voltage.
        phase_plate: Volta phase plate data.
        phase_flip: the tomograms were reconstructed from phase-flipped (CTF-corrected) tilt
            images: the reference's CTF becomes ``-|CTF|`` as theirs did.
        resolution_nm: the map is low-passed to this (the tomograms' resolution).
        snr: noise added to each imaged box (``inf``: none); averaging the orientations' vectors
            averages the noise out too.
        orientations: random orientations imaged and averaged.
        seed: seeds the orientations and the noise.
    """

    defocus_um: float = -4.0
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    voltage_kv: float = 300.0
    phase_plate: bool = False
    phase_flip: bool = False
    resolution_nm: float = 4.0
    snr: float = math.inf
    orientations: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.orientations < 1:
            raise InputError(f"--orientations must be at least 1, got {self.orientations}")
        if not self.resolution_nm > 0:
            raise InputError(f"--resolution must be > 0 nm, got {self.resolution_nm}")
        if not self.snr > 0:
            raise InputError(f"--snr must be > 0 (inf for no noise), got {self.snr}")
        if not -90 < self.tilt_min_deg <= 0 <= self.tilt_max_deg < 90:
            raise InputError(
                "--tilt-range must contain 0 and lie inside (-90, 90) degrees, got "
                f"{self.tilt_min_deg} {self.tilt_max_deg}"
            )


def reference_map(
    *,
    map_path: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    map_voxel_size_angstrom: float | None = None,
    voxel_size_nm: float = 1.0,
    resolution_nm: float = 4.0,
) -> ClassMap:
    """The reference as a simulator-ready map at ``voxel_size_nm`` (molecule positive).

    Args:
        map_path: an MRC density map (molecule positive, as EMDB writes them); or
        model_path: a PDB/mmCIF atomic model (needs gemmi: the ``pdb`` extra).
        map_voxel_size_angstrom: the map's voxel size when its header is missing or wrong.
        voxel_size_nm: the model's voxel size; ``resolution_nm``: low-pass resolution.

    Raises:
        InputError: neither or both of map/model, an unreadable file, gemmi missing.
        MrcError: the map is not a 3D MRC volume with a voxel size.
    """
    from cosnet_index.simulate import map_from_atomic_model, map_from_mrc_file

    if (map_path is None) == (model_path is None):
        raise InputError("give exactly one reference: --map MAP.mrc or --model MODEL.cif")
    if model_path is not None:
        if map_voxel_size_angstrom is not None:
            raise InputError("--map-voxel-size applies to --map only (models are in angstrom)")
        return map_from_atomic_model(model_path, voxel_size_nm, resolution_nm)
    assert map_path is not None
    if map_voxel_size_angstrom is not None and not map_voxel_size_angstrom > 0:
        raise InputError(f"--map-voxel-size must be > 0 A, got {map_voxel_size_angstrom}")
    info = map_from_mrc_file(
        map_path,
        voxel_size_nm=voxel_size_nm,
        resolution_nm=resolution_nm,
        voxel_size_angstrom=map_voxel_size_angstrom,
    )
    if float(np.abs(info.density).max()) == 0.0:
        raise InputError(f"{map_path} holds no density (all zero); give a density map")
    return info


def image_reference(
    info: ClassMap, imaging: ReferenceImaging, *, box: int = 32, voxel_size_nm: float = 1.0
) -> np.ndarray:
    """Pose the map in ``imaging.orientations`` random orientations and image each.

    Returns:
        ``(orientations, box, box, box)`` float32, molecules dark (as indexing expects).
    """
    import torch

    from cosnet_index.simulate import Imaging, image_subtomograms
    from cosnet_index.simulate._pose import pose_map, random_rotations

    rng = np.random.default_rng(imaging.seed)
    n = imaging.orientations
    rotations = torch.as_tensor(random_rotations(rng, n), dtype=torch.float32)
    density = torch.as_tensor(np.array(info.density), dtype=torch.float32)
    with torch.no_grad():
        posed = pose_map(density, rotations, torch.zeros(n, 3), box)  # (n, box, box, box)
        setting = Imaging(
            voltage_kv=imaging.voltage_kv,
            defocus_um=imaging.defocus_um,
            phase_plate=imaging.phase_plate,
            phase_flip=imaging.phase_flip,
            tilt_min_deg=imaging.tilt_min_deg,
            tilt_max_deg=imaging.tilt_max_deg,
            resolution_nm=imaging.resolution_nm,
        )
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        volumes = image_subtomograms(
            posed,
            [setting] * n,
            np.full(n, imaging.snr),
            generator,
            voxel_size_nm=voxel_size_nm,
            density_resolution_nm=imaging.resolution_nm,
        )
    return volumes.numpy().astype(np.float32)


def reference_vector(model: CosNet, boxes: np.ndarray) -> np.ndarray:
    """The mean of the boxes' storage vectors: ``(1, dim)`` float32 (the class prototype)."""
    import torch

    vectors = model.embed(torch.from_numpy(np.ascontiguousarray(boxes))).numpy()  # (n, dim)
    return vectors.mean(axis=0, keepdims=True).astype(np.float32)


def vectors_of_reference(
    store: Store,
    *,
    map_path: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    map_voxel_size_angstrom: float | None = None,
    imaging: ReferenceImaging | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One support vector from a reference map or model, imaged like the collection.

    Returns:
        ``(vector (1, dim), source)``: ``source`` is the catalog row of the shot; its
        ``source_path`` holds the provenance as JSON (kind, path, voxel sizes, imaging, seed).

    Raises:
        InputError, MrcError: see :func:`reference_map`.
    """
    imaging = imaging or ReferenceImaging()
    model = store.model()
    box = int(model.config.box)
    voxel_nm = float(model.config.voxel_size_nm)
    info = reference_map(
        map_path=map_path,
        model_path=model_path,
        map_voxel_size_angstrom=map_voxel_size_angstrom,
        voxel_size_nm=voxel_nm,
        resolution_nm=imaging.resolution_nm,
    )
    extent_nm = 2 * info.radius_voxels * voxel_nm
    if extent_nm > box * voxel_nm:
        log.warning(
            "the reference is about %.0f nm across, more than the model's %.0f nm box: the "
            "class sees a part of it, as the indexed boxes do",
            extent_nm,
            box * voxel_nm,
        )
    boxes = image_reference(info, imaging, box=box, voxel_size_nm=voxel_nm)
    vector = reference_vector(model, boxes)
    if not np.isfinite(vector).all():
        raise InputError("the reference embeds to non-finite values; check the map")
    kind = "map" if map_path is not None else "atomic-model"
    path = Path(map_path if map_path is not None else model_path).resolve()  # type: ignore[arg-type]
    provenance = {
        "kind": kind,
        "path": str(path),
        "map_voxel_size_angstrom": map_voxel_size_angstrom,
        "model_voxel_size_angstrom": voxel_nm * 10.0,
        "mass_kda": round(info.mass_da / 1000.0, 1),
        "imaging": {
            k: v if not (isinstance(v, float) and math.isinf(v)) else "inf"
            for k, v in asdict(imaging).items()
        },
    }
    source = {"source_kind": kind, "source_path": json.dumps(provenance, sort_keys=True)}
    log.info("reference %s: %d orientations averaged into one support vector", path, len(boxes))
    return vector, source
