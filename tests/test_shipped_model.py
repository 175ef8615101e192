"""The shipped weights: safe loading, a CRF fitted for them, and store queries as accurate as
``evaluate`` says on classes the model never saw in training."""

from __future__ import annotations

import numpy as np
import pytest

from cosnet_index.model import default_checkpoint_path

pytestmark = pytest.mark.skipif(
    not default_checkpoint_path().is_file(), reason="no shipped weights in this checkout"
)

SNR = 1000.0
CLASSES = ("apoferritin_6z6u", "ruvab_7pbl", "casx_6ny1", "glua3_3o21")  # held-out real maps


def test_shipped_checkpoint_loads_with_its_hash_and_fitted_crf() -> None:
    from cosnet_index.model import load_checkpoint, load_default_model
    from cosnet_index.segment.params import load_crf_params
    from cosnet_index.simulate import default_split

    model, info = load_default_model()
    _, info_again = load_checkpoint(default_checkpoint_path())
    assert info.hash == info_again.hash and len(info.hash) == 64
    assert (model.head_w <= 0).all()
    params, meta = load_crf_params(model_hash=info.hash)  # refuses parameters of another model
    assert meta["model_hash"] == info.hash and params.n_iter >= 0
    assert set(CLASSES) <= set(default_split().heldout)


def test_store_classify_is_as_accurate_as_evaluate(tmp_path) -> None:
    """Index a simulated tomogram of held-out classes, one support particle per class, classify
    everything through the store: the accuracy agrees with ``evaluate``'s 4-way-1-shot episodes
    at the same SNR (overlapping 95% intervals)."""
    from cosnet_index.classes import add_class
    from cosnet_index.evaluate import EvalConfig, accuracy_table, run_evaluation, wilson_interval
    from cosnet_index.model import load_default_model
    from cosnet_index.query import classify_store
    from cosnet_index.simulate import simulate_collection
    from cosnet_index.store import Store, index_tomograms

    truth = simulate_collection(
        tmp_path / "sim", 1, CLASSES, 48, SNR, seed=7, shape=(64, 192, 192)
    ).reset_index(drop=True)
    tomograms = sorted((tmp_path / "sim").glob("TS_*.mrc"))
    with Store.create(tmp_path / "store", model_path=default_checkpoint_path()) as store:
        index_tomograms(store, tomograms, tmp_path / "sim" / "particles.star", progress=False)
        table = store.subtomogram_table()
        xyz = table[["x", "y", "z"]].to_numpy()
        nearest = [int(np.abs(xyz - p).sum(1).argmin()) for p in truth[["x", "y", "z"]].to_numpy()]
        truth["subtomogram_id"] = table["id"].to_numpy()[nearest]
        support = truth.groupby("class").head(1)  # the first particle of each class
        for name, sid in zip(support["class"], support["subtomogram_id"], strict=True):
            add_class(store, str(name), subtomogram_ids=[int(sid)])
        result, _ = classify_store(store, min_prob=1e-6)  # closed set, as in evaluate
    scored = result.merge(
        truth[["subtomogram_id", "class"]], on="subtomogram_id", suffixes=("", "_t")
    )
    scored = scored[~scored["subtomogram_id"].isin(support["subtomogram_id"])]
    assert len(scored) >= 30
    correct = int((scored["class"].astype(str) == scored["class_t"].astype(str)).sum())
    store_lo, store_hi = wilson_interval(correct, len(scored))

    model, _ = load_default_model()
    config = EvalConfig(ways=(4,), snrs=(SNR,), episodes=200, baseline_episodes=0, dice_boxes=0)
    episodes, _ = run_evaluation(model, list(CLASSES), config, progress=False)
    (row,) = accuracy_table(episodes).itertuples()
    assert row.accuracy > 0.5  # far above chance (0.25): the shipped model works at all
    assert store_hi >= row.ci_low and row.ci_high >= store_lo, (
        f"store {correct}/{len(scored)} [{store_lo:.3f}, {store_hi:.3f}] vs evaluate "
        f"{row.accuracy:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
    )
