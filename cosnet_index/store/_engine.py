"""SQLAlchemy engines for catalogs: SQLite in WAL mode with a busy timeout, or any URL."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cosnet_index.errors import StoreError, StoreLockedError

__all__ = ["catalog_lock", "make_engine", "public_url"]

BUSY_TIMEOUT_S = 60.0


def public_url(url: str) -> str:
    """The URL with its password hidden (safe to print or to record)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def make_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine for ``url``. SQLite: WAL journal (readers never block the writer and see a
    consistent snapshot), foreign keys on, and a busy timeout; ``readonly`` opens it ``mode=ro``.

    Raises:
        StoreError: a malformed URL or an unknown database driver.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{url!r} is not a SQLAlchemy database URL; use e.g. sqlite:///catalog.sqlite or "
            "postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except Exception as exc:  # missing driver (ModuleNotFoundError, NoSuchModuleError)
            raise StoreError(
                f"cannot use the database {public_url(url)} ({exc}); install its driver"
            ) from None
    database = parsed.database or ""
    if readonly and database:
        uri = f"file:{Path(database).resolve()}?mode=ro"
        engine = create_engine(
            "sqlite:///" + uri + "&uri=true",
            connect_args={"timeout": BUSY_TIMEOUT_S, "uri": True},
        )
    else:
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        if not readonly:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if not mode or str(mode[0]).lower() != "wal":  # set once; needs write access
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


CATALOG_LOCK_KEY = 0x636F736E6574  # "cosnet": one catalog per database, so one key per store


@contextlib.contextmanager
def catalog_lock(engine: Engine, store_path: Path, wait_s: float = 0.0) -> Iterator[None]:
    """On PostgreSQL, hold a session-level advisory lock for the store's writer (no-op on
    SQLite). Writers on several machines then exclude each other through the database even
    where the shared filesystem's ``flock`` does not reach across machines; the server drops
    the lock when the writer's connection dies.

    Raises:
        StoreLockedError: another writer holds it past ``wait_s``.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy.pool import NullPool

    # a connection of its own, outside the engine's pool (migrations dispose of that pool)
    lock_engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with contextlib.ExitStack() as stack:
        stack.callback(lock_engine.dispose)
        connection = stack.enter_context(lock_engine.connect())
        deadline = time.monotonic() + wait_s
        query = text("SELECT pg_try_advisory_lock(:key)")
        while not connection.execute(query, {"key": CATALOG_LOCK_KEY}).scalar():
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"another cosnet-index process (maybe on another machine) is writing to the "
                    f"catalog of the store at {store_path}; wait for it to finish, then run this "
                    "command again"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": CATALOG_LOCK_KEY})
