"""The demo end to end at a tiny size through the CLI: every stage's output exists and agrees."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from click.testing import CliRunner

from cosnet_index.cli._app import cli
from cosnet_index.defaults import UNKNOWN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHAPE_ZYX = (64, 128, 128)
N_CLASSES = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The shipped weights when present (None: the demo's default), else a tiny random model."""
    from cosnet_index.model import CosNet, CosNetConfig, default_checkpoint_path, save_checkpoint

    if default_checkpoint_path().is_file():
        return None
    import torch

    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), embed_dim=32))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path | None):
    out = tmp_path_factory.mktemp("demo") / "out"
    args = ["demo", "--out", str(out), "--seed", "3", "--n-tomograms", "1"]
    args += ["--shape", *map(str, SHAPE_ZYX), "--particles", "40", "--n-classes", str(N_CLASSES)]
    args += ["--top-k", "3"]
    if checkpoint is not None:
        args += ["--checkpoint", str(checkpoint)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return out, result


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_demo_exits_cleanly_and_prints_the_summary(demo_run) -> None:
    _, result = demo_run
    assert result.exit_code == 0, result.output
    for text in ["accuracy", "unknown rate", "Dice", "confusion", "subtomograms/s", "total"]:
        assert text in result.output, text
    for stage in ["simulate", "index", "add classes", "classify", "search", "segment", "report"]:
        assert f"\n{stage}" in result.output, stage


def test_demo_counts_agree(demo_run) -> None:
    out, result = demo_run
    assert result.exit_code == 0, result.output
    from cosnet_index.store import Store, check_store

    summary = json.loads((out / "demo.json").read_text())
    truth = pd.read_parquet(next((out / "data").glob("*truth*.parquet")))
    half = 16
    inside = truth[
        truth["x"].round().between(half, SHAPE_ZYX[2] - half)
        & truth["y"].round().between(half, SHAPE_ZYX[1] - half)
        & truth["z"].round().between(half, SHAPE_ZYX[0] - half)
    ]
    assert summary["simulated"] == len(truth) > 0
    assert summary["indexed"] + sum(summary["skipped"].values()) == len(truth)
    assert summary["indexed"] == summary["classified"] == len(inside)
    assert summary["scored"] == summary["indexed"] - N_CLASSES
    result_table = pd.read_parquet(out / "result.parquet")
    assert len(result_table) == summary["indexed"]
    assert set(result_table["class"]) <= {*summary["config"]["classes"], "unknown"}
    with Store.open(out / "store", readonly=True) as store:
        assert check_store(store).ok
        assert len(store.subtomogram_table()) == summary["indexed"]
    for name in summary["config"]["classes"][:2]:
        hits = pd.read_parquet(out / f"hits_{name}.parquet")
        assert len(hits) == 3 and summary["supports"][name] not in set(hits["subtomogram_id"])
    assert 0.0 <= summary["accuracy"] <= 1.0
    for value in summary["dice"].values():
        assert 0.0 <= value <= 1.0


def test_demo_report_files(demo_run) -> None:
    out, result = demo_run
    assert result.exit_code == 0, result.output
    report = (out / "report" / "report.md").read_text()
    summary = json.loads((out / "demo.json").read_text())
    for name in summary["config"]["classes"]:
        assert name in report
    _assert_png(out / "report" / "confusion.png")
    galleries = sorted((out / "report").glob("gallery_*.png"))
    assert len(galleries) == 2
    for png in galleries:
        _assert_png(png)
        assert f"]({png.name})" in report


def test_demo_refuses_an_existing_store(demo_run, tmp_path: Path) -> None:
    out, _ = demo_run
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 1
    assert "already exists" in result.output and "--force" in result.output
    assert "Traceback" not in result.output
    # --force replaces only a previous demo's output, never another store
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "precious").write_text("keep")
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path), "--force"])
    assert result.exit_code == 1 and "no demo wrote" in result.output
    assert (tmp_path / "store" / "precious").read_text() == "keep"


def test_report_command_from_store_and_result(demo_run, tmp_path: Path) -> None:
    out, result = demo_run
    assert result.exit_code == 0, result.output
    truth = next((out / "data").glob("*truth*.parquet"))
    args = ["report", "--store", str(out / "store"), "--result", str(out / "result.parquet")]
    args += ["--truth", str(truth), "--out", str(tmp_path / "rep"), "-k", "2"]
    run = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Accuracy against the truth" in report
    _assert_png(tmp_path / "rep" / "confusion.png")
    # a gallery for every support class that has members besides its own support (a class the
    # classifier gave no particle has none, and the report's log says so)
    table = pd.read_parquet(out / "result.parquet")
    with_members = table.loc[~table["is_support"].astype(bool), "class"].astype(str).unique()
    expected = len(set(with_members) - {UNKNOWN})
    assert expected >= N_CLASSES - 1
    assert len(list((tmp_path / "rep").glob("gallery_*.png"))) == expected
