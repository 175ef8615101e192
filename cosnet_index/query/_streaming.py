"""Classify a store shard by shard, writing the result table as it goes (memory flat in n).

:func:`~cosnet_index.query.classify_store` holds every vector and the whole table in memory
(about 3 GB at a million vectors). Here the working set is one chunk of one shard
(``chunk_rows`` vectors, default 65,536: 128 MiB of float32 at 512-d, plus its scores and
table rows) whatever the collection's size; the table is written to Parquet chunk by chunk
(a temporary file renamed into place at the end). Same columns, values and metadata as
``classify_store``; rows come in shard order (each tomogram's particles together), not by id.
The particle positions come from the shards, whose rows the catalog lists (``check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cosnet_index.classes import DEFAULT_SET, get_classes
from cosnet_index.errors import InputError
from cosnet_index.query._scores import DEFAULT_BATCH, DEFAULT_MIN_PROB, DEFAULT_REDUCE, Reduce
from cosnet_index.query._tables import META_KEY, classification_table, mark_support

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["STREAM_ABOVE", "classify_store_streaming"]

STREAM_ABOVE = 1_000_000
"""``cosnet-index classify`` streams stores with more vectors than this (``--stream`` forces it)."""


def classify_store_streaming(
    store: Store,
    out_path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    set_name: str = DEFAULT_SET,
    min_prob: float = DEFAULT_MIN_PROB,
    reduce: Reduce = DEFAULT_REDUCE,
    batch: int = DEFAULT_BATCH,
    chunk_rows: int = 65_536,
) -> tuple[int, dict[str, int], dict[str, Any]]:
    """Classify every subtomogram of the store's model into ``out_path`` (Parquet), streaming.

    Returns:
        ``(rows written, class -> count, metadata)``.

    Raises:
        ClassError, StoreError, InputError: as :func:`~cosnet_index.query.classify_store`
            (the output file is left untouched then).
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosnet_index.files import atomic_write
    from cosnet_index.query._scores import classify
    from cosnet_index.query._stored import _check_reachable, _meta, _set_support
    from cosnet_index.store.shards import iter_shard_positions

    out_path = Path(out_path)
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
    meta = _meta(
        store,
        "classify",
        tomogram_geometry=store.tomogram_geometry(sorted({name for _, name in shards})),
        set=set_name,
        classes=names,
        shots={c.name: c.shots for c in support},
        min_prob=float(min_prob),
        reduce=reduce,
        head_bias=bias,
        tomograms=None,
        streamed=True,
        rule="fixed",  # the collection rule needs every distance at once (query/_open_set.py)
        thresholds={name: float(min_prob) for name in names},
    )
    counts: dict[str, int] = {}
    written = 0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_path) as tmp:
        writer = None
        try:
            for shard, tomogram in shards:
                for ids, xyz, xb in iter_shard_positions(store.path / shard, chunk_rows):
                    result = classify(xb, prototypes, bias, names, min_prob, reduce, batch)
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
