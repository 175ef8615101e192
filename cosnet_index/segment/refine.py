"""The CRF as a refinement step for ``cosnet-index evaluate --refine`` (the "decoder + CRF" column).

``cosnet-index evaluate --refine "decoder + CRF=cosnet_index.segment.refine:refine_masks"``
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch

from cosnet_index.segment.crf import crf_refine
from cosnet_index.segment.params import CRFParams, load_crf_params

__all__ = ["check_fitted_for", "refine_masks"]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _params(path: str | None) -> CRFParams:
    params, meta = load_crf_params(path)
    log.info("CRF parameters %s (fitted for model %s)", params, str(meta.get("model_hash"))[:12])
    return params


def check_fitted_for(model_hash: str) -> None:
    """Refuse CRF parameters (``$COSNET_CRF_PARAMS`` or the shipped ones) fitted for another model.

    Raises:
        CheckpointError: missing or unreadable parameters, or fitted for another model.
    """
    load_crf_params(os.environ.get("COSNET_CRF_PARAMS") or None, model_hash=model_hash)


def refine_masks(volumes: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Masks ``(n, B, B, B)`` bool of the CRF-refined decoder probabilities of raw boxes.

    Uses the CRF parameters at ``$COSNET_CRF_PARAMS`` if set, else the shipped ``crf.json``
    (fitted for the shipped weights: evaluate another checkpoint with parameters fitted for it).
    """
    params = _params(os.environ.get("COSNET_CRF_PARAMS") or None)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    prob = torch.as_tensor(np.asarray(probabilities, dtype=np.float32), device=device)
    vol = torch.as_tensor(np.asarray(volumes, dtype=np.float32), device=device)
    return (crf_refine(prob, vol, params) > 0.5).cpu().numpy()
