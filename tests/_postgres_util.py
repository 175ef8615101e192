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


# -- a private server a test may restart (issue 30) ----------------------------------------------


def _bindir() -> str | None:
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def private_server_unavailable() -> str | None:
    """Why :func:`start_private_server` cannot run here (None: it can)."""
    import pwd

    if _bindir() is None:
        return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)"
    if os.geteuid() != 0:
        return "a private PostgreSQL server runs as user postgres: needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no user postgres to run a PostgreSQL server as"
    return None


def _as_postgres(*args: str) -> None:
    import subprocess

    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)


def start_private_server(directory: str | os.PathLike[str]) -> str:
    """initdb + start a server of our own under ``directory`` (127.0.0.1, a free port, trust);
    returns its admin URL (database ``postgres``). Stop it with :func:`stop_private_server`."""
    import shutil
    import socket

    bindir = _bindir()
    assert bindir is not None, private_server_unavailable()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    shutil.chown(directory, "postgres")
    data = os.path.join(directory, "data")
    _as_postgres(
        f"{bindir}/initdb",
        "-D",
        data,
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-locale",
    )
    with open(os.path.join(directory, "port"), "w") as handle:
        handle.write(str(port))
    _pg_ctl(directory, "start")
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


def _pg_ctl(directory: str | os.PathLike[str], action: str, mode: str = "fast") -> None:
    bindir = _bindir()
    with open(os.path.join(directory, "port")) as handle:
        port = handle.read().strip()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off"
    args = [f"{bindir}/pg_ctl", "-D", os.path.join(directory, "data"), "-w", "-m", mode]
    if action != "stop":
        args += ["-l", os.path.join(directory, "server.log"), "-o", options]
    _as_postgres(*args, action)


def restart_private_server(directory: str | os.PathLike[str], mode: str = "fast") -> None:
    """Restart the server: every connection is dropped (``mode``: fast, or immediate = crash)."""
    _pg_ctl(directory, "restart", mode)


def stop_private_server(directory: str | os.PathLike[str]) -> None:
    """Stop the server (its files stay under ``directory``)."""
    import contextlib
    import subprocess

    with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
        _pg_ctl(directory, "stop")
