"""The open-set rule fitted on the collection, its provenance and fallback, and the metrics of the
open-set and discovery tables (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from cosnet_index.benchmark._open_set_metrics import (
    adjusted_rand_index,
    auroc,
    completeness,
    flagged_at_lost,
    molecules_found,
    purity,
)
from cosnet_index.classes import add_class
from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError
from cosnet_index.query import (
    MIN_COLLECTION,
    UNKNOWN,
    class_scores,
    classify_scores,
    classify_store,
    discover_store,
    fit_open_set_rule,
    novelty_scores,
    read_table,
    unknown_mask,
    write_table,
)
from cosnet_index.store import Store
from tests._classes_util import fresh_store_path, ids_by_label
from tests._query_util import BIAS, clustered_vectors


def _shifted_collection(scale: float) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """4 known + 1 novel cluster (class 4), 40 each; every distance scaled by ``scale`` (a change
    of microscope that moves all distances, which a fixed threshold cannot follow)."""
    xb, labels, _ = clustered_vectors(5, 40, seed=3)
    xb = xb * np.float32(scale)
    supports = [xb[labels == c][:1] for c in range(4)]
    return xb, labels, supports


@pytest.mark.parametrize("scale", [1.0, 1.4])
def test_collection_rule_flags_a_novel_cluster_and_keeps_known_ones(scale):
    xb, labels, supports = _shifted_collection(scale)
    scores = class_scores(xb, supports, BIAS)
    rule = fit_open_set_rule(scores, BIAS, "collection")
    assert rule.name == "collection" and rule.fallback is None
    unknown = unknown_mask(scores, rule)
    assert unknown[labels == 4].mean() >= 0.95
    assert unknown[labels < 4].mean() <= 0.05
    # the same decision as classify_scores with the per-class thresholds, and novelty > 0 there
    result = classify_scores(scores, list("abcd"), 0.86, rule.thresholds)
    np.testing.assert_array_equal(result.best < 0, unknown)
    np.testing.assert_array_equal(novelty_scores(scores, rule) > 0, unknown)
    fixed = unknown_mask(scores, fit_open_set_rule(scores, BIAS, "fixed", min_prob=0.86))
    if scale > 1:  # the fixed threshold loses the known classes once distances grow
        assert fixed[labels < 4].mean() >= 0.5


def test_fallback_to_the_fixed_rule_under_min_collection():
    xb, _, supports = _shifted_collection(1.0)
    small = xb[: MIN_COLLECTION - 1]
    scores = class_scores(small, supports, BIAS)
    rule = fit_open_set_rule(scores, BIAS, "collection", min_prob=0.7)
    assert rule.name == "fixed" and rule.requested == "collection"
    assert str(MIN_COLLECTION) in rule.fallback
    np.testing.assert_array_equal(rule.thresholds, np.float32(0.7))
    with pytest.raises(InputError, match="open-set rule"):
        fit_open_set_rule(scores, BIAS, "adaptive")


def test_classify_records_the_rule_and_thresholds_and_falls_back(toy_store, toy, tmp_path):
    ids = ids_by_label(toy_store, toy.truth)
    for label in ("ball", "cube", "rod"):  # "ring" is unnamed
        add_class(toy_store, label, subtomogram_ids=[ids[label][0]])
    table, meta = classify_store(toy_store, rule="collection")  # 64 particles
    assert meta["rule"] == "collection" and meta["rule_fallback"] is None
    assert set(meta["thresholds"]) == {"ball", "cube", "rod"}
    assert len(set(meta["thresholds"].values())) == 3  # one threshold per class
    label = table.merge(toy.truth, on=["tomogram", "x", "y", "z"])["label"]
    assert (table["class"] == UNKNOWN)[label == "ring"].mean() >= 0.9
    # the default level trades ~5% of known particles for novel ones on the hard benchmark; the
    # toy's classes are a quarter of the collection each, with wide tails: 0.21 lost at seed 0
    assert (table["class"] == UNKNOWN)[label != "ring"].mean() <= 0.25
    path = write_table(table, tmp_path / "r.parquet", meta)
    assert read_table(path)[1]["thresholds"] == meta["thresholds"]
    few = np.concatenate([v[:5] for v in ids.values()])  # 20 particles: fixed rule
    _, small = classify_store(toy_store, ids=few, rule="collection")
    assert small["rule"] == "fixed" and small["rule_requested"] == "collection"
    assert "fewer than 50" in small["rule_fallback"]
    _, given = classify_store(toy_store, min_prob=0.5)  # a threshold given: the fixed rule
    assert given["rule"] == "fixed" and given["thresholds"]["ball"] == 0.5
    # discover --exclude-known clusters what the same rule calls unknown, and records it
    _, assignments, found = discover_store(
        toy_store, exclude_known=True, min_size=4, rule="collection"
    )
    assert found["rule"] == "collection" and found["thresholds"] == meta["thresholds"]
    unknown_ids = table.loc[table["class"] == UNKNOWN, "subtomogram_id"]
    assert set(assignments["subtomogram_id"]) == set(unknown_ids)


def test_cli_classify_prints_the_rule(toy, tmp_path):
    path = fresh_store_path(toy, tmp_path)
    with Store.open(path) as store:
        add_class(store, "ball", subtomogram_ids=[ids_by_label(store, toy.truth)["ball"][0]])
    runner = CliRunner()
    out = str(tmp_path / "r.parquet")
    result = runner.invoke(cli, ["classify", "--store", str(path), "--out", out])
    assert result.exit_code == 0, result.output
    assert "open-set rule: mixture" in result.output  # the default
    assert "unknown below p" in result.output or "nothing flagged" in result.output
    result = runner.invoke(
        cli, ["classify", "--store", str(path), "--min-prob", "0.6", "--out", out]
    )
    assert result.exit_code == 0, result.output
    assert "open-set rule: fixed" in result.output and "0.600" in result.output
    assert read_table(out)[1]["rule"] == "fixed"


def test_auroc_and_flagged_at_lost_on_hand_made_scores():
    assert auroc([0.1, 0.2, 0.3], [0.25, 0.4]) == pytest.approx(5 / 6)
    assert auroc([0.5], [0.5]) == 0.5  # a tie counts one half
    assert auroc([1.0, 2.0], [0.0]) == 0.0
    known = np.arange(20.0)  # 5% of 20: one known particle may be lost -> threshold 18
    assert flagged_at_lost(known, [18.5, 17.0, 30.0], lost=0.05) == pytest.approx(2 / 3)
    assert flagged_at_lost(known, [18.0], lost=0.05) == 0.0  # flagged only strictly above


def test_ari_purity_completeness_on_hand_made_labelings():
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(0.8 / 3.3)
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0  # names do not matter
    # -1 (no candidate) is a singleton each, not one cluster
    assert adjusted_rand_index([0, 0, 1, 1], [-1, -1, -1, -1]) == pytest.approx(0.0)
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    labels = np.array([0, 0, 1, 1, 1, 1, -1, -1])
    assert purity(truth, labels) == pytest.approx((2 + 3) / 6)
    # molecule 0: 2 of 3 in its majority candidate; molecule 1: 3 of 3 (candidate 1 is 3/4 one)
    assert completeness(truth, labels, [0, 1]) == pytest.approx(5 / 6)
    assert completeness(truth, labels, [2]) == 0.0
    assert molecules_found(truth, labels, [0, 1, 2], min_purity=0.9) == 1  # candidate 0 is pure
    assert molecules_found(truth, labels, [0, 1, 2], min_purity=0.7) == 2
