"""Open-set calibration: the default --min-prob, and max vs mean over K shots, from measured data.

On classes the model never saw in training (``default_split().heldout``: 5 real + 24 procedural),
simulated at each SNR, every subtomogram is embedded once with the checkpoint. Seeded episodes
then draw ``--known`` classes as the support set (K shots each) and ``--absent`` other held-out
classes that are NOT in it; queries are other members of both. For every threshold t:

- true-match rate TMR(t): known-class queries whose best class is right AND has p >= t;
- false-match rate FMR(t): absent-class queries given some class (best p >= t) -- the open-set
  error that `unknown` exists to prevent;
- balanced open-set accuracy (TMR + 1 - FMR) / 2.

The default threshold maximises the balanced accuracy averaged over the SNRs for 1-shot (the
common case); the default reduction is the one with the higher 3-shot balanced accuracy. Figures
carry 95% Wilson intervals over queries (queries share pools, so the intervals are optimistic).

    python bench/open_set.py                               # shipped weights, SNR 1000, 0.5, 0.1
    python bench/open_set.py --checkpoint run/last.pt --snr 0.5 --per-class 40 --episodes 100
    python bench/open_set.py --quick
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from _common import bench_parser, load_model, setup_run

from cosnet_index.evaluate import wilson_interval
from cosnet_index.query import class_scores
from cosnet_index.simulate import default_split, simulate_subtomograms

THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)
CONFIGS = (("1-shot", 1, "max"), ("3-shot max", 3, "max"), ("3-shot mean", 3, "mean"))


def embed_pool(model, names, per_class: int, snr: float, seed: int):  # type: ignore[no-untyped-def]
    """(xb (C * per_class, d), labels (C * per_class,)) of freshly simulated subtomograms."""
    parts, labels = [], []
    rng = np.random.default_rng(seed)
    for c, name in enumerate(names):
        batch = simulate_subtomograms([name] * per_class, snr, rng)
        parts.append(model.embed(torch.from_numpy(batch.volumes)).numpy())
        labels.append(np.full(per_class, c))
    return np.concatenate(parts), np.concatenate(labels)


def run_episodes(xb, labels, bias: float, args, seed: int) -> dict[str, dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """Per config: best p and correctness of known queries, best p of absent queries."""
    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1
    pools = [np.flatnonzero(labels == c) for c in range(n_classes)]
    out = {name: {"known_p": [], "known_ok": [], "absent_p": []} for name, _, _ in CONFIGS}
    for _ in range(args.episodes):
        classes = rng.choice(n_classes, args.known + args.absent, replace=False)
        known, absent = classes[: args.known], classes[args.known :]
        shots, queries, truth = [], [], []
        for c in known:
            pick = rng.choice(pools[c], 3 + args.queries, replace=False)
            shots.append(pick[:3])
            queries.append(pick[3:])
            truth.append(np.full(args.queries, c))
        q_known, t_known = np.concatenate(queries), np.concatenate(truth)
        q_absent = np.concatenate(
            [rng.choice(pools[c], args.queries, replace=False) for c in absent]
        )
        for name, k, reduce in CONFIGS:
            protos = [xb[s[:k]] for s in shots]
            s_known = class_scores(xb[q_known], protos, bias, reduce=reduce)  # (q, known)
            s_absent = class_scores(xb[q_absent], protos, bias, reduce=reduce)
            out[name]["known_p"].append(s_known.max(axis=1))
            out[name]["known_ok"].append(known[s_known.argmax(axis=1)] == t_known)
            out[name]["absent_p"].append(s_absent.max(axis=1))
    return {n: {k: np.concatenate(v) for k, v in d.items()} for n, d in out.items()}


def curves(r: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TMR, FMR and balanced accuracy at every threshold."""
    tmr = np.array([(r["known_ok"] & (r["known_p"] >= t)).mean() for t in THRESHOLDS])
    fmr = np.array([(r["absent_p"] >= t).mean() for t in THRESHOLDS])
    return {"tmr": tmr, "fmr": fmr, "balanced": (tmr + 1 - fmr) / 2}


def _ci(rate: float, n: int) -> str:
    lo, hi = wilson_interval(round(rate * n), n)
    return f"{rate:.3f} [{lo:.3f}, {hi:.3f}]"


