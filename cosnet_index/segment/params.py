"""The dense CRF's parameters and where they are stored (a JSON next to the shipped weights)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.files import atomic_write
from cosnet_index.frozen import frozen_from_dict, frozen_to_dict

__all__ = ["DEFAULT_CRF_PATH", "CRFParams", "load_crf_params", "save_crf_params"]

DEFAULT_CRF_PATH = Path(__file__).resolve().parent.parent / "weights" / "crf.json"


@dataclass(frozen=True)
class CRFParams:
    """Parameters of the binary (molecule / background) 3D dense CRF.

    Energies follow Kraehenbuehl & Koltun (2011) and pydensecrf's conventions: Potts
    compatibility, symmetric kernel normalisation, the unary from the decoder probability.

    Attributes:
        w_spatial: weight of the smoothness kernel ``exp(-|dp|^2 / (2 theta_gamma^2))``.
        theta_gamma: its width, in voxels.
        w_bilateral: weight of the appearance kernel
            ``exp(-|dp|^2 / (2 theta_alpha^2) - dI^2 / (2 theta_beta^2))``.
        theta_alpha: its spatial width, in voxels.
        theta_beta: its intensity width, in standard deviations of the box (each box is
            z-scored before the CRF sees it, then clipped to +-8).
        n_iter: mean-field iterations.
        unary_scale: the unary is ``unary_scale * logit(p)`` of the decoder probability ``p``
            (1 = the decoder's own confidence; < 1 lets the pairwise terms overrule it more).
    """

    w_spatial: float = 2.0
    theta_gamma: float = 1.0
    w_bilateral: float = 2.0
    theta_alpha: float = 2.0
    theta_beta: float = 1.0
    n_iter: int = 5
    unary_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("w_spatial", "w_bilateral"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"CRF {name} must be a finite number >= 0, got {value}")
        for name in ("theta_gamma", "theta_alpha", "theta_beta", "unary_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"CRF {name} must be a finite number > 0, got {value}")
        if int(self.n_iter) != self.n_iter or self.n_iter < 0:
            raise InputError(f"CRF n_iter must be an integer >= 0, got {self.n_iter}")

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict (JSON-serialisable) of every parameter."""
        return frozen_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CRFParams:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InputError`."""
        return frozen_from_dict(cls, data, label="CRF parameter(s)")


def save_crf_params(
    params: CRFParams, path: str | Path, *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``{"params": ..., **metadata}`` as JSON (atomically: temporary name, then rename)."""
    path = Path(path)
    payload = {"params": params.to_dict(), **(metadata or {})}
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def load_crf_params(
    path: str | Path | None = None, *, model_hash: str | None = None
) -> tuple[CRFParams, dict[str, Any]]:
    """Read CRF parameters and their metadata (default: the shipped ``weights/crf.json``).

    Args:
        path: JSON written by :func:`save_crf_params`; ``None`` for the shipped file.
        model_hash: when given and the file records a different ``model_hash``, refuse.

    Raises:
        CheckpointError: the file is missing, unreadable, or was fitted for another model.
    """
    path = Path(path) if path is not None else DEFAULT_CRF_PATH
    if not path.is_file():
        raise CheckpointError(
            f"no CRF parameters at {path}; fit them with `python -m cosnet_index.segment.fit` "
            "or pass --no-crf"
        )
    try:
        payload = json.loads(path.read_text())
        params = CRFParams.from_dict(payload["params"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"CRF parameter file {path} is unreadable ({exc}); refit it") from exc
    fitted_for = payload.get("model_hash")
    if model_hash is not None and fitted_for is not None and fitted_for != model_hash:
        raise CheckpointError(
            f"CRF parameters in {path} were fitted for model {fitted_for[:12]}, not "
            f"{model_hash[:12]}; refit them for this model or pass other --crf-params"
        )
    meta = {k: v for k, v in payload.items() if k != "params"}
    return params, meta
