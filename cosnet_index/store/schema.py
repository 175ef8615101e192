"""Schema versions through Alembic: upgrade, downgrade, current, and the check made on open."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from cosnet_index.errors import SchemaError

__all__ = [
    "alembic_config",
    "check_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrations_dir",
    "upgrade",
]


def migrations_dir() -> Path:
    """The installed ``cosnet_index.migrations`` package (``migrations/`` in the repository)."""
    import cosnet_index.migrations as package

    return Path(os.path.dirname(package.__file__))


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    """The newest revision this version of cosnet-index knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # a broken installation: the migration scripts are missing
        raise SchemaError(
            f"no Alembic revision found in {migrations_dir()}; reinstall cosnet-index"
        )
    return head


def current_revision(engine: Engine) -> str | None:
    """The catalog's revision (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _run(engine: Engine, fn, revision: str) -> None:  # type: ignore[no-untyped-def]
    from alembic.util.exc import CommandError

    config = alembic_config(engine)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # SQLite honours this only outside a transaction: set here, it holds for every
                # step of a multi-step run (0003 copies tables that rows refer to, and checks
                # the keys itself afterwards); new connections enforce foreign keys again
                connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
                connection.commit()
            with connection.begin():  # all steps or none
                config.attributes["connection"] = connection
                fn(config, revision)
    except CommandError as exc:  # e.g. an unknown revision: nothing was migrated
        raise SchemaError(
            f"cannot migrate the catalog to revision {revision!r} ({exc}); give 'head', 'base', "
            "a relative step such as -1, or a revision listed by `cosnet-index db current`"
        ) from None
    finally:
        # a migration may switch SQLite's foreign-key enforcement off on its connection
        # (0003's table copies): new connections switch it on again
        engine.dispose()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the catalog up to ``revision`` (default: head)."""
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the catalog down to ``revision`` (``"base"`` removes every table)."""
    _run(engine, command.downgrade, revision)


def check_schema(engine: Engine, store_path: str | os.PathLike[str]) -> None:
    """Refuse a catalog whose revision is not this version's head.

    Raises:
        SchemaError: behind (names ``cosnet-index db upgrade``), ahead or unknown (upgrade
            cosnet-index), or no catalog at all.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError(
            f"the store at {store_path} has no catalog schema; run "
            f"`cosnet-index db upgrade --store {store_path}` "
            "(or `cosnet-index init` for a new store)"
        )
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"the store at {store_path} has schema revision {current}, newer than this "
            f"cosnet-index knows (head {head}); upgrade cosnet-index to open it"
        )
    raise SchemaError(
        f"the store at {store_path} has schema revision {current}, older than this cosnet-index "
        f"(head {head}); run `cosnet-index db upgrade --store {store_path}`"
    )
