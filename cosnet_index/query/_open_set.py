"""The open-set rule: when is a particle ``unknown``? At a stated loss of named particles (the
default), between the collection's bulk and a class's neighbourhood, or below one threshold.

- ``mixture`` (default): one threshold per class at a loss the user states (``max_lost``, default
  :data:`~cosnet_index.defaults.DEFAULT_MAX_LOST`), estimated from the collection itself without
  labels. For class ``c`` the logits ``b - d`` of the particles whose best class is ``c`` are
  fitted as members plus the rest (:mod:`cosnet_index.query._mixture`); with two modes the
  threshold is the members' ``max_lost`` quantile, and the fit estimates the members lost and the
  novel particles; with one mode the class flags nothing and says so. No class needs to be a
  minority of the collection.
- ``collection``: for class ``c`` the median of its logits over the whole collection
  (``bulk_c``, "no match" on this microscope) and the median over the support's ``neighbours``
  nearest stored particles (the support itself left out: ``near_c``, "a match"); the threshold
  lies ``level`` of the way from one to the other, ``t_c = bulk_c + level * (near_c - bulk_c)``,
  as a probability ``sigmoid(t_c)`` (docs/queries.md, "Open set on the hard benchmark"). A class
  that is the best class of at least :data:`DOMINANT_SHARE` of the collection would be its own
  bulk: its bulk is taken over the other particles instead. Under :data:`MIN_COLLECTION`
  particles the fixed rule is used (``fallback`` says so).
- ``fixed``: ``unknown`` below one threshold (``min_prob``, default
  :data:`~cosnet_index.defaults.DEFAULT_MIN_PROB`, calibrated on the project's own simulator).

A particle gets its most probable class, and ``unknown`` when that probability is below the class's
threshold. Every rule reports a class that holds at least :data:`DOMINANT_SHARE` of the collection
(``dominant``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from cosnet_index.defaults import DEFAULT_MAX_LOST, DEFAULT_RULE, RULE_CHOICES
from cosnet_index.errors import InputError
from cosnet_index.query._mixture import ClassMixture, fit_class_mixture

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_LOST",
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_RULE",
    "DOMINANT_SHARE",
    "MIN_COLLECTION",
    "RULES",
    "OpenSetRule",
    "fit_mixture_rule",
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
"""Collection rule: fewer particles than this, no reliable bulk, the fixed rule is used instead."""

DOMINANT_SHARE = 0.5
"""A class that is the best class of at least this share of the collection dominates it."""

_SELF_LOGIT = 1e-2  # a stored particle within this logit of sigmoid(b) is the support itself
_CLIP = 1e-7  # probabilities clipped to [_CLIP, 1 - _CLIP] before the logit


@dataclass(frozen=True)
class OpenSetRule:
    """The open-set rule a classification used.

    Attributes:
        name: ``mixture``, ``collection`` or ``fixed`` (the rule applied; ``fixed`` also after
            a fallback).
        requested: the rule asked for.
        thresholds: (C,) float32 probability threshold of each class (0 where nothing is flagged).
        near: (C,) logit of the support's neighbourhood (NaN unless ``collection``).
        bulk: (C,) median logit over the collection (NaN unless ``collection``).
        level, neighbours: the collection rule's parameters.
        fallback: why the rule asked for was not applied (None when it was).
        max_lost: the mixture rule's stated loss (None for the other rules).
        mixtures: the mixture rule's fit of each class (empty for the other rules).
        dominant: index of the class that is the best class of at least :data:`DOMINANT_SHARE`
            of the collection (None if none), and ``dominant_share`` its share.
    """

    name: str
    requested: str
    thresholds: np.ndarray
    near: np.ndarray
    bulk: np.ndarray
    level: float
    neighbours: int
    fallback: str | None = None
    max_lost: float | None = None
    mixtures: tuple[ClassMixture, ...] = ()
    dominant: int | None = None
    dominant_share: float = float("nan")

    @property
    def estimated_lost(self) -> float | None:
        """Mixture rule: estimated fraction of all named members lost (None otherwise)."""
        if not self.mixtures:
            return None
        members = np.array([m.estimated_members for m in self.mixtures])
        lost = np.array([m.estimated_lost for m in self.mixtures])
        return float((members * lost).sum() / members.sum()) if members.sum() > 0 else 0.0

    def metadata(self, class_names: tuple[str, ...] | list[str]) -> dict[str, object]:
        """JSON-ready description for a result's metadata: rule, per-class thresholds and
        estimates, why."""
        names = list(class_names)
        fits = dict(zip(names, self.mixtures, strict=True)) if self.mixtures else {}
        return {
            "rule": self.name,
            "rule_requested": self.requested,
            "rule_fallback": self.fallback,
            "thresholds": {
                n: round(float(t), 6) for n, t in zip(names, self.thresholds, strict=True)
            },
            "rule_level": self.level if self.name == "collection" else None,
            "rule_neighbours": self.neighbours if self.name == "collection" else None,
            "max_lost": self.max_lost,
            "estimated_lost": {n: round(m.estimated_lost, 4) for n, m in fits.items()} or None,
            "estimated_novel": {n: round(m.estimated_novel, 1) for n, m in fits.items()} or None,
            "class_modes": {n: m.note for n, m in fits.items()} or None,
            "estimated_lost_overall": (
                None if self.estimated_lost is None else round(self.estimated_lost, 4)
            ),
            "estimated_novel_overall": (
                round(sum(m.estimated_novel for m in fits.values()), 1) if fits else None
            ),
            "dominant_class": None if self.dominant is None else names[self.dominant],
            "dominant_share": None if self.dominant is None else round(self.dominant_share, 4),
        }


def _logits(scores: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(scores, dtype=np.float64), _CLIP, 1.0 - _CLIP))


def _dominant(best: np.ndarray, c: int) -> tuple[int | None, float]:
    """The class that is the best class of at least DOMINANT_SHARE of the particles, if any."""
    if len(best) == 0 or c == 0:
        return None, float("nan")
    share = np.bincount(best, minlength=c) / len(best)
    top = int(share.argmax())
    if share[top] < DOMINANT_SHARE:
        return None, float("nan")
    log.info("open set: class #%d is the best class of %.0f%% of the collection", top,
             100 * share[top])  # fmt: skip
    return top, float(share[top])


def _check_max_lost(max_lost: float) -> None:
    if not 0.0 < max_lost < 0.5:
        raise InputError(f"max_lost must lie strictly between 0 and 0.5, got {max_lost}")


def fit_mixture_rule(
    best: np.ndarray,
    best_logit: np.ndarray,
    n_classes: int,
    bias: float,
    max_lost: float = DEFAULT_MAX_LOST,
    requested: str = "mixture",
) -> OpenSetRule:
    """The mixture rule from each particle's best class and its logit (all a fit needs, so a
    streamed collection can be fitted from two (n,) arrays).

    Args:
        best: (n,) int index of each particle's best class.
        best_logit: (n,) logit ``b - d`` of that class (clipped probabilities' logit).
        n_classes: C.
        bias: the head's bias ``b`` (particles at ``b``, the supports, are left out of the fit).
        max_lost: fraction of each class's members the threshold may lose, in (0, 0.5).
        requested: the rule asked for (recorded).

    Raises:
        InputError: ``max_lost`` out of range, or mismatched arrays.
    """
    _check_max_lost(max_lost)
    best = np.asarray(best, dtype=np.int64)
    z = np.asarray(best_logit, dtype=np.float64)
    if best.shape != z.shape or best.ndim != 1:
        raise InputError(f"best {best.shape} and best_logit {z.shape} must be the same (n,)")
    fits = []
    for j in range(n_classes):
        mine = z[(best == j) & (z < bias - _SELF_LOGIT)]  # the support particles left out
        fits.append(fit_class_mixture(mine, max_lost))
    quiet = [j for j, f in enumerate(fits) if not f.two_modes]
    if quiet:
        log.info("open set: %d of %d classes show no non-member mode and flag nothing",
                 len(quiet), n_classes)  # fmt: skip
    thresholds = expit(np.array([f.threshold for f in fits], dtype=np.float64)).astype(np.float32)
    dominant, share = _dominant(best, n_classes)
    nan = np.full(n_classes, np.nan)
    return OpenSetRule(
        "mixture", requested, thresholds, nan, nan, float("nan"), 0, None,
        float(max_lost), tuple(fits), dominant, share,
    )  # fmt: skip


def fit_open_set_rule(
    scores: np.ndarray,
    bias: float,
    rule: str = DEFAULT_RULE,
    min_prob: float = 0.86,
    level: float = DEFAULT_LEVEL,
    neighbours: int = DEFAULT_NEIGHBOURS,
    max_lost: float = DEFAULT_MAX_LOST,
) -> OpenSetRule:
    """Per-class thresholds for (n, C) class probabilities of a collection.

    Args:
        scores: (n, C) probabilities of every particle of the collection against every class.
        bias: the head's bias ``b`` (a particle at logit ``b``, distance 0, is a support itself).
        rule: ``mixture``, ``collection`` or ``fixed``.
        min_prob: the fixed rule's threshold (also the collection rule's fallback, and its
            threshold for a class whose neighbourhood is no closer than the bulk).
        level: collection rule: 0 = the bulk, 1 = the neighbourhood.
        neighbours: collection rule: nearest particles per class.
        max_lost: mixture rule: fraction of each class's members that may be lost.

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
    _check_max_lost(max_lost)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise InputError(f"scores must be (n, classes), got shape {scores.shape}")
    n, c = scores.shape
    best = scores.argmax(axis=1) if n else np.zeros(0, np.int64)
    if rule == "mixture":
        z_best = _logits(scores[np.arange(n), best]) if n else np.zeros(0)
        return fit_mixture_rule(best, z_best, c, bias, max_lost, rule)
    nan = np.full(c, np.nan)
    fixed = np.full(c, min_prob, dtype=np.float32)
    dominant, share = _dominant(best, c)

    def fixed_rule(why: str | None) -> OpenSetRule:
        return OpenSetRule("fixed", rule, fixed, nan, nan, level, neighbours, why, None, (),
                           dominant, share)  # fmt: skip

    if rule == "fixed":
        return fixed_rule(None)
    if n < MIN_COLLECTION:
        why = f"{n} particles, fewer than {MIN_COLLECTION}: no reliable bulk, fixed rule used"
        log.warning("open set: %s", why)
        return fixed_rule(why)
    z = _logits(scores)  # (n, C)
    bulk = np.median(z, axis=0)
    if dominant is not None and (best != dominant).any():
        # the dominant class's median would be its own members: "no match" is the others
        bulk[dominant] = np.median(z[best != dominant, dominant])
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
    return OpenSetRule("collection", rule, thresholds, near, bulk, level, neighbours, None, None,
                       (), dominant, share)  # fmt: skip


def novelty_scores(scores: np.ndarray, rule: OpenSetRule) -> np.ndarray:
    """(n,) how novel each particle is under ``rule``: ``unknown`` exactly where the score > 0.

    For the mixture rule, the best class's threshold minus the particle's logit in units of the
    class's member spread (``-inf`` for a class that flags nothing); for the collection rule,
    the same in units of the class's span ``near - bulk`` (the bulk scores ``level``, the
    neighbourhood ``level - 1``); for the fixed rule the best probability's logit distance below
    the threshold.
    """
    scores = np.asarray(scores)
    if scores.shape[0] == 0:
        return np.zeros(0)
    best = scores.argmax(axis=1)
    z = _logits(scores[np.arange(len(scores)), best])
    if rule.name == "mixture":
        t = np.array([m.threshold for m in rule.mixtures])
        spread = np.array([m.member_std if m.two_modes else 1.0 for m in rule.mixtures])
        return np.where(np.isfinite(t[best]), (t[best] - z) / spread[best], -np.inf)
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
