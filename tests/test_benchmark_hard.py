"""The hard benchmark: tiers and mass windows, paired K-shot episodes, the CLI, held-out classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _model_util import toy_simulate
from _store_util import tiny_checkpoint
from click.testing import CliRunner

from cosnet_index.benchmark import (
    HardConfig,
    Tier,
    benchmark_molecules,
    confused_pairs,
    draw_classes,
    hard_accuracy_table,
    hard_cell_episodes,
    hard_markdown,
    hard_tiers,
    mass_windows,
    paired_markdown,
    simulate_snrs,
)
from cosnet_index.cli._app import cli
from cosnet_index.errors import InputError
from cosnet_index.model import CosNet, CosNetConfig

# /work/shared/structures/RESERVED.txt: PDB entries kept for independent evaluation, never used
RESERVED = frozenset(
    "1AON 1G6C 1IR2 1RB8 1SVA 1TII 2CGT 2GTL 2POR 2XHE 3J9I 3KPR 3SHM 4HHB 5A1A 6EK0 6ZU5 "
    "7CFN 7DDO".split()
)


def _ids(column: pd.Series) -> set[str]:
    """PDB ids of a manifest column (hetero-units list several, ``;``-separated)."""
    return {i.strip().upper() for text in column for i in str(text).split(";") if i.strip()}


def test_episodes_of_the_size_matched_tier_lie_within_a_mass_factor() -> None:
    masses = (80.0, 90.0, 100.0, 115.0, 130.0, 170.0, 199.0)
    tier = Tier("size-matched", tuple(f"c{i}" for i in range(7)), masses, 1.5, (80.0, 200.0))
    assert tier.max_ways() == 4  # 80..120 and 90..135 hold 4 classes each
    assert [len(w) for w in mass_windows(masses, 1.5)] == [4, 4, 3, 3, 2, 2, 1]
    rng = np.random.default_rng(0)
    for _ in range(200):
        picks = draw_classes(tier, 3, rng)
        m = np.asarray(masses)[picks]
        assert len(set(picks.tolist())) == 3 and m.max() <= 1.5 * m.min()
    with pytest.raises(InputError, match="lower --ways"):
        draw_classes(tier, 5, rng)
    free = Tier("large", tier.classes, masses, None, (0.0, 1e9))
    assert free.max_ways() == 7 and len(draw_classes(free, 7, rng)) == 7


def test_tiers_keep_held_out_rows_in_their_mass_range() -> None:
    rows = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e"],
            "mass_kda": [85.0, 120.0, 150.0, 2500.0, 3000.0],
            "split": ["heldout", "train", "heldout", "heldout", "heldout"],
        }
    )
    small, large = hard_tiers(rows)
    assert small.classes == ("a", "c") and small.mass_ratio == 1.5
    assert large.classes == ("d", "e") and large.mass_ratio is None
    assert hard_tiers(rows, ("large",), max_classes=1)[0].classes == ("d",)
    with pytest.raises(InputError, match="unknown tier"):
        hard_tiers(rows, ("medium",))


def test_one_and_five_shot_cells_share_episodes_and_template_matching_sits_beside() -> None:
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    tier = Tier("size-matched", ("ball", "cube", "rod", "ring"), (90, 95, 100, 105), 1.5, (80, 200))
    config = HardConfig(
        ways=(3,),
        shots=(1, 2),
        snrs=(math.inf, 0.5),
        episodes=3,
        baseline_episodes=2,
        baseline_rotations=2,
        chunk=2,
    )
    episodes = hard_cell_episodes(model, tier, 3, config, toy_simulate)
    counts = episodes.groupby(["method", "shots", "snr"]).size().to_dict()
    assert set(counts.values()) == {3, 2} and len(counts) == 8
    cos = episodes[episodes["method"] == "cosnet"]
    one, two = (cos[cos["shots"] == k].reset_index(drop=True) for k in (1, 2))
    pd.testing.assert_series_equal(one["classes"], two["classes"])  # paired
    pd.testing.assert_series_equal(one["target"], two["target"])
    again = hard_cell_episodes(model, tier, 3, config, toy_simulate)
    pd.testing.assert_frame_equal(
        episodes.drop(columns="seconds"), again.drop(columns="seconds")
    )  # seeded
    table = hard_accuracy_table(episodes)
    assert set(table["episodes"]) == {3, 2}
    text = hard_markdown(table)
    assert "| size-matched | 3-way 2-shot | template matching |" in text
    assert "(n=3)" in text and "(n=2)" in text
    assert "(n=2)" in paired_markdown(episodes)
    mistakes = confused_pairs(episodes)
    wrong = episodes[~episodes["correct"]].groupby(["method", "tier"]).size().to_dict()
    assert mistakes.groupby(["method", "tier"])["count"].sum().to_dict() == wrong


@pytest.mark.parametrize("imaging", ["paper", "shifted"])
def test_snrs_derived_from_two_calls_equal_direct_simulation(imaging: str) -> None:
    import functools

    from cosnet_index.simulate import simulate_subtomograms

    simulate = functools.partial(simulate_subtomograms, imaging=imaging)
    names = ["enolase_3enl", "glua3_3o21", "casx_6ny1"] * 12  # more than one CPU chunk
    snrs = (1000.0, 0.5, 0.1)
    derived = simulate_snrs(simulate, names, snrs, seed=5, crowding=True)
    for snr in snrs:
        direct = simulate(names, snr, 5, crowding=True).volumes
        np.testing.assert_allclose(derived[snr][1], direct, rtol=0, atol=1e-4 * direct.std())
    assert simulate_snrs(simulate, names[:2], (0.5,), seed=5)[0.5][1].shape == (2, 32, 32, 32)


def test_cli_writes_the_hard_table(tmp_path: Path) -> None:
    ckpt, _ = tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "hard"
    args = [
        "evaluate",
        "--benchmark", "hard",
        "--checkpoint", str(ckpt),
        "--molecules", "split",
        "--ways", "2,5",
        "--shots", "1,2",
        "--snrs", "1000,0.1",
        "--episodes", "2",
        "--baseline-episodes", "1",
        "--baseline-rotations", "2",
        "--imaging", "shifted",
        "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = (out / "results.md").read_text()
    for row in ("2-way 1-shot | COS-Net", "2-way 2-shot | template matching"):
        assert f"| size-matched | {row} | " in text
    assert "(n=2)" in text and "(n=1)" in text and "SNR 0.1" in text
    assert "| method | tier | true | predicted | count |" in text
    assert "5-way: not run" in text and "large, 2-way: not run" in text  # split.py is too small
    acc = pd.read_csv(out / "accuracy.csv")
    assert len(acc) == 2 * 2 * 2  # methods x shots x SNRs
    assert json.loads((out / "config.json").read_text())["config"]["shots"] == [1, 2]
    bad = CliRunner().invoke(
        cli, ["evaluate", "--benchmark", "hard", "--refine", "crf", "--out", "x"]
    )
    assert bad.exit_code != 0 and "paper-only" in bad.output


def test_benchmark_molecules_are_held_out_and_not_reserved() -> None:
    from cosnet_index.simulate import default_split

    rows = benchmark_molecules()
    assert len(rows) and set(rows["split"]) == {"heldout"}
    train = set(default_split().train)
    try:
        from cosnet_index.simulate.molecules.library import library_manifest

        manifest = library_manifest()
    except (ImportError, InputError):
        assert set(rows["source"]) == {"split.py"}
    else:
        train |= set(manifest[manifest["split"] == "train"]["name"])
        assert not _ids(manifest[manifest["split"] == "train"]["pdb_id"]) & _ids(rows["pdb_id"])
    assert not train & set(rows["name"])
    assert not RESERVED & _ids(rows["pdb_id"])
    for tier in hard_tiers(rows):
        assert set(tier.classes) <= set(rows["name"])


def test_map_supports_share_the_same_collection_queries() -> None:
    # collection="map": the queries of "same" (same seeds), each class one prototype from its map
    from cosnet_index.benchmark._hard_simulation import imaging_simulate

    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    tier = Tier("real", ("enolase_3enl", "glua3_3o21", "casx_6ny1"), (90, 95, 100), 1.5, (80, 200))
    simulate = imaging_simulate("shifted")
    common = {"ways": (3,), "shots": (1,), "snrs": (0.5,), "episodes": 2, "baseline_episodes": 1}
    same = hard_cell_episodes(model, tier, 3, HardConfig(**common), simulate)
    maps = hard_cell_episodes(model, tier, 3, HardConfig(**common, collection="map"), simulate)
    assert set(maps["method"]) == {"cosnet"}  # no template-matching baseline from a map
    cos = same[same["method"] == "cosnet"].reset_index(drop=True)
    pd.testing.assert_series_equal(cos["classes"], maps["classes"])
    pd.testing.assert_series_equal(cos["target"], maps["target"])
    assert not np.allclose(cos["score_target"], maps["score_target"])  # other supports
    with pytest.raises(InputError, match="--shots 1"):
        HardConfig(collection="map", shots=(1, 5))


def test_map_prototypes_follow_the_collection_imaging() -> None:
    from types import SimpleNamespace

    from cosnet_index.benchmark._hard_maps import collection_imaging, map_prototypes
    from cosnet_index.simulate.microscope.imaging import Imaging

    drawn = [Imaging(defocus_um=d, tilt_min_deg=-t, tilt_max_deg=t, resolution_nm=r)
             for d, t, r in [(-2.0, 40, 5.0), (-3.0, 45, 6.0), (-9.0, 60, 7.0)]]  # fmt: skip
    setting = collection_imaging(SimpleNamespace(imaging=drawn), [0, 1, 2], seed=4)
    assert (setting.defocus_um, setting.tilt_max_deg, setting.resolution_nm) == (-3.0, 45.0, 6.0)
    assert collection_imaging(SimpleNamespace(imaging=()), [0], seed=4).tilt_max_deg == 60.0
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    wide = collection_imaging(SimpleNamespace(imaging=drawn), [2], seed=4)  # -9 um, +-60
    names = [["enolase_3enl", "casx_6ny1"], ["enolase_3enl", "casx_6ny1"]]
    protos = map_prototypes(model, names, [setting, wide])
    assert protos.shape == (2, 2, 1, model.config.embed_dim)
    assert not torch.allclose(protos[0, 0], protos[0, 1])  # another class, another prototype
    assert not torch.allclose(protos[0, 0], protos[1, 0])  # another microscope, another image
    again = map_prototypes(model, names[:1], [setting])
    torch.testing.assert_close(again[0], protos[0])  # seeded


def test_episodes_record_the_query_microscope_and_split_by_it() -> None:
    # the query's imaging per episode (bench/hard_by_imaging.py splits accuracy by it)
    import importlib.util

    from cosnet_index.benchmark._hard_simulation import imaging_simulate

    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    tier = Tier("real", ("enolase_3enl", "glua3_3o21", "casx_6ny1"), (90, 95, 100), 1.5, (80, 200))
    config = HardConfig(
        ways=(3,), shots=(1,), snrs=(1000.0, 0.5), episodes=3, baseline_episodes=1, chunk=2
    )
    episodes = hard_cell_episodes(model, tier, 3, config, imaging_simulate("shifted"))
    fields = [c for c in episodes if c.startswith("query_")]
    assert len(fields) == 6 and not episodes[fields].isna().any().any()
    per = episodes.groupby("episode")[fields].nunique()
    assert (per == 1).all().all()  # one query, one microscope, at every SNR and for both methods
    assert episodes.groupby("snr")["query_defocus_um"].nunique().min() == 3  # per episode
    assert episodes["query_tilt_max_deg"].between(40.0, 48.0).all()  # the shifted preset's
    res = episodes["query_resolution_nm"]
    assert (res.between(2.0, 2.3) | res.between(4.8, 6.0)).all()
    assert set(episodes["query_noise_colour"]) == {"white"}

    root = Path(__file__).resolve().parent.parent / "bench"
    spec = importlib.util.spec_from_file_location("hard_by_imaging", root / "hard_by_imaging.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(root))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(root))
    cos = episodes[episodes["method"] == "cosnet"]
    table = module.by_imaging(cos)
    overall = table[table["field"] == "all"].set_index("snr")["accuracy"]
    expected = cos.groupby("snr")["correct"].mean()
    pd.testing.assert_series_equal(overall.sort_index(), expected.sort_index(), check_names=False)
    sides = table[table["field"] == "query_resolution_nm"].groupby("snr")["episodes"].sum()
    assert (sides == 3).all()  # the two sides partition the episodes
    assert "| all |" in module.markdown(table)
    classes = module.by_query_class(cos)
    assert classes.groupby("snr")["episodes"].sum().to_dict() == {1000.0: 3, 0.5: 3}
    means = classes.groupby("query_class", sort=False)["accuracy"].mean().to_numpy()
    assert (np.diff(means) >= 0).all()  # the hardest first
