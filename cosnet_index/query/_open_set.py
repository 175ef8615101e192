"""The open-set rule: when is a particle ``unknown``? A fixed threshold, or one fitted per class
on the collection itself.

- ``fixed``: a particle is ``unknown`` when its best class probability is below one threshold
  (``min_prob``, default :data:`~cosnet_index.defaults.DEFAULT_MIN_PROB`, calibrated on the
  project's own simulator).
- ``collection`` (default): one threshold per class, fitted on the collection being classified.
  A collection is mostly *not* a match of any one class, so for class ``c`` the median of its
  scores over the whole collection (``bulk_c``) says what "no match" looks like on this
  microscope, and the support's own neighbourhood (the median of its ``neighbours`` nearest stored
  particles, the support particle itself left out: ``near_c``) says what a match looks like.
  The threshold lies ``level`` of the way from ``bulk_c`` up to ``near_c``, on the head's logit
  ``b - d`` (for the ``max`` reduction exactly minus the L1 distance to the nearest shot, plus b):
  ``t_c = bulk_c + level * (near_c - bulk_c)``, as a probability ``sigmoid(t_c)``. Both ends move
  with the imaging, so the threshold follows a change of microscope that a fixed one misses
  (measured in docs/queries.md, "Open set on the hard benchmark").

A particle gets its most probable class, and ``unknown`` when that probability is below the class's
threshold. Collections with fewer than :data:`MIN_COLLECTION` particles have no reliable bulk: the
fixed rule is used (``fallback`` says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from cosnet_index.defaults import DEFAULT_RULE, RULE_CHOICES
from cosnet_index.errors import InputError

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_RULE",
    "MIN_COLLECTION",
    "RULES",
    "OpenSetRule",
    "fit_open_set_rule",
    "novelty_scores",
    "unknown_mask",
]

log = logging.getLogger(__name__)

RULES = RULE_CHOICES

DEFAULT_LEVEL = 0.80
"""Where the threshold lies between the collection's bulk (0) and a class's near neighbourhood (1);
chosen on the hard benchmark's tuning seed (docs/queries.md)."""

DEFAULT_NEIGHBOURS = 10
"""Nearest stored particles of a class's support that describe what a match looks like."""

MIN_COLLECTION = 50
"""Fewer particles than this: no reliable bulk, the fixed rule is used instead."""

_SELF_LOGIT = 1e-2  # a stored particle within this logit of sigmoid(b) is the support itself
_CLIP = 1e-7  # probabilities clipped to [_CLIP, 1 - _CLIP] before the logit


@dataclass(frozen=True)
class OpenSetRule:
    """The open-set rule a classification used.

    Attributes:
        name: ``collection`` or ``fixed`` (the rule applied; ``fixed`` also after a fallback).
        requested: the rule asked for.
        thresholds: (C,) float32 probability threshold of each class.
        near: (C,) logit of the support's neighbourhood (NaN for ``fixed``).
        bulk: (C,) median logit over the collection (NaN for ``fixed``).
        level, neighbours: the collection rule's parameters.
        fallback: why the rule asked for was not applied (None when it was).
    """

    name: str
    requested: str
    thresholds: np.ndarray
    near: np.ndarray
    bulk: np.ndarray
    level: float
    neighbours: int
    fallback: str | None = None

    def metadata(self, class_names: tuple[str, ...] | list[str]) -> dict[str, object]:
        """JSON-ready description for a result's metadata: rule, per-class thresholds, why."""
        return {
            "rule": self.name,
            "rule_requested": self.requested,
            "rule_fallback": self.fallback,
            "thresholds": {
                n: round(float(t), 6) for n, t in zip(class_names, self.thresholds, strict=True)
            },
            "rule_level": self.level if self.name == "collection" else None,
            "rule_neighbours": self.neighbours if self.name == "collection" else None,
        }


def _logits(scores: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(scores, dtype=np.float64), _CLIP, 1.0 - _CLIP))


