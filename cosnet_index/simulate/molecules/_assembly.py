"""Larger molecules from real chains: exact symmetry operators, contact search, clash check.

A recipe places copies of one real chain (or of a small hetero-unit) by the operators of a point
group (``C<n>``, ``D<n>``, ``T``, ``O``, ``I``), a helix (``H<n>``: ``n`` subunits, twist and rise
derived from the chain) or a flat hexagonal lattice patch (``P<n>``, membrane-like). The one free
distance of a recipe, how far the chain sits from the symmetry axis / centre, is not guessed: it
is the smallest distance at which no heavy atom of one copy comes closer than
``CONTACT_ANGSTROM`` to a heavy atom of another copy, so the copies touch like real subunits.
Coordinates are in angstrom; operators act as ``x' = R @ x + t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from cosnet_index.errors import InputError

__all__ = [
    "CONTACT_ANGSTROM",
    "Assembly",
    "apply_operators",
    "assemble",
    "count_clashes",
    "symmetry_operators",
]

CONTACT_ANGSTROM = 3.0  # closest allowed heavy-atom distance between two copies
CLASH_ANGSTROM = 2.2  # a pair closer than this is a clash (tolerance for the final check)


@dataclass(frozen=True)
class Assembly:
    """Copies of a unit placed by a recipe.

    Attributes:
        coords: (n_copies * n_atoms, 3) float64 angstrom, centred on the origin (a helix: its
            axis on z, centred along it).
        copy_index: (n_copies * n_atoms,) which copy each atom belongs to.
        recipe: the symmetry spec (``C4``, ``D5``, ``T``, ``O``, ``I``, ``H24``, ``P19``).
        n_copies: number of copies.
        offset_angstrom: the contact distance found (unit centre to axis / centre / lattice step).
        min_distance_angstrom: closest heavy-atom distance between two different copies.
    """

    coords: np.ndarray
    copy_index: np.ndarray
    recipe: str
    n_copies: int
    offset_angstrom: float
    min_distance_angstrom: float


def _parse(spec: str) -> tuple[str, int]:
    spec = spec.strip().upper()
    if spec in ("T", "O", "I"):
        return spec, {"T": 12, "O": 24, "I": 60}[spec]
    if len(spec) >= 2 and spec[0] in "CDHP" and spec[1:].isdigit():
        n = int(spec[1:])
        if n >= 1 and not (spec[0] == "D" and n < 2):
            return spec[0], n
    raise InputError(
        f"unknown symmetry {spec!r}: use C<n>, D<n> (n >= 2), T, O, I, H<n> (helix of n) "
        "or P<n> (flat lattice patch of n)"
    )


def symmetry_operators(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact rotation matrices of a point group, main axis along z.

    Args:
        spec: ``C<n>``, ``D<n>``, ``T``, ``O`` or ``I`` (helices and lattices depend on the
            unit: see :func:`assemble`).

    Returns:
        (rotations (k, 3, 3), translations (k, 3) zeros); the identity comes first.

    Raises:
        InputError: an unknown or non-point-group spec.
    """
    kind, n = _parse(spec)
    if kind in ("H", "P"):
        raise InputError(f"{spec} depends on the unit's size: build it with assemble()")
    group = f"{kind}{n}" if kind in "CD" else kind
    rotations = Rotation.create_group(group, axis="Z").as_matrix()
    # identity first, exact zeros and ones where the group has them
    order = np.argsort([np.abs(r - np.eye(3)).sum() for r in rotations], kind="stable")
    rotations = np.round(rotations[order], 12)
    return rotations, np.zeros((len(rotations), 3))


def apply_operators(
    coords: np.ndarray, rotations: np.ndarray, translations: np.ndarray
) -> np.ndarray:
    """(k, n, 3) copies ``R @ x + t`` of (n, 3) coordinates."""
    return np.einsum("kij,nj->kni", rotations, coords) + translations[:, None, :]


