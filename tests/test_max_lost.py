"""The mixture open-set rule (issue 26): `unknown` at a stated loss of named particles, estimated
from the collection without labels; nothing flagged where a class shows one mode."""

from __future__ import annotations

import numpy as np
import pytest
import starfile
from click.testing import CliRunner

from cosnet_index.classes import add_class
from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError
from cosnet_index.query import (
    DEFAULT_MAX_LOST,
    MIN_COLLECTION,
    UNKNOWN,
    class_scores,
    classify_store,
    fit_class_mixture,
    fit_open_set_rule,
    novelty_scores,
    read_table,
    unknown_mask,
    write_table,
)
from cosnet_index.store import Store
from tests._classes_util import fresh_store_path, ids_by_label
from tests._query_util import BIAS, clustered_vectors


@pytest.mark.parametrize(
    ("seed", "members", "others", "gap", "other_std", "max_lost"),
    [
        (0, 300, 100, 5.0, 1.0, 0.05),
        (1, 200, 200, 4.0, 1.5, 0.05),
        (2, 400, 60, 6.0, 0.7, 0.10),
        (3, 150, 300, 5.0, 2.0, 0.02),  # mostly novel: the members are the smaller mode
    ],
)
def test_estimated_loss_is_the_measured_one_on_known_mixtures(
    seed, members, others, gap, other_std, max_lost
):
    rng = np.random.default_rng(seed)
    member_z = rng.normal(2.0, 1.0, members)
    other_z = rng.normal(2.0 - gap, other_std, others)
    fit = fit_class_mixture(np.concatenate([member_z, other_z]), max_lost)
    assert fit.two_modes, fit.note
    lost = float((member_z < fit.threshold).mean())  # the truth, with the labels
    assert fit.estimated_lost == pytest.approx(max_lost)
    assert abs(lost - fit.estimated_lost) <= 0.03
    assert fit.estimated_novel == pytest.approx(others, rel=0.15)
    assert (other_z < fit.threshold).mean() >= 0.6  # and it flags most of the others


@pytest.mark.parametrize("seed", range(6))
def test_a_unimodal_class_flags_nothing(seed):
    rng = np.random.default_rng(seed)
    for z in (
        rng.normal(3.0, 1.0, 300),  # a closed collection's members
        5.0 - rng.gamma(2.0, 1.0, 300),  # skewed, one mode: a long tail is not a second mode
        rng.normal(0.0, 1.0, 12),  # few particles
    ):
        fit = fit_class_mixture(z, DEFAULT_MAX_LOST)
        assert not fit.two_modes and fit.threshold == -np.inf, fit.note
        assert fit.estimated_lost == 0.0 and fit.estimated_novel == 0.0
        assert "nothing flagged" in fit.note


def test_too_few_particles_and_bad_input():
    fit = fit_class_mixture(np.array([0.0, 5.0, 5.1, 0.1]), 0.05)
    assert not fit.two_modes and "fewer than" in fit.note
    with pytest.raises(InputError, match="max_lost"):
        fit_class_mixture(np.zeros(20), 0.5)
    with pytest.raises(InputError, match="NaN"):
        fit_class_mixture(np.array([np.nan] * 20), 0.05)


def _collection(counts, named, seed=3, scale=1.0):
    """Clusters of ``counts`` particles; the first particle of the first ``named`` clusters is
    its class's support. Returns (scores, labels)."""
    xb, labels, _ = clustered_vectors(len(counts), max(counts), seed=seed)
    keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in enumerate(counts)])
    xb, labels = xb[keep] * np.float32(scale), labels[keep]
    supports = [xb[labels == c][:1] for c in range(named)]
    return class_scores(xb, supports, BIAS), labels


