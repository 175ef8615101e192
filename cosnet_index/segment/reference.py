"""The same CRF through pydensecrf (the `crf` extra), the reference for the torch CRF.

pydensecrf (package ``pydensecrf2``) is Kraehenbuehl's C++ dense CRF with a permutohedral lattice;
its generic ``DenseCRF(n_voxels, 2)`` takes any feature space, so a 3D box is flattened (C order,
z-y-x) and given the same unary, the same features (positions / widths, z-scored intensity /
theta_beta) and the same Potts weights as :func:`cosnet_index.segment.crf_refine`.
"""

from __future__ import annotations

import numpy as np
import torch

from cosnet_index.errors import InputError
from cosnet_index.segment.crf import normalise_intensity, unary_logit
from cosnet_index.segment.params import CRFParams

__all__ = ["crf_refine_pydensecrf", "pydensecrf_available"]


def pydensecrf_available() -> bool:
    """Whether the optional ``crf`` extra (pydensecrf2) is installed."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def crf_refine_pydensecrf(
    probability: np.ndarray | torch.Tensor,
    volumes: np.ndarray | torch.Tensor,
    params: CRFParams,
) -> np.ndarray:
    """Refine ``(b, d, h, w)`` probabilities box by box with pydensecrf; returns ``Q_1`` (float32).

    Raises:
        InputError: pydensecrf is not installed (``pip install 'cosnet-index[crf]'``) or the
            shapes differ.
    """
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import create_pairwise_bilateral, create_pairwise_gaussian
    except ImportError as exc:
        raise InputError(
            "pydensecrf is not installed; install the crf extra: pip install 'cosnet-index[crf]'"
        ) from exc
    prob = torch.as_tensor(probability).float().cpu()
    vol = torch.as_tensor(volumes).float().cpu()
    if prob.ndim != 4 or prob.shape != vol.shape:
        raise InputError(
            f"probability and volumes must both be (b, d, h, w); got {tuple(prob.shape)} and "
            f"{tuple(vol.shape)}"
        )
    u = unary_logit(prob, params.unary_scale).numpy()  # (b, d, h, w): U_0 - U_1
    intensity = normalise_intensity(vol).numpy()
    shape = tuple(prob.shape[1:])
    n_vox = int(np.prod(shape))
    feats_s = create_pairwise_gaussian(sdims=(params.theta_gamma,) * 3, shape=shape)
    out = np.empty(prob.shape, dtype=np.float32)
    for i in range(prob.shape[0]):
        crf = dcrf.DenseCRF(n_vox, 2)
        ui = u[i].reshape(-1).astype(np.float64)
        # U_l = -log q_l with q_1 = sigmoid(u): U_1 = softplus(-u), U_0 = softplus(u)
        unary = np.stack([np.logaddexp(0, ui), np.logaddexp(0, -ui)]).astype(np.float32)
        crf.setUnaryEnergy(np.ascontiguousarray(unary))
        if params.w_spatial > 0:
            crf.addPairwiseEnergy(np.ascontiguousarray(feats_s), compat=float(params.w_spatial))
        if params.w_bilateral > 0:
            feats_b = create_pairwise_bilateral(
                sdims=(params.theta_alpha,) * 3,
                schan=(params.theta_beta,),
                img=intensity[i],
                chdim=-1,
            )
            crf.addPairwiseEnergy(np.ascontiguousarray(feats_b), compat=float(params.w_bilateral))
        q = np.asarray(crf.inference(int(params.n_iter)), dtype=np.float32)  # (2, n_vox)
        out[i] = q[1].reshape(shape)
    return out