def _min_distance(copies: np.ndarray, reach: float = np.inf) -> float:
    """Closest distance between copy 0 and any other copy (by symmetry: between any two).

    Only copies whose centre lies within ``reach`` of copy 0's centre are searched.
    """
    centres = copies.mean(axis=1)
    near = np.flatnonzero(np.linalg.norm(centres[1:] - centres[0], axis=1) < reach) + 1
    if not len(near):
        return float("inf")
    dist, _ = cKDTree(copies[0]).query(copies[near].reshape(-1, 3), k=1)
    return float(dist.min())


def count_clashes(
    coords: np.ndarray, copy_index: np.ndarray, cutoff: float = CLASH_ANGSTROM
) -> int:
    """Number of atom pairs from two different copies closer than ``cutoff`` angstrom."""
    tree = cKDTree(coords)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    if not len(pairs):
        return 0
    return int((copy_index[pairs[:, 0]] != copy_index[pairs[:, 1]]).sum())


def _helix_operators(n: int, twist_deg: float, rise: float) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n) - (n - 1) / 2.0
    rotations = Rotation.from_euler("z", k[:, None] * twist_deg, degrees=True).as_matrix()
    translations = np.zeros((n, 3))
    translations[:, 2] = k * rise
    return rotations, translations


def _hex_lattice(n: int) -> np.ndarray:
    """The ``n`` points of a unit hexagonal lattice nearest the origin (x, y, 0)."""
    rings = int(np.ceil(np.sqrt(n))) + 1
    i, j = np.meshgrid(np.arange(-rings, rings + 1), np.arange(-rings, rings + 1))
    pts = np.stack([i + 0.5 * j, j * np.sqrt(3) / 2, np.zeros_like(i, dtype=float)], -1)
    pts = pts.reshape(-1, 3)
    order = np.lexsort(
        (np.arctan2(pts[:, 1], pts[:, 0]), np.round(np.hypot(pts[:, 0], pts[:, 1]), 6))
    )
    return pts[order[:n]]


def _placer(kind: str, n: int, unit: np.ndarray, direction: np.ndarray):  # type: ignore[no-untyped-def]
    """A function offset -> (k, n_atoms, 3) copies for one recipe."""
    if kind in "CDTOI":
        rotations, translations = symmetry_operators(f"{kind}{n}" if kind in "CD" else kind)

        def place(offset: float) -> np.ndarray:
            return apply_operators(unit + offset * direction, rotations, translations)

        return place
    if kind == "H":
        # subunits per turn from the unit's size: about one unit diameter of arc each
        extent = np.ptp(unit, axis=0)
        thickness = float(extent[2]) + CONTACT_ANGSTROM
        per_turn = 5.7  # non-integer: a true helix, not stacked rings

        def place(offset: float) -> np.ndarray:
            rotations, translations = _helix_operators(n, 360.0 / per_turn, thickness / per_turn)
            return apply_operators(unit + offset * np.array([1.0, 0, 0]), rotations, translations)

        return place
    if kind == "P":
        lattice = _hex_lattice(n)
        rotations = np.repeat(np.eye(3)[None], n, axis=0)

        def place(offset: float) -> np.ndarray:
            return apply_operators(unit, rotations, lattice * offset)

        return place
    raise InputError(f"unknown recipe kind {kind!r}")  # pragma: no cover


