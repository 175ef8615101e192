"""Evaluation: Wilson intervals, the template-matching baseline, episode tables, Dice hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _model_util import toy_simulate

from cosnet_index._template_matching import rotation_grid, template_match_scores
from cosnet_index.evaluate import (
    EvalConfig,
    accuracy_markdown,
    accuracy_table,
    classification_episodes,
    dice_markdown,
    dice_scores,
    dice_table,
    wilson_interval,
)
from cosnet_index.model import CosNet, CosNetConfig


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8883, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_template_matching_prefers_same_shape_under_rotation() -> None:
    batch = toy_simulate(["rod", "ball", "rod"], math.inf, seed=1)
    vols = torch.as_tensor(batch.volumes)
    # the query is the first rod turned by 90 degrees about z (axes y, x swap)
    query = vols[2:3].transpose(-1, -2).contiguous()
    scores = template_match_scores(vols[:2], query, rotation_grid(24, seed=0))
    assert scores.shape == (2, 1)
    assert float(scores[0, 0]) > float(scores[1, 0])
    assert float(scores.abs().max()) <= 1.0 + 1e-5


def test_classification_and_dice_tables_with_refiner() -> None:
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1))
    config = EvalConfig(
        ways=(2,),
        snrs=(math.inf,),
        episodes=6,
        baseline_episodes=2,
        baseline_rotations=4,
        support_rotations=True,
        dice_snrs=(math.inf,),
        dice_boxes=2,
    )
    classes = ["ball", "cube", "rod", "ring"]
    episodes = classification_episodes(model, classes, 2, math.inf, config, toy_simulate, chunk=4)
    counts = episodes["method"].value_counts().to_dict()
    assert counts == {"cosnet": 6, "cosnet+flip4": 6, "template_matching": 2}
    again = classification_episodes(model, classes, 2, math.inf, config, toy_simulate, chunk=4)
    assert episodes["classes"].tolist() == again["classes"].tolist()  # seeded
    table = accuracy_table(episodes)
    assert set(table["episodes"]) == {6, 2}
    assert "| cosnet | 2 |" in accuracy_markdown(table)

    def everything(volumes: np.ndarray, probs: np.ndarray) -> np.ndarray:
        return np.ones(probs.shape, dtype=bool)

    scores = dice_scores(model, classes, config, toy_simulate, {"all voxels": everything})
    assert set(scores["method"]) == {"decoder", "all voxels"}
    dt = dice_table(scores)
    assert "mean" in dt.index and "all voxels @ SNR inf" in dice_markdown(dt)
    # a mask of every voxel has Dice 2|M| / (|M| + B^3) < 0.5 for small molecules
    assert float(scores[scores["method"] == "all voxels"]["dice"].max()) < 0.5


def test_baseline_only_run_sees_the_same_episodes() -> None:
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    classes = ["ball", "cube", "rod", "ring"]
    full = EvalConfig(episodes=8, baseline_episodes=0, baseline_rotations=2)
    base = EvalConfig(episodes=3, baseline_episodes=3, baseline_rotations=2, cosnet=False)
    a = classification_episodes(model, classes, 3, 0.5, full, toy_simulate, chunk=3)
    b = classification_episodes(model, classes, 3, 0.5, base, toy_simulate, chunk=3)
    assert set(b["method"]) == {"template_matching"}
    assert a["classes"][:3].tolist() == b["classes"].tolist()
    assert a["target"][:3].tolist() == b["target"].tolist()


def test_a_model_without_decoder_is_evaluated_without_dice() -> None:
    torch.manual_seed(0)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), convs_per_level=1, use_decoder=False))
    config = EvalConfig(ways=(2,), snrs=(math.inf,), episodes=4, baseline_episodes=0, dice_boxes=2)
    scores = dice_scores(model, ["ball", "cube"], config, toy_simulate)
    assert scores.empty and list(scores.columns) == ["class", "snr", "box", "method", "dice"]
    episodes = classification_episodes(model, ["ball", "cube"], 2, math.inf, config, toy_simulate)
    assert len(episodes) == 4
