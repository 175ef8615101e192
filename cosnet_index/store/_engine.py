"""SQLAlchemy engines for catalogs: SQLite in WAL mode with a busy timeout, or any URL.

:func:`catalog_errors` turns what a database reports during a transaction into the package's
errors: a full disk (SQLite "database or disk is full", PostgreSQL SQLSTATE 53100) into
:class:`~cosnet_index.errors.WriteError`, a lost connection (a PostgreSQL server restarted or
the connection killed) into :class:`~cosnet_index.errors.CatalogConnectionError`. Either way the
transaction was rolled back: nothing of it is in the catalog.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from cosnet_index.errors import CatalogConnectionError, StoreError, StoreLockedError
from cosnet_index.files import write_error

__all__ = ["catalog_errors", "catalog_lock", "connection_lost", "make_engine", "public_url"]

_LOST_TEXT = (
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "connection is closed",
    "connection already closed",
    "the database system is shutting down",
    "the database system is starting up",
    "consuming input failed",
    "could not receive data",
    "could not send data",
    "ssl connection has been closed",
    "no connection to the server",
    "connection to server",
)


def connection_lost(exc: BaseException) -> bool:
    """Whether a database error means the connection to the server was lost."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(phrase in text for phrase in _LOST_TEXT)


@contextlib.contextmanager
def catalog_errors(engine: Engine, store_path: Path | str) -> Iterator[None]:
    """Turn a full disk or a lost connection during a catalog transaction into our errors.

    Raises:
        WriteError: the database's disk is full (nothing of the transaction was kept).
        CatalogConnectionError: the connection to the database server was lost (a restart, a
            killed connection); the transaction was not committed, or its outcome is unknown
            (the next run of the command finds out and cleans up).
    """
    try:
        yield
    except DBAPIError as exc:
        where = (
            engine.url.database
            if engine.dialect.name == "sqlite"
            else public_url(engine.url.render_as_string(hide_password=False))
        )
        full = write_error(exc.orig or exc, where or str(store_path))
        if full is not None:
            raise full from exc
        if engine.dialect.name != "sqlite" and connection_lost(exc):
            first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
            raise CatalogConnectionError(
                f"lost the connection to the catalog database {public_url(str(engine.url))} of "
                f"the store at {store_path} ({first or type(exc.orig).__name__}); what was "
                "committed is kept whole and nothing is half-committed; re-run the command once "
                "the database is reachable"
            ) from exc
        raise


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
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": CATALOG_LOCK_KEY}
                )
            except DBAPIError:  # the connection died (server restart): the lock died with it
                pass
