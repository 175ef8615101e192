"""What the rest of the package asks the catalog, as typed methods of ``Store``.

``CatalogQueries`` is mixed into :class:`~cosnet_index.store.store.Store`: support classes
(add, list, get, remove, rename: ``class_catalog.py`` runs the SQL), where subtomograms are
(``locations``), how a tomogram's boxes were cut when it was indexed (``shard_settings``,
``header_checksums``, ``indexed_particles``) and the schema revision. Nothing outside ``store/``
opens a session or writes SQL (``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from cosnet_index.store import class_catalog, schema
from cosnet_index.store.class_catalog import ClassVolume, SupportClass
from cosnet_index.store.tables import ModelRecord, ShardRecord, Subtomogram, TomogramRecord

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

__all__ = ["CatalogQueries", "ClassVolume", "SupportClass"]


class CatalogQueries:
    """Catalog reads and writes other modules need (mixed into ``Store``)."""

    # provided by Store
    engine: Engine
    model_hash: str
    session: Callable[[], contextlib.AbstractContextManager[Session]]
    write_lock: Callable[[], contextlib.AbstractContextManager[None]]

    # -- support classes -------------------------------------------------------------------------

    def has_class(self, name: str, set_name: str) -> bool:
        """Whether class ``name`` exists in ``set_name``."""
        with self.session() as session:
            return class_catalog.find_class(session, name, set_name) is not None

    def save_class(
        self,
        name: str,
        set_name: str,
        vectors: np.ndarray,
        sources: Sequence[dict[str, Any]],
        description: str = "",
        volume: ClassVolume | None = None,
    ) -> SupportClass:
        """Create class ``name`` (and its set) with ``vectors`` (K, dim), or append the shots;
        ``volume`` (when given) replaces the class's molecular volume.

        Raises:
            StoreLockedError: another process is writing.
            StoreError: the class exists and was made with another model.
        """
        with self.write_lock(), self.session() as session:
            return class_catalog.save_class(
                session, self.model_hash, name, set_name, vectors, sources, description, volume
            )

    def set_class_volume(
        self, name: str, set_name: str, volume: ClassVolume | None
    ) -> SupportClass:
        """Replace (None: forget) the molecular volume of a class (``ClassError``: no class)."""
        with self.write_lock(), self.session() as session:
            return class_catalog.set_class_volume(session, name, set_name, volume)

    def support_classes(
        self, set_name: str, names: Sequence[str] | None = None
    ) -> list[SupportClass]:
        """Classes of a set with their vectors, in the order of ``names`` (default: all).

        Raises:
            ClassError: an unknown name, a name given twice, or an empty set.
            StoreError: a class made with another model than the store's.
        """
        with self.session() as session:
            return class_catalog.set_classes(session, set_name, names, self.model_hash)

    def list_classes(self, set_name: str | None = None) -> list[SupportClass]:
        """Every class (of one set, or of all), by set then name; any model."""
        with self.session() as session:
            return class_catalog.list_classes(session, set_name)

    def class_sets(self) -> list[str]:
        """Names of the class sets that hold at least one class."""
        with self.session() as session:
            return class_catalog.class_sets(session)

    def remove_class(self, name: str, set_name: str) -> None:
        """Delete a class and its support vectors (``ClassError`` if there is none)."""
        with self.write_lock(), self.session() as session:
            class_catalog.delete_class(session, name, set_name)

    def rename_class(self, old: str, new: str, set_name: str) -> SupportClass:
        """Rename a class within its set (``ClassError``: no ``old``, or ``new`` taken)."""
        with self.write_lock(), self.session() as session:
            return class_catalog.rename_class(session, old, new, set_name)

    # -- where the subtomograms are, and how they were cut ----------------------------------------

    def locations(self) -> pd.DataFrame:
        """``id, tomogram, x, y, z`` of every vector of the store's model, by id (one query)."""
        query = (
            select(
                Subtomogram.id,
                TomogramRecord.name.label("tomogram"),
                Subtomogram.x,
                Subtomogram.y,
                Subtomogram.z,
            )
            .join(TomogramRecord, Subtomogram.tomogram_id == TomogramRecord.id)
            .join(ModelRecord, Subtomogram.model_id == ModelRecord.id)
            .where(ModelRecord.weights_hash == self.model_hash)
            .order_by(Subtomogram.id)
        )
        with self.engine.connect() as connection:
            table = pd.read_sql_query(query, connection)
        return table.astype({"id": np.int64, "x": np.float64, "y": np.float64, "z": np.float64})

    def shard_listing(self) -> list[tuple[str, str]]:
        """``(shard path, tomogram name)`` of every non-empty shard of the store's model, in
        commit order (``classify --stream`` reads them one by one)."""
        model_id, _ = self._model_id(None)
        with self.session() as session:
            rows = session.execute(
                select(ShardRecord.path, TomogramRecord.name)
                .join(TomogramRecord, ShardRecord.tomogram_id == TomogramRecord.id)
                .where(ShardRecord.model_id == model_id, ShardRecord.n_rows > 0)
                .order_by(ShardRecord.id)
            ).all()
        return [(str(path), str(name)) for path, name in rows]

    def shard_settings(self, shard_paths: Sequence[str]) -> dict[str, tuple[bool, str]]:
        """``shard path -> (invert_contrast, edge)`` as the boxes were indexed."""
        with self.session() as session:
            rows = session.execute(
                select(ShardRecord.path, ShardRecord.invert_contrast, ShardRecord.edge).where(
                    ShardRecord.path.in_(list(shard_paths))
                )
            ).all()
        return {path: (bool(invert), str(edge)) for path, invert, edge in rows}

    def header_checksums(self, names: Sequence[str]) -> dict[str, str]:
        """``tomogram name -> sha256 of its MRC header`` as recorded when it was indexed."""
        with self.session() as session:
            rows = session.execute(
                select(TomogramRecord.name, TomogramRecord.header_sha256).where(
                    TomogramRecord.name.in_(list(names))
                )
            ).all()
        return {name: checksum for name, checksum in rows}

    def indexed_particles(self, tomogram: str) -> tuple[TomogramRecord | None, pd.DataFrame, bool]:
        """(tomogram row or None, its ``id, x, y, z`` of the store's model, invert_contrast)."""
        with self.session() as session:
            record = session.scalars(
                select(TomogramRecord).where(TomogramRecord.name == tomogram)
            ).first()
            if record is None:
                return None, pd.DataFrame(columns=["id", "x", "y", "z"]), False
            model_id = session.scalars(
                select(ModelRecord.id).where(ModelRecord.weights_hash == self.model_hash)
            ).one()
            rows = session.execute(
                select(Subtomogram.id, Subtomogram.x, Subtomogram.y, Subtomogram.z).where(
                    Subtomogram.tomogram_id == record.id, Subtomogram.model_id == model_id
                )
            ).all()
            invert = session.scalars(
                select(ShardRecord.invert_contrast).where(
                    ShardRecord.tomogram_id == record.id, ShardRecord.model_id == model_id
                )
            ).first()
        return record, pd.DataFrame(rows, columns=["id", "x", "y", "z"]), bool(invert)

    # -- schema ----------------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        """The catalog's Alembic revision (None: empty)."""
        return schema.current_revision(self.engine)

    def migrate(self, revision: str, *, down: bool = False) -> tuple[str | None, str | None]:
        """Upgrade (or ``down``-grade) the catalog to ``revision``; returns (before, after).

        Hold :meth:`write_lock` around it.
        """
        before = self.schema_revision()
        (schema.downgrade if down else schema.upgrade)(self.engine, revision)
        return before, self.schema_revision()
