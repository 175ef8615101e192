"""SQLAlchemy engines for catalogs: SQLite in WAL mode with a busy timeout, or any URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cosnet_index.errors import StoreError

__all__ = ["make_engine", "public_url"]

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
