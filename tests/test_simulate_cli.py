"""`cosnet-index simulate` through click's CliRunner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError
from cosnet_index.simulate import default_split, resolve_classes


def test_simulate_commands_have_help_with_examples() -> None:
    runner = CliRunner()
    for args in (["simulate"], ["simulate", "tomograms"], ["simulate", "subtomograms"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.output


def test_simulate_subtomograms_and_tomograms(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(
        cli,
        [
            "simulate",
            "subtomograms",
            str(out),
            "--classes",
            "enolase_3enl,proc:0-1",
            "--n-per-class",
            "2",
            "--snr",
            "inf,0.1",
            "--box",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    volumes = np.load(out / "volumes.npy", mmap_mode="r")
    assert volumes.shape == (12, 24, 24, 24) and volumes.dtype == np.float16
    assert len(pd.read_parquet(out / "labels.parquet")) == 12

    tomos = tmp_path / "tomos"
    result = runner.invoke(
        cli,
        [
            "simulate",
            "tomograms",
            str(tomos),
            "--n-tomograms",
            "2",
            "--shape",
            "48",
            "64",
            "64",
            "--n-particles",
            "4",
            "--classes",
            "enolase_3enl,glua3_3o21",
            "--snr",
            "inf",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tomos.glob("*.mrc")) == ["TS_01.mrc", "TS_02.mrc"]
    truth = pd.read_parquet(tomos / "truth.parquet")
    assert set(truth["tomogram"]) == {"TS_01", "TS_02"} and (tomos / "particles.star").is_file()


def test_simulate_bad_input_is_a_one_line_error(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["simulate", "subtomograms", str(tmp_path), "--classes", "nope"])
    assert result.exit_code == 1 and "Error: unknown class 'nope'" in result.output
    result = runner.invoke(cli, ["simulate", "subtomograms", str(tmp_path), "--snr", "-1"])
    assert result.exit_code == 2


def test_resolve_classes_presets_and_ranges() -> None:
    assert resolve_classes("heldout") == default_split(0, 24).heldout
    assert resolve_classes("proc:3-5,enolase_3enl,proc-00004") == (
        "proc-00003",
        "proc-00004",
        "proc-00005",
        "enolase_3enl",
    )
    with pytest.raises(InputError):
        resolve_classes("proc:5-3")
    with pytest.raises(InputError):
        resolve_classes(" , ")


def test_simulate_presets_on_the_command_line(tmp_path) -> None:
    from cosnet_index.simulate import IMAGING_PRESETS

    runner = CliRunner()
    tomos = tmp_path / "tomos"
    args = ["simulate", "tomograms", str(tomos), "--n-tomograms", "1", "--shape", "48", "64", "64"]
    args += ["--n-particles", "3", "--classes", "enolase_3enl", "--preset", "realistic", "--labels"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    truth = pd.read_parquet(tomos / "truth.parquet")
    assert (truth["preset"] == "realistic").all() and truth["imaging"].str.startswith("{").all()
    assert (tomos / "TS_01_labels.mrc").exists() and (tomos / "particles.star").exists()
    data = tmp_path / "data"
    args = ["simulate", "subtomograms", str(data), "--classes", "enolase_3enl", "--snr", "0.5"]
    result = runner.invoke(cli, [*args, "--n-per-class", "3", "--preset", "shifted"])
    assert result.exit_code == 0, result.output
    assert "imaging" in pd.read_parquet(data / "labels.parquet").columns
    help_text = runner.invoke(cli, ["simulate", "tomograms", "--help"]).output
    assert all(name in help_text for name in IMAGING_PRESETS)  # the CLI's choices are the presets
    bad = runner.invoke(cli, [*args, "--preset", "nope"])
    assert bad.exit_code != 0
