"""Alembic: empty -> head -> base, and the ORM tables match what the migrations create."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cosnet_index.store import schema
from cosnet_index.store._engine import make_engine
from cosnet_index.store.tables import Base

OWN_TABLES = {
    "models",
    "tomograms",
    "shards",
    "subtomograms",
    "vector_indexes",
    "index_files",
    "damaged_files",
}


def test_upgrade_from_empty_to_head_and_down_to_base(tmp_path, catalog_url) -> None:
    engine = make_engine(catalog_url or f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    assert schema.current_revision(engine) is None
    schema.upgrade(engine, "head")
    assert schema.current_revision(engine) == schema.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert OWN_TABLES <= tables
    schema.downgrade(engine, "0003")
    assert "vector_indexes" not in set(inspect(engine).get_table_names())
    schema.downgrade(engine, "0001")
    assert schema.current_revision(engine) == "0001"
    later = {"vector_indexes", "index_files", "damaged_files"}
    assert OWN_TABLES - later <= set(inspect(engine).get_table_names())
    schema.downgrade(engine, "base")
    assert schema.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(engine)  # and back up again
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


def test_orm_matches_migrations(tmp_path, catalog_url) -> None:
    engine = make_engine(catalog_url or f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    schema.upgrade(engine, "head")
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    own = [d for d in diffs if _table_of(d) in OWN_TABLES]
    assert own == []
    engine.dispose()


def _table_of(diff) -> str | None:  # type: ignore[no-untyped-def]
    if isinstance(diff, list):  # column modifications come as lists of tuples
        diff = diff[0]
    for item in diff[1:]:
        name = getattr(item, "name", None) if not isinstance(item, str) else None
        table = getattr(item, "table", None)
        if table is not None:
            return table.name
        if name in OWN_TABLES:
            return name
    return diff[2] if len(diff) > 2 and isinstance(diff[2], str) else None


def test_a_store_at_0002_keeps_working_after_db_upgrade(tmp_path) -> None:
    """A store of the previous release (revision 0002, one shard per tomogram) upgrades to 0003,
    keeps its vectors, and takes new picks; 0003 downgrades only while one part per tomogram."""
    import pandas as pd
    import pytest

    from cosnet_index.errors import SchemaError
    from cosnet_index.store import Store, check_store, index_tomograms
    from tests._store_util import tiny_checkpoint, write_tomogram

    checkpoint, _ = tiny_checkpoint(tmp_path / "tiny.pt")
    tomogram = write_tomogram(tmp_path / "TS_01.mrc")
    picks = pd.DataFrame({"x": [20.0, 30.0, 40.0, 50.0], "y": 30.0, "z": 20.0})
    picks.iloc[:2].to_csv(tmp_path / "two.csv", index=False)
    picks.to_csv(tmp_path / "four.csv", index=False)
    with Store.create(tmp_path / "store", model_path=checkpoint) as store:
        index_tomograms(store, [tomogram], tmp_path / "two.csv", progress=False)
        schema.downgrade(store.engine, "0002")  # as the previous release left it
        assert "coordinate_convention" not in {
            c["name"] for c in inspect(store.engine).get_columns("tomograms")
        }
    with pytest.raises(SchemaError, match="db upgrade"):
        Store.open(tmp_path / "store")
    with Store.open_unchecked(tmp_path / "store") as store:
        schema.upgrade(store.engine)
    with Store.open(tmp_path / "store") as store:
        assert check_store(store).ok and len(store.subtomogram_table()) == 2
        summary = index_tomograms(store, [tomogram], tmp_path / "four.csv", progress=False)
        assert summary.subtomograms_indexed == 2
        assert check_store(store).ok and len(store.subtomogram_table()) == 4
        with pytest.raises(SchemaError, match="several parts"):
            schema.downgrade(store.engine, "0002")
        assert schema.current_revision(store.engine) == schema.head_revision()
