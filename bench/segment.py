"""Hits segmented per second: decoder + torch dense CRF, beside the decoder alone and pydensecrf.

All on the same simulated boxes in the same run (held-out classes, equal shares of SNR inf, 1000
and 0.5), with the shipped model and its fitted CRF parameters (or ``--checkpoint`` /
``--crf-params``). Prints boxes/s of: the decoder alone (the reference), decoder + CRF, the CRF
alone, the CRF as it was before the speed-up (``bench/_crf_before.py``, frozen; "old CRF") alone
and after the decoder, and pydensecrf2's CPU dense CRF (permutohedral lattice approximation; the
`crf` extra; single-threaded C++, box by box) on the same decoder probabilities, plus the Dice
of each against the true masks and the agreement of the CRFs' masks. Timings interleave the
variants and keep each one's best of ``--repeats``. ``--profile`` adds cProfile's top lines for
the old and the new CRF.
Rates depend on the machine and its load: compare the ratios.

    python bench/segment.py --threads 2
    python bench/segment.py --threads 2 --quick
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import bench_parser, load_model, setup_run

from cosnet_index.errors import CheckpointError
from cosnet_index.segment import CRFParams, crf_refine, dice, load_crf_params


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` interleaved rounds (after a warm-up)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def profile_lines(fn: Callable[[], object], n: int = 8) -> str:
    """cProfile's top ``n`` lines by own time of one call of ``fn``."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(n)
    lines = out.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[first - 2 : first + n + 1])


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="", quick="48 boxes, 16 for pydensecrf")
    parser.add_argument("--boxes", type=int, default=192)
    parser.add_argument("--pydensecrf-boxes", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crf-params", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the old and new CRF")
    args = parser.parse_args()
    if args.quick:
        args.boxes, args.pydensecrf_boxes, args.repeats = 48, 16, 2
    from cosnet_index.segment import _bilateral_numba

    setup_run(args, numba=_bilateral_numba.available())
    from cosnet_index.simulate import default_split, simulate_subtomograms

    model, info, _ = load_model(args.checkpoint)
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

    import _crf_before

    def decoder() -> torch.Tensor:
        return model.decode(boxes, batch_size=args.batch_size)

    prob = decoder()
    fns = {
        "decoder alone (reference)": decoder,
        "decoder + CRF": lambda: crf_refine(decoder(), boxes, params, batch_size=32),
        "CRF alone": lambda: crf_refine(prob, boxes, params, batch_size=32),
        "decoder + old CRF": lambda: _crf_before.crf_refine(decoder(), boxes, params),
        "old CRF alone": lambda: _crf_before.crf_refine(prob, boxes, params),
    }
    best = timed(fns, args.repeats)
    rate = {name: args.boxes / t for name, t in best.items()}
    rate_dec = rate["decoder alone (reference)"]
    print(f"{'':34} {'boxes/s':>10} {'ratio to decoder':>18}")
    for name, value in rate.items():
        print(f"{name:34} {value:10.1f} {value / rate_dec:18.2f}")
    print(
        f"CRF new / old: {rate['CRF alone'] / rate['old CRF alone']:.1f}x alone, "
        f"{rate['decoder + CRF'] / rate['decoder + old CRF']:.1f}x after the decoder"
    )
    truth = torch.from_numpy(batch.masks)
    new_q = crf_refine(prob, boxes, params)
    old_q = _crf_before.crf_refine(prob, boxes, params)
    print(
        "mean Dice against the true masks: decoder "
        f"{float(dice(prob > 0.5, truth).mean()):.4f}, decoder + CRF "
        f"{float(dice(new_q > 0.5, truth).mean()):.4f}, decoder + old CRF "
        f"{float(dice(old_q > 0.5, truth).mean()):.4f}; new vs old CRF masks: mean Dice "
        f"{float(dice(new_q > 0.5, old_q > 0.5).mean()):.4f}, max |dQ_1| "
        f"{float((new_q - old_q).abs().max()):.4f}"
    )
    if args.profile:
        print("\nold CRF, cProfile (own time):")
        print(profile_lines(lambda: _crf_before.crf_refine(prob, boxes, params)))
        print("\nnew CRF, cProfile (own time):")
        print(profile_lines(lambda: crf_refine(prob, boxes, params)))
        print()
    rate_dec_ref = rate_dec

    try:
        from cosnet_index.segment.reference import crf_refine_pydensecrf, pydensecrf_available
    except ImportError:  # pragma: no cover
        pydensecrf_available = lambda: False  # noqa: E731
    if not pydensecrf_available():
        print("pydensecrf2 not installed (pip install 'cosnet-index[crf]'): no reference CRF rate")
        return
    n = min(args.pydensecrf_boxes, args.boxes)
    sub_p, sub_v = prob[:n], boxes[:n]
    t_ref = timed({"ref": lambda: crf_refine_pydensecrf(sub_p, sub_v, params)}, 1)["ref"]
    t_ours = timed({"ours": lambda: crf_refine(sub_p, sub_v, params)}, args.repeats)["ours"]
    rate_ref = n / t_ref
    print(
        f"{'pydensecrf2 CRF alone (1 thread)':34} {rate_ref:10.1f} {rate_ref / rate_dec_ref:18.2f}"
    )
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
