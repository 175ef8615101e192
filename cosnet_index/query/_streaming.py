"""Classify a store shard by shard, writing the result table as it goes (memory flat in n).

:func:`~cosnet_index.query.classify_store` holds every vector and the whole table in memory
(about 3 GB at a million vectors). Here the working set is one chunk of one shard
(``chunk_rows`` vectors, default 65,536: 128 MiB of float32 at 512-d, plus its scores and
table rows) whatever the collection's size; the table is written to Parquet chunk by chunk
(a temporary file renamed into place at the end). Same columns, values and metadata as
``classify_store``; rows come in shard order (each tomogram's particles together), not by id.
The particle positions come from the shards, whose rows the catalog lists (``check``).

The open-set rule is ``mixture`` (default) or ``fixed``. The mixture rule needs, of every
particle, only its best class and that class's logit (16 bytes), so a first pass over the shards
collects those, the rule is fitted (:func:`~cosnet_index.query.fit_mixture_rule`) and a second
pass writes the table with its thresholds: twice the scoring time, memory still flat but for
those two (n,) arrays. The collection rule needs every score at once and is not streamed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index.classes import DEFAULT_SET, get_classes
from cosnet_index.errors import InputError
from cosnet_index.query._open_set import (
    DEFAULT_MAX_LOST,
    DEFAULT_RULE,
    OpenSetRule,
    _logits,
    fit_mixture_rule,
    fit_open_set_rule,
)
from cosnet_index.query._scores import DEFAULT_BATCH, DEFAULT_MIN_PROB, DEFAULT_REDUCE, Reduce
from cosnet_index.query._tables import META_KEY, classification_table, mark_support

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["STREAM_ABOVE", "classify_store_streaming", "fit_streamed", "score_chunks"]

STREAM_ABOVE = 1_000_000
"""``cosnet-index classify`` streams stores with more vectors than this (``--stream`` forces it)."""


def classify_store_streaming(
    store: Store,
    out_path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    set_name: str = DEFAULT_SET,
    min_prob: float | None = None,
    reduce: Reduce = DEFAULT_REDUCE,
    batch: int = DEFAULT_BATCH,
    chunk_rows: int = 65_536,
    rule: str | None = None,
    max_lost: float = DEFAULT_MAX_LOST,
) -> tuple[int, dict[str, int], dict[str, Any]]:
    """Classify every subtomogram of the store's model into ``out_path`` (Parquet), streaming.

    ``rule``: ``mixture`` (two passes, at ``max_lost``) or ``fixed`` (``min_prob``, default
    ``DEFAULT_MIN_PROB``); None: ``fixed`` when ``min_prob`` is given, else ``mixture``.

    Returns:
        ``(rows written, class -> count, metadata)``.

    Raises:
        ClassError, StoreError, InputError: as :func:`~cosnet_index.query.classify_store`
            (the output file is left untouched then); InputError also for the collection rule.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosnet_index.files import atomic_write
    from cosnet_index.query._scores import class_scores, classify_scores
    from cosnet_index.query._stored import _check_reachable, _meta, _set_support
    from cosnet_index.store.shards import iter_shard_positions

    out_path = Path(out_path)
    rule = rule or ("fixed" if min_prob is not None else DEFAULT_RULE)
    min_prob = DEFAULT_MIN_PROB if min_prob is None else float(min_prob)
    if rule not in ("mixture", "fixed"):
        raise InputError(f"the {rule} rule needs every score at once: classify in memory")
    if out_path.suffix != ".parquet":
        raise InputError(f"result file {out_path} must end in .parquet; rename it")
    support = get_classes(store, classes, set_name=set_name)
    bias = store.model().head_bias
    _check_reachable(min_prob, bias)
    names = [c.name for c in support]
    prototypes = [c.vectors for c in support]
    marked = _set_support(store, set_name)
    shards = store.shard_listing()
    if not shards:
        raise InputError("the store holds no subtomogram; index some with `cosnet-index index`")

    def scored() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
        """(ids, xyz, scores, tomogram) chunk by chunk, in shard order."""
        for shard, tomogram in shards:
            for ids, xyz, xb in iter_shard_positions(store.path / shard, chunk_rows):
                yield ids, xyz, class_scores(xb, prototypes, bias, reduce, batch), tomogram

    fitted = fit_streamed(
        (scores for _, _, scores, _ in scored()), len(names), bias, rule, min_prob, max_lost
    )
    meta = _meta(
        store,
        "classify",
        tomogram_geometry=store.tomogram_geometry(sorted({name for _, name in shards})),
        set=set_name,
        classes=names,
        shots={c.name: c.shots for c in support},
        min_prob=float(min_prob) if fitted.name == "fixed" else None,
        fixed_min_prob=float(min_prob),
        reduce=reduce,
        head_bias=bias,
        tomograms=None,
        streamed=True,
        **fitted.metadata(names),
    )
    counts: dict[str, int] = {}
    written = 0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path) as tmp:
        writer = None
        try:
            for ids, xyz, scores, tomogram in scored():
                result = classify_scores(scores, names, min_prob, fitted.thresholds)
                locations = pd.DataFrame(
                    {"id": ids, "tomogram": tomogram, "x": xyz[:, 0], "y": xyz[:, 1],
                     "z": xyz[:, 2]}
                )  # fmt: skip
                frame = mark_support(classification_table(result, ids, locations), marked)
                if writer is None:
                    schema = pa.Schema.from_pandas(frame, preserve_index=False)
                    metadata = dict(schema.metadata or {})
                    metadata[META_KEY] = json.dumps(meta, sort_keys=True, default=str).encode()
                    schema = schema.with_metadata(metadata)
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(
                    pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False)
                )
                written += len(frame)
                for name, n in frame["class"].value_counts().items():
                    counts[str(name)] = counts.get(str(name), 0) + int(n)
        finally:
            if writer is not None:
                writer.close()
    return written, counts, meta


