"""The hard benchmark's subtomograms: the simulator with a preset bound, paired SNRs, collections.

- :func:`imaging_simulate`: the project's simulator with an imaging preset bound;
- :func:`simulate_snrs`: the same boxes at several SNRs from at most two simulator calls;
- :func:`episode_collections`: which boxes of a chunk of episodes share a microscope.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cosnet_index.data.episodes import SimulateFn

__all__ = ["FALLBACK_SHIFTED", "episode_collections", "imaging_simulate", "simulate_snrs"]

logger = logging.getLogger(__name__)


def episode_collections(mode: str, count: int, n_support: int) -> list[int] | None:
    """Collection id of every box of ``count`` episodes laid out as the benchmark simulates them
    (all ``count * n_support`` supports, episode-major, then the ``count`` queries).

    ``same`` and ``map`` (whose supports are then replaced by maps): an episode is a collection;
    ``cross``: its supports from one, its query from another; ``box``: None (one per box)."""
    if mode == "box":
        return None
    support = np.repeat(np.arange(count), n_support)
    query = np.arange(count)
    if mode == "cross":
        support, query = 2 * support, 2 * query + 1
    return [*support.tolist(), *query.tolist()]


# Used only where the simulator has no ``imaging`` presets: one fixed setting outside the
# training defaults (SimulationConfig(): 4 nm maps, -5 um, B 400, +-60 degrees).
FALLBACK_SHIFTED = {
    "resolution_nm": 5.0,
    "defocus_um": -2.5,
    "defocus_spread_um": 1.0,
    "bfactor_angstrom2": 200.0,
    "tilt_max_deg": 45.0,
}


def imaging_simulate(imaging: str = "shifted") -> SimulateFn:
    """The project's subtomogram simulator with imaging preset ``imaging`` bound.

    Where ``simulate_subtomograms`` takes no ``imaging`` keyword (a simulator without presets),
    ``paper`` is today's simulator and any other preset is :data:`FALLBACK_SHIFTED` (one fixed
    setting; a warning says so).
    """
    from cosnet_index.simulate import SimulationConfig, simulate_subtomograms

    if "imaging" in inspect.signature(simulate_subtomograms).parameters:
        return functools.partial(simulate_subtomograms, imaging=imaging)
    if imaging == "paper":
        return simulate_subtomograms
    logger.warning(
        "simulator without imaging presets: %r replaced by the fixed setting %s",
        imaging,
        FALLBACK_SHIFTED,
    )
    return functools.partial(simulate_subtomograms, config=SimulationConfig(**FALLBACK_SHIFTED))


def simulate_snrs(
    simulate: SimulateFn,
    names: Sequence[str],
    snrs: Sequence[float],
    seed: int,
    crowding: bool = False,
    collections: Sequence[int] | None = None,
) -> dict[float, tuple[Any, np.ndarray]]:
    """The same subtomograms at several SNRs from at most two simulator calls.

    ``collections`` (one id per name, see ``simulate_subtomograms``) is passed on when given.

    The simulator's noise-free part depends only on the seed, and its noise is one field per
    seed scaled to the requested SNR (``volume = clean + sqrt(var / snr) * field``). So with
    ``A`` simulated without noise and ``B`` at the lowest SNR ``r``, the volume at any SNR ``s``
    is ``A + (B - A) sqrt(r / s)``, identical to a direct call up to float rounding
    (``tests/test_benchmark_hard.py`` checks it against the simulator).

    Returns:
        ``{snr: (batch, volumes (n, B, B, B) float32)}``; ``batch`` is the simulator's output
        at the lowest SNR (poses and imaging are the same for every SNR).
    """
    finite = sorted({float(s) for s in snrs if math.isfinite(s)})
    kwargs: dict[str, Any] = {"crowding": crowding}
    if collections is not None and _takes_collections(simulate):
        kwargs["collections"] = collections
    elif collections is not None:
        logger.warning("the simulator takes no 'collections': a microscope per box instead")
    if len(finite) <= 1:  # nothing to save: one call per SNR
        out = {}
        for snr in snrs:
            batch = simulate(names, snr, seed, **kwargs)
            out[snr] = (batch, np.asarray(batch.volumes, dtype=np.float32))
        return out
    ref = finite[0]
    clean = simulate(names, math.inf, seed, **kwargs)
    noisy = simulate(names, ref, seed, **kwargs)
    a = np.asarray(clean.volumes, dtype=np.float32)
    noise = np.asarray(noisy.volumes, dtype=np.float32) - a
    return {
        snr: (noisy, a if not math.isfinite(snr) else a + noise * np.float32(math.sqrt(ref / snr)))
        for snr in snrs
    }


def _takes_collections(simulate: SimulateFn) -> bool:
    """Whether ``simulate`` accepts ``collections=`` (a simulator with imaging presets)."""
    try:
        params = inspect.signature(simulate).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "collections" or p.kind is p.VAR_KEYWORD for p in params)