def assemble(
    unit: np.ndarray,
    spec: str,
    seed: int = 0,
    contact_angstrom: float = CONTACT_ANGSTROM,
) -> Assembly:
    """Place copies of a real unit by a symmetry recipe at the closest clash-free contact.

    The unit is centred, turned by a seeded random rotation, and moved along a direction off every
    symmetry axis (perpendicular to z for ``C<n>``, between the two-fold axes for ``D<n>``, seeded
    for ``T``/``O``/``I``). The offset along it is the smallest one (to 0.1 A) at which every pair
    of heavy atoms from different copies is at least ``contact_angstrom`` apart: scanned down from
    a clash-free distance, refined by bisection.

    Args:
        unit: (n_atoms, 3) heavy-atom coordinates in angstrom.
        spec: ``C<n>``, ``D<n>``, ``T``, ``O``, ``I``, ``H<n>`` (helical filament of ``n``
            subunits, 5.7 per turn, pitch the unit's thickness) or ``P<n>`` (flat hexagonal lattice
            patch of ``n``, membrane-like); for these two the unit's thinnest principal axis is
            turned along z.
        seed: seeds the unit's orientation and (for ``T``/``O``/``I``) the direction.
        contact_angstrom: closest allowed distance between copies.

    Raises:
        InputError: an unknown spec or an empty unit.
    """
    kind, n = _parse(spec)
    unit = np.asarray(unit, dtype=np.float64)
    if unit.ndim != 2 or unit.shape[1] != 3 or len(unit) == 0:
        raise InputError(f"unit must be (n_atoms, 3) coordinates, got shape {unit.shape}")
    rng = np.random.default_rng(seed)
    unit = unit - unit.mean(axis=0)
    unit = unit @ Rotation.random(random_state=rng).as_matrix().T
    if kind in "HP":  # thinnest principal axis along z: short filaments, flat patches
        _, vectors = np.linalg.eigh(np.cov(unit.T))  # ascending variance
        unit = unit @ vectors[:, ::-1]  # largest along x, smallest along z
    if kind == "C":
        direction = np.array([1.0, 0.0, 0.0])
    elif kind == "D":
        angle = np.pi / (2 * n)
        direction = np.array([np.cos(angle), np.sin(angle), 0.55])
    elif kind in "TOI":
        # of 16 seeded directions, the one farthest from every symmetry axis
        rotations = symmetry_operators(kind)[0][1:]
        trials = rng.normal(size=(16, 3))
        trials /= np.linalg.norm(trials, axis=1, keepdims=True)
        moves = np.linalg.norm(
            np.einsum("kij,tj->tki", rotations, trials) - trials[:, None], axis=2
        )
        direction = trials[int(np.argmax(moves.min(axis=1)))]
    else:
        direction = np.array([1.0, 0.0, 0.0])
    direction = direction / np.linalg.norm(direction)
    place = _placer(kind, n, unit, direction)
    if n == 1 and kind in "CHP":
        copies = place(0.0)
        return Assembly(copies.reshape(-1, 3), np.zeros(len(unit), int), spec, 1, 0.0, np.inf)

    size = float(np.linalg.norm(unit, axis=1).max())
    reach = 2.0 * size + contact_angstrom
    step = max(2.0, 0.1 * size)
    # copies are apart once every copy's centre is 2 * size away: start there, scan down
    move = _smallest_move(kind, n, direction)
    hi = reach / max(move, 1e-3) + step
    for _ in range(12):  # a helix or lattice may need a larger start
        if _min_distance(place(hi), reach) >= contact_angstrom:
            break
        hi *= 1.5
    else:
        raise InputError(f"no clash-free placement found for {spec}: try another seed")
    lo = 0.0
    offset = hi
    while offset > 0:
        trial = offset - step
        if trial <= 0 or _min_distance(place(trial), reach) < contact_angstrom:
            lo = max(trial, 0.0)
            break
        offset = trial
    hi = offset
    while hi - lo > 0.1:
        mid = 0.5 * (lo + hi)
        if _min_distance(place(mid), reach) >= contact_angstrom:
            hi = mid
        else:
            lo = mid
    copies = place(hi)
    coords = copies.reshape(-1, 3)
    centre = coords.mean(axis=0)
    if kind == "H":
        centre[:2] = 0.0  # keep the helix axis on z
    copy_index = np.repeat(np.arange(len(copies)), len(unit))
    return Assembly(
        coords - centre,
        copy_index,
        spec.upper(),
        len(copies),
        float(hi),
        _min_distance(copies, reach),
    )


def _smallest_move(kind: str, n: int, direction: np.ndarray) -> float:
    """Smallest distance the tip of ``direction`` moves under a non-identity operator (for a
    helix and a lattice: per unit offset, between neighbours)."""
    if kind == "P":
        return 1.0
    if kind == "H":
        return 2.0 * np.sin(np.pi / 5.7)
    rotations = symmetry_operators(f"{kind}{n}" if kind in "CD" else kind)[0][1:]
    return float(np.linalg.norm(rotations @ direction - direction, axis=1).min())
