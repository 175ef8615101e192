"""Hits segmented per second: decoder + torch dense CRF, beside the decoder alone and pydensecrf.

All on the same simulated boxes in the same run (held-out classes, equal shares of SNR inf, 1000
and 0.5), with the shipped model and its fitted CRF parameters (or ``--checkpoint`` /
``--crf-params``). Prints boxes/s of: the decoder alone (the reference), decoder + torch CRF,
the torch CRF alone, and pydensecrf2's CPU dense CRF (permutohedral lattice approximation; the
`crf` extra; single-threaded C++, box by box) on the same decoder probabilities, plus the Dice
agreement of the two CRFs' masks.
Rates depend on the machine and its load: compare the ratios.

    python bench/segment.py --threads 2
    python bench/segment.py --threads 2 --quick
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from cosnet_index.errors import CheckpointError
from cosnet_index.segment import CRFParams, crf_refine, dice, load_crf_params


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--boxes", type=int, default=192)
    parser.add_argument("--pydensecrf-boxes", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--crf-params", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="48 boxes, 16 for pydensecrf")
    args = parser.parse_args()
    if args.quick:
        args.boxes, args.pydensecrf_boxes, args.repeats = 48, 16, 2
    torch.set_num_threads(args.threads)

    from cosnet_index.model import load_checkpoint, load_default_model
    from cosnet_index.simulate import default_split, simulate_subtomograms

    model, info = load_checkpoint(args.checkpoint) if args.checkpoint else load_default_model()
    try:
        params, _ = load_crf_params(args.crf_params, model_hash=info.hash)
        source = args.crf_params or "shipped crf.json"
    except CheckpointError as exc:  # no fitted parameters for this model: say so, use defaults
        params, source = CRFParams(), f"defaults ({exc})"
    heldout = default_split().heldout
    rng = np.random.default_rng(args.seed)
    names = [heldout[i] for i in rng.integers(0, len(heldout), args.boxes)]
    snrs = [(math.inf, 1000.0, 0.5)[i % 3] for i in range(args.boxes)]
    batch = simulate_subtomograms(names, snrs, rng)
    boxes = torch.from_numpy(batch.volumes)
    print(f"model {info.hash[:12]}, CRF parameters: {source}")
    print(f"  {params}")
    print(
        f"{args.boxes} boxes of 32^3 (held-out classes, SNR inf/1000/0.5), "
        f"{args.threads} torch threads, load average {os.getloadavg()[0]:.1f}"
    )

    def decoder() -> torch.Tensor:
        return model.decode(boxes, batch_size=args.batch_size)

    prob = decoder()

    def crf_only() -> torch.Tensor:
        return crf_refine(prob, boxes, params, batch_size=32)

    def decoder_crf() -> torch.Tensor:
        return crf_refine(decoder(), boxes, params, batch_size=32)

    t_dec = timed(decoder, args.repeats)
    t_crf = timed(crf_only, args.repeats)
    t_both = timed(decoder_crf, args.repeats)
    rate_dec = args.boxes / t_dec
    rate_both = args.boxes / t_both
    rate_crf = args.boxes / t_crf
    print(f"{'':34} {'boxes/s':>10} {'ratio to decoder':>18}")
    print(f"{'decoder alone (reference)':34} {rate_dec:10.1f} {1.0:18.2f}")
    print(f"{'decoder + torch CRF':34} {rate_both:10.1f} {rate_both / rate_dec:18.2f}")
    print(f"{'torch CRF alone':34} {rate_crf:10.1f} {rate_crf / rate_dec:18.2f}")

    try:
        from cosnet_index.segment.reference import crf_refine_pydensecrf, pydensecrf_available
    except ImportError:  # pragma: no cover
        pydensecrf_available = lambda: False  # noqa: E731
    if not pydensecrf_available():
        print("pydensecrf2 not installed (pip install 'cosnet-index[crf]'): no reference CRF rate")
        return
    n = min(args.pydensecrf_boxes, args.boxes)
    sub_p, sub_v = prob[:n], boxes[:n]
    t_ref = timed(lambda: crf_refine_pydensecrf(sub_p, sub_v, params), 1)
    t_ours = timed(lambda: crf_refine(sub_p, sub_v, params, batch_size=32), args.repeats)
    rate_ref = n / t_ref
    print(f"{'pydensecrf2 CRF alone (1 thread)':34} {rate_ref:10.1f} {rate_ref / rate_dec:18.2f}")
    print(
        f"torch CRF / pydensecrf2 on the same {n} boxes: {t_ref / t_ours:.1f}x "
        f"({n / t_ours:.1f} vs {rate_ref:.1f} boxes/s)"
    )
    ours = crf_refine(sub_p, sub_v, params) > 0.5
    ref = torch.from_numpy(crf_refine_pydensecrf(sub_p, sub_v, params) > 0.5)
    agree = dice(ours, ref)
    changed = 1 - dice(ours, sub_p > 0.5)
    print(
        f"mask Dice torch vs pydensecrf2: mean {float(agree.mean()):.4f}, min "
        f"{float(agree.min()):.4f} (the CRF changed {float(changed.mean()):.1%} of the decoder "
        "masks' Dice)"
    )


if __name__ == "__main__":
    main()
