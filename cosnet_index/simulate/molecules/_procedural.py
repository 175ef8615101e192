"""Procedural molecule-like classes: pseudo-atomic assemblies seeded by a class id.

A class is a set of ellipsoidal domains (the asymmetric unit: 1-4 domains of random size, shape
and orientation) replicated by a point group or a helix, in one of several families:

- ``cyclic`` (Cn, n = 2..9), ``dihedral`` (Dn, n = 2..7), ``tetrahedral`` (T, 12 copies),
  ``octahedral`` (O, 24 copies);
- ``ring`` (8-16 small subunits on a thin torus), ``barrel`` (8-16 tilted staves around a hollow
  core), ``filament`` (a helical segment: rise and twist random);
- ``two_lobed`` (two unequal lobes joined by a neck), ``elongated`` (a chain of 3-6 domains on a
  smooth curve), ``globular`` (3-8 packed domains, asymmetric).

The union of the domains, scaled to a random largest diameter in [8, 28] nm, is filled with
pseudo-atoms at the number density of protein residues (810 Da/nm^3 / 110 Da per residue), which
are splatted onto the voxel grid and low-passed like a real map. The mass is the number of
pseudo-atoms x 110 Da. Sizes are drawn independently of the family, so classes of (nearly) equal
size and mass but different shape are common.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.spatial.transform import Rotation

from cosnet_index.simulate.molecules._density import (
    DALTON_PER_NM3,
    DALTON_PER_RESIDUE,
    ClassMap,
    finish_map,
    splat,
)

__all__ = ["FAMILIES", "MAX_DIAMETER_NM", "MIN_DIAMETER_NM", "load_procedural", "procedural_family"]

FAMILIES = (
    "cyclic",
    "dihedral",
    "tetrahedral",
    "octahedral",
    "ring",
    "barrel",
    "filament",
    "two_lobed",
    "elongated",
    "globular",
)
MIN_DIAMETER_NM = 8.0
MAX_DIAMETER_NM = 28.0
_SEED_BASE = 0x5EED_C05E  # keeps procedural streams apart from other seeded uses of an id
_POINTS_PER_NM3 = DALTON_PER_NM3 / DALTON_PER_RESIDUE
_MIN_SEMI_AXIS_NM = 1.2  # no domain thinner than ~2.4 nm (a helix bundle / small beta sheet)


def _rng(class_id: int) -> np.random.Generator:
    return np.random.default_rng([_SEED_BASE, int(class_id)])


def procedural_family(class_id: int) -> str:
    """The family of procedural class ``class_id`` (first draw of its seeded stream)."""
    return FAMILIES[int(_rng(class_id).integers(len(FAMILIES)))]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    return Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()


def _unit(
    rng: np.random.Generator, n_domains: int, spread: float, size: tuple[float, float]
) -> list:
    """An asymmetric unit: ``(centre, semi_axes, rotation)`` ellipsoid domains near the origin."""
    domains = []
    for i in range(n_domains):
        centre = np.zeros(3) if i == 0 else rng.normal(0.0, spread, 3)
        axes = rng.uniform(*size) * rng.uniform(0.55, 1.0, 3)
        domains.append((centre, axes, _random_rotation(rng)))
    return domains


def _replicate(domains: list, rotations: np.ndarray, offset: np.ndarray) -> list:
    out = []
    for rot in rotations:
        for centre, axes, orient in domains:
            out.append((rot @ (centre + offset), axes, rot @ orient))
    return out


def _design(family: str, rng: np.random.Generator) -> list:
    """Domains (centre, semi-axes, rotation) in arbitrary units, before scaling to size."""
    n_dom = int(rng.integers(1, 5))
    if family in ("cyclic", "dihedral"):
        n = int(rng.integers(2, 10 if family == "cyclic" else 8))
        unit = _unit(rng, n_dom, 0.8, (0.6, 1.4))
        radius = rng.uniform(0.6, 1.6) * (1 + n / 6)
        offset = np.array([radius, 0.0, rng.uniform(-0.5, 0.5)])
        rots = Rotation.create_group(f"C{n}").as_matrix()
        if family == "dihedral":
            offset[2] = abs(offset[2]) + rng.uniform(0.6, 1.5)
            rots = Rotation.create_group(f"D{n}").as_matrix()
        return _replicate(unit, rots, offset)
    if family in ("tetrahedral", "octahedral"):
        unit = _unit(rng, n_dom, 0.6, (0.5, 1.0))
        offset = rng.normal(0, 1, 3)
        offset *= rng.uniform(1.6, 2.6) / np.linalg.norm(offset)
        rots = Rotation.create_group("T" if family == "tetrahedral" else "O").as_matrix()
        return _replicate(unit, rots, offset)
    if family in ("ring", "barrel"):
        n = int(rng.integers(8, 17))
        radius = rng.uniform(2.0, 3.5)
        if family == "ring":
            unit = [(np.zeros(3), np.array([0.7, 0.5, 0.6]) * rng.uniform(0.7, 1.3, 3), np.eye(3))]
            unit += _unit(rng, n_dom - 1, 0.4, (0.3, 0.6))[1:] if n_dom > 1 else []
        else:
            tilt = Rotation.from_euler("x", rng.uniform(-0.6, 0.6)).as_matrix()
            height = rng.uniform(1.5, 4.0)
            unit = [(np.zeros(3), np.array([0.45, 0.45, height]), tilt)]
            if rng.random() < 0.5:  # a cap domain on each stave
                unit.append((np.array([0.0, 0.0, height]), np.full(3, 0.6), np.eye(3)))
        rots = Rotation.create_group(f"C{n}").as_matrix()
        return _replicate(unit, rots, np.array([radius, 0.0, 0.0]))
    if family == "filament":
        n = int(rng.integers(6, 20))
        twist = rng.uniform(0.3, 3.0)
        rise = rng.uniform(0.4, 1.2)
        unit = _unit(rng, n_dom, 0.5, (0.5, 1.0))
        radius = rng.uniform(0.0, 1.5)
        out = []
        for i in range(n):
            rot = Rotation.from_euler("z", i * twist).as_matrix()
            out += _replicate(
                unit, rot[None], np.array([radius, 0.0, 0.0]) + rot.T @ [0, 0, i * rise]
            )
        return out
    if family == "two_lobed":
        big, small = rng.uniform(1.2, 2.0), rng.uniform(0.7, 1.4)
        gap = big + small + rng.uniform(-0.3, 0.6)
        out = _unit(rng, n_dom, 0.6 * big, (0.7 * big, big))
        out += [
            (c + np.array([0.0, 0.0, gap]), a, r)
            for c, a, r in _unit(rng, 2, 0.5 * small, (0.7 * small, small))
        ]
        out.append((np.array([0, 0, gap / 2]), np.array([0.4, 0.4, gap / 3]), np.eye(3)))
        return out
    if family == "elongated":
        n = int(rng.integers(3, 7))
        direction, pos, out = np.array([0.0, 0.0, 1.0]), np.zeros(3), []
        for _ in range(n):
            out += [
                (c + pos, a, r) for c, a, r in _unit(rng, int(rng.integers(1, 3)), 0.3, (0.6, 1.1))
            ]
            direction = direction + rng.normal(0, 0.35, 3)
            direction /= np.linalg.norm(direction)
            pos = pos + direction * rng.uniform(1.0, 1.6)
        return out
    # globular
    n = int(rng.integers(3, 9))
    return _unit(rng, n, 1.0, (0.8, 1.5))


def _points(domains: list, rng: np.random.Generator, diameter_nm: float) -> np.ndarray:
    """Pseudo-atoms filling the union of the domains, scaled to ``diameter_nm``."""
    centres = np.array([d[0] for d in domains])
    axes = np.array([d[1] for d in domains])
    orients = np.array([d[2] for d in domains])
    centres = centres - centres.mean(axis=0)
    extent = np.max(np.linalg.norm(centres, axis=1) + axes.max(axis=1))
    scale = diameter_nm / (2.0 * extent)
    centres, axes = centres * scale, np.maximum(axes * scale, _MIN_SEMI_AXIS_NM)
    counts = rng.poisson(_POINTS_PER_NM3 * 4.0 / 3.0 * np.pi * axes.prod(axis=1))
    owner = np.repeat(np.arange(len(domains)), counts)
    ball = rng.normal(size=(owner.size, 3))
    ball *= (rng.random(owner.size) ** (1 / 3) / np.linalg.norm(ball, axis=1))[:, None]
    points = np.einsum("nij,nj->ni", orients[owner], ball * axes[owner]) + centres[owner]
    # keep a point only in the first domain that contains it: uniform density over the union.
    # Only earlier domains whose bounding spheres meet this one's can contain its points.
    reach = axes.max(axis=1)
    keep = np.ones(owner.size, dtype=bool)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for p in range(len(domains)):
        near = np.nonzero(np.linalg.norm(centres[:p] - centres[p], axis=1) < reach[:p] + reach[p])[
            0
        ]
        if near.size == 0 or counts[p] == 0:
            continue
        own = points[starts[p] : starts[p + 1]]
        local = np.einsum("qji,nqj->nqi", orients[near], own[:, None, :] - centres[near][None])
        inside = ((local / axes[near][None]) ** 2).sum(axis=2) < 1.0
        keep[starts[p] : starts[p + 1]] = ~inside.any(axis=1)
    return points[keep]


@functools.lru_cache(maxsize=4096)
def load_procedural(class_id: int, voxel_size_nm: float, resolution_nm: float) -> ClassMap:
    """Procedural class ``class_id`` at the given voxel size (cached)."""
    rng = _rng(class_id)
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    diameter_nm = float(rng.uniform(MIN_DIAMETER_NM, MAX_DIAMETER_NM))
    points = _points(_design(family, rng), rng, diameter_nm)
    volume = splat(points, np.ones(len(points)), voxel_size_nm, pad_nm=resolution_nm)
    mass_da = len(points) * DALTON_PER_RESIDUE
    return finish_map(f"proc-{class_id:05d}", volume, voxel_size_nm, resolution_nm, mass_da)
