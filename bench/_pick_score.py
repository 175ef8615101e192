"""Scoring helpers of bench/pick.py: one-to-one hits within half a radius, P/R/F1/F-beta(4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cosnet_index.evaluate import wilson_interval


def greedy_hits(xyz, score, truth_xyz, truth_r):  # type: ignore[no-untyped-def]
    """Per prediction (best score first): index of the true molecule it hits, or -1."""
    order = np.argsort(-np.asarray(score), kind="stable")
    taken = np.zeros(len(truth_xyz), bool)
    out = np.full(len(xyz), -1)
    if len(truth_xyz) == 0:
        return out
    for i in order:
        d = np.linalg.norm(truth_xyz - xyz[i], axis=1)
        d[taken] = np.inf
        j = int(np.argmin(d))
        if d[j] <= 0.5 * truth_r[j]:
            taken[j] = True
            out[i] = j
    return out


def prf(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    b2 = 16.0
    fb = (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": f1,
        "f4": fb,
        "tp": tp,
        "pred": n_pred,
        "true": n_true,
        "p_ci": wilson_interval(tp, n_pred),
        "r_ci": wilson_interval(tp, n_true),
    }


def candidate_metrics(picked: pd.DataFrame, tomos, threshold: float) -> dict:  # type: ignore[no-untyped-def]
    """Recall, precision, candidates per particle of the candidates scoring >= threshold."""
    hits = n_cand = n_true = 0
    for path, truth in tomos:
        found = picked[(picked["tomogram"] == path.stem) & (picked["pick_score"] >= threshold)]
        got = greedy_hits(
            found[["x", "y", "z"]].to_numpy(),
            found["pick_score"].to_numpy(),
            truth[["x", "y", "z"]].to_numpy(),
            truth["radius_voxels"].to_numpy(),
        )
        hits += int((got >= 0).sum())
        n_cand += len(found)
        n_true += len(truth)
    return {**prf(hits, n_cand, n_true), "per_particle": n_cand / n_true}


def per_class(pred: pd.DataFrame, truths: list[pd.DataFrame], score: str, cls: str) -> tuple:  # type: ignore[type-arg]
    """(scores sorted descending, cumulative TP) of predictions of one class."""
    parts = []
    n_true = 0
    for truth in truths:
        name = truth["tomogram"].iloc[0]
        mine = pred[(pred["tomogram"] == name)]
        t = truth[truth["class"] == cls]
        n_true += len(t)
        got = greedy_hits(
            mine[["x", "y", "z"]].to_numpy(),
            mine[score].to_numpy(),
            t[["x", "y", "z"]].to_numpy(),
            t["radius_voxels"].to_numpy(),
        )
        parts.append(pd.DataFrame({"s": mine[score].to_numpy(), "tp": got >= 0}))
    both = pd.concat(parts).sort_values("s", ascending=False, kind="stable")
    return both["s"].to_numpy(), np.cumsum(both["tp"].to_numpy()), n_true


def at(scores, cum, n_true, t):  # type: ignore[no-untyped-def]
    n = int((scores >= t).sum())
    return prf(int(cum[n - 1]) if n else 0, n, n_true)