@pytest.mark.parametrize("scale", [1.0, 1.4])
def test_mixture_rule_flags_novel_clusters_at_the_stated_cost(scale):
    scores, labels = _collection([40] * 6, named=4, scale=scale)  # clusters 4, 5 are novel
    rule = fit_open_set_rule(scores, BIAS)  # the default: mixture at DEFAULT_MAX_LOST
    assert rule.name == "mixture" and rule.max_lost == DEFAULT_MAX_LOST
    unknown = unknown_mask(scores, rule)
    assert unknown[labels >= 4].mean() >= 0.9
    assert unknown[labels < 4].mean() <= 0.1
    np.testing.assert_array_equal(novelty_scores(scores, rule) > 0, unknown)
    meta = rule.metadata(list("abcd"))
    assert set(meta["estimated_lost"]) == set("abcd") and meta["max_lost"] == DEFAULT_MAX_LOST
    assert meta["estimated_novel_overall"] == pytest.approx(80, abs=12)


def test_a_closed_collection_keeps_every_particle():
    scores, _ = _collection([40] * 5, named=5)
    rule = fit_open_set_rule(scores, BIAS, "mixture", max_lost=0.2)
    assert not unknown_mask(scores, rule).any()
    assert all(not m.two_modes for m in rule.mixtures)
    assert rule.estimated_lost == 0.0
    meta = rule.metadata(list("abcde"))
    assert all("nothing flagged" in note for note in meta["class_modes"].values())
    assert set(meta["thresholds"].values()) == {0.0}


def test_dominant_class_is_detected_and_handled():
    counts = [160, 10, 10, 10, 10]  # class 0 holds 80% of the particles; 3 and 4 are novel
    scores, labels = _collection(counts, named=3)
    rule = fit_open_set_rule(scores, BIAS)
    assert rule.dominant == 0 and rule.dominant_share >= 0.75
    meta = rule.metadata(["big", "b", "c"])
    assert meta["dominant_class"] == "big"
    unknown = unknown_mask(scores, rule)
    assert unknown[labels == 0].mean() <= 0.1  # the dominant class keeps its members
    # the collection rule's bulk of the dominant class is taken over the other particles: its
    # members are not half lost any more
    old = fit_open_set_rule(scores, BIAS, "collection")
    assert old.dominant == 0
    assert unknown_mask(scores, old)[labels == 0].mean() <= 0.25


def test_mixture_needs_no_minimum_collection_and_checks_its_budget():
    scores, _ = _collection([10] * 4, named=4)
    assert len(scores) < MIN_COLLECTION
    rule = fit_open_set_rule(scores, BIAS)
    assert rule.name == "mixture" and rule.fallback is None
    assert not unknown_mask(scores, rule).any()
    with pytest.raises(InputError, match="max_lost"):
        fit_open_set_rule(scores, BIAS, max_lost=0.0)


def test_classify_records_each_class_estimate_and_the_cli_prints_it(toy, tmp_path):
    path = fresh_store_path(toy, tmp_path)
    with Store.open(path) as store:
        ids = ids_by_label(store, toy.truth)
        for label in ("ball", "cube", "rod"):  # "ring" is unnamed
            add_class(store, label, subtomogram_ids=[int(ids[label][0])])
        table, meta = classify_store(store, max_lost=0.1)
    assert meta["rule"] == "mixture" and meta["max_lost"] == 0.1
    for key in ("thresholds", "estimated_lost", "estimated_novel", "class_modes"):
        assert set(meta[key]) == {"ball", "cube", "rod"}, key
    for name, note in meta["class_modes"].items():  # flagged at the budget, or nothing flagged
        assert meta["estimated_lost"][name] == (0.1 if note == "two modes" else 0.0)
        assert (meta["thresholds"][name] == 0.0) == (note != "two modes")
    write_table(table, tmp_path / "r.parquet", meta)
    assert read_table(tmp_path / "r.parquet")[1]["estimated_novel"] == meta["estimated_novel"]

    runner = CliRunner()
    out = str(tmp_path / "c.parquet")
    ok = runner.invoke(cli, ["classify", "--store", str(path), "--max-lost", "0.1", "--out", out])
    assert ok.exit_code == 0, ok.output
    assert "open-set rule: mixture (at most 0.1 of each class's members lost" in ok.output
    assert read_table(out)[1]["class_modes"] == meta["class_modes"]
    for name, note in meta["class_modes"].items():
        line = next(li for li in ok.output.splitlines() if li.strip().startswith(name))
        assert ("est. lost 0.100" in line) if note == "two modes" else (note in line)
    contradictions = (
        ["--rule", "fixed", "--max-lost", "0.1"],
        ["--min-prob", "0.5", "--max-lost", "0.1"],
        ["--rule", "mixture", "--min-prob", "0.5"],
        ["--max-lost", "0.5"],
    )
    for bad in contradictions:
        result = runner.invoke(cli, ["classify", "--store", str(path), *bad, "--out", out])
        assert result.exit_code == 2, (bad, result.output)
    assert "--max-lost" in runner.invoke(cli, ["classify", "--help"]).output
    searched = runner.invoke(cli, ["search", "--store", str(path), "ball", "-k", "5"])
    assert searched.exit_code == 0 and "open-set rule: mixture" in searched.output
    fixed = runner.invoke(cli, ["search", "--store", str(path), "ball", "--pass-prob", "0.7"])
    assert fixed.exit_code == 0 and "open-set rule: fixed" in fixed.output
    assert "p >= 0.700" in fixed.output


