"""Throughput of ``CosNet.embed`` on this machine's CPU cores, and FLOPs per subtomogram.

Prints subtomograms/s for several widths/strides, batch sizes, channels_last_3d on/off and bf16
autocast, each as a ratio to a reference (the 32/64/128 stride-1-first 3-level net) measured in
the same run. Numbers depend on the machine and its load: compare the ratios.

    python bench/embed.py --threads 2
    python bench/embed.py --threads 2 --quick
"""

from __future__ import annotations

import time

import torch
from _common import bench_parser, setup_run
from torch.utils.flop_counter import FlopCounterMode

from cosnet_index.model import CosNet, CosNetConfig

CANDIDATES = {
    "reference 32/64/128 s1,2,2": CosNetConfig(
        widths=(32, 64, 128), strides=(1, 2, 2), convs_per_level=1
    ),
    "16/32/64 s2,2,1 x1conv": CosNetConfig(convs_per_level=1),
    "8/16/32 s1,2,2 x1conv": CosNetConfig(widths=(8, 16, 32), strides=(1, 2, 2), convs_per_level=1),
    "16/32/64 s1,2,2 x1conv": CosNetConfig(
        widths=(16, 32, 64), strides=(1, 2, 2), convs_per_level=1
    ),
    "24/48/96 s2,2,1 x2conv": CosNetConfig(widths=(24, 48, 96)),
    "16/32/64 s2,2,1 x2conv (shipped)": CosNetConfig(),
}


def flops_per_box(model: CosNet) -> float:
    x = torch.randn(4, 32, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model.embed(x)
    return counter.get_total_flops() / 4


def rate(
    model: CosNet, batch: int, channels_last: bool, bf16: bool, seconds: float, seed: int = 0
) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 32, 32, 32, generator=gen)
    m = model.to(memory_format=torch.channels_last_3d) if channels_last else model
    m = m.eval()

    def once() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if channels_last:
                # embed normalises then runs; channels_last needs the input in that format too
                from cosnet_index.model.normalize import normalize_boxes

                xx = normalize_boxes(x.unsqueeze(1)).contiguous(
                    memory_format=torch.channels_last_3d
                )
                with torch.inference_mode():
                    m.forward_embedding(m.forward_features(xx))
            else:
                m.embed(x, batch_size=batch)

    once()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        n += batch
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = bench_parser(__doc__, quick="batch 64, fp32 only")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    setup_run(args, torch_seed=True)
    batches = [64] if args.quick else [16, 64, 256]
    modes = (
        [(False, False), (True, False)]
        if args.quick
        else [(False, False), (True, False), (True, True)]
    )
    ref_rate = None
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(
        f"{'config':28s} {'MFLOP/box':>9s} {'params':>8s} {'batch':>5s} {'cl3d':>4s} "
        f"{'bf16':>4s} {'boxes/s':>8s} {'x ref':>6s}"
    )
    for name, config in CANDIDATES.items():
        model = CosNet(config).eval()
        mflops = flops_per_box(model) / 1e6
        params = sum(p.numel() for p in model.parameters() if True) / 1e6
        for batch in batches:
            for channels_last, bf16 in modes:
                r = rate(model, batch, channels_last, bf16, args.seconds)
                if ref_rate is None:
                    ref_rate = r
                print(
                    f"{name:28s} {mflops:9.1f} {params:7.2f}M {batch:5d} {channels_last!s:>4s} "
                    f"{bf16!s:>4s} {r:8.1f} {r / ref_rate:6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