def fit_open_set_rule(
    scores: np.ndarray,
    bias: float,
    rule: str = DEFAULT_RULE,
    min_prob: float = 0.86,
    level: float = DEFAULT_LEVEL,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> OpenSetRule:
    """Per-class thresholds for (n, C) class probabilities of a collection.

    Args:
        scores: (n, C) probabilities of every particle of the collection against every class.
        bias: the head's bias ``b`` (a particle at logit ``b``, distance 0, is a support itself).
        rule: ``collection`` or ``fixed``.
        min_prob: the fixed rule's threshold (also used on fallback, and for a class whose
            neighbourhood is no closer than the bulk).
        level: collection rule: 0 = the bulk, 1 = the neighbourhood.
        neighbours: collection rule: nearest particles per class.

    Returns:
        :class:`OpenSetRule`.

    Raises:
        InputError: unknown rule, or parameters out of range.
    """
    if rule not in RULES:
        raise InputError(f"unknown open-set rule {rule!r}: use one of {', '.join(RULES)}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must lie strictly between 0 and 1, got {level}")
    if neighbours < 1:
        raise InputError(f"neighbours must be >= 1, got {neighbours}")
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"scores must be (n, classes), got shape {scores.shape}")
    n, c = scores.shape
    nan = np.full(c, np.nan)
    fixed = np.full(c, min_prob, dtype=np.float32)

    def fixed_rule(why: str | None) -> OpenSetRule:
        return OpenSetRule("fixed", rule, fixed, nan, nan, level, neighbours, why)

    if rule == "fixed":
        return fixed_rule(None)
    if n < MIN_COLLECTION:
        why = f"{n} particles, fewer than {MIN_COLLECTION}: no reliable bulk, fixed rule used"
        log.warning("open set: %s", why)
        return fixed_rule(why)
    z = _logits(scores)  # (n, C)
    bulk = np.median(z, axis=0)
    near = np.empty(c)
    for j in range(c):
        others = z[:, j][z[:, j] < bias - _SELF_LOGIT]  # the support particle itself left out
        k = min(neighbours, len(others))
        near[j] = np.median(np.partition(others, len(others) - k)[-k:]) if k else bulk[j]
    t = bulk + level * (near - bulk)
    thresholds = expit(t).astype(np.float32)
    flat = near <= bulk
    if flat.any():
        log.warning("open set: %d classes have no neighbourhood closer than the bulk: fixed "
                    "threshold %.3g for them", int(flat.sum()), min_prob)  # fmt: skip
        thresholds[flat] = min_prob
    return OpenSetRule("collection", rule, thresholds, near, bulk, level, neighbours, None)


def novelty_scores(scores: np.ndarray, rule: OpenSetRule) -> np.ndarray:
    """(n,) how novel each particle is under ``rule``: ``unknown`` exactly where the score > 0.

    For the collection rule, the best class's threshold minus its logit in units of the class's
    span ``near - bulk`` (the bulk scores ``level``, the neighbourhood ``level - 1``); for the
    fixed rule the best probability's logit distance below the threshold.
    """
    scores = np.asarray(scores)
    if scores.shape[0] == 0:
        return np.zeros(0)
    best = scores.argmax(axis=1)
    z = _logits(scores[np.arange(len(scores)), best])
    if rule.name == "fixed":
        return _logits(rule.thresholds[best]) - z
    span = rule.near - rule.bulk
    flat = ~(span > 0)
    span = np.where(flat, 1.0, span)
    out = rule.level - (z - rule.bulk[best]) / span[best]
    fixed_part = _logits(rule.thresholds[best]) - z
    return np.where(flat[best], fixed_part, out)


def unknown_mask(scores: np.ndarray, rule: OpenSetRule) -> np.ndarray:
    """(n,) bool: the particle is ``unknown`` under ``rule`` (best probability below its best
    class's threshold), exactly as :func:`~cosnet_index.query.classify_scores` decides."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape[0] == 0:
        return np.zeros(0, bool)
    best = scores.argmax(axis=1)
    return scores[np.arange(len(scores)), best] < rule.thresholds[best]
