"""Queries through a store: classify == the network's head, open set, few-shot, search, CLI."""

from __future__ import annotations

import inspect

import click
import numpy as np
import pandas as pd
import pytest
import starfile
import torch
from click.testing import CliRunner

from cosnet_index.classes import add_class, remove_class
from cosnet_index.cli._app import cli
from cosnet_index.errors import ClassError, InputError
from cosnet_index.io import extract_boxes, open_tomogram
from cosnet_index.query import (
    UNKNOWN,
    class_scores,
    classify_store,
    discover_store,
    read_table,
    search_store,
    search_vectors,
)
from cosnet_index.store import Store
from tests._classes_util import BOX, SHAPES, fresh_store_path, ids_by_label


def _boxes(toy_store, ids):  # type: ignore[no-untyped-def]
    table = toy_store.subtomogram_table(ids)
    with open_tomogram(table["tomogram_path"].iloc[0]) as t:
        boxes, _ = extract_boxes(t.data, table[["x", "y", "z"]].to_numpy(), BOX)
    return torch.from_numpy(boxes)


def test_classify_equals_the_networks_own_head_and_is_accurate(toy_store_on, toy):
    toy_store = toy_store_on
    ids = ids_by_label(toy_store, toy.truth)
    support = {label: int(ids[label][0]) for label in SHAPES}
    for label, sid in support.items():
        add_class(toy_store, label, subtomogram_ids=[sid])
    table, meta = classify_store(toy_store, min_prob=0.5)
    assert meta["classes"] == sorted(SHAPES) and len(table) == len(toy.truth)
    # the evaluate-style reference: the network's head on unscaled features of each box pair
    model = toy_store.model().eval()
    query = table["subtomogram_id"].to_numpy()

    def features(ids):  # type: ignore[no-untyped-def]
        x = model._prepare(_boxes(toy_store, ids))
        return model.forward_embedding(model.forward_features(x))  # (n, 512) unscaled f

    with torch.no_grad():
        f_query = features(query)
        for label in SHAPES:
            f_support = features([support[label]]).expand(len(query), -1)
            p = torch.sigmoid(model.forward_head(f_support, f_query)).numpy()
            # float32 sums of L1 ~ 16 against b ~ 14: a few 1e-6 of rounding (1e-5 identity test
            # at moderate scale: tests/test_query.py)
            np.testing.assert_allclose(table[f"p_{label}"].to_numpy(), p, atol=3e-5)
    truth = table.merge(toy.truth, on=["tomogram", "x", "y", "z"])["label"]
    is_support = table["subtomogram_id"].isin(list(support.values()))
    accuracy = float((table["class"] == truth)[~is_support].mean())
    assert accuracy >= 0.9, accuracy
    assert (table.loc[is_support, "probability"] > 0.99).all()  # a support matches itself


def test_unknown_fires_for_a_class_missing_from_the_support_set(toy_store, toy):
    ids = ids_by_label(toy_store, toy.truth)
    for label in ("ball", "cube", "rod"):  # "ring" is held out
        add_class(toy_store, label, subtomogram_ids=[ids[label][0]])
    table, _ = classify_store(toy_store, min_prob=0.5)
    label = table.merge(toy.truth, on=["tomogram", "x", "y", "z"])["label"]
    heldout_unknown = float((table["class"] == UNKNOWN)[label == "ring"].mean())
    known_unknown = float((table["class"] == UNKNOWN)[label != "ring"].mean())
    assert heldout_unknown >= 0.9, heldout_unknown
    assert known_unknown <= 0.2, known_unknown
    strict, _ = classify_store(toy_store, min_prob=0.999)  # a stricter threshold flags more
    assert (strict["class"] == UNKNOWN).sum() > (table["class"] == UNKNOWN).sum()


def test_few_shot_is_at_least_as_accurate_as_one_shot(toy_store, toy):
    ids = ids_by_label(toy_store, toy.truth)
    all_ids, xb = toy_store.load_vectors()
    row = {int(i): r for r, i in enumerate(all_ids)}
    label_of = np.empty(len(all_ids), np.int64)
    for c, label in enumerate(SHAPES):
        label_of[[row[int(i)] for i in ids[label]]] = c
    bias = toy_store.model().head_bias
    rng = np.random.default_rng(0)
    acc = {"1": [], "3-max": [], "3-mean": []}
    for _ in range(40):  # seeded episodes: the same 3 shots, one-shot uses the first
        shots = [rng.choice(np.flatnonzero(label_of == c), 3, replace=False) for c in range(4)]
        query = np.setdiff1d(np.arange(len(all_ids)), np.concatenate(shots))
        for key, k, reduce in (("1", 1, "max"), ("3-max", 3, "max"), ("3-mean", 3, "mean")):
            s = class_scores(xb[query], [xb[sh[:k]] for sh in shots], bias, reduce=reduce)
            acc[key].append(float((s.argmax(axis=1) == label_of[query]).mean()))
    mean = {k: float(np.mean(v)) for k, v in acc.items()}
    assert mean["3-max"] >= mean["1"] and mean["3-mean"] >= mean["1"], mean
    assert mean["1"] < 1.0  # the toy data is hard enough for the comparison to mean something


