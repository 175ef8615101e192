"""Several shards (parts) per tomogram and model; each tomogram's coordinate convention.

``index`` now commits a tomogram in bounded parts (an interrupt loses at most one part) and adds
new picks to an indexed tomogram as another part, so ``shards`` loses its unique
``(tomogram_id, model_id)``: a particle is identified by its tomogram, model and position
instead (``store/indexer.py``). ``tomograms`` records how the coordinates came in, so that
``export`` writes them back the same way (``geometry.py``).

Downgrade merges nothing: it refuses while a tomogram has several parts for one model (re-index
into a store of the older version instead).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _foreign_keys_off() -> None:
    """SQLite batch mode copies a table, drops it and renames the copy; with rows referencing it
    (subtomograms -> shards, tomograms) the drop fails while foreign keys are enforced. SQLite
    honours ``PRAGMA foreign_keys`` only outside a transaction, which pysqlite has not opened yet
    here (it opens one before the first data statement); ``_check_foreign_keys`` verifies the
    result and ``schema`` disposes of the connection afterwards (new ones enforce them again)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys = OFF")


def _check_foreign_keys() -> None:
    if op.get_bind().dialect.name == "sqlite":
        broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration 0003 broke foreign keys: {broken[:3]}")


def upgrade() -> None:
    _foreign_keys_off()
    with op.batch_alter_table("shards") as batch:
        batch.drop_constraint("uq_shards_tomogram_model", type_="unique")
        batch.create_index("ix_shards_tomogram_model", ["tomogram_id", "model_id"])
    with op.batch_alter_table("tomograms") as batch:
        batch.add_column(sa.Column("coordinate_convention", sa.String(16), nullable=True))
        batch.add_column(sa.Column("coordinate_pixel_size_angstrom", sa.Float(), nullable=True))
        batch.add_column(sa.Column("coordinate_optics", sa.JSON(), nullable=True))
    _check_foreign_keys()


def downgrade() -> None:
    from cosnet_index.errors import SchemaError

    connection = op.get_bind()
    several = connection.execute(
        sa.text(
            "SELECT count(*) FROM (SELECT tomogram_id, model_id FROM shards "
            "GROUP BY tomogram_id, model_id HAVING count(*) > 1) AS parts"
        )
    ).scalar()
    if several:
        raise SchemaError(
            f"{several} tomogram(s) of this store are stored in several parts, which revision "
            "0002 cannot hold; keep this revision, or index the tomograms again into a new store "
            "made by the older cosnet-index"
        )
    _foreign_keys_off()
    with op.batch_alter_table("tomograms") as batch:
        batch.drop_column("coordinate_optics")
        batch.drop_column("coordinate_pixel_size_angstrom")
        batch.drop_column("coordinate_convention")
    with op.batch_alter_table("shards") as batch:
        batch.drop_index("ix_shards_tomogram_model")
        batch.create_unique_constraint("uq_shards_tomogram_model", ["tomogram_id", "model_id"])
    _check_foreign_keys()
