"""End-to-end check: classify a simulated, indexed collection and compare with `evaluate`.

Simulates tomograms of held-out classes (``cosnet-index simulate tomograms``), indexes them into
a fresh store with the checkpoint, then for ``--repeats`` seeded draws names one (or K)
particle(s) per class with ``classes add --subtomogram`` and runs ``classify`` through the
store. Reported, with 95% Wilson intervals over particles that were not support examples:

- closed-set accuracy (argmax over the classes, no threshold), beside ``evaluate``'s N-way
  1-shot accuracy at the same SNR (N = number of classes; isolated, uncrowded subtomograms);
- open set: two classes are left out of the support set; the fraction of their particles
  labelled ``unknown`` at the default ``--min-prob``, and of the others wrongly so.

    python bench/classify_store.py                      # shipped weights, SNR 0.5
    python bench/classify_store.py --checkpoint run/last.pt --snr 1000 --repeats 3
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import bench_parser, setup_run

from cosnet_index.classes import add_class
from cosnet_index.evaluate import (
    EvalConfig,
    accuracy_table,
    classification_episodes,
    wilson_interval,
)
from cosnet_index.model.checkpoint import default_checkpoint_path
from cosnet_index.query import DEFAULT_MIN_PROB, UNKNOWN, classify_store
from cosnet_index.simulate import resolve_classes, simulate_collection
from cosnet_index.store import Store, index_tomograms


def _ci(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k / max(n, 1):.3f} [{lo:.3f}, {hi:.3f}] (n={n})"


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="default: the shipped weights")
    parser.add_argument("--classes", default="heldout-real,proc:100000-100002")
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--n-tomograms", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 192, 192))
    parser.add_argument("--n-particles", type=int, default=120, help="per tomogram")
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="support draws")
    parser.add_argument("--min-prob", type=float, default=DEFAULT_MIN_PROB)
    parser.add_argument("--evaluate-episodes", type=int, default=300)
    parser.add_argument("--work", default=None, help="folder for tomograms and store (temp)")
    args = parser.parse_args()
    setup_run(args)
    checkpoint = Path(args.checkpoint or default_checkpoint_path())
    work = Path(args.work or tempfile.mkdtemp(prefix="cosnet-classify-"))
    names = resolve_classes(args.classes)

    t0 = time.perf_counter()
    truth = simulate_collection(
        work / "tomos", args.n_tomograms, names, args.n_particles, args.snr, args.seed,
        shape=tuple(args.shape),
    )  # fmt: skip
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = Store.create(work / "store", model_path=checkpoint)
    tomos = sorted((work / "tomos").glob("*.mrc"))
    index_tomograms(store, tomos, work / "tomos" / "particles.star", progress=False)
    t_index = time.perf_counter() - t0
    table = store.subtomogram_table()
    key = ["tomogram", "x", "y", "z"]
    rounded = {c: truth[c].round(3) for c in "xyz"}
    labels = table.assign(**{c: table[c].round(3) for c in "xyz"}).merge(
        truth.assign(**rounded)[[*key, "class"]], on=key, how="left"
    )
    assert labels["class"].notna().all(), "stored particles without a truth row"
    label_of = dict(zip(labels["id"], labels["class"], strict=True))
    present = sorted(labels["class"].unique())
    print(
        f"checkpoint {checkpoint} (model {store.model_hash[:12]}, head bias "
        f"{store.model().head_bias:.3f}); SNR {args.snr:g}, seed {args.seed}"
    )
    print(
        f"{len(tomos)} tomograms {tuple(args.shape)}, {len(table)} particles indexed of "
        f"{len(truth)} simulated, {len(present)} classes; simulate {t_sim:.0f} s, "
        f"index {t_index:.0f} s"
    )

    rng = np.random.default_rng(args.seed)
    closed_k = closed_n = unk_k = unk_n = wrong_unk_k = wrong_unk_n = 0
    t_classify = []
    for r in range(args.repeats):
        support = {
            c: rng.choice(labels.loc[labels["class"] == c, "id"].to_numpy(), args.shots,
                          replace=False)
            for c in present
        }  # fmt: skip
        left_out = set(rng.choice(present, 2, replace=False))
        for c, ids in support.items():
            add_class(store, c, subtomogram_ids=ids.tolist(), set_name=f"all-{r}")
            if c not in left_out:
                add_class(store, c, subtomogram_ids=ids.tolist(), set_name=f"open-{r}")
        used = {int(i) for ids in support.values() for i in ids}
        t0 = time.perf_counter()
        result, _ = classify_store(store, set_name=f"all-{r}", min_prob=args.min_prob)
        t_classify.append(time.perf_counter() - t0)
        result = result[~result["subtomogram_id"].isin(used)]
        truth_r = result["subtomogram_id"].map(label_of)
        p_cols = [f"p_{c}" for c in present]
        argmax = np.array(present)[result[p_cols].to_numpy().argmax(axis=1)]
        closed_k += int((argmax == truth_r.to_numpy()).sum())
        closed_n += len(result)
        opened, _ = classify_store(store, set_name=f"open-{r}", min_prob=args.min_prob)
        opened = opened[~opened["subtomogram_id"].isin(used)]
        truth_o = opened["subtomogram_id"].map(label_of)
        is_out = truth_o.isin(left_out).to_numpy()
        is_unknown = (opened["class"] == UNKNOWN).to_numpy()
        unk_k += int(is_unknown[is_out].sum())
        unk_n += int(is_out.sum())
        wrong_unk_k += int(is_unknown[~is_out].sum())
        wrong_unk_n += int((~is_out).sum())

    print(
        f"\n{args.repeats} support draws, {args.shots} shot(s) per class, "
        f"min_prob {args.min_prob:g}; classify through the store {np.mean(t_classify):.2f} s"
    )
    print("| measure | value [95% CI] |")
    print("|---|---|")
    print(
        f"| closed-set accuracy, {len(present)} classes (store classify) | "
        f"{_ci(closed_k, closed_n)} |"
    )
    if args.evaluate_episodes:
        config = EvalConfig(episodes=args.evaluate_episodes, baseline_episodes=0, seed=args.seed)
        row = accuracy_table(
            classification_episodes(store.model(), present, len(present), args.snr, config)
        ).iloc[0]
        print(
            f"| `evaluate` {len(present)}-way 1-shot accuracy, same classes and SNR | "
            f"{row['accuracy']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] "
            f"(n={int(row['episodes'])}) |"
        )
    print(f"| particles of the 2 left-out classes labelled unknown | {_ci(unk_k, unk_n)} |")
    print(f"| particles of support classes labelled unknown | {_ci(wrong_unk_k, wrong_unk_n)} |")
    store.close()
    print(f"\n(work folder: {work})")


if __name__ == "__main__":
    main()