def test_search_matches_a_brute_force_scan_and_carries_locations(toy_store_on, toy):
    toy_store = toy_store_on
    ids = ids_by_label(toy_store, toy.truth)
    add_class(toy_store, "rod", subtomogram_ids=ids["rod"][:3])
    table, meta = search_store(toy_store, "rod", k=10)
    all_ids, xb = toy_store.load_vectors()
    support = toy_store.load_vectors(ids["rod"][:3])[1]
    ref = search_vectors(xb, all_ids, support, toy_store.model().head_bias, k=10)
    np.testing.assert_array_equal(table["subtomogram_id"].to_numpy(), ref.ids)
    np.testing.assert_allclose(table["probability"].to_numpy(), ref.probability, atol=1e-6)
    assert set(table.merge(toy.truth, on=["tomogram", "x", "y", "z"])["label"]) == {"rod"}
    assert meta["kind"] == "search" and meta["shots"] == {"rod": 3}
    mean, _ = search_store(toy_store, "rod", k=10, reduce="mean", min_prob=0.5)
    assert len(mean) <= 10 and (mean["probability"] >= 0.5).all()


def test_filters_and_errors(toy_store_on, toy):
    toy_store = toy_store_on
    ids = ids_by_label(toy_store, toy.truth)
    with pytest.raises(ClassError, match="classes add"):
        classify_store(toy_store)
    add_class(toy_store, "ball", subtomogram_ids=[ids["ball"][0]])
    with pytest.raises(InputError, match="no indexed tomogram"):
        classify_store(toy_store, tomograms=["nope"])
    with pytest.raises(InputError, match="can never be reached"):
        classify_store(toy_store, min_prob=1.0)  # above sigmoid(b), the best any vector can get
    subset, _ = classify_store(toy_store, ids=ids["cube"][:4])
    assert subset["subtomogram_id"].tolist() == ids["cube"][:4].tolist()
    with pytest.raises(ClassError, match="no class 'cube'"):
        search_store(toy_store, "cube")
    remove_class(toy_store, "ball")


def test_discover_proposes_the_held_out_class(toy_store, toy):
    ids = ids_by_label(toy_store, toy.truth)
    for label in ("ball", "cube", "rod"):
        add_class(toy_store, label, subtomogram_ids=ids[label][:2])
    candidates, assignments, _ = discover_store(toy_store, exclude_known=True, min_size=4)
    assert len(candidates) >= 1
    top = candidates.iloc[0]
    assert int(top["representative_id"]) in set(ids["ring"].tolist())
    members = assignments.loc[assignments["candidate"] == top["candidate"], "subtomogram_id"]
    assert np.isin(members, ids["ring"]).mean() >= 0.9
    assert top["nearest_class_probability"] < 0.5


def test_cli_worked_example(toy, tmp_path):
    path = fresh_store_path(toy, tmp_path)
    with Store.open(path) as s:
        ids = ids_by_label(s, toy.truth)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*args], env={"COSNET_STORE": str(path)})
        assert result.exit_code == 0, result.output
        return result.output

    for label in ("ball", "cube", "rod", "ring"):
        run("classes", "add", label, "--subtomogram", str(ids[label][0]))
    x, y, z = (str(v) for v in toy.truth.loc[toy.truth["label"] == "ring", ["x", "y", "z"]].iloc[1])
    assert "2 shot(s)" in run("classes", "add", "ring", "--append", "--at", "toy", x, y, z)
    listing = run("classes", "list")
    assert "ring" in listing and "subtomogram" in listing
    out = run("classify", "--out", str(tmp_path / "result.parquet"))
    assert "classified 64 subtomograms" in out
    table, meta = read_table(tmp_path / "result.parquet")
    assert meta["kind"] == "classify" and {"p_ball", "p_ring"} <= set(table.columns)
    two = f"{ids['ball'][0]},{ids['cube'][0]}"
    run("classify", "--subtomogram", two, "--out", str(tmp_path / "two.parquet"))
    assert len(pd.read_parquet(tmp_path / "two.parquet")) == 2
    run("search", "ball", "-k", "5", "--out", str(tmp_path / "hits.parquet"))
    assert len(pd.read_parquet(tmp_path / "hits.parquet")) == 5
    run("export", "--format", "star", "--result", str(tmp_path / "result.parquet"),
        "--out", str(tmp_path / "star"))  # fmt: skip
    ball = starfile.read(tmp_path / "star" / "ball.star")
    assert len(ball) == (table["class"] == "ball").sum() and "rlnCoordinateX" in ball
    run("classes", "rename", "ring", "torus")
    run("classes", "remove", "torus")
    assert "candidate" in run("discover", "--exclude-known", "--min-size", "4")
    bad = runner.invoke(cli, ["search", "--store", str(path), "nope"])
    assert bad.exit_code == 1 and "Error:" in bad.output and "Traceback" not in bad.output


