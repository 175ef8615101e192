"""Alembic environment and revisions of the cosnet-index catalog.

Installed as ``cosnet_index.migrations``. Use ``cosnet-index db upgrade``; see
:mod:`cosnet_index.store.schema`.
"""
