"""Array-level queries: scores, classify, search, discover, tables (no store)."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from cosnet_index.errors import ClassError, InputError
from cosnet_index.query import (
    UNKNOWN,
    class_scores,
    classification_table,
    classify,
    discover,
    export_star,
    hits_table,
    l1_distances,
    match_distance,
    match_probability,
    read_table,
    search_class,
    search_vectors,
    write_table,
)
from tests._query_util import BIAS, brute_scores, clustered_vectors


def _flat_index(xb: np.ndarray, ids: np.ndarray) -> faiss.Index:
    index = faiss.IndexIDMap2(faiss.IndexFlat(xb.shape[1], faiss.METRIC_L1))
    index.add_with_ids(xb, ids)
    return index


def test_probability_from_faiss_distance_equals_model_head():
    from cosnet_index.model import CosNet, CosNetConfig

    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8))).eval()
    g = torch.Generator().manual_seed(2)
    support, target = (
        torch.randn(6, 32, 32, 32, generator=g),
        torch.randn(6, 32, 32, 32, generator=g),
    )
    with torch.no_grad():  # a head far from its initial value, with distances of order b
        f = [model.forward_embedding(model.forward_features(model._prepare(v)))
             for v in (support, target)]  # fmt: skip
        unscaled = float((f[0] - f[1]).abs().sum(dim=1).mean())
        noise = torch.rand(model.head_v.shape, generator=torch.Generator().manual_seed(1))
        scale = 3.0 / unscaled * (0.5 + noise)  # |w| per dimension, scaled L1 ~ 3 +- spread
        model.head_v.copy_(torch.log(torch.expm1(scale)))  # softplus(v) = scale
        model.head_b.fill_(3.0)
    with torch.no_grad():
        p_head = model(support, target)["p"].numpy()  # the network's own head on raw boxes
    xs, xt = model.embed(support).numpy(), model.embed(target).numpy()
    index = _flat_index(xs, np.arange(6, dtype=np.int64))
    p_faiss = np.empty(6, np.float32)
    for i in range(6):  # the FAISS distance of pair i, through the store's index type
        dist, ids = index.search(xt[i : i + 1], 6)
        p_faiss[i] = match_probability(dist[0][ids[0] == i], model.head_bias)[0]
    np.testing.assert_allclose(p_faiss, p_head, atol=1e-5)
    scores = class_scores(xt, [x for x in xs], model.head_bias)  # the batched path: diagonal
    np.testing.assert_allclose(np.diag(scores), p_head, atol=1e-5)
    assert p_head.std() > 1e-3  # the pairs do not all saturate to the same probability


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_class_scores_match_numpy_brute_force(reduce):
    xb, _, _ = clustered_vectors(4, 50, seed=1)
    rng = np.random.default_rng(2)
    prototypes = [xb[rng.choice(len(xb), size=k, replace=False)] for k in (1, 3, 2, 5)]
    got = class_scores(xb, prototypes, BIAS, reduce=reduce, batch=37)  # batch not dividing n
    np.testing.assert_allclose(got, brute_scores(xb, prototypes, BIAS, reduce), atol=2e-6)
    assert got.shape == (200, 4) and got.dtype == np.float32


def test_l1_distances_match_numpy():
    rng = np.random.default_rng(3)
    xq, xb = (
        rng.normal(size=(20, 16)).astype(np.float32),
        rng.normal(size=(7, 16)).astype(np.float32),
    )
    ref = np.abs(xq[:, None] - xb[None]).sum(-1)
    np.testing.assert_allclose(l1_distances(xq, xb), ref, rtol=1e-5)


def test_classify_labels_margin_and_unknown():
    xb, labels, _ = clustered_vectors(3, 40, seed=4)
    # classes 0 and 1 have one shot each; class 2 is held out: its members must be unknown
    shots = [xb[labels == c][0] for c in (0, 1)]
    result = classify(xb, shots, BIAS, ["a", "b"], min_prob=0.5)
    expected = np.array(["a", "b", UNKNOWN], dtype=object)[labels]
    assert (result.labels == expected).mean() == 1.0
    np.testing.assert_array_equal(result.best, np.where(labels == 2, -1, labels))
    top = np.sort(result.scores, axis=1)
    np.testing.assert_allclose(result.probability, top[:, -1])
    np.testing.assert_allclose(result.margin, top[:, -1] - top[:, -2])
    one = classify(xb, shots[:1], BIAS, ["a"], min_prob=0.5)
    np.testing.assert_allclose(one.margin, one.probability)


def test_classify_rejects_bad_input():
    xb, _, _ = clustered_vectors(2, 5)
    with pytest.raises(ClassError, match="classes add"):
        class_scores(xb, [], BIAS)
    with pytest.raises(ClassError, match="same model"):
        class_scores(xb, [np.zeros((1, 8), np.float32)], BIAS)
    with pytest.raises(ClassError, match="one each"):
        classify(xb, [xb[:1]], BIAS, ["a", "b"])
    with pytest.raises(InputError, match="max"):
        class_scores(xb, [xb[:1]], BIAS, reduce="median")  # type: ignore[arg-type]
    bad = xb.copy()
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        class_scores(bad, [xb[:1]], BIAS)


def test_search_class_through_faiss_equals_exact_scan():
    xb, labels, _ = clustered_vectors(5, 60, seed=5)
    ids = np.arange(1000, 1000 + len(xb), dtype=np.int64)[np.random.default_rng(0).permutation(300)]
    index = _flat_index(xb, ids)
    support = xb[labels == 2][:3]  # K = 3 shots
    hits = search_class(index, support, BIAS, k=25)
    ref = search_vectors(xb, ids, support, BIAS, k=25, reduce="max")
    np.testing.assert_array_equal(hits.ids, ref.ids)
    np.testing.assert_allclose(hits.probability, ref.probability, atol=1e-6)
    # NumPy brute force: best over shots
    p = brute_scores(xb, [support], BIAS, "max")[:, 0]
    np.testing.assert_array_equal(np.sort(hits.ids), np.sort(ids[np.argsort(-p)[:25]]))
    assert np.all(np.diff(hits.probability) <= 0)
    mean = search_vectors(xb, ids, support, BIAS, k=25, reduce="mean")
    pm = brute_scores(xb, [support], BIAS, "mean")[:, 0]
    np.testing.assert_array_equal(np.sort(mean.ids), np.sort(ids[np.argsort(-pm)[:25]]))


def test_search_min_prob_drops_weak_hits():
    xb, labels, _ = clustered_vectors(3, 20, seed=6)
    index = _flat_index(xb, np.arange(len(xb), dtype=np.int64))
    hits = search_class(index, xb[labels == 1][:1], BIAS, k=50, min_prob=0.5)
    assert len(hits) == 20 and set(labels[hits.ids]) == {1}
    with pytest.raises(InputError):
        search_class(index, xb[:1], BIAS, k=0)


def test_discover_finds_unlabelled_clusters_with_medoid():
    xb, labels, _ = clustered_vectors(3, 30, seed=7)
    noise = np.random.default_rng(8).normal(0, 0.05, (5, xb.shape[1])).astype(np.float32)
    xb_all = np.concatenate([xb, noise])
    ids = np.arange(len(xb_all), dtype=np.int64) + 500
    found = discover(xb_all, ids, BIAS, min_prob=0.5, min_size=5, max_sample=60, seed=0)
    assert len(found.candidates) == 3
    assert found.candidates["size"].tolist() == [30, 30, 30]
    for row in found.candidates.itertuples():
        members = found.labels == row.candidate
        assert len(set(labels[members[:90]])) == 1 and not members[90:].any()
        assert found.labels[row.representative_id - 500] == row.candidate
    assert (found.labels[90:] == -1).all()
    assert match_distance(BIAS, 0.5) == pytest.approx(BIAS)


def test_discover_reports_no_candidate_below_min_size_after_assignment():
    """Two sampled clusters of >= 4; assignment moves members to the other medoid (found by a
    seeded search of random planar sets): the smaller one must not be reported with 3."""
    xb = np.zeros((12, 8), np.float32)
    xb[:, :2] = [
        [0.43, -3.35], [-0.85, 0.48], [-0.72, 2.23], [-0.3, -3.63], [-2.49, -2.99], [-0.74, 2.93],
        [1.19, 0.8], [-3.01, 5.56], [-0.07, 5.67], [-2.03, -1.33], [6.1, -2.52], [0.98, -0.79],
    ]  # fmt: skip
    ids = np.arange(12, dtype=np.int64)
    found = discover(xb, ids, 4.0, min_prob=0.5, min_size=4, max_sample=100)
    assert len(found.candidates) >= 1
    assert (found.candidates["size"] >= 4).all(), found.candidates
    sizes = np.bincount(found.labels[found.labels >= 0], minlength=len(found.candidates))
    assert sizes.tolist() == found.candidates["size"].tolist()


def test_tables_round_trip_and_star_export(tmp_path):
    xb, labels, _ = clustered_vectors(3, 10, seed=9)
    result = classify(xb, [xb[labels == c][0] for c in (0, 1)], BIAS, ["ribo", "prot"], 0.5)
    ids = np.arange(30, dtype=np.int64)
    locations = pd.DataFrame(
        {"id": ids[::-1], "tomogram": "TS_01", "x": ids[::-1] * 1.0, "y": 2.0, "z": 3.0}
    )
    df = classification_table(result, ids, locations)
    assert list(df.columns) == [
        "subtomogram_id", "tomogram", "x", "y", "z", "class", "probability", "margin",
        "passes", "is_support", "p_ribo", "p_prot",
    ]  # fmt: skip
    np.testing.assert_array_equal(df["x"], ids)
    path = write_table(df, tmp_path / "r.parquet", {"kind": "classify", "min_prob": 0.5})
    back, meta = read_table(path)
    pd.testing.assert_frame_equal(back, df)
    assert meta == {"kind": "classify", "min_prob": 0.5}
    paths = export_star(back, tmp_path / "star")
    assert sorted(p.name for p in paths) == ["prot.star", "ribo.star"]
    ribo = starfile.read(tmp_path / "star" / "ribo.star")
    np.testing.assert_allclose(ribo["rlnCoordinateX"], ids[labels == 0])
    assert set(ribo["rlnTomoName"]) == {"TS_01"} and set(ribo["rlnClassNumber"]) == {1}
    with pytest.raises(InputError, match="overwrite"):
        export_star(back, tmp_path / "star")
    index = _flat_index(xb, ids)
    hits = search_class(index, xb[:1], BIAS, k=5)
    h = hits_table(hits, "ribo", locations)
    assert h["rank"].tolist() == [1, 2, 3, 4, 5] and (h["class"] == "ribo").all()
    assert export_star(h, tmp_path / "hits")[0].name == "ribo.star"


def test_mean_search_through_faiss_is_exact():
    xb, labels, _ = clustered_vectors(4, 50, seed=11)
    ids = np.arange(len(xb), dtype=np.int64) * 3 + 7
    index = _flat_index(xb, ids)
    # shots from two different classes: the mean ranking differs from the best-shot ranking,
    # so the candidate list has to grow before it is exact
    support = np.stack([xb[labels == 0][0], xb[labels == 0][1], xb[labels == 1][0]])

    calls: list[int] = []

    class Opaque:  # like a GPU or IVF index: no in-memory flat view, so candidates must grow
        def search(self, xq, k):  # type: ignore[no-untyped-def]
            calls.append(k)
            return index.search(xq, k)

        def reconstruct(self, i):  # type: ignore[no-untyped-def]
            return index.reconstruct(i)

    for k in (1, 5, 60, 200):
        ref = search_vectors(xb, ids, support, BIAS, k=k, reduce="mean")
        for through in (index, Opaque()):
            hits = search_class(through, support, BIAS, k=k, reduce="mean")
            np.testing.assert_array_equal(hits.ids, ref.ids)
            np.testing.assert_allclose(hits.probability, ref.probability, atol=1e-6)
            assert np.isnan(hits.distance).all()
    assert len(calls) > 4  # the candidate list grew at least once for some k
    p_max = search_class(index, support, BIAS, k=60).ids
    p_mean = search_class(index, support, BIAS, k=60, reduce="mean").ids
    assert set(p_max) != set(p_mean)  # the two reductions really rank differently here
