"""Checksums of the store's files, and the damage ``check`` found (issue 30).

``shards.checksum`` and ``models.checksum`` hold the blake2b-256 digest (hex) of the shard file
(recorded in the transaction that commits its rows) and of the store's copy of the checkpoint
(recorded at ``init``). ``index_files`` holds one row per model's FAISS file: its checksum and the
one before it (the catalog row is written before the file is renamed into place, so a crash in
between leaves the previous file, which ``check`` still accepts). ``damaged_files`` holds what the
last full ``check`` found damaged; queries refuse the store while it has rows, ``repair`` empties
it. Stores made before this revision keep working: their files have no checksum (NULL) until
``cosnet-index repair`` records them. Downgrade drops the columns and tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # only added columns: SQLite's batch mode runs them as plain ALTER TABLE ... ADD COLUMN,
    # without copying the tables that subtomograms refer to
    with op.batch_alter_table("shards") as batch:
        batch.add_column(sa.Column("checksum", sa.String(64), nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("checksum", sa.String(64), nullable=True))
    op.create_table(
        "index_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("previous_checksum", sa.String(64), nullable=True),
        sa.Column("n_vectors", sa.BigInteger(), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("model_id", name="uq_index_files_model"),
    )
    op.create_table(
        "damaged_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("found_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("path", name="uq_damaged_files_path"),
    )


def downgrade() -> None:
    # SQLite copies the tables to drop columns; ``schema._run`` has switched foreign keys off on
    # this connection, so dropping the old copies cascades into nothing
    op.drop_table("damaged_files")
    op.drop_table("index_files")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("checksum")
    with op.batch_alter_table("shards") as batch:
        batch.drop_column("checksum")