def main() -> None:
    parser = bench_parser(
        __doc__, checkpoint="default: the shipped weights", quick="20 per class, 50 episodes"
    )
    parser.add_argument("--snr", type=float, nargs="+", default=[1000.0, 0.5, 0.1])
    parser.add_argument("--per-class", type=int, default=40, help="subtomograms per class")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--known", type=int, default=5, help="classes in the support set")
    parser.add_argument("--absent", type=int, default=5, help="held-out classes not in it")
    parser.add_argument("--queries", type=int, default=5, help="queries per class per episode")
    parser.add_argument(
        "--evaluate-episodes",
        type=int,
        default=300,
        help="also run `evaluate`'s N-way-1-shot episodes (N = --known) at each SNR for comparison",
    )
    args = parser.parse_args()
    if args.quick:
        args.per_class, args.episodes, args.evaluate_episodes = 20, 50, 100
    setup_run(args)
    model, info, path = load_model(args.checkpoint)
    bias = model.head_bias
    names = default_split().heldout
    print(f"checkpoint {path} (hash {info.hash[:12]}), head bias {bias:.3f}")
    print(
        f"{len(names)} held-out classes x {args.per_class} subtomograms per SNR, "
        f"{args.episodes} episodes ({args.known} known + {args.absent} absent classes, "
        f"{args.queries} queries each), seed {args.seed}"
    )
    per_snr = {}
    for i, snr in enumerate(args.snr):
        t0 = time.perf_counter()
        xb, labels = embed_pool(model, names, args.per_class, snr, args.seed + 1000 * i)
        results = run_episodes(xb, labels, bias, args, args.seed + 1000 * i + 1)
        per_snr[snr] = {name: (r, curves(r)) for name, r in results.items()}
        print(f"SNR {snr:g}: pool embedded and scored in {time.perf_counter() - t0:.1f} s")

    # choose: reduction by 3-shot best balanced accuracy (mean over SNRs), threshold for 1-shot
    def mean_curve(config: str, key: str) -> np.ndarray:
        return np.mean([per_snr[s][config][1][key] for s in per_snr], axis=0)

    best_reduce = max(("max", "mean"), key=lambda r: mean_curve(f"3-shot {r}", "balanced").max())
    pick = float(THRESHOLDS[int(mean_curve("1-shot", "balanced").argmax())])
    print(
        f"\nchosen default --min-prob {pick:.2f} (max of mean 1-shot balanced accuracy), "
        f"default reduce '{best_reduce}'\n"
    )
    print(
        "| SNR | config | closed-set accuracy | threshold | TMR [95% CI] | FMR [95% CI] "
        "| balanced |"
    )
    print("|---|---|---|---|---|---|---|")
    for snr, configs in per_snr.items():
        for name, (r, c) in configs.items():
            n_known, n_absent = len(r["known_ok"]), len(r["absent_p"])
            closed = _ci(float(r["known_ok"].mean()), n_known)
            for t in sorted({0.5, pick}):
                j = int(np.flatnonzero(THRESHOLDS == t)[0])
                print(
                    f"| {snr:g} | {name} | {closed} | {t:.2f} | {_ci(c['tmr'][j], n_known)} | "
                    f"{_ci(c['fmr'][j], n_absent)} | {c['balanced'][j]:.3f} |"
                )
    print("\nbest threshold per SNR and config (for reference):")
    for snr, configs in per_snr.items():
        for name, (_, c) in configs.items():
            j = int(c["balanced"].argmax())
            print(
                f"  SNR {snr:g} {name}: t={THRESHOLDS[j]:.2f} balanced {c['balanced'][j]:.3f} "
                f"(TMR {c['tmr'][j]:.3f}, FMR {c['fmr'][j]:.3f})"
            )
    if args.evaluate_episodes:
        from cosnet_index.evaluate import EvalConfig, accuracy_table, classification_episodes

        print(f"\nclosed-set accuracy beside `evaluate` ({args.known}-way 1-shot, same classes):")
        print("| SNR | this bench, 1-shot (store path) | evaluate (network path) |")
        print("|---|---|---|")
        config = EvalConfig(episodes=args.evaluate_episodes, baseline_episodes=0, seed=args.seed)
        for snr, configs in per_snr.items():
            table = accuracy_table(
                classification_episodes(model, names, args.known, snr, config)
            ).iloc[0]
            r = configs["1-shot"][0]
            print(
                f"| {snr:g} | {_ci(float(r['known_ok'].mean()), len(r['known_ok']))} | "
                f"{table['accuracy']:.3f} [{table['ci_low']:.3f}, {table['ci_high']:.3f}] "
                f"({int(table['episodes'])} episodes) |"
            )
    n_q = args.episodes * args.known * args.queries
    print(
        f"\nqueries per SNR and config: {n_q} known, {args.episodes * args.absent * args.queries} "
        f"absent; pool {len(names) * args.per_class} subtomograms per SNR"
    )
    if not math.isfinite(pick):
        raise SystemExit("no threshold chosen")


if __name__ == "__main__":
    main()
