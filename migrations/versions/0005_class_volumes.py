"""The molecular volume of a class: what `segment` uses as each class's mask prior.

``classes`` gains four nullable columns: ``volume_nm3``, ``volume_source`` (``map-contour``,
``map-mass``, ``mass-kda``, ``atomic-model``, ``user``), ``mass_kda`` and ``volume_note``
(how it was found, e.g. the contour level). Classes of an older store keep working with no
volume (NULL: ``segment`` thresholds their masks at p > 0.5, as before); ``classes set-volume``
adds one. Downgrade drops the columns and the volumes with them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("volume_nm3", "volume_source", "mass_kda", "volume_note")


def upgrade() -> None:
    # only added columns: SQLite's batch mode runs them as plain ALTER TABLE ... ADD COLUMN,
    # without copying the table that support_vectors refers to
    with op.batch_alter_table("classes") as batch:
        batch.add_column(sa.Column("volume_nm3", sa.Float(), nullable=True))
        batch.add_column(sa.Column("volume_source", sa.String(16), nullable=True))
        batch.add_column(sa.Column("mass_kda", sa.Float(), nullable=True))
        batch.add_column(sa.Column("volume_note", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite copies the table to drop columns; ``schema._run`` has switched foreign keys off on
    # this connection, so dropping the old copy cascades into no support vector
    with op.batch_alter_table("classes") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
