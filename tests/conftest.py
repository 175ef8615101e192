"""Fixtures shared by the test modules: a tiny random model, two small tomograms, the toy store.

The builders themselves live in ``tests/_*_util.py`` (the crash harness and ``bench/`` use them
outside pytest); this file only turns them into fixtures, so that no test module writes its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._classes_util import ToyCollection, build_store, fresh_store_path
from tests._store_util import particle_table, tiny_checkpoint, write_star_relion31, write_tomogram


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(path, hash)`` of a tiny random COS-Net (seed 0); read it, never write to it."""
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-model") / "tiny.pt")


@pytest.fixture
def collection(tmp_path: Path) -> dict:
    """Two 10 A tomograms ``TS_01``/``TS_02`` with a dark blob at each particle, and a STAR file.

    Keys: ``table`` (``particle_table(6)``: 6 boxes inside each volume, one crossing the edge and
    one outside), ``tomograms`` (paths), ``star`` (RELION 3.1, origins in angstrom).
    """
    table = particle_table(n_per_tomogram=6)
    paths = []
    for k, name in enumerate(("TS_01", "TS_02")):
        rows = table[table["tomogram"] == name]
        centres = rows[["x", "y", "z"]].to_numpy()
        paths.append(write_tomogram(tmp_path / f"{name}.mrc", seed=k, centres_xyz=centres))
    star = write_star_relion31(tmp_path / "particles.star", table)
    return {"table": table, "tomograms": paths, "star": star}


@pytest.fixture(scope="session")
def toy(tmp_path_factory: pytest.TempPathFactory) -> ToyCollection:
    """The toy collection (four shapes, calibrated model, indexed store), built once a session."""
    return build_store(tmp_path_factory.mktemp("toy"))


@pytest.fixture
def toy_store(toy: ToyCollection, tmp_path: Path) -> Iterator:
    """A private, open copy of the toy store (tests that add classes write to their own)."""
    from cosnet_index.store import Store

    with Store.open(fresh_store_path(toy, tmp_path)) as store:
        yield store
