"""The initial catalog: models, tomograms, shards, subtomograms.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("weights_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "tomograms",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("shape_z", sa.Integer(), nullable=False),
        sa.Column("shape_y", sa.Integer(), nullable=False),
        sa.Column("shape_x", sa.Integer(), nullable=False),
        sa.Column("voxel_size_angstrom", sa.Float(), nullable=False),
        sa.Column("header_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "shards",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tomogram_id", sa.Integer(), sa.ForeignKey("tomograms.id"), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_skipped", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("edge", sa.String(16), nullable=False),
        sa.Column("resampled_from_angstrom", sa.Float(), nullable=True),
        sa.Column("invert_contrast", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("tomogram_id", "model_id", name="uq_shards_tomogram_model"),
    )
    op.create_table(
        "subtomograms",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("tomogram_id", sa.Integer(), sa.ForeignKey("tomograms.id"), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("shard_id", sa.Integer(), sa.ForeignKey("shards.id"), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("z", sa.Float(), nullable=False),
        sa.UniqueConstraint("shard_id", "row", name="uq_subtomograms_shard_row"),
    )
    op.create_index("ix_subtomograms_tomogram", "subtomograms", ["tomogram_id"])
    op.create_index("ix_subtomograms_model", "subtomograms", ["model_id"])


def downgrade() -> None:
    op.drop_index("ix_subtomograms_model", table_name="subtomograms")
    op.drop_index("ix_subtomograms_tomogram", table_name="subtomograms")
    op.drop_table("subtomograms")
    op.drop_table("shards")
    op.drop_table("tomograms")
    op.drop_table("models")
