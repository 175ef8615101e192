"""Defaults shared by the library and the CLI, declared once.

This module imports nothing, so that ``cosnet-index --help`` can show these values without
importing torch, faiss or SQLAlchemy. The code that owns a default re-exports it under its
usual name (``cosnet_index.query.DEFAULT_MIN_PROB``, ``cosnet_index.classes.DEFAULT_SET``).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_DISCOVER_MIN_PROB",
    "DEFAULT_DISCOVER_MIN_SIZE",
    "DEFAULT_MAX_LOST",
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

# The open-set rule of classify, of search's pass decision and of discover --exclude-known
# (cosnet_index/query/_open_set.py): per-class thresholds at a stated loss of named particles,
# fitted on the collection ("mixture"); the bulk-to-neighbourhood thresholds of issue 20
# ("collection"); or DEFAULT_MIN_PROB for every class ("fixed").
RULE_CHOICES = ("mixture", "collection", "fixed")
DEFAULT_RULE = "mixture"

# The mixture rule: the fraction of each named class's particles the user accepts to lose to
# `unknown` (classify --max-lost). A class whose scores show no second mode flags nothing.
DEFAULT_MAX_LOST = 0.05

# discover: head probability at which two subtomograms match, and the smallest candidate; chosen
# on the hard benchmark's discovery table (bench/open_set_hard.py discovery; docs/queries.md).
DEFAULT_DISCOVER_MIN_PROB = 0.4
DEFAULT_DISCOVER_MIN_SIZE = 5
