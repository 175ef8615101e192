"""A store's directory: the names in it, creating it, and reading its ``store.json``.

A store is created whole or not at all: every file (folders, lock file, the model copy, the
catalog at the newest schema, ``store.json``) is made in a ``.<name>.creating-<pid>`` staging
folder that is renamed into place at the end (:func:`create_directory`). Opening reads
``store.json`` (format, version, where the catalog is) and gives the catalog's URL
(:func:`catalog_url`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cosnet_index import __version__
from cosnet_index.errors import SchemaError, StoreError
from cosnet_index.files import file_checksum, write_errors
from cosnet_index.store import schema
from cosnet_index.store._engine import make_engine, public_url
from cosnet_index.store.tables import ModelRecord

__all__ = [
    "CATALOG",
    "LOCK",
    "MANIFEST",
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "catalog_url",
    "create_directory",
    "hash16",
]

STORE_FORMAT = "cosnet-index-store"
STORE_FORMAT_VERSION = 1
MANIFEST = "store.json"
CATALOG = "catalog.sqlite"
LOCK = "store.lock"


def hash16(weights_hash: str) -> str:
    """The 16-character prefix of a model hash that names its files in the store."""
    return weights_hash[:16]


def create_directory(path: Path, source: Path, info: Any, db_url: str | None) -> None:
    """Make a store at ``path`` (absent or an empty folder) holding the checkpoint ``source``.

    Args:
        path: the store directory (resolved).
        source: the checkpoint file, copied to ``models/<hash16>.pt``.
        info: its :class:`~cosnet_index.model.checkpoint.CheckpointInfo` (hash and config).
        db_url: an external catalog's URL, or None for ``catalog.sqlite`` in the store.

    Raises:
        StoreError: the database already holds a catalog.
        WriteError: the disk is full or the file system failed (nothing is left behind).
    """
    staging = path.with_name(f".{path.name}.creating-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    needed = source.stat().st_size + 1024 * 1024  # the model copy and an empty catalog
    with write_errors(path, needed):
        staging.mkdir(parents=True)
    try:
        with write_errors(path, needed):
            _fill_staging(staging, path, source, info, db_url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fill_staging(staging: Path, path: Path, source: Path, info: Any, db_url: str | None) -> None:
    """Make every file of the store in ``staging``, then rename it to ``path``."""
    engine = None
    try:
        (staging / "shards").mkdir()
        (staging / "index").mkdir()
        (staging / "models").mkdir()
        (staging / LOCK).touch()
        checkpoint = Path("models") / f"{hash16(info.hash)}.pt"
        shutil.copyfile(source, staging / checkpoint)
        catalog: dict[str, str] = {"kind": "sqlite", "file": CATALOG}
        if db_url:
            catalog = {"kind": "url", "url": public_url(db_url)}
        engine = make_engine(db_url or f"sqlite:///{staging / CATALOG}")
        if schema.current_revision(engine) is not None:
            raise StoreError(
                f"the database {public_url(db_url or '')} already holds a cosnet-index "
                "catalog; use an empty database for a new store"
            )
        schema.upgrade(engine, "head")
        with Session(engine) as session, session.begin():
            session.add(
                ModelRecord(
                    weights_hash=info.hash,
                    config=info.config.to_dict(),
                    checkpoint=checkpoint.as_posix(),
                    source_path=str(source),
                    active=True,
                    checksum=file_checksum(staging / checkpoint),
                )
            )
        engine.dispose()
        engine = None
        manifest = {
            "format": STORE_FORMAT,
            "format_version": STORE_FORMAT_VERSION,
            "created_by": f"cosnet-index {__version__}",
            "catalog": catalog,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if path.exists():
            path.rmdir()
        os.replace(staging, path)
    except BaseException:
        if engine is not None:
            engine.dispose()
        raise


def catalog_url(path: Path, db_url: str | None) -> str:
    """The catalog URL of the store at ``path``, after checking its ``store.json``.

    Raises:
        StoreError: no store at ``path``, a damaged one, or its catalog is in an external
            database and no ``db_url`` was given.
        SchemaError: the store's format is newer than this cosnet-index.
    """
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise StoreError(
            f"no cosnet-index store at {path}; create one with `cosnet-index init --store {path}`"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{manifest_path} is unreadable ({exc}); the store is damaged") from None
    if manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{path} is not a cosnet-index store ({MANIFEST} has another format)")
    if int(manifest.get("format_version", 0)) > STORE_FORMAT_VERSION:
        raise SchemaError(
            f"the store at {path} has format version {manifest['format_version']}, newer than "
            "this cosnet-index; upgrade cosnet-index to open it"
        )
    catalog = manifest.get("catalog", {})
    if db_url is None:
        if catalog.get("kind") == "url":
            raise StoreError(
                f"the catalog of the store at {path} is in an external database "
                f"({catalog.get('url')}); pass its URL with --db-url"
            )
        db_file = path / catalog.get("file", CATALOG)
        if not db_file.is_file():
            raise StoreError(f"the catalog {db_file} is missing; the store is damaged")
        db_url = f"sqlite:///{db_file}"
    return db_url
