"""Time per comparison: rotational-search template matching vs. COS-Net, same machine, same run.

Template matching scores one (reference, target) pair by a missing-wedge-aware NCC over a
rotation grid (``cosnet_index._template_matching``); COS-Net embeds each subtomogram once and
compares stored vectors by L1 distance. Prints seconds per comparison for both and the ratio.

    python bench/template_matching.py --threads 2
    python bench/template_matching.py --rotations 100 500 \
        --checkpoint cosnet_index/weights/cosnet.pt
"""

from __future__ import annotations

import math
import time

import torch
from _common import bench_parser, setup_run

from cosnet_index._template_matching import rotation_grid, template_match_scores
from cosnet_index.model import CosNet, CosNetConfig, load_checkpoint
from cosnet_index.simulate import default_split, simulate_subtomograms


def main() -> None:
    parser = bench_parser(__doc__, seed=None, checkpoint="default: a random default model")
    parser.add_argument("--rotations", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--pairs", type=int, default=8, help="comparisons timed per setting")
    args = parser.parse_args()
    setup_run(args)
    names = list(default_split().heldout[: args.pairs])
    batch = simulate_subtomograms(names + names, 0.5, seed=0)
    vols = torch.as_tensor(batch.volumes)
    refs, targets = vols[: args.pairs], vols[args.pairs :]

    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        model = CosNet(CosNetConfig()).eval()
    many = vols.repeat(16, 1, 1, 1)  # 16 * 2 * pairs boxes
    model.embed(many[:8])
    t0 = time.perf_counter()
    emb = model.embed(many, batch_size=64)
    embed_s = (time.perf_counter() - t0) / many.shape[0]
    t0 = time.perf_counter()
    for _ in range(100):
        torch.cdist(emb[: args.pairs], emb, p=1)
    l1_s = (time.perf_counter() - t0) / (100 * args.pairs * emb.shape[0])
    # one new comparison = embed one new subtomogram + one L1 distance (the reference's vector
    # is stored); counting both boxes' embedding is the worst case
    cosnet_s = 2 * embed_s + l1_s
    print(f"torch {torch.__version__}, {args.threads} threads, box {vols.shape[-1]}^3")
    print(
        f"COS-Net: embed {embed_s * 1e3:.3f} ms/subtomogram, L1 {l1_s * 1e9:.1f} ns/pair, "
        f"comparison (2 embeds + L1) {cosnet_s * 1e3:.3f} ms"
    )
    for k in args.rotations:
        rotations = rotation_grid(k, seed=0)
        template_match_scores(refs[:1], targets[:1], rotations)
        t0 = time.perf_counter()
        for i in range(args.pairs):
            template_match_scores(refs[i : i + 1], targets[i : i + 1], rotations)
        tm_s = (time.perf_counter() - t0) / args.pairs
        spacing = math.degrees((8 * math.pi**2 / k) ** (1 / 3))
        print(
            f"template matching, {k} rotations (~{spacing:.0f} deg spacing): "
            f"{tm_s * 1e3:.1f} ms/comparison = {tm_s / cosnet_s:.0f}x COS-Net"
        )


if __name__ == "__main__":
    main()
