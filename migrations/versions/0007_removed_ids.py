"""Removed tomograms do not give their subtomogram ids back: `tomograms remove` (issue 31).

``models`` gains ``max_removed_subtomogram_id`` (nullable): the largest id a removal took out of
the store. New ids are allocated after it as well as after the largest stored id, so an id, once
given (in a result table, a class shot), never names another particle. NULL: nothing removed.
Downgrade drops the column (ids removed before may then be given again).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # an added column only: on SQLite a plain ALTER TABLE ... ADD COLUMN
    with op.batch_alter_table("models") as batch:
        batch.add_column(
            sa.Column(
                "max_removed_subtomogram_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("max_removed_subtomogram_id")
