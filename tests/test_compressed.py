"""Compressed vector indexes (issue 17): IVF-fp16 / IVF-PQ propose, exact L1 re-scores.

Every optimised search is checked against a brute-force L1 scan: with every vector a candidate
the re-scored answer is the exact one; with fewer, recall@100 is measured and recorded.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosnet_index.errors import InputError
from cosnet_index.store import Store, check_store, index_tomograms, reindex, store_stats
from cosnet_index.store.compressed import (
    exact_paths,
    exact_top_k,
    new_compressed_index,
    recall_at_k,
    rescored_search,
    write_exact_copy,
)
from tests._crash_util import make_world


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Vectors around 20 centres (embeddings cluster by structure), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (20, dim))
    return (centres[rng.integers(0, 20, n)] + rng.normal(0, 0.5, (n, dim))).astype(np.float32)


@pytest.mark.parametrize("kind", ["ivf-fp16", "ivf-pq"])
def test_rescoring_every_candidate_is_brute_force(kind, tmp_path) -> None:
    xb = _clustered(10_000, 8)
    ids = np.arange(1, len(xb) + 1, dtype=np.int64) * 3  # ids are not rows
    index = new_compressed_index(8, kind, xb, nlist=8, nprobe=8, m=2)
    index.add_with_ids(xb, ids)
    path = tmp_path / "index.faiss"
    path.touch()
    write_exact_copy(path, len(xb), 8, iter([(ids[:4000], xb[:4000]), (ids[4000:], xb[4000:])]))
    assert all(p.is_file() for p in exact_paths(path))
    xq = xb[:5] + 0.01
    truth = exact_top_k(iter([(ids[:6000], xb[:6000]), (ids[6000:], xb[6000:])]), xq, 100)
    D, I = rescored_search(index, path, None, xq, 100, candidates=len(xb))  # noqa: E741
    np.testing.assert_array_equal(I, truth)
    brute = np.abs(xb[None, :, :] - xq[:, None, :]).sum(-1)  # (5, n) exact L1
    np.testing.assert_allclose(D, np.sort(brute, axis=1)[:, :100], rtol=1e-5)
    _, few = rescored_search(index, path, None, xq, 100, candidates=150)
    assert 0.5 < recall_at_k(few, truth) <= 1.0


def test_reindex_compressed_store_records_recall_and_searches_exactly(tiny_model, tmp_path):
    world = make_world(tmp_path / "world", n_tomograms=3, n_per_tomogram=30, n_indexed=0)
    path = world.fresh_store(tmp_path)
    with Store.open(path) as store:
        index_tomograms(store, world.tomograms[:2], world.coords, batch_size=30, progress=False)
        _, xb = store.load_vectors()
        before = store.search(xb[:4], 10, gpu=False)
        with pytest.raises(InputError, match="ivf-pq index needs at least"):
            reindex(store, index_type="ivf-pq")
        assert reindex(store, index_type="ivf-fp16", candidates=1000) == 60
        info = store_stats(store)["vector_index"]
        assert info["kind"] == "ivf-fp16" and info["recall_at_100"] == 1.0  # all 60 candidates
        assert info["params"]["candidates"] == 1000 and info["recall_queries"] == 60
        assert check_store(store).ok
        after = store.search(xb[:4], 10, gpu=False)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_allclose(after[0], before[0], rtol=1e-5)
        # vectors indexed after the reindex join the index; their exact copy is their shard
        index_tomograms(store, world.tomograms[2:], world.coords, batch_size=30, progress=False)
        assert check_store(store).ok
        ids, xb = store.load_vectors()
        _, I = store.search(xb[-3:], 5, gpu=False)  # noqa: E741
        np.testing.assert_array_equal(I[:, 0], ids[-3:])  # each finds itself first
        from click.testing import CliRunner

        from cosnet_index.cli._app import cli

        shown = CliRunner().invoke(cli, ["stats", "--store", str(path)])
        assert "vector index   ivf-fp16, recall@100 1.000" in shown.output, shown.output
        assert reindex(store) == 90  # back to flat: the exact copy goes
        assert store_stats(store)["vector_index"]["kind"] == "flat"
        assert not any(p.exists() for p in exact_paths(store.index_path()))
