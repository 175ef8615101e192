"""Should `embed` run in bf16 on the CPU? Accuracy and speed of bf16 autocast against fp32.

Issue 32's rule: bf16 only behind a measured decision, the hard benchmark's cells within 0.01 of
fp32. This runs the learning-curve cells of the campaign (``cosnet_index.campaign``: the
size-matched held-out tier, 10-way 1-shot, SNR 1000 / 0.5 / 0.1, ``shifted`` imaging with the
supports from the same and from another collection, and ``paper`` imaging; the same seeded
episodes for both precisions) once in fp32 and once with ``CosNet.embed`` under
``torch.autocast("cpu", dtype=torch.bfloat16)``, and prints each cell, its change, the largest
change, and the vectors' relative difference and both embedding rates on the same boxes.

    python bench/bf16_accuracy.py --threads 2            # shipped weights, 200 episodes per cell
    python bench/bf16_accuracy.py --episodes 20 --threads 2   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cosnet_index.model import CosNet


def _rate(model: CosNet, boxes: torch.Tensor, rounds: int = 3) -> float:
    model.embed(boxes[:64])  # warm-up: layout, kernels
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        model.embed(boxes)
        best = max(best, len(boxes) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from cosnet_index.campaign import evaluate_candidate
    from cosnet_index.model import load_checkpoint, load_default_model

    plain_embed = CosNet.embed

    def bf16_embed(self: CosNet, volumes: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return plain_embed(self, volumes, batch_size)

    results = {}
    for name, embed in (("fp32", plain_embed), ("bf16", bf16_embed)):
        CosNet.embed = embed  # type: ignore[method-assign]
        try:
            results[name] = evaluate_candidate(
                args.checkpoint, episodes=args.episodes, seed=args.seed
            )
        finally:
            CosNet.embed = plain_embed  # type: ignore[method-assign]
        print(f"{name}: {results[name]['eval_seconds']:.0f} s", flush=True)

    print(f"\nmodel {results['fp32']['model_hash'][:12]}, {args.episodes} episodes per cell, "
          f"seed {args.seed}, {args.threads} threads")  # fmt: skip
    print("| cell | fp32 | bf16 | bf16 - fp32 |")
    print("|---|---|---|---|")
    worst = 0.0
    for key, cell in results["fp32"]["cells"].items():
        other = results["bf16"]["cells"][key]["accuracy"]
        worst = max(worst, abs(other - cell["accuracy"]))
        print(f"| {key} | {cell['accuracy']:.3f} | {other:.3f} | {other - cell['accuracy']:+.3f} |")
    print(f"largest change of a cell: {worst:.3f} (bar: 0.01)")

    model, _ = load_checkpoint(args.checkpoint) if args.checkpoint else load_default_model()
    boxes = torch.randn(512, 32, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    fp32 = model.embed(boxes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.embed(boxes)
    relative = ((bf16 - fp32).norm(dim=1) / fp32.norm(dim=1)).median().item()
    fp32_rate = _rate(model, boxes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_rate = _rate(model, boxes)
    print(f"vectors: median relative L2 difference bf16 vs fp32 {relative:.4f}")
    print(f"embed, 512 boxes, batch 64: fp32 {fp32_rate:.0f}/s, bf16 {bf16_rate:.0f}/s "
          f"(x{bf16_rate / fp32_rate:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
