"""Threads for `index` on a shared node: idle, and beside one busy process, in one run.

Each variant indexes the same collection (``bench/index.py``'s: four noise tomograms, the
shipped model) in a fresh process, so that OpenMP settings read at start-up apply, and prints the
end-to-end rate beside the bare ``model.embed`` rate at the variant's fixed thread count measured
in the same process, and the rate of ``model.decode`` (``segment``'s model path):

- ``default``: what ``index`` does without ``--threads`` (``cosnet_index.threads``: the cores of
  the CPU affinity and the cgroup quota, the count measured batch by batch by
  ``AdaptiveThreads``), with ``OMP_WAIT_POLICY=PASSIVE`` as the CLI sets it (OpenMP threads
  sleep at barriers instead of spinning);
- ``1 thread``, ``2 threads``: ``--threads 1`` / ``--threads 2`` (passive, as the CLI);
- ``2 threads, spinning OpenMP threads``: torch's own default wait policy (the CLI before
  issue 32).

The busy process is a pure-Python loop in its own session (so in its own scheduler autogroup, like
another user's job). The figures: each variant's rate as a ratio to the best variant of the same
condition (the issue's bar: the default within 0.9 of the better of 1 and 2 threads beside a busy
process) and index end-to-end over bare embed (bar 0.8, idle).

    python bench/threads.py                         # 1536 particles, best of 2 rounds
    python bench/threads.py --particles 128 --tiny  # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}  # what the CLI sets before torch loads
VARIANTS = {
    "default": (PASSIVE, None),
    "1 thread": (PASSIVE, 1),
    "2 threads": (PASSIVE, 2),
    "2 threads, spinning OpenMP threads": ({}, 2),
}


def child(args: argparse.Namespace) -> None:
    """In a fresh process: set the threads as ``index`` does, then bare embed, index end to end
    and the decoder (``segment``'s model path) rates."""
    import torch
    from index import all_boxes, bare_embed_rate, index_once, make_collection

    from cosnet_index import threads as cosnet_threads
    from cosnet_index.model import load_checkpoint

    work = Path(args.workdir)
    paths, coords = make_collection(work / "data", args.particles, args.seed)
    model, _ = load_checkpoint(work / "model.pt")
    boxes = all_boxes(paths, coords, model.config.box)
    decode_boxes = torch.from_numpy(boxes[: args.decode_boxes])
    bare, e2e, decode = [], [], []
    for _ in range(args.rounds):
        count = cosnet_threads.set_threads(args.threads or None)
        cosnet_threads._ADAPTIVE = None  # the reference: the model at a fixed count
        bare.append(bare_embed_rate(model, boxes, 64, "cpu"))
        cosnet_threads.set_threads(args.threads or None)  # fresh, as a new `index` process
        rate, _n = index_once(paths, coords, work / "model.pt", work / "store", 64, "cpu")
        e2e.append(rate)
        cosnet_threads.set_threads(args.threads or None)  # fresh, as a new `segment` process
        started = time.perf_counter()
        model.decode(decode_boxes, 64)
        decode.append(len(decode_boxes) / (time.perf_counter() - started))
    tuner = cosnet_threads.adaptive_threads()
    print(
        json.dumps(
            {
                "threads": count,
                "adaptive": tuner is not None,
                "bare": max(bare),
                "index": max(e2e),
                "decode": max(decode),
            }
        )
    )


def run_variant(args: argparse.Namespace, work: Path, env: dict, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--child", "--workdir", str(work)]
    command += ["--particles", str(args.particles), "--rounds", str(args.rounds)]
    command += ["--seed", str(args.seed), "--threads", str(threads or 0)]
    command += ["--decode-boxes", str(args.decode_boxes)]
    full_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    full_env.update(env, PYTHONWARNINGS="ignore")
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=full_env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--particles", type=int, default=1536, help="the issue's 1,500 boxes")
    parser.add_argument("--decode-boxes", type=int, default=1536, help="decoder path, per round")
    parser.add_argument("--rounds", type=int, default=2, help="best of, per variant")
    parser.add_argument("--tiny", action="store_true", help="tiny random model (quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from index import make_collection, make_model

    from cosnet_index.threads import available_cpus

    work = Path(tempfile.mkdtemp(prefix="cosnet-bench-threads-"))
    described = make_model(work / "model.pt", args.tiny, args.seed)
    make_collection(work / "data", args.particles, args.seed)
    print(f"model: {described}; {args.particles} particles; best of {args.rounds} rounds")
    print(f"cores this process may use: {available_cpus()} (os.cpu_count {os.cpu_count()})")
    for condition in ("idle", "beside one busy process"):
        busy = None
        if condition != "idle":
            busy = subprocess.Popen(
                [sys.executable, "-c", "while True: pass"], start_new_session=True
            )
            time.sleep(1.0)
        try:
            results = {name: run_variant(args, work, env, t) for name, (env, t) in VARIANTS.items()}
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        print(f"\n{condition}:")
        print("| variant | threads | bare embed, fixed count (boxes/s) | index (boxes/s) | "
              "index / best bare | index / best variant | decoder (boxes/s) | "
              "decoder / best variant |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        best_bare = max(r["bare"] for r in results.values())
        best = max(r["index"] for r in results.values())
        best_decode = max(r["decode"] for r in results.values())
        for name, r in results.items():
            count = f"{r['threads']}{' (adaptive)' if r['adaptive'] else ''}"
            print(
                f"| {name} | {count} | {r['bare']:.0f} | {r['index']:.0f} | "
                f"{r['index'] / best_bare:.2f} | {r['index'] / best:.2f} | {r['decode']:.0f} | "
                f"{r['decode'] / best_decode:.2f} |"
            )
        fixed = ("1 thread", "2 threads")
        better = max(results[k]["index"] for k in fixed)
        better_decode = max(results[k]["decode"] for k in fixed)
        print(
            f"default / better of 1 and 2 threads: index {results['default']['index'] / better:.2f}"
            f", decoder {results['default']['decode'] / better_decode:.2f}; default index / best "
            f"bare embed {results['default']['index'] / best_bare:.2f}"
        )


if __name__ == "__main__":
    main()
