"""Fit the dense CRF's parameters on training classes: a seeded search on the hard-mask Dice.

The paper calls the CRF's parameters learnable; here they are learnt, not guessed. The decoder of
a given model predicts probabilities on simulated boxes of TRAINING classes (never held-out ones,
equal shares of SNR inf, 1000 and 0.5 by default), and the parameters are chosen to maximise the
mean Dice of the refined masks against the true masks:

1. a seeded random search (log-uniform ranges below, each kernel switched off with probability
   0.2) on a first set of boxes, then local perturbations of the best few;
2. the best candidates and "no CRF" (the decoder alone) are ranked on a second, independent set
   of training-class boxes; the winner is kept. Because "no CRF" competes, the shipped CRF does
   not do worse than the decoder alone on that validation set.

The search optimises the real objective (Dice of the thresholded mask) directly; gradient descent
through the unrolled mean-field (``mean_field`` is differentiable) was tried first and was ~50x
slower per useful candidate on 2 CPU cores, while optimising a soft-Dice proxy.

Ranges: the spatial (smoothness) kernel is short-range, ``theta_gamma`` in 0.5-4 voxels; the
bilateral (appearance) kernel long-range, ``theta_alpha`` in 4-48 voxels (the paper used 100 on
its 32^3 boxes) and ``theta_beta`` in 0.5-4 box standard deviations; weights 0.2-10; the unary
scale 0.2-2; 2, 3, 5 or 8 iterations.

Run it as ``python -m cosnet_index.segment.fit --seed 0`` (see ``--help``); it writes the JSON
next to the shipped weights with the command, the seed and the model hash it was fitted for.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cosnet_index.segment.crf import crf_refine
from cosnet_index.segment.dice import dice
from cosnet_index.segment.params import DEFAULT_CRF_PATH, CRFParams, save_crf_params

__all__ = [
    "FitData",
    "main",
    "mean_crf_dice",
    "perturb_params",
    "run_fit",
    "sample_params",
    "search_crf_params",
    "simulate_fit_data",
]

log = logging.getLogger(__name__)

DEFAULT_SNRS: tuple[float, ...] = (math.inf, 1000.0, 0.5)


@dataclass
class FitData:
    """Boxes, their decoder probabilities and true masks, all ``(n, d, h, w)`` on one device."""

    volumes: torch.Tensor
    probability: torch.Tensor
    truth: torch.Tensor
    snr: torch.Tensor  # (n,)

    def __len__(self) -> int:
        return int(self.volumes.shape[0])


def simulate_fit_data(
    model: torch.nn.Module,
    n_boxes: int,
    seed: int,
    *,
    snrs: Sequence[float] = DEFAULT_SNRS,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> FitData:
    """Simulate ``n_boxes`` boxes of training classes (equal shares of ``snrs``) and decode them.

    Args:
        model: a :class:`~cosnet_index.model.CosNet` with a decoder.
        class_names: classes to draw from (default: the training classes of ``default_split()``).
    """
    from cosnet_index.simulate import default_split, simulate_subtomograms

    names_pool = tuple(class_names) if class_names else default_split().train
    rng = np.random.default_rng(seed)
    names = [names_pool[i] for i in rng.integers(0, len(names_pool), n_boxes)]
    snr = np.array([snrs[i % len(snrs)] for i in range(n_boxes)], dtype=np.float64)
    batch = simulate_subtomograms(names, snr, rng)
    volumes = torch.from_numpy(batch.volumes)
    probability = model.decode(volumes.to(next(model.parameters()).device)).to(device)
    return FitData(
        volumes=volumes.to(device),
        probability=probability,
        truth=torch.from_numpy(batch.masks).to(device),
        snr=torch.from_numpy(snr).to(device),
    )


def mean_crf_dice(data: FitData, params: CRFParams | None) -> dict[str, float]:
    """Mean hard-mask Dice per SNR (and ``"all"``) with ``params``, or the decoder alone (None)."""
    if params is None:
        masks = data.probability > 0.5
    else:
        masks = crf_refine(data.probability, data.volumes, params) > 0.5
    scores = dice(masks, data.truth).cpu()
    snr = data.snr.cpu()
    out = {_snr_key(float(s)): float(scores[snr == s].mean()) for s in torch.unique(snr)}
    # "all" weighs each SNR equally
    out["all"] = float(np.mean([v for k, v in out.items()]))
    return out


def _snr_key(snr: float) -> str:
    return "inf" if math.isinf(snr) else f"{snr:g}"


def sample_params(rng: np.random.Generator) -> CRFParams:
    """One random candidate from the search ranges (module docstring)."""

    def logu(lo: float, hi: float) -> float:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    return CRFParams(
        w_spatial=0.0 if rng.random() < 0.2 else logu(0.2, 10.0),
        theta_gamma=logu(0.5, 4.0),
        w_bilateral=0.0 if rng.random() < 0.2 else logu(0.2, 10.0),
        theta_alpha=logu(4.0, 48.0),
        theta_beta=logu(0.5, 4.0),
        n_iter=int(rng.choice([2, 3, 5, 8])),
        unary_scale=logu(0.2, 2.0),
    )


def perturb_params(params: CRFParams, rng: np.random.Generator, scale: float = 0.3) -> CRFParams:
    """A neighbour of ``params``: every continuous value times ``exp(N(0, scale))``, clipped."""
    bounds = {
        "w_spatial": (0.0, 20.0),
        "theta_gamma": (0.4, 6.0),
        "w_bilateral": (0.0, 20.0),
        "theta_alpha": (3.0, 64.0),
        "theta_beta": (0.4, 6.0),
        "unary_scale": (0.1, 4.0),
    }
    values = {}
    for name, (lo, hi) in bounds.items():
        value = float(getattr(params, name)) * float(np.exp(rng.normal(0.0, scale)))
        values[name] = min(hi, max(lo, value))
    n_iter = int(np.clip(params.n_iter + rng.integers(-1, 2), 1, 10))
    return dataclasses.replace(params, n_iter=n_iter, **values)


def search_crf_params(
    data: FitData,
    *,
    seed: int = 0,
    n_random: int = 32,
    n_local: int = 16,
    keep: int = 4,
) -> list[tuple[float, CRFParams]]:
    """Random search + local refinement on ``data``; returns ``(dice, params)`` best first."""
    rng = np.random.default_rng(seed)
    tried: list[tuple[float, CRFParams]] = []

    def score(params: CRFParams) -> None:
        value = mean_crf_dice(data, params)["all"]
        tried.append((value, params))
        log.info("search %d: Dice %.4f %s", len(tried), value, params)

    score(CRFParams())
    for _ in range(n_random):
        score(sample_params(rng))
    for k in range(n_local):
        parent = sorted(tried, key=lambda t: -t[0])[k % keep][1]
        score(perturb_params(parent, rng))
    return sorted(tried, key=lambda t: -t[0])


def run_fit(
    model: torch.nn.Module,
    *,
    seed: int = 0,
    n_fit: int = 128,
    n_val: int = 384,
    snrs: Sequence[float] = DEFAULT_SNRS,
    n_random: int = 24,
    n_local: int = 12,
    finalists: int = 5,
    device: str | torch.device = "cpu",
) -> tuple[CRFParams, dict[str, Any]]:
    """Search on ``n_fit`` boxes, rank the finalists and "no CRF" on ``n_val`` other boxes.

    Returns the chosen parameters and a report (validation Dice per SNR of the finalists and of
    the decoder alone).
    """
    t0 = time.perf_counter()
    fit = simulate_fit_data(model, n_fit, seed, snrs=snrs, device=device)
    val = simulate_fit_data(model, n_val, seed + 1_000_003, snrs=snrs, device=device)
    ranked = search_crf_params(fit, seed=seed, n_random=n_random, n_local=n_local)
    candidates: list[CRFParams | None] = [None] + [p for _, p in ranked[:finalists]]
    scored = []
    for cand in candidates:
        scores = mean_crf_dice(val, cand)
        scored.append((scores["all"], cand, scores))
        log.info("validation Dice %.4f for %s", scores["all"], cand or "decoder alone")
    best_score, best, best_scores = max(scored, key=lambda s: s[0])
    report = {
        "validation_dice": best_scores,
        "validation_dice_decoder_alone": scored[0][2],
        "finalists": [
            {"params": None if c is None else c.to_dict(), "validation_dice": s}
            for _, c, s in scored
        ],
        "n_search_boxes": n_fit,
        "n_validation_boxes": n_val,
        "n_candidates": len(ranked),
        "snrs": [_snr_key(s) for s in snrs],
        "classes": "default_split().train (training classes only)",
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    if best is None:
        # the decoder alone was best: ship a CRF that leaves masks unchanged, and say so
        log.warning("no CRF candidate beat the decoder alone on validation boxes")
        best = CRFParams(w_spatial=0.0, w_bilateral=0.0, n_iter=0)
    log.info("chosen %s (validation Dice %.4f)", best, best_score)
    return best, report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cosnet_index.segment.fit``: fit the CRF for a checkpoint and write its JSON."""
    parser = argparse.ArgumentParser(prog="python -m cosnet_index.segment.fit", description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="model .pt (default: shipped weights)")
    parser.add_argument("--out", default=str(DEFAULT_CRF_PATH), help="JSON to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-fit", type=int, default=128, help="boxes the search scores on")
    parser.add_argument("--n-val", type=int, default=384, help="boxes the finalists are ranked on")
    parser.add_argument("--n-random", type=int, default=24, help="random candidates")
    parser.add_argument("--n-local", type=int, default=12, help="local refinements")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from cosnet_index.model import load_checkpoint, load_default_model

    if args.checkpoint:
        model, info = load_checkpoint(args.checkpoint)
    else:
        model, info = load_default_model()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    params, report = run_fit(
        model,
        seed=args.seed,
        n_fit=args.n_fit,
        n_val=args.n_val,
        n_random=args.n_random,
        n_local=args.n_local,
        device=device,
    )
    command = "python -m cosnet_index.segment.fit " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    meta = {"model_hash": info.hash, "command": command.strip(), "seed": args.seed, **report}
    save_crf_params(params, args.out, metadata=meta)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
