"""Class maps from atomic models (PDB / mmCIF) through gemmi (the optional ``pdb`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._density import ClassMap, finish_map, splat

__all__ = ["map_from_atomic_model", "read_atomic_model"]


def _gemmi():  # type: ignore[no-untyped-def]
    try:
        import gemmi
    except ImportError:
        raise InputError(
            "reading atomic models needs gemmi: pip install 'cosnet-index[pdb]' or gemmi"
        ) from None
    return gemmi


def read_atomic_model(  # type: ignore[no-untyped-def]
    path: str | os.PathLike, assembly: bool = True, hydrogens: bool = False
):
    """The gemmi model of a PDB / mmCIF file: waters removed (hydrogens too unless
    ``hydrogens``), the first biological assembly built when ``assembly`` and the file defines
    one (else the asymmetric unit).

    Raises:
        InputError: gemmi is not installed, or the file cannot be read.
    """
    gemmi = _gemmi()
    try:
        structure = gemmi.read_structure(str(path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(
            f"cannot read atomic model {path}: {exc}; give a PDB or mmCIF file"
        ) from None
    structure.setup_entities()
    structure.remove_waters()
    if not hydrogens:
        structure.remove_hydrogens()
    model = structure[0]
    if assembly and len(structure.assemblies):
        try:
            how = gemmi.HowToNameCopiedChain.AddNumber
            model = gemmi.make_assembly(structure.assemblies[0], model, how)
        except (RuntimeError, ValueError):
            pass  # keep the asymmetric unit
    return model


def map_from_atomic_model(
    path: str | os.PathLike[str],
    voxel_size_nm: float = 1.0,
    resolution_nm: float = 4.0,
    name: str | None = None,
    assembly: bool = True,
) -> ClassMap:
    """A class map from a PDB / mmCIF model: atoms splatted with weight Z, low-passed, centred.

    Waters and hydrogens are removed; with ``assembly`` the first biological assembly is built
    when the file defines one. The mass (for the mask volume) is the sum of the atomic masses
    of the remaining atoms.

    Raises:
        InputError: gemmi is not installed, or the file cannot be read or has no atoms.
    """
    path = Path(path)
    model = read_atomic_model(path, assembly, hydrogens=False)
    positions, weights, masses = [], [], []
    for chain in model:
        for residue in chain:
            for atom in residue:
                positions.append(atom.pos.tolist())
                weights.append(atom.element.atomic_number * atom.occ)
                masses.append(atom.element.weight * atom.occ)
    if not positions:
        raise InputError(f"{path} has no atoms (after removing waters and hydrogens)")
    points_nm = np.asarray(positions, dtype=np.float64) / 10.0
    points_nm -= points_nm.mean(axis=0)
    volume = splat(points_nm, np.asarray(weights, dtype=np.float64), voxel_size_nm, resolution_nm)
    return finish_map(
        name or path.stem, volume, voxel_size_nm, resolution_nm, float(np.sum(masses))
    )
