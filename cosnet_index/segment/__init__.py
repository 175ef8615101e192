"""Segmentation of matched hits: decoder masks refined by a batched 3D dense CRF, Dice."""

from cosnet_index.segment.crf import crf_refine, mean_field, normalise_intensity, unary_logit
from cosnet_index.segment.dice import dice
from cosnet_index.segment.params import (
    DEFAULT_CRF_PATH,
    CRFParams,
    load_crf_params,
    save_crf_params,
)

__all__ = [
    "DEFAULT_CRF_PATH",
    "CRFParams",
    "crf_refine",
    "dice",
    "load_crf_params",
    "mean_field",
    "normalise_intensity",
    "save_crf_params",
    "unary_logit",
]