def test_export_include_unknown_writes_the_unknown_particles_without_all(toy, tmp_path):
    path = fresh_store_path(toy, tmp_path)
    with Store.open(path) as store:
        ids = ids_by_label(store, toy.truth)
        add_class(store, "ball", subtomogram_ids=[int(ids["ball"][0])])
        table, meta = classify_store(store, min_prob=0.99)  # fixed: most particles unknown
    n_unknown = int((table["class"] == UNKNOWN).sum())
    assert 0 < n_unknown < len(table)
    result = str(write_table(table, tmp_path / "r.parquet", meta))
    runner = CliRunner()
    ok = runner.invoke(cli, ["export", "--result", result, "--out", str(tmp_path / "a"),
                             "--include-unknown"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert len(starfile.read(tmp_path / "a" / "unknown.star")) == n_unknown
    assert len(starfile.read(tmp_path / "a" / "ball.star")) == len(table) - n_unknown
    ok = runner.invoke(cli, ["export", "--result", result, "--out", str(tmp_path / "b"),
                             "--classes", "ball", "--include-unknown"])  # fmt: skip
    assert ok.exit_code == 0 and (tmp_path / "b" / "unknown.star").is_file()
    ok = runner.invoke(cli, ["export", "--result", result, "--out", str(tmp_path / "c")])
    assert ok.exit_code == 0 and not (tmp_path / "c" / "unknown.star").exists()
    assert f"left out {n_unknown} rows" in ok.output


def test_roc_rows_count_each_rule_on_a_synthetic_collection():
    from cosnet_index.benchmark.open_set_roc import (
        GRIDS,
        RocConfig,
        RocEpisode,
        _dominant_counts,
        roc_rows,
        roc_table,
    )

    counts = _dominant_counts(RocConfig(per_molecule=20))
    assert counts.sum() == 180 and counts[0] == 144 and counts[1:].min() >= 4
    xb, labels, _ = clustered_vectors(6, 40, seed=3)
    firsts = np.arange(4) * 40  # molecules 0-3 named by their first particle, 4-5 novel
    episode = RocEpisode("half-named", 0, tuple("abcdef"), 4, labels, firsts, {1.0: xb},
                         {1.0: xb[firsts]})  # fmt: skip
    rows = roc_rows(episode, 1.0, BIAS)
    assert len(rows) == sum(len(values) for _, values, _ in GRIDS.values())
    assert (rows["named"] == 4 * 39).all() and (rows["novel"] == 80).all()
    default = rows[rows["default"]].iloc[0]
    assert default["rule"] == "mixture" and default["value"] == DEFAULT_MAX_LOST
    assert default["flagged"] >= 72 and default["lost"] <= 0.1 * 156
    assert abs(default["estimated_lost"] - default["lost"] / default["named"]) <= 0.05
    table = roc_table(rows)
    cell = table[table["default"]].iloc[0]
    assert cell["flagged"][0] == pytest.approx(default["flagged"] / 80)
