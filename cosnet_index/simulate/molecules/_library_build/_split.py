"""Step (5) of the build: the split rule, fixed before any result was seen, and the reserved ids.

A PDB entry is held out when the SHA-256 of ``"cosnet-library-v1/<ID>"`` falls in the lowest
quarter (:func:`heldout_id`); entries of homologue families always train. Built molecules take
units only from entries of their own split (``_assemblies.py``), so no entry feeds both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["HELDOUT_FRACTION", "SPLIT_SALT", "heldout_id", "read_reserved"]

SPLIT_SALT = "cosnet-library-v1"
HELDOUT_FRACTION = 0.25


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
