"""Defaults shared by the library and the CLI, declared once.

This module imports nothing, so that ``cosnet-index --help`` can show these values without
importing torch, faiss or SQLAlchemy. The code that owns a default re-exports it under its
usual name (``cosnet_index.query.DEFAULT_MIN_PROB``, ``cosnet_index.classes.DEFAULT_SET``).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_DISCOVER_MIN_PROB",
    "DEFAULT_DISCOVER_MIN_SIZE",
    "DEFAULT_MIN_PROB",
    "DEFAULT_REDUCE",
    "DEFAULT_RULE",
    "DEFAULT_SET",
    "REDUCE_CHOICES",
    "RULE_CHOICES",
    "UNKNOWN",
]

# Best-class probability below which a subtomogram is 'unknown' (classify --min-prob), and at
# which a search hit passes (search --pass-prob) or two subtomograms match (discover --min-prob).
DEFAULT_MIN_PROB = 0.86

# The label of a subtomogram whose best class probability is below the threshold (open set).
UNKNOWN = "unknown"

# How the K shots of a class combine: the nearest shot ("max") or the mean probability.
REDUCE_CHOICES = ("max", "mean")
DEFAULT_REDUCE = "max"

# The class set used when none is named.
DEFAULT_SET = "default"

# The open-set rule of classify (and of discover --exclude-known): per-class thresholds fitted on
# the collection ("collection", cosnet_index/query/_open_set.py) or DEFAULT_MIN_PROB ("fixed").
RULE_CHOICES = ("collection", "fixed")
DEFAULT_RULE = "collection"

# discover: head probability at which two subtomograms match, and the smallest candidate; chosen
# on the hard benchmark's discovery table (bench/open_set_hard.py discovery; docs/queries.md).
DEFAULT_DISCOVER_MIN_PROB = 0.4
DEFAULT_DISCOVER_MIN_SIZE = 5
