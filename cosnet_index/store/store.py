"""A store: a directory with a SQL catalog, Parquet embedding shards and a FAISS index.

Layout (``docs/store.md``)::

    STORE/
      store.json              format marker: format version, where the catalog is
      catalog.sqlite          the SQL catalog (unless --db-url points elsewhere), WAL mode
      models/<hash16>.pt      a copy of every checkpoint whose vectors the store holds
      shards/<hash16>/<tomogram>-<id>.parquet   embedding shards, one per tomogram and model
      index/<hash16>.faiss    the FAISS index of one model's vectors (derived from the shards)
      store.lock              writers hold an exclusive flock on it
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cosnet_index.errors import CatalogConnectionError, StoreError
from cosnet_index.store import schema
from cosnet_index.store._directory import (
    LOCK,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    catalog_url,
    create_directory,
    hash16,
)
from cosnet_index.store._engine import catalog_errors, catalog_lock, make_engine, public_url
from cosnet_index.store._files import writer_lock
from cosnet_index.store._vector_access import VectorAccess, _id_chunks
from cosnet_index.store.catalog import CatalogQueries
from cosnet_index.store.tables import ModelRecord, ShardRecord, Subtomogram, TomogramRecord

__all__ = ["STORE_FORMAT", "STORE_FORMAT_VERSION", "Store"]

logger = logging.getLogger(__name__)


class Store(CatalogQueries, VectorAccess):
    """An open store. Make one with :meth:`create`, open one with :meth:`open`.

    Attributes:
        path: the store directory.
        engine: the catalog's SQLAlchemy engine.
        readonly: opened for reading only (writes raise :class:`StoreError`).
    """

    def __init__(self, path: Path, engine: Engine, *, readonly: bool = False) -> None:
        self.path = path
        self.engine = engine
        self.readonly = readonly
        self._model: Any = None
        self._index_cache: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._file_ntotal: dict[str, int] = {}
        self._gpu_cache: dict[int, tuple[Any, Any]] = {}  # id(cpu index) -> (cpu, gpu copy)
        self._lock_depth = 0
        self._thread_lock = threading.RLock()
        self.allow_damaged = False  # `repair` and `check` read a damaged store on purpose
        self._damage_clear = False  # damaged_files was seen empty (refuse_if_damaged)

    # -- creating and opening --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        model_path: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
    ) -> Store:
        """Create a store at the newest schema, initialised with a model checkpoint.

        Args:
            path: a new (or empty) directory.
            model_path: checkpoint whose vectors the store will hold (default: the shipped one);
                it is copied into the store.
            db_url: a SQLAlchemy URL for the catalog (default ``sqlite:///PATH/catalog.sqlite``).

        Raises:
            StoreError: the path holds something else, or the database already has a catalog.
            CheckpointError: the checkpoint cannot be loaded.
        """
        from cosnet_index.model import default_checkpoint_path, load_checkpoint

        path = Path(path).expanduser().resolve()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StoreError(
                f"{path} already exists and is not an empty directory; open it, or choose a new "
                "path for the store"
            )
        source = (
            Path(model_path).expanduser().resolve() if model_path else default_checkpoint_path()
        )
        model, info = load_checkpoint(source)
        create_directory(path, source, info, db_url)
        logger.info("created store %s with model %s", path, info.hash[:12])
        del model
        return cls.open(path, db_url=db_url)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, db_url: str | None = None, readonly: bool = False
    ) -> Store:
        """Open an existing store and check its schema.

        Raises:
            StoreError: no store at ``path``, or its catalog is elsewhere and no ``db_url`` given.
            SchemaError: the catalog is behind (run ``cosnet-index db upgrade``) or ahead
                (upgrade cosnet-index).
        """
        store = cls.open_unchecked(path, db_url=db_url, readonly=readonly)
        try:
            schema.check_schema(store.engine, store.path)
        except OperationalError as exc:
            store.close()
            first = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
            if store.engine.dialect.name != "sqlite":  # a server that is down or unreachable
                raise CatalogConnectionError(
                    f"cannot reach the catalog database {public_url(str(store.engine.url))} of "
                    f"the store at {store.path} ({first}); check that the server is running "
                    "and reachable, then re-run the command"
                ) from None
            raise StoreError(
                f"cannot read the catalog of the store at {store.path} ({first}); check its "
                "permissions, or open it read-only"
            ) from None
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open_unchecked(
        cls, path: str | os.PathLike[str], *, db_url: str | None = None, readonly: bool = False
    ) -> Store:
        """Open without the schema check (for ``cosnet-index db`` commands)."""
        path = Path(path).expanduser().resolve()
        db_url = catalog_url(path, db_url)
        engine = make_engine(db_url, readonly=readonly)
        return cls(path, engine, readonly=readonly)

    def close(self) -> None:
        """Dispose of the database connections and cached indexes."""
        self._index_cache.clear()
        self._gpu_cache.clear()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalog ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A SQLAlchemy session; committed on normal exit, rolled back on an exception.

        Raises:
            WriteError: the catalog's disk is full; CatalogConnectionError: the database
                server went away (``store/_engine.catalog_errors``).
        """
        with (
            catalog_errors(self.engine, self.path),
            Session(self.engine, expire_on_commit=False) as session,
        ):
            try:
                yield session
                if not self.readonly:
                    session.commit()
            except BaseException:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    session.rollback()
                raise

    @contextlib.contextmanager
    def write_lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the store's inter-process writer lock (re-entrant within this object).

        ``wait_s``: wait this long for another writer to finish before giving up.

        Raises:
            StoreLockedError: another process is writing.
            StoreError: the store was opened read-only or its directory is not writable.
        """
        if self.readonly:
            raise StoreError(f"the store at {self.path} was opened read-only; it cannot be written")
        with self._thread_lock:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            with (
                writer_lock(self.path / LOCK, self.path, wait_s),
                catalog_lock(self.engine, self.path, wait_s),  # PostgreSQL: across machines
            ):
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0

    def active_model_record(self) -> ModelRecord:
        """The catalog row of the model new vectors are made with."""
        with self.session() as session:
            record = session.scalars(select(ModelRecord).where(ModelRecord.active)).first()
        if record is None:
            raise StoreError(f"the store at {self.path} has no active model; the store is damaged")
        return record

    @property
    def model_hash(self) -> str:
        """Weights hash of the store's model."""
        return self.active_model_record().weights_hash

    def model(self) -> Any:
        """The store's :class:`~cosnet_index.model.CosNet` (loaded once, hash verified).

        Raises:
            CheckpointError: the stored checkpoint is damaged.
            StoreError: its hash is not the one the store recorded.
            StoreDamagedError: the last ``check`` found damaged files (``repair`` first).
        """
        self.refuse_if_damaged()
        if self._model is None:
            from cosnet_index.model import load_checkpoint

            record = self.active_model_record()
            model, info = load_checkpoint(self.path / record.checkpoint)
            if info.hash != record.weights_hash:
                raise StoreError(
                    f"the store's checkpoint {record.checkpoint} has hash {info.hash[:12]}, not "
                    f"the recorded {record.weights_hash[:12]}; restore the original checkpoint"
                )
            self._model = model
        return self._model

    def _model_id(self, model_hash: str | None) -> tuple[int, str]:
        with self.session() as session:
            if model_hash is None:
                record = session.scalars(select(ModelRecord).where(ModelRecord.active)).first()
            else:
                record = session.scalars(
                    select(ModelRecord).where(ModelRecord.weights_hash == model_hash)
                ).first()
        if record is None:
            raise StoreError(
                f"the store at {self.path} holds no vectors of model {model_hash}; "
                "use the model the store was initialised with"
            )
        return record.id, record.weights_hash

    def index_path(self, model_hash: str | None = None) -> Path:
        """The FAISS index file of a model (default: the store's model)."""
        return self.path / "index" / f"{hash16(model_hash or self.model_hash)}.faiss"

    def shard_dir(self, model_hash: str) -> Path:
        """Folder of a model's shards."""
        return self.path / "shards" / hash16(model_hash)

    # -- tables ----------------------------------------------------------------------------------

    def subtomogram_table(self, ids: np.ndarray | None = None) -> pd.DataFrame:
        """One row per subtomogram: ``id, tomogram, tomogram_path, x, y, z,
        voxel_size_angstrom, model_hash, shard, row`` (``x, y, z`` voxels of that tomogram).

        Raises:
            StoreError: unknown ids.
        """
        query = (
            select(
                Subtomogram.id,
                TomogramRecord.name.label("tomogram"),
                TomogramRecord.path.label("tomogram_path"),
                Subtomogram.x,
                Subtomogram.y,
                Subtomogram.z,
                TomogramRecord.voxel_size_angstrom,
                ModelRecord.weights_hash.label("model_hash"),
                ShardRecord.path.label("shard"),
                Subtomogram.row,
            )
            .join(TomogramRecord, Subtomogram.tomogram_id == TomogramRecord.id)
            .join(ModelRecord, Subtomogram.model_id == ModelRecord.id)
            .join(ShardRecord, Subtomogram.shard_id == ShardRecord.id)
            .order_by(Subtomogram.id)
        )
        with self.session() as session:
            if ids is None:
                result = session.execute(query).all()
            else:
                result = [
                    row
                    for chunk in _id_chunks(np.asarray(ids, dtype=np.int64))
                    for row in session.execute(query.where(Subtomogram.id.in_(chunk))).all()
                ]
            frame = pd.DataFrame(
                result,
                columns=[
                    "id",
                    "tomogram",
                    "tomogram_path",
                    "x",
                    "y",
                    "z",
                    "voxel_size_angstrom",
                    "model_hash",
                    "shard",
                    "row",
                ],
            )
        frame["id"] = frame["id"].astype(np.int64)
        if ids is not None:
            missing = np.setdiff1d(np.asarray(ids, dtype=np.int64), frame["id"].to_numpy())
            if len(missing):
                raise StoreError(f"unknown subtomogram ids {missing[:5].tolist()}")
            frame = frame.set_index("id").loc[np.asarray(ids, dtype=np.int64)].reset_index()
        return frame

    def tomogram_geometry(self, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """How each tomogram's coordinates came in and its geometry (for ``export``).

        Returns:
            name -> ``{"voxel_size_angstrom", "shape_zyx", "convention", "pixel_size_angstrom",
            "optics"}``; ``convention`` is ``voxels`` for tomograms indexed before it was
            recorded (revision 0003).
        """
        query = select(TomogramRecord)
        if names is not None:
            query = query.where(TomogramRecord.name.in_(sorted(set(map(str, names)))))
        with self.session() as session:
            records = session.scalars(query).all()
        return {
            r.name: {
                "voxel_size_angstrom": float(r.voxel_size_angstrom),
                "shape_zyx": [int(r.shape_z), int(r.shape_y), int(r.shape_x)],
                "convention": r.coordinate_convention or "voxels",
                "pixel_size_angstrom": r.coordinate_pixel_size_angstrom,
                "optics": r.coordinate_optics,
            }
            for r in records
        }

    def size_bytes(self) -> int:
        """Bytes of every file in the store directory."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
