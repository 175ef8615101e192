"""Members against the rest: one class's scores as a two-component Gaussian mixture.

The ``mixture`` open-set rule (:mod:`cosnet_index.query._open_set`, the default) looks, for each
class ``c``, at the head logits ``z = b - d`` of the particles whose best class is ``c`` (the
only ones its threshold decides; the support particles themselves, at ``z = b``, left out).
If the collection holds particles of ``c`` and novel particles that landed nearest to ``c``,
those logits have two modes: the members high, the rest lower. :func:`fit_class_mixture` fits
one Gaussian and two Gaussians by EM (a few deterministic starts, variances floored) and keeps two
only when the data ask for them:

- the Bayesian information criterion prefers two components, and the likelihood ratio is at
  least :data:`MIN_RATIO`,
- they are separated: Ashman's ``D = sqrt(2) |mu_m - mu_o| / sqrt(s_m^2 + s_o^2)`` at least
  :data:`MIN_SEPARATION` (2: two equal Gaussians show two modes only above ``D = 2``),
- the fitted density has a dip between them (:data:`MAX_DIP`): a long tail is not a mode,
- the lower one holds at least :data:`MIN_OTHERS` particles.

With two modes the threshold is the members' ``max_lost`` quantile, ``t = mu_m + s_m *
Phi^-1(max_lost)``: an estimated ``max_lost`` of the members is lost, and ``w_o * n`` particles
are estimated to be novel. With one mode (or fewer than :data:`MIN_PARTICLES` particles) the
class flags nothing, and the fit says why: no silent loss in a collection of named molecules.
Nothing here assumes a class is a minority of the collection: a class with 80% of the
particles is fitted on its own members like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from cosnet_index.errors import InputError

__all__ = [
    "MAX_DIP",
    "MIN_OTHERS",
    "MIN_PARTICLES",
    "MIN_RATIO",
    "MIN_SEPARATION",
    "ClassMixture",
    "fit_class_mixture",
]

MIN_SEPARATION = 2.0
"""Ashman's D below which two fitted components count as one mode."""

MIN_OTHERS = 3.0
"""Fewest particles (estimated) in the lower component for it to count as a non-member mode."""

MIN_RATIO = 16.8
"""Smallest likelihood-ratio statistic (two components against one) that counts as a second
mode, whatever BIC says: about the 99th percentile of chi-square with 6 degrees of freedom, so
that a few dozen particles of one class rarely look like two modes by chance."""

MAX_DIP = 0.8
"""The fitted density between the two means must fall to at most this share of its lower peak."""

MIN_PARTICLES = 8
"""Fewer particles of a class than this: no mixture is fitted and nothing is flagged."""

_STARTS = (0.2, 0.35, 0.5, 0.65, 0.8)  # EM starts: split the sorted logits at these quantiles
_ITERATIONS = 300
_TOL = 1e-9
_VAR_FLOOR = 1e-3  # component variance >= this x the class's variance (and >= _VAR_ABS)
_VAR_ABS = 1e-8


@dataclass(frozen=True)
class ClassMixture:
    """One class's fit: its two modes, or why there is one.

    Attributes:
        n: particles fitted (best class this one, support particles left out).
        two_modes: a non-member mode was found (the class flags particles).
        member_mean, member_std: the members' (upper) component, in logits.
        other_mean, other_std, other_weight: the lower component (NaN, NaN, 0 with one mode).
        separation: Ashman's D of the two-component fit (NaN when none was fitted).
        threshold: logit below which a particle is ``unknown`` (``-inf``: nothing flagged).
        estimated_lost: estimated fraction of the members below ``threshold``.
        estimated_novel: estimated number of non-member particles (``other_weight * n``).
        note: why the class flags nothing, or ``"two modes"``.
    """

    n: int
    two_modes: bool
    member_mean: float
    member_std: float
    other_mean: float
    other_std: float
    other_weight: float
    separation: float
    threshold: float
    estimated_lost: float
    estimated_novel: float
    note: str

    @property
    def estimated_members(self) -> float:
        """Estimated number of members among the ``n`` particles."""
        return (1.0 - self.other_weight) * self.n


def _one_mode(z: np.ndarray, note: str, separation: float = float("nan")) -> ClassMixture:
    mean = float(z.mean()) if len(z) else float("nan")
    std = float(z.std()) if len(z) else float("nan")
    nan = float("nan")
    return ClassMixture(len(z), False, mean, std, nan, nan, 0.0, separation, -math.inf, 0.0, 0.0,
                        note)  # fmt: skip


