"""Step (4) of the build: larger molecules from the entries' chains, by a fixed, seeded plan.

Each recipe of :func:`plan` (a symmetry: ``C<n>``, ``D<n>``, ``T``, ``O``, ``I``, a helix ``H<n>``
or a lattice patch ``P<n>``, and a target mass drawn log-uniformly per band from ``PLAN_SEED``)
takes a unit of about ``target / copies`` from the chains of its own split: one chain close to the
mass, or several chains of different entries packed at first contact. ``_assembly.py`` places the
copies; clashing or too wide molecules are dropped, and no molecule is made twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from cosnet_index.simulate.molecules._assembly import (
    CLASH_ANGSTROM,
    CONTACT_ANGSTROM,
    assemble,
    count_clashes,
)
from cosnet_index.simulate.molecules._library_build._models import Molecule, mass_kda

log = logging.getLogger(__name__)

__all__ = ["MAX_DIAMETER_NM", "PLAN_SEED", "Recipe", "build_recipes", "plan"]

PLAN_SEED = 20261202
MAX_DIAMETER_NM = 50.0  # built molecules wider than this are dropped (boxes stay < 64 nm)


@dataclass(frozen=True)
class Recipe:
    """One planned large molecule: a symmetry applied to a unit of about ``unit_kda``."""

    spec: str
    target_kda: float
    split: str


def plan() -> list[Recipe]:
    """The fixed recipe plan: target masses drawn log-uniformly per band from ``PLAN_SEED``."""
    rng = np.random.default_rng(PLAN_SEED)
    plan: list[Recipe] = []

    def add(specs: list[str], lo: float, hi: float, split: str) -> None:
        for spec in specs:
            plan.append(Recipe(spec, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), split))

    large = ["I", "O", "D6", "H16", "I", "O", "T", "P7", "I", "D8", "O", "I", "H20", "D7"]
    small = ["C2", "C3", "D2", "C4", "C2", "C3", "C5", "D2", "C2", "C3", "C4", "D2"]
    add(small, 100, 150, "heldout")  # a size-matched held-out band (factor 1.5), built first
    add(large + large[:4], 2300, 4500, "heldout")
    add(small * 2 + ["C7", "C10", "H8", "P5"], 60, 200, "train")
    add(large * 2, 2100, 4800, "train")
    medium = ["C6", "D3", "T", "C8", "O", "D4", "C12", "H12", "P7", "C5", "D5", "C9"]
    add(medium[:6], 250, 1800, "heldout")
    add(medium * 2, 220, 1900, "train")
    return plan


def _kmers(sequence: str, k: int = 3) -> set[str]:
    """Residue-name k-mers of a chain's sequence (``"ALA,GLY,..."``): shared k-mers mark the
    same protein even when the models cover different ranges."""
    names = sequence.split(",")
    return {",".join(names[i : i + k]) for i in range(max(len(names) - k + 1, 1))}


def _copies(spec: str) -> int:
    spec = spec.upper()
    if spec in ("T", "O", "I"):
        return {"T": 12, "O": 24, "I": 60}[spec]
    n = int(spec[1:])
    return 2 * n if spec[0] == "D" else n


def _pack_unit(
    pool: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]],
    target_kda: float,
    rng: np.random.Generator,
    uses: dict[int, int],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int] | None:
    """A unit of about ``target_kda`` from one chain, or chains of several entries packed.

    The least-used chains come first (``uses`` counts, updated here), so recipes spread over
    the pool. Returns (labels, coords, Z, mass, number of chains) or None when the pool cannot
    reach the target.
    """
    masses = np.array([mass_kda(m) for *_, m in pool])
    count = np.array([uses.get(i, 0) for i in range(len(pool))])
    close = np.flatnonzero((masses > 0.8 * target_kda) & (masses < 1.25 * target_kda))
    if len(close):
        least = close[count[close] == count[close].min()]
        i = int(rng.choice(least))
        uses[i] = uses.get(i, 0) + 1
        label, chain, xyz, z, m = pool[i]
        return [f"{label}_{chain}"], xyz, z, m, 1
    small = np.flatnonzero((masses < target_kda) & (count < 3))
    if not len(small):
        return None
    order = small[np.lexsort((rng.random(len(small)), count[small]))]
    picked: list[int] = []
    total = 0.0
    for i in order:
        if total + masses[i] > 1.25 * target_kda:
            continue
        picked.append(int(i))
        total += masses[i]
        if total >= 0.8 * target_kda or len(picked) >= 10:
            break
    if total < 0.6 * target_kda:
        return None
    for i in picked:
        uses[i] = uses.get(i, 0) + 1
    labels = [f"{pool[i][0]}_{pool[i][1]}" for i in picked]
    xyz, z, m = _pack([pool[i][2:] for i in picked], rng)
    return labels, xyz, z, m, len(picked)


def _pack(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Pack chains one by one against the growing complex, each at first contact along a
    seeded direction (scan in, then bisection)."""
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    xyz, z, m = parts[0]
    xyz = xyz - xyz.mean(axis=0)
    for nxt, nz, nm in parts[1:]:
        tree = cKDTree(xyz)
        other = nxt - nxt.mean(axis=0)
        other = other @ Rotation.random(random_state=rng).as_matrix().T
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        centre = xyz.mean(axis=0)
        hi = float(np.linalg.norm(xyz - centre, axis=1).max() + np.linalg.norm(other, axis=1).max())
        hi += 2 * CONTACT_ANGSTROM

        hi = _contact_shift(tree, other + centre, direction, hi)
        xyz = np.concatenate([xyz, other + centre + hi * direction])
        z = np.concatenate([z, nz])
        m = np.concatenate([m, nm])
    return xyz - xyz.mean(axis=0), z, m


