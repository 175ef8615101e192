"""The catalog's tables (SQLAlchemy 2 ORM), all of them: the collection (migration ``0001``) and
the support classes (``0002``; their molecular volume ``0005``), the files' checksums
(``0006``) and the largest removed id (``0007``). Migrations in ``migrations/versions`` create
them.

``subtomograms.id`` is the FAISS id of the subtomogram's vector. A row of ``shards`` exists only
once its Parquet file is complete and renamed into place, and is committed in the same transaction
as its subtomogram rows. A particle is identified by its tomogram, model and position (rounded to
``POSITION_DECIMALS`` decimals of a voxel): a re-run embeds only positions not stored yet.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "ClassRecord",
    "ClassSetRecord",
    "DamagedFileRecord",
    "IndexFileRecord",
    "ModelRecord",
    "ShardRecord",
    "Subtomogram",
    "SupportVectorRecord",
    "TomogramRecord",
    "VectorIndexRecord",
]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every cosnet-index table (``Base.metadata`` is Alembic's target)."""


class ModelRecord(Base):
    """A model whose vectors the store holds (``weights_hash`` = ``CosNet.weights_hash``)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weights_hash: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict] = mapped_column(JSON)
    checkpoint: Mapped[str] = mapped_column(Text)  # path relative to the store directory
    source_path: Mapped[str] = mapped_column(Text)  # where it was copied from at `init`
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    # blake2b-256 (hex) of the checkpoint file (migration 0006; None: made before it)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the largest subtomogram id `tomograms remove` took out (migration 0007; None: none): ids
    # are allocated after it too, so a removed id never names another particle
    max_removed_subtomogram_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )


class TomogramRecord(Base):
    """A tomogram (by name: ``rlnTomoName`` or the MRC file's stem)."""

    __tablename__ = "tomograms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    path: Mapped[str] = mapped_column(Text)
    shape_z: Mapped[int] = mapped_column(Integer)
    shape_y: Mapped[int] = mapped_column(Integer)
    shape_x: Mapped[int] = mapped_column(Integer)
    voxel_size_angstrom: Mapped[float] = mapped_column(Float)
    header_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    # how the coordinates came in (``geometry.COORDINATE_CONVENTIONS``), for ``export``;
    # None: indexed before revision 0003 (exported as plain voxels)
    coordinate_convention: Mapped[str | None] = mapped_column(String(16), nullable=True)
    coordinate_pixel_size_angstrom: Mapped[float | None] = mapped_column(Float, nullable=True)
    coordinate_optics: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class ShardRecord(Base):
    """One Parquet embedding shard: one part of the vectors of a tomogram by a model.

    A tomogram has one part per bounded chunk committed by ``index`` (revision 0003; one per
    tomogram before), and more when new picks are added later.
    """

    __tablename__ = "shards"
    __table_args__ = (Index("ix_shards_tomogram_model", "tomogram_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tomogram_id: Mapped[int] = mapped_column(ForeignKey("tomograms.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    path: Mapped[str] = mapped_column(Text)  # relative to the store directory
    n_rows: Mapped[int] = mapped_column(Integer)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict] = mapped_column(JSON, default=dict)  # reason -> count
    edge: Mapped[str] = mapped_column(String(16))
    resampled_from_angstrom: Mapped[float | None] = mapped_column(Float, nullable=True)
    invert_contrast: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    # blake2b-256 (hex) of the Parquet file (migration 0006; None: committed before it)
    checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Subtomogram(Base):
    """One embedded subtomogram; ``id`` is its FAISS id, ``x, y, z`` voxels of its tomogram."""

    __tablename__ = "subtomograms"
    __table_args__ = (
        UniqueConstraint("shard_id", "row", name="uq_subtomograms_shard_row"),
        Index("ix_subtomograms_tomogram", "tomogram_id"),
        Index("ix_subtomograms_model", "model_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    tomogram_id: Mapped[int] = mapped_column(ForeignKey("tomograms.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    shard_id: Mapped[int] = mapped_column(ForeignKey("shards.id"))
    row: Mapped[int] = mapped_column(Integer)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    z: Mapped[float] = mapped_column(Float)


# -- support classes (migration 0002) ------------------------------------------------------------
# A *class set* is a namespace of classes (``default`` unless ``--set`` names another), so a user
# can keep several support sets side by side; class names are unique within a set. A class belongs
# to one model (the store's model when it was made) and holds its K support vectors (shots) as
# float32 blobs, with where each came from: a stored subtomogram (its vector is copied, nothing is
# recomputed), an MRC box file, or a position in a tomogram.


class ClassSetRecord(Base):
    """A named support set (namespace of classes)."""

    __tablename__ = "class_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class ClassRecord(Base):
    """A named support class of one model, in one set."""

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("set_id", "name", name="uq_classes_set_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("class_sets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, onupdate=_now)
    # the molecular volume (migration 0005; None: not known), the mask prior of `segment`:
    # nm^3, where it came from (``class_catalog.VOLUME_SOURCES``), the mass it was computed from
    # (kDa, when one was), and how (e.g. the contour level)
    volume_nm3: Mapped[float | None] = mapped_column(Float, nullable=True)
    volume_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    mass_kda: Mapped[float | None] = mapped_column(Float, nullable=True)
    volume_note: Mapped[str | None] = mapped_column(Text, nullable=True)

    vectors: Mapped[list[SupportVectorRecord]] = relationship(
        back_populates="support_class",
        cascade="all, delete-orphan",
        order_by="SupportVectorRecord.shot",
    )


class SupportVectorRecord(Base):
    """One shot of a class: a scaled storage vector and its source."""

    __tablename__ = "support_vectors"
    __table_args__ = (UniqueConstraint("class_id", "shot", name="uq_support_vectors_class_shot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    shot: Mapped[int] = mapped_column(Integer)  # 0-based
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # dim float32, little-endian
    source_kind: Mapped[str] = mapped_column(String(16))  # subtomogram | mrc | tomogram
    subtomogram_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )
    source_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    tomogram: Mapped[str | None] = mapped_column(String(255), nullable=True)
    x: Mapped[float | None] = mapped_column(Float, nullable=True)
    y: Mapped[float | None] = mapped_column(Float, nullable=True)
    z: Mapped[float | None] = mapped_column(Float, nullable=True)

    support_class: Mapped[ClassRecord] = relationship(back_populates="vectors")


class VectorIndexRecord(Base):
    """The vector index a model is searched with (migration 0004; no row: exact flat).

    Written by ``reindex``: the kind (``vectors.INDEX_TYPES``), its parameters (``nlist``,
    ``nprobe``, ``m``, ``candidates`` re-scored exactly) and its recall@100 against brute force.
    """

    __tablename__ = "vector_indexes"
    __table_args__ = (UniqueConstraint("model_id", name="uq_vector_indexes_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(JSON)
    n_vectors: Mapped[int] = mapped_column(BigInteger)
    recall_at_100: Mapped[float | None] = mapped_column(Float, nullable=True)
    recall_queries: Mapped[int | None] = mapped_column(Integer, nullable=True)
    build_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


# -- checksums (migration 0006) ------------------------------------------------------------------


class IndexFileRecord(Base):
    """The FAISS file of a model: its checksum, and the one of the file it replaced.

    Written in its own transaction just before the new file is renamed into place: a crash in
    between leaves the previous file, whose checksum is ``previous_checksum``.
    """

    __tablename__ = "index_files"
    __table_args__ = (UniqueConstraint("model_id", name="uq_index_files_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    path: Mapped[str] = mapped_column(Text)  # relative to the store directory
    checksum: Mapped[str] = mapped_column(String(64))
    previous_checksum: Mapped[str | None] = mapped_column(String(64), nullable=True)
    n_vectors: Mapped[int] = mapped_column(BigInteger)
    written_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)


class DamagedFileRecord(Base):
    """A file the last full ``check`` found damaged; queries refuse the store while any exists."""

    __tablename__ = "damaged_files"
    __table_args__ = (UniqueConstraint("path", name="uq_damaged_files_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(512))  # relative to the store directory
    kind: Mapped[str] = mapped_column(String(16))  # shard | index | model
    detail: Mapped[str] = mapped_column(Text)  # what check said, with the command that repairs
    found_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
