"""The settings a stored tomogram was indexed with (voxel size, contrast, box rule, picking
method): read by the indexer's plan, which refuses a re-index with others, and by
``tomograms list``. Its own module so that the indexer does not import ``tomograms.py``, which
imports the indexer's commit step.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from cosnet_index.store.store import Store
from cosnet_index.store.tables import ShardRecord, TomogramRecord

__all__ = ["TomogramSettings", "tomogram_settings"]


@dataclass(frozen=True)
class TomogramSettings:
    """What a tomogram was indexed with: re-indexing it with other settings is refused.

    Attributes:
        voxel_size_angstrom: the voxel size its boxes were cut at.
        invert_contrast: its boxes were negated (``--invert-contrast``).
        edge: the box rule (``skip`` or ``pad``).
        pick_method: ``dog`` or ``decoder`` for picked candidates, ``None`` for coordinates.
    """

    voxel_size_angstrom: float
    invert_contrast: bool
    edge: str
    pick_method: str | None


def tomogram_settings(store: Store, name: str) -> TomogramSettings | None:
    """The settings tomogram ``name`` was indexed with (None: not in the store, or no part).

    The voxel size is the tomogram row's; contrast and box rule are its first shard part's
    (every part has the same: a re-index with others is refused); the picking method is read
    from that part's ``pick_method`` column (none: coordinates).
    """
    from cosnet_index.store.shards import read_shard_column

    with store.session() as session:
        record = session.scalars(select(TomogramRecord).where(TomogramRecord.name == name)).first()
        if record is None:
            return None
        shards = session.scalars(
            select(ShardRecord).where(ShardRecord.tomogram_id == record.id).order_by(ShardRecord.id)
        ).all()
    if not shards:
        return None
    pick_method = None
    for shard in shards:  # the first part with rows (a tomogram's first part may be empty)
        values = read_shard_column(store.path / shard.path, "pick_method")
        if values is None:
            break
        if len(values):
            pick_method = str(values[0])
            break
    return TomogramSettings(
        voxel_size_angstrom=float(record.voxel_size_angstrom),
        invert_contrast=bool(shards[0].invert_contrast),
        edge=str(shards[0].edge),
        pick_method=pick_method,
    )