def _contact_shift(tree, moving: np.ndarray, direction: np.ndarray, hi: float) -> float:  # type: ignore[no-untyped-def]
    """Smallest shift along ``direction`` (scanned down from ``hi`` in 2 A steps, then bisected
    to 0.1 A) at which ``moving`` stays ``CONTACT_ANGSTROM`` from the atoms in ``tree``."""

    def far(shift: float) -> bool:
        return float(tree.query(moving + shift * direction, k=1)[0].min()) >= CONTACT_ANGSTROM

    step = 2.0
    while hi - step > 0 and far(hi - step):
        hi -= step
    lo = max(hi - step, 0.0)
    while hi - lo > 0.1:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if far(mid) else (mid, hi)
    return hi


def build_recipes(entries: list[Molecule]) -> list[Molecule]:
    """The recipe plan applied to the chains of the entries of each split."""
    by_label = {m.pdb_ids[0]: m for m in entries}
    pools: dict[str, list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]] = {}
    kept: dict[str, list[set[str]]] = {}
    for m in entries:
        for chain_name, xyz, z, mass, sequence in m.chains:
            # one chain per protein and split: copies of a chain, and the same protein in
            # several entries or modelled over other ranges, would make near-identical molecules
            kmers = _kmers(sequence)
            seen = kept.setdefault(m.split, [])
            if any(len(kmers & k) >= 0.5 * min(len(kmers), len(k)) for k in seen):
                continue
            seen.append(kmers)
            if mass_kda(mass) >= 8.0:
                pools.setdefault(m.split, []).append((m.pdb_ids[0], chain_name, xyz, z, mass))
    rng = np.random.default_rng(PLAN_SEED + 1)
    uses: dict[str, dict[int, int]] = {split: {} for split in pools}
    made: list[Molecule] = []
    names: set[str] = {m.name for m in entries}
    made_units: set[tuple[frozenset[str], str]] = set()
    for i, recipe in enumerate(plan()):
        pool = pools.get(recipe.split, [])
        unit = _pack_unit(
            pool, recipe.target_kda / _copies(recipe.spec), rng, uses.setdefault(recipe.split, {})
        )
        if unit is None:
            log.info(
                "recipe %d (%s, %.0f kDa) has no unit in %s",
                i,
                recipe.spec,
                recipe.target_kda,
                recipe.split,
            )
            continue
        labels, xyz, z, mass, n_chains = unit
        if (frozenset(labels), recipe.spec) in made_units:  # never the same molecule twice
            continue
        made_units.add((frozenset(labels), recipe.spec))
        asm = assemble(xyz, recipe.spec, seed=PLAN_SEED + i)
        clashes = count_clashes(asm.coords, asm.copy_index, CLASH_ANGSTROM)
        if clashes:
            log.info("recipe %d dropped: %d clashes", i, clashes)
            continue
        extent = float(np.ptp(asm.coords, axis=0).max()) / 10.0
        if extent > MAX_DIAMETER_NM:
            log.info("recipe %d dropped: %.0f nm across", i, extent)
            continue
        ids = tuple(dict.fromkeys(label.split("_")[0] for label in labels))
        stem = "-".join(i_.lower() for i_ in ids[:3]) + ("-x" if len(ids) > 3 else "")
        name = f"lib-{stem}-{recipe.spec.lower()}"
        k = 2
        while name in names:
            name = f"lib-{stem}-{recipe.spec.lower()}{'abcdefghij'[k - 2]}"
            k += 1
        names.add(name)
        first = by_label[ids[0]]
        kind = "hetero-unit of " + "+".join(labels) if n_chains > 1 else f"chain {labels[0]}"
        made.append(
            Molecule(
                name=name,
                pdb_ids=ids,
                coords=asm.coords,
                atomic_number=np.tile(z, asm.n_copies),
                atom_mass=np.tile(mass, asm.n_copies),
                source_package=";".join(dict.fromkeys(by_label[x].source_package for x in ids)),
                source_version=";".join(dict.fromkeys(by_label[x].source_version for x in ids)),
                licence=";".join(dict.fromkeys(by_label[x].licence for x in ids)),
                source_file=first.source_file,
                assembly=f"recipe: {recipe.spec} of {kind}",
                recipe=recipe.spec,
                n_copies=asm.n_copies,
                min_contact_angstrom=asm.min_distance_angstrom,
                split=recipe.split,
            )
        )
        log.info("%s: %.0f kDa", name, mass_kda(made[-1].atom_mass))
    return made
