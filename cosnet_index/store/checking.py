"""``check``: verify that catalog, shards and FAISS index agree, and record the damage found
(queries refuse while any is recorded; ``repair`` and ``reindex`` clear it)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from cosnet_index.files import file_checksum
from cosnet_index.store.shards import (
    read_shard_ids,
)
from cosnet_index.store.store import Store
from cosnet_index.store.tables import (
    DamagedFileRecord,
    IndexFileRecord,
    ModelRecord,
    ShardRecord,
    Subtomogram,
    TomogramRecord,
)
from cosnet_index.store.vectors import index_ids, read_index

__all__ = ["CheckReport", "Damage", "check_store", "record_damage", "recorded_damage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Damage:
    """A file whose bytes are not the ones recorded (or that cannot be read).

    Attributes:
        path: relative to the store directory.
        kind: ``shard``, ``index`` or ``model``.
        detail: what is wrong and the command that repairs it (one line).
    """

    path: str
    kind: str
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check_store`.

    Attributes:
        counts: per model hash (16 chars): ``{"rows": .., "shard_rows": .., "index_ntotal": ..}``.
        problems: one line per difference found (empty: the store is consistent).
        damaged: the damaged files among the problems (each with its repair).
        notes: facts that are not problems (files without a checksum yet).
        quick: checksums were not verified (``check --quick``).
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    damaged: tuple[Damage, ...] = ()
    notes: tuple[str, ...] = ()
    quick: bool = False

    @property
    def ok(self) -> bool:
        """No difference found."""
        return not self.problems


def check_store(store: Store, *, quick: bool = False) -> CheckReport:
    """Verify that catalog rows, Parquet shards and FAISS index agree, id by id, and that every
    file still has the checksum recorded when it was written.

    For every model: each shard file exists, has the recorded checksum, as many rows as the
    catalog says and the same ids in the same order; the index file has its recorded checksum
    (or the one before: a run killed between the record and the rename) and holds exactly the
    model's ids; the model file has its recorded checksum; no file in ``shards/`` lacks a
    catalog row. ``quick`` skips the checksums (reading every byte). Reads only.
    """
    problems: list[str] = []
    damaged: list[Damage] = []
    counts: dict[str, dict[str, int]] = {}
    no_checksum: dict[str, list[str]] = {"shard": [], "index": [], "model": []}
    with store.session() as session:
        models = session.scalars(select(ModelRecord).order_by(ModelRecord.id)).all()
        shards = session.scalars(select(ShardRecord).order_by(ShardRecord.id)).all()
        tomograms = {t.id: t for t in session.scalars(select(TomogramRecord)).all()}
        index_files = {r.model_id: r for r in session.scalars(select(IndexFileRecord)).all()}
        rows_by_shard: dict[int, np.ndarray] = {}
        for shard_id, ids in _ids_by_shard(session):
            rows_by_shard[shard_id] = ids
    repair = f"`cosnet-index repair --store {store.path}`"

    def damage(path: str, kind: str, detail: str) -> None:
        problems.append(detail)
        damaged.append(Damage(path, kind, detail))

    known_files = {store.path / s.path for s in shards}
    for model in models:
        short = model.weights_hash[:16]
        model_file = store.path / model.checkpoint
        if not model_file.is_file():
            damage(
                model.checkpoint,
                "model",
                f"model file {model.checkpoint} is missing; {repair} copies it again from "
                f"{model.source_path} if that file is unchanged",
            )
        elif model.checksum is None:
            no_checksum["model"].append(model.checkpoint)
        elif not quick and file_checksum(model_file) != model.checksum:
            damage(
                model.checkpoint,
                "model",
                f"model file {model.checkpoint} is damaged (its checksum differs from the one "
                f"recorded at `init`); {repair} restores it from {model.source_path} if that "
                f"file is unchanged, else copy the original checkpoint (weights hash "
                f"{model.weights_hash[:12]}) to {model_file}",
            )
        model_ids = []
        shard_rows = 0
        for shard in (s for s in shards if s.model_id == model.id):
            db_ids = rows_by_shard.get(shard.id, np.zeros(0, np.int64))
            model_ids.append(db_ids)
            path = store.path / shard.path
            tomogram = tomograms.get(shard.tomogram_id)
            whose = (
                f"its {len(db_ids)} vectors of tomogram {tomogram.name if tomogram else '?'}"
                f" must be embedded again: {repair} re-embeds exactly them from "
                f"{tomogram.path if tomogram else 'the tomogram'}"
            )
            if not path.is_file():
                damage(shard.path, "shard", f"shard {shard.path} is missing; {whose}")
                continue
            if shard.checksum is None:
                no_checksum["shard"].append(shard.path)
            elif not quick and file_checksum(path) != shard.checksum:
                damage(
                    shard.path,
                    "shard",
                    f"shard {shard.path} is damaged (its checksum differs from the one recorded "
                    f"when it was committed); {whose}",
                )
                continue
            try:
                file_ids = read_shard_ids(path)
            except Exception as exc:
                damage(shard.path, "shard", f"shard {shard.path} is unreadable ({exc}); {whose}")
                continue
            shard_rows += len(file_ids)
            if len(file_ids) != shard.n_rows or len(file_ids) != len(db_ids):
                problems.append(
                    f"shard {shard.path} has {len(file_ids)} rows; the catalog says "
                    f"{shard.n_rows} (shard record) and {len(db_ids)} (subtomogram rows)"
                )
            elif not np.array_equal(file_ids, db_ids):
                problems.append(f"shard {shard.path}: ids differ from the catalog's")
        all_ids = np.sort(np.concatenate(model_ids)) if model_ids else np.zeros(0, np.int64)
        path = store.index_path(model.weights_hash)
        relative = path.relative_to(store.path).as_posix()
        reindex_hint = (
            f"rebuild it from the shards with `cosnet-index reindex --store {store.path}` "
            f"(or {repair})"
        )
        index_ntotal = -1
        record = index_files.get(model.id)
        if path.exists() and record is None:
            no_checksum["index"].append(relative)
        elif path.exists() and not quick:
            assert record is not None
            if file_checksum(path) not in (record.checksum, record.previous_checksum):
                damage(
                    relative,
                    "index",
                    f"index {relative} is damaged (its checksum differs from the one recorded "
                    f"when it was written); {reindex_hint}",
                )
                path = None  # type: ignore[assignment]  # not read: counts stay 0
        if path is not None and path.exists():
            try:
                index = read_index(path)
                index_ntotal = int(index.ntotal)
                have = np.sort(index_ids(index))
                if len(have) != len(all_ids) or not np.array_equal(have, all_ids):
                    problems.append(
                        f"index {path.name} holds {len(have)} vectors, the catalog {len(all_ids)}"
                        f" ({len(np.setdiff1d(all_ids, have))} missing, "
                        f"{len(np.setdiff1d(have, all_ids))} unknown); run `cosnet-index reindex`"
                    )
            except Exception as exc:
                damage(relative, "index", f"index {relative} is unreadable ({exc}); {reindex_hint}")
        elif path is not None and len(all_ids):
            problems.append(
                f"index {path.name} is missing for {len(all_ids)} vectors; "
                "run `cosnet-index reindex`"
            )
        counts[short] = {
            "rows": len(all_ids),
            "shard_rows": shard_rows,
            "index_ntotal": max(index_ntotal, 0),
        }
    shard_root = store.path / "shards"
    if shard_root.is_dir():
        for path in sorted(shard_root.rglob("*")):
            if path.is_file() and path not in known_files:
                problems.append(
                    f"{path.relative_to(store.path)} is not in the catalog (left by an interrupted "
                    "run; the next `index` removes it)"
                )
    notes = []
    if any(no_checksum.values()):
        what = ", ".join(f"{len(p)} {kind} file(s)" for kind, p in no_checksum.items() if p)
        names = [p for paths in no_checksum.values() for p in paths]
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        notes.append(
            f"{what} have no checksum yet ({listed}; written before schema revision 0006): "
            "damage to them "
            f"cannot be found; record their checksums with {repair} (it trusts the files as they "
            "are now: run it when `check` shows no problem)"
        )
    if quick:
        notes.append("checksums not verified (--quick)")
    return CheckReport(
        counts=counts,
        problems=tuple(problems),
        damaged=tuple(damaged),
        notes=tuple(notes),
        quick=quick,
    )


def recorded_damage(store: Store) -> dict[str, str]:
    """``path -> detail`` of the damage the last full ``check`` recorded (empty: none)."""
    with store.session() as session:
        return {r.path: r.detail for r in session.scalars(select(DamagedFileRecord)).all()}


def record_damage(store: Store, report: CheckReport) -> bool:
    """Make ``damaged_files`` hold the damage of a full ``report`` (queries refuse while any).

    Writes only when the recorded damage differs (a healthy store stays byte-for-byte as it
    was). Returns whether it wrote.
    """
    from sqlalchemy import delete

    if report.quick:
        return False
    want = {d.path: d for d in report.damaged}
    if recorded_damage(store) == {p: d.detail for p, d in want.items()}:
        return False
    with store.session() as session:
        session.execute(delete(DamagedFileRecord))
        for damage in report.damaged:
            session.add(DamagedFileRecord(path=damage.path, kind=damage.kind, detail=damage.detail))
    store._damage_clear = not want
    return True


def _ids_by_shard(session: Any) -> list[tuple[int, np.ndarray]]:
    result = session.execute(
        select(Subtomogram.shard_id, Subtomogram.row, Subtomogram.id).order_by(
            Subtomogram.shard_id, Subtomogram.row
        )
    ).all()
    if not result:
        return []
    arr = np.asarray(result, dtype=np.int64)  # (n, 3)
    out = []
    for shard_id in np.unique(arr[:, 0]):
        part = arr[arr[:, 0] == shard_id]
        out.append((int(shard_id), part[:, 2]))
    return out


@contextlib.contextmanager
def _damage_allowed(store: Store) -> Iterator[None]:
    """Let a repairing writer read a store whose last check found damage."""
    before = store.allow_damaged
    store.allow_damaged = True
    try:
        yield
    finally:
        store.allow_damaged = before


def _refuse_damaged_shards(store: Store) -> None:
    """Refuse to rebuild from shards that the last check found damaged."""
    from cosnet_index.errors import StoreDamagedError

    with store.session() as session:
        shards = session.scalars(
            select(DamagedFileRecord.path).where(DamagedFileRecord.kind == "shard")
        ).all()
    if shards:
        raise StoreDamagedError(
            f"the last `cosnet-index check` found damaged shards ({', '.join(shards[:3])}); the "
            f"index is rebuilt from the shards, so repair them first: `cosnet-index repair "
            f"--store {store.path}`"
        )


def _forget_damage(store: Store, paths: list[str]) -> None:
    """Drop the damage records of files just rewritten."""
    from sqlalchemy import delete

    with store.session() as session:
        session.execute(delete(DamagedFileRecord).where(DamagedFileRecord.path.in_(paths)))
    store._damage_clear = False  # look again at the next query