def fit_streamed(
    chunks: Iterable[np.ndarray],
    n_classes: int,
    bias: float,
    rule: str,
    min_prob: float,
    max_lost: float,
) -> OpenSetRule:
    """The ``mixture`` or ``fixed`` rule of a collection given as (rows, C) score chunks: the
    mixture keeps each particle's best class and its logit, and is fitted on them."""
    if rule == "fixed":
        return fit_open_set_rule(np.zeros((0, n_classes), np.float32), bias, "fixed", min_prob)
    best, z = [np.zeros(0, np.int64)], [np.zeros(0)]
    for scores in chunks:
        top = scores.argmax(axis=1)
        best.append(top)
        z.append(_logits(scores[np.arange(len(scores)), top]))
    return fit_mixture_rule(np.concatenate(best), np.concatenate(z), n_classes, bias, max_lost)


def score_chunks(
    store: Store,
    prototypes: Sequence[np.ndarray],
    bias: float,
    reduce: Reduce = DEFAULT_REDUCE,
    batch: int = DEFAULT_BATCH,
) -> Iterator[np.ndarray]:
    """(rows, C) scores of the store's whole collection, chunk by chunk: from the in-memory flat
    index when there is one (no copy), else shard by shard."""
    from cosnet_index.query._scores import class_scores
    from cosnet_index.query._search import _flat_view
    from cosnet_index.store.shards import iter_shard_positions

    flat = _flat_view(store.cpu_index())
    if flat is not None:
        xb = flat[1]
        for start in range(0, len(xb), batch):
            yield class_scores(xb[start : start + batch], prototypes, bias, reduce, batch)
        return
    for shard, _ in store.shard_listing():
        for _, _, xb in iter_shard_positions(store.path / shard, batch):
            yield class_scores(xb, prototypes, bias, reduce, batch)
