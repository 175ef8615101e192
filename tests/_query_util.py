"""Shared fixtures for the query and classes tests: clustered vectors in the storage geometry."""

from __future__ import annotations

import numpy as np

DIM = 512
BIAS = 9.0
# members of a class lie at L1 ~ 512 * 1.128 * 0.01 * sqrt(2) / sqrt(2) ~ 5.8 from each other and
# ~ 12.9 from other classes' members, so sigmoid(9 - d) separates them like a trained head
CENTRE_STD = 0.02
MEMBER_STD = 0.01


def clustered_vectors(
    n_classes: int, per_class: int, seed: int = 0, dim: int = DIM
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xb (n, dim) float32, labels (n,) int64, centres (n_classes, dim)) of Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, CENTRE_STD, (n_classes, dim)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), per_class)
    xb = centres[labels] + rng.normal(0.0, MEMBER_STD, (len(labels), dim)).astype(np.float32)
    return xb.astype(np.float32), labels.astype(np.int64), centres


def brute_scores(
    xb: np.ndarray, prototypes: list[np.ndarray], bias: float, reduce: str
) -> np.ndarray:
    """NumPy reference of class_scores (float64)."""
    out = []
    for p in prototypes:
        d = np.abs(xb[:, None, :].astype(np.float64) - np.atleast_2d(p)[None]).sum(-1)  # (n, K)
        prob = 1.0 / (1.0 + np.exp(-(bias - d)))
        out.append(prob.max(1) if reduce == "max" else prob.mean(1))
    return np.stack(out, axis=1)
