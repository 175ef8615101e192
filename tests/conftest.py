"""Fixtures shared by the test modules: a tiny random model, two small tomograms, the toy store.

The builders themselves live in ``tests/_*_util.py`` (the crash harness and ``bench/`` use them
outside pytest); this file only turns them into fixtures, so that no test module writes its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._classes_util import ToyCollection, build_store, fresh_store_path
from tests._postgres_util import create_database, drop_database, postgres_server_url
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


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The catalog of a new store: ``None`` (SQLite inside the store) or a fresh, empty
    PostgreSQL database (only when ``COSNET_TEST_POSTGRES_URL`` names a server; ``.ci/run``
    starts one), dropped after the test."""
    if request.param == "sqlite":
        yield None
        return
    server = postgres_server_url()
    if server is None:
        pytest.skip("PostgreSQL leg: set COSNET_TEST_POSTGRES_URL (.ci/run starts a server)")
    url = create_database(server)
    try:
        yield url
    finally:
        drop_database(server, url)


@pytest.fixture
def toy_store_on(toy: ToyCollection, tmp_path: Path, catalog_url: str | None) -> Iterator:
    """An open toy store on each catalog backend: the SQLite copy of :func:`toy_store`, or the
    same collection indexed through the public API into a fresh PostgreSQL catalog."""
    from cosnet_index.store import Store, index_tomograms

    if catalog_url is None:
        with Store.open(fresh_store_path(toy, tmp_path)) as store:
            yield store
        return
    path = tmp_path / "store"
    with Store.create(path, model_path=toy.checkpoint, db_url=catalog_url) as store:
        index_tomograms(store, [toy.tomogram_path], toy.coords_path, progress=False)
    with Store.open(path, db_url=catalog_url) as store:
        yield store


@pytest.fixture(autouse=True)
def _fixed_threads() -> Iterator[None]:
    """A command run without ``--threads`` leaves an adaptive thread count behind (issue 32):
    every test starts and ends with torch's count fixed as it was, so no test's round-off
    depends on the one before."""
    import torch

    from cosnet_index import threads

    before = torch.get_num_threads()
    threads._ADAPTIVE = None
    yield
    threads._ADAPTIVE = None
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
