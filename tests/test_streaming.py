"""Streamed classify (issue 17): the same table as in memory, written chunk by chunk."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from cosnet_index.classes import add_class
from cosnet_index.cli._app import cli
from cosnet_index.query import classify_store, read_table
from cosnet_index.query._streaming import classify_store_streaming
from tests._classes_util import SHAPES, ids_by_label


def test_streamed_classify_equals_in_memory(toy_store, toy, tmp_path) -> None:
    ids = ids_by_label(toy_store, toy.truth)
    for label in SHAPES[:3]:
        add_class(toy_store, label, subtomogram_ids=[ids[label][0]])
    table, meta = classify_store(toy_store, min_prob=0.6)
    out = tmp_path / "streamed.parquet"
    n, counts, _ = classify_store_streaming(toy_store, out, min_prob=0.6, chunk_rows=7)
    streamed, streamed_meta = read_table(out)
    assert n == len(table) == len(streamed)
    assert counts == table["class"].value_counts().to_dict()
    pd.testing.assert_frame_equal(
        streamed.sort_values("subtomogram_id", ignore_index=True),
        table.sort_values("subtomogram_id", ignore_index=True),
        check_dtype=False,
    )
    assert streamed_meta["classes"] == meta["classes"] and streamed_meta["streamed"]
    assert streamed["is_support"].sum() == 3
    # the mixture rule (the default) streams in two passes: the same thresholds and table
    table, meta = classify_store(toy_store, max_lost=0.1)
    classify_store_streaming(toy_store, out, max_lost=0.1, chunk_rows=7)
    streamed, streamed_meta = read_table(out)
    assert streamed_meta["rule"] == meta["rule"] == "mixture"
    for key in ("thresholds", "estimated_lost", "estimated_novel", "class_modes"):
        assert streamed_meta[key] == meta[key], key
    pd.testing.assert_frame_equal(
        streamed.sort_values("subtomogram_id", ignore_index=True),
        table.sort_values("subtomogram_id", ignore_index=True),
        check_dtype=False,
    )
    result = CliRunner().invoke(
        cli, ["classify", "--store", str(toy_store.path), "--stream", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"classified {len(table)} subtomograms into 3 classes" in result.output
    assert "open-set rule: mixture" in result.output
    result = CliRunner().invoke(
        cli, ["classify", "--store", str(toy_store.path), "--stream", "--rule", "collection",
              "--out", str(out)]
    )  # fmt: skip
    assert result.exit_code == 2 and "in memory" in result.output
    result = CliRunner().invoke(
        cli, ["classify", "--store", str(toy_store.path), "--stream", "--tomogram", "toy",
              "--out", str(out)]
    )  # fmt: skip
    assert result.exit_code == 2 and "whole store" in result.output
