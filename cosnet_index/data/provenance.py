"""Provenance of training data: the simulator a run used and what it saw, for its checkpoints."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from cosnet_index.data.episodes import SimulateFn

__all__ = ["data_manifest", "imaging_simulator", "simulator_source_hash"]


def simulator_source_hash() -> str:
    """sha256 of the simulator's source files: which data the model was trained on.

    Every ``.py`` file under ``simulate/`` (its subpackages included), in the order of their
    sorted paths relative to ``simulate/``; each contributes its relative path and its bytes.
    """
    import hashlib

    root = pathlib.Path(__file__).resolve().parent.parent / "simulate"
    digest = hashlib.sha256()
    paths = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.py"))
    for relative, path in paths:
        digest.update(relative.encode() + path.read_bytes())
    return digest.hexdigest()


def imaging_simulator(preset: str) -> SimulateFn:
    """The project's simulator with every box imaged by a microscope drawn from ``preset``."""
    import functools

    from cosnet_index.simulate import simulate_subtomograms
    from cosnet_index.simulate.microscope import imaging_preset

    imaging_preset(preset)  # unknown names fail here, before any step
    return functools.partial(simulate_subtomograms, imaging=preset)


def data_manifest(class_names: Sequence[str], imaging: Any) -> dict[str, Any]:
    """What a model was trained on, for its checkpoint: every class name, the real molecules among
    them (shipped maps and library entries with their PDB ids) and the imaging distribution.

    ``imaging`` is a preset name or an :class:`~cosnet_index.data.imaging_mix.ImagingMix`; a mix
    records its spec, how microscopes were shared and every preset's ranges
    (``imaging_preset``/``imaging_ranges`` then describe its first preset).
    """
    from cosnet_index.data.imaging_mix import ImagingMix
    from cosnet_index.simulate.microscope import imaging_preset

    names = sorted(set(class_names))
    real = [n for n in names if not n.startswith("proc-")]
    out: dict[str, Any] = {"classes": names, "n_procedural": len(names) - len(real)}
    out["real_molecules"] = real
    if isinstance(imaging, ImagingMix):
        out["imaging_mix"] = imaging.to_dict()
        imaging = imaging.presets[0] if len(imaging.presets) == 1 else imaging.spec
    out["imaging_preset"] = imaging
    first = imaging.split(",")[0].split(":")[0]
    out["imaging_ranges"] = imaging_preset(first).to_dict()
    return out