def test_cli_defaults_are_the_librarys():
    from cosnet_index.classes import DEFAULT_SET
    from cosnet_index.cli._app import cli
    from cosnet_index.query import DEFAULT_MIN_PROB, DEFAULT_REDUCE

    ctx = click.Context(cli)
    defaults = {
        (name, p.name): p.default
        for name in ("classify", "search", "discover")
        for p in cli.get_command(ctx, name).params
    }
    assert defaults["classify", "min_prob"] == defaults["search", "pass_prob"] == DEFAULT_MIN_PROB
    from cosnet_index.defaults import DEFAULT_DISCOVER_MIN_PROB, DEFAULT_DISCOVER_MIN_SIZE
    from cosnet_index.query._discover import discover

    assert defaults["discover", "known_prob"] == DEFAULT_MIN_PROB
    assert defaults["discover", "min_prob"] == DEFAULT_DISCOVER_MIN_PROB
    assert defaults["discover", "min_size"] == DEFAULT_DISCOVER_MIN_SIZE
    signature = inspect.signature(discover).parameters
    assert signature["min_prob"].default == DEFAULT_DISCOVER_MIN_PROB
    assert signature["min_size"].default == DEFAULT_DISCOVER_MIN_SIZE
    assert defaults["classify", "reduce"] == defaults["search", "reduce"] == DEFAULT_REDUCE
    assert defaults["classify", "set_name"] == DEFAULT_SET


def test_search_marks_what_matched_and_the_support_and_export_segment_take_passing(toy, tmp_path):
    """Issue 19: `search -k 30` on 16 balls returned 30 rows all labelled ball; export and
    segment used them all. Now hits say whether they pass and which is the support particle."""
    path = fresh_store_path(toy, tmp_path)
    with Store.open(path) as s:
        ids = ids_by_label(s, toy.truth)
        for label in ("ball", "cube", "rod"):
            add_class(s, label, subtomogram_ids=[int(ids[label][0])])
        hits, meta = search_store(s, "ball", k=30)
        fixed, fixed_meta = search_store(s, "ball", k=30, pass_prob=0.86)  # fixed rule
        classified, _ = classify_store(s)
    balls = set(ids["ball"].tolist())
    # the pass decision is classify's default rule, fitted on the whole collection
    assert len(hits) == 30 and meta["rule"] == "mixture" and meta["pass_prob"] is None
    assert fixed_meta["rule"] == "fixed" and fixed_meta["pass_prob"] == pytest.approx(0.86)
    assert fixed.loc[fixed["passes"], "subtomogram_id"].isin(set(ids["ball"].tolist())).all()
    passing = hits[hits["passes"]]
    assert 0 < len(passing) <= len(balls) < len(hits)
    assert passing["subtomogram_id"].isin(balls).all()
    assert not hits.loc[~hits["passes"], "subtomogram_id"].isin(balls).all()
    assert hits["is_support"].sum() == 1
    assert hits.loc[hits["is_support"], "subtomogram_id"].item() == ids["ball"][0]
    assert classified["is_support"].sum() == 3
    assert (classified["passes"] == (classified["class"] != UNKNOWN)).all()

    from cosnet_index.query import write_table

    write_table(hits, tmp_path / "hits.parquet", meta)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*args], env={"COSNET_STORE": str(path)})
        assert result.exit_code == 0, result.output
        return result.output

    run("export", "--result", str(tmp_path / "hits.parquet"), "--out", str(tmp_path / "star"))
    assert len(starfile.read(tmp_path / "star" / "ball.star")) == len(passing)
    run("export", "--result", str(tmp_path / "hits.parquet"), "--out", str(tmp_path / "all"),
        "--all")  # fmt: skip
    assert len(starfile.read(tmp_path / "all" / "ball.star")) == 30
    out = run("segment", "--hits", str(tmp_path / "hits.parquet"), "--out", str(tmp_path / "seg"),
              "--no-crf")  # fmt: skip
    assert "do not pass" in out
    segments = pd.read_parquet(tmp_path / "seg" / "segments.parquet")
    assert sorted(segments["subtomogram_id"]) == sorted(passing["subtomogram_id"])


def test_report_galleries_and_accuracy_leave_out_the_support(toy, tmp_path, monkeypatch):
    from cosnet_index.report import from_store

    path = fresh_store_path(toy, tmp_path)
    seen = {}

    def capture(out_dir, result, **kwargs):  # type: ignore[no-untyped-def]
        seen["result"], seen["galleries"] = result, kwargs["galleries"]
        return tmp_path / "report.md"

    monkeypatch.setattr(from_store, "write_report", capture)
    with Store.open(path) as s:
        ids = ids_by_label(s, toy.truth)
        add_class(s, "ball", subtomogram_ids=[int(ids["ball"][0])])
        table, meta = classify_store(s)
        table = table.drop(columns="is_support")  # a table written before the column existed
        from_store.report_from_store(s, table, tmp_path, meta=meta, top_k=20, masks=False)
    (gallery,) = seen["galleries"]
    labels = [hit.label for hit in gallery.hits]
    assert labels and f"id {ids['ball'][0]}" not in labels
    assert seen["result"]["is_support"].sum() == 1
