"""Throwaway PostgreSQL databases for the catalog tests (issue 17).

``COSNET_TEST_POSTGRES_URL`` names a server the tests may create databases on (``.ci/run``
starts one, see ``.ci/postgres.sh``); without it the PostgreSQL leg is skipped. Every test gets
its own fresh database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

ENV = "COSNET_TEST_POSTGRES_URL"


def postgres_server_url() -> str | None:
    """The admin URL of the test server, or None (the PostgreSQL leg is skipped)."""
    return os.environ.get(ENV) or None


def create_database(server_url: str) -> str:
    """Create an empty database on the server; return its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"cosnet_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    """Drop a database made by :func:`create_database` (its connections are closed first)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
