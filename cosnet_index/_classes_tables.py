"""Catalog tables of support classes (migration ``0002``): class sets, classes, support vectors.

A *class set* is a namespace of classes (``default`` unless ``--set`` names another), so a user can
keep several support sets side by side and switch between them; class names are unique within a
set. A class belongs to one model (the store's model when it was made) and holds its K support
vectors (shots) as float32 blobs, with where each came from: a stored subtomogram (its vector is
copied, nothing is recomputed), an MRC box file, or a position in a tomogram.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cosnet_index.store.tables import Base

__all__ = ["ClassRecord", "ClassSetRecord", "SupportVectorRecord"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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
