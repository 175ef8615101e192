"""The store commands through click's CliRunner: init, db, index, check, stats, reindex."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cosnet_index.cli._app import cli
from tests._store_util import write_star_relion5


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_model, collection):
    star = write_star_relion5(tmp_path / "particles_relion5.star", collection["table"])
    store = tmp_path / "store"
    monkeypatch.setenv("COSNET_STORE", str(store))
    return {
        "checkpoint": tiny_model[0],
        "tomograms": [str(t) for t in collection["tomograms"]],
        "star": str(star),
        "store": store,
    }


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _use_catalog(monkeypatch, catalog_url) -> None:  # type: ignore[no-untyped-def]
    if catalog_url is not None:  # the PostgreSQL leg: every command gets --db-url from the env
        monkeypatch.setenv("COSNET_DB_URL", catalog_url)


def test_init_index_check_stats_reindex(setup, monkeypatch, catalog_url) -> None:
    _use_catalog(monkeypatch, catalog_url)
    result = _run("init", "--model", str(setup["checkpoint"]))
    assert result.exit_code == 0, result.output
    assert "created store" in result.output

    result = _run("db", "current")
    assert result.exit_code == 0 and "up to date" in result.output

    result = _run("index", *setup["tomograms"], "--coords", setup["star"], "--no-progress")
    assert result.exit_code == 0, result.output
    assert "indexed 12 subtomograms from 2 tomograms" in result.output
    assert "skipped 2 coordinates: box crosses the volume edge" in result.output

    result = _run("index", *setup["tomograms"], "--coords", setup["star"], "--no-progress")
    assert "indexed 0 subtomograms" in result.output and "already indexed" in result.output

    result = _run("check")
    assert result.exit_code == 0, result.output
    assert "12 rows, 12 shard rows, 12 in the index" in result.output

    result = _run("stats", "--json")
    info = json.loads(result.output)
    assert (info["tomograms"], info["subtomograms"], info["classes"]) == (2, 12, 0)

    (setup["store"] / "index").joinpath(next((setup["store"] / "index").iterdir()).name).unlink()
    result = _run("check")
    assert result.exit_code == 1
    assert "reindex" in result.output
    result = _run("reindex")
    assert result.exit_code == 0 and "12 vectors" in result.output
    assert _run("check").exit_code == 0


def test_errors_are_one_line_without_traceback(setup, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["check", "--store", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "Error: no cosnet-index store" in result.output and "Traceback" not in result.output
    assert _run("init", "--model", str(setup["checkpoint"])).exit_code == 0
    result = CliRunner().invoke(
        cli, ["index", *setup["tomograms"], "--coords", setup["star"], "--batch-size", "0"]
    )
    assert result.exit_code == 1 and "batch-size" in result.output


def test_db_downgrade_and_upgrade(setup, monkeypatch, catalog_url) -> None:
    _use_catalog(monkeypatch, catalog_url)
    assert _run("init", "--model", str(setup["checkpoint"])).exit_code == 0
    result = _run("db", "downgrade", "base", "--yes")
    assert result.exit_code == 0 and "(empty)" in result.output
    result = CliRunner().invoke(cli, ["stats"])
    assert result.exit_code == 1 and "db upgrade" in result.output
    result = _run("db", "upgrade")
    assert result.exit_code == 0 and "(empty) ->" in result.output


def test_ctrl_c_says_what_was_kept_and_how_to_resume(setup, monkeypatch) -> None:
    """Issue 19: Ctrl-C printed only 'Aborted!'."""
    import cosnet_index.store
    from cosnet_index.store.indexer import IndexInterrupted

    assert _run("init", "--model", str(setup["checkpoint"])).exit_code == 0

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise IndexInterrupted(committed=4096, parts=1)

    monkeypatch.setattr(cosnet_index.store, "index_tomograms", interrupted)
    result = CliRunner().invoke(cli, ["index", *setup["tomograms"], "--coords", setup["star"]])
    assert result.exit_code == 130
    assert "4096 subtomograms committed" in result.output
    assert "run the same command again to resume" in result.output
    assert "Aborted!" not in result.output
