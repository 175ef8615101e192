"""Alembic: empty -> head -> base, and the ORM tables match what the migrations create."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cosnet_index.store import schema
from cosnet_index.store._engine import make_engine
from cosnet_index.store.tables import Base

OWN_TABLES = {"models", "tomograms", "shards", "subtomograms"}


def test_upgrade_from_empty_to_head_and_down_to_base(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    assert schema.current_revision(engine) is None
    schema.upgrade(engine, "head")
    assert schema.current_revision(engine) == schema.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert OWN_TABLES <= tables
    schema.downgrade(engine, "0001")
    assert schema.current_revision(engine) == "0001"
    assert OWN_TABLES <= set(inspect(engine).get_table_names())
    schema.downgrade(engine, "base")
    assert schema.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(engine)  # and back up again
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


def test_orm_matches_migrations(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
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