def _em(z: np.ndarray, split: float, floor: float) -> tuple[np.ndarray, float]:
    """Two-Gaussian EM from the split of ``z`` at ``split``; ``([w_lo, m_lo, v_lo, m_hi, v_hi],
    log-likelihood)``."""
    lo = z <= split
    if lo.all() or not lo.any():
        return np.full(5, np.nan), -math.inf
    w = lo.mean()
    m = np.array([z[lo].mean(), z[~lo].mean()])
    v = np.maximum(np.array([z[lo].var(), z[~lo].var()]), floor)
    weights = np.array([w, 1.0 - w])
    previous = -math.inf
    ll = -math.inf
    for _ in range(_ITERATIONS):
        log_p = (
            np.log(np.maximum(weights, 1e-300))
            - 0.5 * (z[:, None] - m) ** 2 / v
            - 0.5 * np.log(2.0 * math.pi * v)
        )  # (n, 2)
        total = np.logaddexp(log_p[:, 0], log_p[:, 1])  # (n,)
        ll = float(total.sum())
        r = np.exp(log_p - total[:, None])  # (n, 2) responsibilities
        mass = r.sum(axis=0)
        if (mass < 1e-9).any():
            return np.full(5, np.nan), -math.inf
        weights = mass / len(z)
        m = (r * z[:, None]).sum(axis=0) / mass
        v = np.maximum((r * (z[:, None] - m) ** 2).sum(axis=0) / mass, floor)
        if ll - previous < _TOL * max(1.0, abs(ll)):
            break
        previous = ll
    order = np.argsort(m)  # lower component first
    w_lo = weights[order[0]]
    return np.array([w_lo, m[order[0]], v[order[0]], m[order[1]], v[order[1]]]), ll


def _has_dip(w_o: float, m_o: float, v_o: float, m_m: float, v_m: float) -> bool:
    """Whether the fitted density has two modes: a minimum between the two means at most
    :data:`MAX_DIP` of the lower of the two peaks around it."""
    grid = np.linspace(m_o, m_m, 257)
    density = w_o * norm.pdf(grid, m_o, math.sqrt(v_o)) + (1.0 - w_o) * norm.pdf(
        grid, m_m, math.sqrt(v_m)
    )
    i = int(density.argmin())
    if i in (0, len(grid) - 1):
        return False
    return bool(density[i] <= MAX_DIP * min(density[:i].max(), density[i:].max()))


def fit_class_mixture(z: np.ndarray, max_lost: float) -> ClassMixture:
    """Fit one class's logits and place its threshold at the members' ``max_lost`` quantile.

    Args:
        z: (n,) head logits ``b - d`` of the particles whose best class is this one (support
            particles left out).
        max_lost: fraction of the members the threshold may lose, in (0, 0.5).

    Returns:
        :class:`ClassMixture`.

    Raises:
        InputError: ``max_lost`` out of range, or ``z`` not finite.
    """
    if not 0.0 < max_lost < 0.5:
        raise InputError(f"max_lost must lie strictly between 0 and 0.5, got {max_lost}")
    z = np.asarray(z, dtype=np.float64).ravel()
    if not np.isfinite(z).all():
        raise InputError("logits hold NaN or infinite values; clip the probabilities first")
    n = len(z)
    if n < MIN_PARTICLES:
        return _one_mode(z, f"{n} particles, fewer than {MIN_PARTICLES}: nothing flagged")
    var = float(z.var())
    if var <= _VAR_ABS:
        return _one_mode(z, "one mode (all scores equal): nothing flagged")
    floor = max(_VAR_FLOOR * var, _VAR_ABS)
    one_ll = float(norm.logpdf(z, z.mean(), math.sqrt(var)).sum())
    best, best_ll = np.full(5, np.nan), -math.inf
    ordered = np.sort(z)
    for q in _STARTS:
        params, ll = _em(z, float(ordered[int(q * (n - 1))]), floor)
        if ll > best_ll:
            best, best_ll = params, ll
    if not math.isfinite(best_ll):
        return _one_mode(z, "one mode (no two-component fit): nothing flagged")
    w_o, m_o, v_o, m_m, v_m = (float(x) for x in best)
    separation = math.sqrt(2.0) * (m_m - m_o) / math.sqrt(v_m + v_o)
    ratio = 2.0 * (best_ll - one_ll)  # likelihood ratio statistic, two against one
    if ratio <= max(3.0 * math.log(n), MIN_RATIO):  # BIC, and a floor for small n
        return _one_mode(z, "one mode: nothing flagged", separation)
    if separation < MIN_SEPARATION:
        return _one_mode(
            z, f"one mode (separation {separation:.2f} < {MIN_SEPARATION:g}): nothing flagged",
            separation,
        )  # fmt: skip
    if not _has_dip(w_o, m_o, v_o, m_m, v_m):
        return _one_mode(z, "one mode (the fitted density has no dip): nothing flagged",
                         separation)  # fmt: skip
    if w_o * n < MIN_OTHERS:
        return _one_mode(
            z, f"one mode (lower mode {w_o * n:.1f} < {MIN_OTHERS:g} particles): nothing flagged",
            separation,
        )  # fmt: skip
    s_m = math.sqrt(v_m)
    threshold = m_m + s_m * float(norm.ppf(max_lost))
    return ClassMixture(
        n=n,
        two_modes=True,
        member_mean=m_m,
        member_std=s_m,
        other_mean=m_o,
        other_std=math.sqrt(v_o),
        other_weight=w_o,
        separation=separation,
        threshold=threshold,
        estimated_lost=float(max_lost),
        estimated_novel=w_o * n,
        note="two modes",
    )
