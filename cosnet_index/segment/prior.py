"""Which volume each hit's mask gets: the command line's, its class's, an estimate, or none.

``segment`` decides per class, first match wins:

1. ``--mass-kda CLASS=KDA``, then ``--mass-kda KDA`` (every class): the command line overrides
   (source ``command-line``);
2. the class's recorded volume (``classes add --map/--model/--mass-kda``, ``classes set-volume``;
   source: the class's, e.g. ``map-contour``), unless ``--no-prior``, or unless the molecule is
   too large for the box (:func:`fits_box`: its equivalent sphere is wider than half the box; the
   mask is then ``p > 0.5``, the ``too-large`` of ``volume_from``, because on the hard benchmark
   the prior lowered Dice in the 2-5 MDa band, whose molecules overflow the 32-voxel box, and
   left it level below; docs/segmentation.md);
3. with ``--estimate-volume``: the median, over the class's ``ESTIMATE_MEMBERS`` most probable
   hits, of the decoder's ``p > 0.5`` component nearest the box centre (source ``collection``;
   off by default: docs/segmentation.md says why);
4. none: the mask is ``p > 0.5``.

A mask is then ``prior`` (1, 2), ``estimate`` (3), ``too-large`` (2, a class volume not used) or
``threshold`` (4): the ``volume_from`` column of ``segments.parquet``, beside ``prior_source``
and ``prior_volume_nm3`` (the known volume, also where it was not used).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosnet_index.geometry import mass_kda_to_volume_nm3
from cosnet_index.store.class_catalog import ClassVolume

__all__ = [
    "COLLECTION",
    "COMMAND_LINE",
    "ESTIMATE_MEMBERS",
    "MAX_PRIOR_DIAMETER",
    "PRIOR_COLUMNS",
    "VolumePrior",
    "estimate_priors",
    "fits_box",
    "hit_priors",
    "prior_report",
    "resolve_priors",
]

log = logging.getLogger(__name__)

COMMAND_LINE = "command-line"
COLLECTION = "collection"
ESTIMATE_MEMBERS = 32
"""Hits (the class's most probable) whose decoder masks give its estimated volume."""
_ESTIMATE_MIN_MEMBERS = 3
PRIOR_COLUMNS = ("volume_from", "prior_source", "prior_volume_nm3")
MAX_PRIOR_DIAMETER = 0.5
"""A class volume whose equivalent sphere is wider than this fraction of the box side is not used
as a prior (1.8 MDa at 1 nm voxels and a 32-voxel box): the class-volume table of
docs/segmentation.md, where every molecule above it lost Dice on average with the prior."""


@dataclass(frozen=True)
class VolumePrior:
    """A class's mask volume: nm^3, where it came from, whether it was estimated, and whether
    it is used (False: known, but too large for the box)."""

    volume_nm3: float
    source: str
    estimated: bool = False
    used: bool = True

    @property
    def volume_from(self) -> str:
        """The ``volume_from`` value of a mask made with this prior."""
        return "too-large" if not self.used else "estimate" if self.estimated else "prior"


def fits_box(volume_nm3: float, box_side_nm: float) -> bool:
    """Whether a molecule of ``volume_nm3`` is small enough for a volume prior in a box of
    ``box_side_nm``: its equivalent sphere's diameter is at most :data:`MAX_PRIOR_DIAMETER` of the
    side (a molecule this large overflows the box in some direction: real complexes are far from
    spheres, and the box then holds only part of the volume the prior asks for)."""
    diameter = (6.0 * volume_nm3 / math.pi) ** (1.0 / 3.0)
    return diameter <= MAX_PRIOR_DIAMETER * box_side_nm


def resolve_priors(
    class_names: Iterable[str],
    *,
    class_volumes: Mapping[str, ClassVolume],
    masses_kda: Mapping[str | None, float],
    box_side_nm: float = math.inf,
) -> dict[str, VolumePrior]:
    """The prior of every class that has one (rules 1 and 2 of the module docstring); a class
    volume too large for a box of ``box_side_nm`` (:func:`fits_box`) is returned with
    ``used=False`` (the command line's is always used: the user asked for it)."""
    names = sorted(set(class_names))
    unused = sorted(str(k) for k in masses_kda if k is not None and k not in names)
    if unused:
        log.warning("--mass-kda names class(es) %s, which no hit has", ", ".join(unused))
    out = {}
    for name in names:
        mass = masses_kda.get(name, masses_kda.get(None))
        if mass is not None:
            out[name] = VolumePrior(mass_kda_to_volume_nm3(mass), COMMAND_LINE)
        elif name in class_volumes:
            volume = class_volumes[name]
            used = fits_box(volume.volume_nm3, box_side_nm)
            out[name] = VolumePrior(volume.volume_nm3, volume.source, used=used)
    return out


def estimate_priors(
    hits: pd.DataFrame,
    class_names: Iterable[str],
    component_volumes_nm3: Callable[[pd.DataFrame], np.ndarray],
) -> dict[str, VolumePrior]:
    """Rule 3: each class's volume from its most probable hits' decoder masks.

    Args:
        hits: the hits (``class``, ``probability`` and what ``component_volumes_nm3`` reads).
        class_names: the classes to estimate.
        component_volumes_nm3: rows -> ``(n,)`` nm^3 of each row's ``p > 0.5`` component
            nearest the box centre (``segment.hits`` decodes the boxes).

    A class with fewer than 3 hits, or whose median mask is empty, gets no estimate.
    """
    out = {}
    for name in sorted(set(class_names)):
        members = hits[hits["class"] == name]
        top = members.sort_values("probability", ascending=False, na_position="last")
        top = top.head(ESTIMATE_MEMBERS)
        if len(top) < _ESTIMATE_MIN_MEMBERS:
            log.info("class %s: %d hit(s), too few to estimate its volume", name, len(top))
            continue
        median = float(np.median(component_volumes_nm3(top)))
        if median > 0:
            out[name] = VolumePrior(median, COLLECTION, estimated=True)
    return out


def hit_priors(classes: pd.Series, priors: Mapping[str, VolumePrior]) -> pd.DataFrame:
    """Per hit, :data:`PRIOR_COLUMNS`: ``volume_from``, ``prior_source``, ``prior_volume_nm3``
    (NaN and ``""`` for a ``threshold`` mask)."""
    found = [priors.get(str(c)) for c in classes]
    return pd.DataFrame(
        {
            "volume_from": ["threshold" if p is None else p.volume_from for p in found],
            "prior_source": ["" if p is None else p.source for p in found],
            "prior_volume_nm3": [math.nan if p is None else p.volume_nm3 for p in found],
        },
        index=classes.index,
    )


def prior_report(table: pd.DataFrame) -> list[str]:
    """Lines saying which masks used a prior, per class (``segments.parquet`` columns)."""
    if not len(table):
        return []
    lines = []
    for kind in ("prior", "estimate", "too-large", "threshold"):
        rows = table[table["volume_from"] == kind]
        if not len(rows):
            continue
        parts = []
        for name, group in rows.groupby("class", sort=True):
            if kind == "threshold":
                parts.append(f"{name} {len(group)}")
            else:
                first = group.iloc[0]
                parts.append(
                    f"{name} {len(group)} ({first['prior_volume_nm3']:.0f} nm^3, "
                    f"{first['prior_source']})"
                )
        what = {
            "prior": "volume prior",
            "estimate": "estimated volume",
            "too-large": "p > 0.5 (class volume over half the box: prior not used)",
            "threshold": "p > 0.5 (no known volume)",
        }[kind]
        hint = {
            "threshold": "; give a class its volume with "
            "`cosnet-index classes set-volume NAME --mass-kda KDA`",
            "too-large": "; `--mass-kda NAME=KDA` forces a prior",
        }.get(kind, "")
        lines.append(f"{what}: {len(rows)} of {len(table)} masks: " + ", ".join(parts) + hint)
    return lines
