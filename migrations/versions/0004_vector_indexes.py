"""The vector index each model is searched with: kind, parameters and measured recall.

``cosnet-index reindex --index-type flat|ivf|ivf-fp16|ivf-pq`` records here what it built (one row
per model, replaced by the next reindex) and the recall@100 it measured against brute force, so
that ``stats`` can report it. No row: the default exact flat index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_indexes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("n_vectors", sa.BigInteger(), nullable=False),
        sa.Column("recall_at_100", sa.Float(), nullable=True),
        sa.Column("recall_queries", sa.Integer(), nullable=True),
        sa.Column("build_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("model_id", name="uq_vector_indexes_model"),
    )


def downgrade() -> None:
    op.drop_table("vector_indexes")
