"""The embedding store: SQL catalog (SQLAlchemy + Alembic), Parquet shards, FAISS index.

See ``docs/store.md`` for the directory layout, the schema and the atomicity promises.
"""

from __future__ import annotations

from cosnet_index.store._inputs import read_tomogram_headers
from cosnet_index.store.checking import CheckReport, check_store
from cosnet_index.store.indexer import IndexSummary, index_tomograms, remove_partial_files
from cosnet_index.store.maintenance import reindex, store_stats
from cosnet_index.store.store import Store
from cosnet_index.store.vectors import INDEX_TYPES

__all__ = [
    "INDEX_TYPES",
    "CheckReport",
    "IndexSummary",
    "Store",
    "check_store",
    "index_tomograms",
    "read_tomogram_headers",
    "reindex",
    "remove_partial_files",
    "store_stats",
]
