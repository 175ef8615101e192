"""The paper's evaluation on held-out classes: N-way-1-shot accuracy and decoder Dice.

Classification (Table 1): for each (N, SNR) cell, ``episodes`` seeded episodes; each draws N
held-out classes, one support subtomogram per class and one query of one of them (all
independently posed and imaged at that SNR). COS-Net predicts the support with the highest
head probability ``match_probability(L1(embed(support), embed(query)))``. A rotational-search
template-matching baseline (:mod:`cosnet_index._template_matching`) scores the first
``baseline_episodes`` of the SAME episodes. Accuracy comes with a 95% Wilson interval.

Segmentation (Tables 2-3): per held-out class and SNR, ``dice_boxes`` subtomograms; Dice of the
decoder's mask (probability > 0.5) against the ground truth; extra columns from ``refiners``
(e.g. a 3D CRF: ``refiners={"decoder + CRF": fn}``, ``fn(volumes, probabilities) -> masks``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from cosnet_index.data.episodes import SimulateFn, default_simulate
from cosnet_index.model import CosNet

__all__ = [
    "EvalConfig",
    "Refiner",
    "accuracy_table",
    "classification_episodes",
    "dice_scores",
    "dice_table",
    "episode_rows",
    "wilson_interval",
]

logger = logging.getLogger(__name__)

Refiner = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``refine(volumes (n,B,B,B) float32, probabilities (n,B,B,B) float32) -> masks (n,B,B,B) bool``"""

# rotations about x, y, z by 180 degrees map the missing wedge (tilt axis y) onto itself
_WEDGE_PRESERVING_FLIPS: tuple[tuple[int, ...], ...] = ((), (-2, -1), (-3, -1), (-3, -2))


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate (defaults: the paper's protocol)."""

    ways: tuple[int, ...] = (2, 4, 6, 8)
    snrs: tuple[float, ...] = (math.inf, 1000.0, 0.5, 0.1)
    episodes: int = 1000
    dice_snrs: tuple[float, ...] = (math.inf, 1000.0, 0.5)
    dice_boxes: int = 20
    baseline_episodes: int = 100
    baseline_rotations: int = 100
    support_rotations: bool = False  # also score with test-time rotation of the support
    cosnet: bool = True  # False: only the baseline (e.g. run it apart and merge the tables)
    seed: int = 0


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if total == 0:
        return (math.nan, math.nan)
    p = correct / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _snr_code(snr: float) -> int:
    return 10**9 if not math.isfinite(snr) else round(snr * 1000)


def _cosnet_scores(
    model: CosNet, support: torch.Tensor, query: torch.Tensor, rotate: bool
) -> torch.Tensor:
    """(e, N) head probabilities of each query against its N supports."""
    e, n = support.shape[:2]
    box = support.shape[-1]
    q = model.embed(query)  # (e, d)
    flips = _WEDGE_PRESERVING_FLIPS if rotate else ((),)
    best = None
    flat = support.reshape(e * n, box, box, box)
    for dims in flips:
        s = model.embed(flat.flip(dims) if dims else flat).reshape(e, n, -1)
        p = model.match_probability((s - q[:, None]).abs().sum(-1))
        best = p if best is None else torch.maximum(best, p)
    assert best is not None
    return best


def classification_episodes(
    model: CosNet,
    class_names: Sequence[str],
    ways: int,
    snr: float,
    config: EvalConfig,
    simulate: SimulateFn | None = None,
    chunk: int = 50,
) -> pd.DataFrame:
    """Run one (N, SNR) cell; one row per (method, episode).

    Columns: method, ways, snr, episode, classes, target, pred, correct, score_target,
    score_pred, seconds (per comparison for the baseline; per embedded subtomogram for COS-Net,
    whose comparisons are L1 distances between stored vectors).
    """
    from cosnet_index._template_matching import rotation_grid, template_match_scores

    simulate = simulate or default_simulate()
    rotations = rotation_grid(config.baseline_rotations, seed=config.seed)
    rows: list[dict] = []
    for start in range(0, config.episodes, chunk):
        count = min(chunk, config.episodes - start)
        rng = np.random.default_rng([config.seed, ways, _snr_code(snr), start])
        picks = np.stack(
            [rng.choice(len(class_names), size=ways, replace=False) for _ in range(count)]
        )
        target = rng.integers(0, ways, size=count)
        names = [class_names[i] for i in picks.reshape(-1)]
        names += [class_names[picks[j, target[j]]] for j in range(count)]
        batch = simulate(names, snr, int(rng.integers(2**31 - 1)))
        vols = torch.as_tensor(np.asarray(batch.volumes, dtype=np.float32))
        box = vols.shape[-1]
        support = vols[: count * ways].reshape(count, ways, box, box, box)
        query = vols[count * ways :]
        methods = {"cosnet": False} if config.cosnet else {}
        if config.support_rotations and config.cosnet:
            methods["cosnet+flip4"] = True
        for method, rotate in methods.items():
            t0 = time.perf_counter()
            scores = _cosnet_scores(model, support, query, rotate)
            per_box = (time.perf_counter() - t0) / (count * (ways + 1))
            rows += _rows(method, ways, snr, start, picks, target, scores, class_names, per_box)
        n_base = min(count, max(0, config.baseline_episodes - start))
        for j in range(n_base):
            t0 = time.perf_counter()
            # symmetric score: rotate the single query, compare it with all N supports at once
            s = template_match_scores(query[j : j + 1], support[j], rotations)[0]
            per_comparison = (time.perf_counter() - t0) / ways
            rows += _rows(
                "template_matching",
                ways,
                snr,
                start + j,
                picks[j : j + 1],
                target[j : j + 1],
                s[None],
                class_names,
                per_comparison,
            )
        logger.info("N=%d snr=%g: %d/%d episodes", ways, snr, start + count, config.episodes)
    return pd.DataFrame(rows)


def _rows(method, ways, snr, start, picks, target, scores, class_names, seconds) -> list[dict]:
    scores = torch.as_tensor(scores)
    pred = scores.argmax(dim=1).numpy()
    labels = [";".join(class_names[i] for i in p) for p in picks]
    cell = {"method": method, "ways": ways, "snr": float(snr)}
    return episode_rows(cell, start, labels, target, scores, pred, seconds)


def episode_rows(
    cell: Mapping[str, Any],
    start: int,
    labels: Sequence[str],
    target: np.ndarray,
    scores: Any,
    pred: np.ndarray,
    seconds: float,
) -> list[dict[str, Any]]:
    """One row per episode of a cell: the cell's keys (method, ways, snr...), then ``episode``
    (``start + j``), ``classes`` (``labels[j]``), ``target``, ``pred``, ``correct``,
    ``score_target``, ``score_pred`` and ``seconds``; ``scores`` is (episodes, N)."""
    return [
        {
            **cell,
            "episode": start + j,
            "classes": labels[j],
            "target": int(target[j]),
            "pred": int(pred[j]),
            "correct": bool(pred[j] == target[j]),
            "score_target": float(scores[j, target[j]]),
            "score_pred": float(scores[j, pred[j]]),
            "seconds": float(seconds),
        }
        for j in range(len(target))
    ]


def accuracy_table(
    episodes: pd.DataFrame, keys: Sequence[str] = ("method", "ways", "snr")
) -> pd.DataFrame:
    """Accuracy, 95% Wilson interval and episode count per ``keys`` (method, ways, snr)."""
    rows = []
    for values, group in episodes.groupby(list(keys), sort=True):
        k, n = int(group["correct"].sum()), len(group)
        lo, hi = wilson_interval(k, n)
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "accuracy": k / n,
                "ci_low": lo,
                "ci_high": hi,
                "episodes": n,
                "seconds": float(group["seconds"].mean()),
            }
        )
    return pd.DataFrame(rows)


def dice_scores(
    model: CosNet,
    class_names: Sequence[str],
    config: EvalConfig,
    simulate: SimulateFn | None = None,
    refiners: Mapping[str, Refiner] | None = None,
) -> pd.DataFrame:
    """Dice of every box: columns class, snr, box, method ("decoder" + refiners), dice."""
    from cosnet_index.model.losses import soft_dice

    simulate = simulate or default_simulate()
    rows: list[dict] = []
    if model.decoder is None:  # the no-decoder ablation: nothing to segment
        logger.info("model without decoder: no Dice table")
        return pd.DataFrame(rows, columns=["class", "snr", "box", "method", "dice"])
    for snr in config.dice_snrs:
        for c, name in enumerate(class_names):
            seed = int(np.random.default_rng([config.seed, 7, _snr_code(snr), c]).integers(2**31))
            batch = simulate([name] * config.dice_boxes, snr, seed)
            vols = np.asarray(batch.volumes, dtype=np.float32)
            truth = torch.as_tensor(np.asarray(batch.masks, dtype=bool))
            prob = model.decode(torch.as_tensor(vols))
            masks = {"decoder": (prob > 0.5).numpy()}
            for col, refine in (refiners or {}).items():
                masks[col] = np.asarray(refine(vols, prob.numpy()), dtype=bool)
            for method, m in masks.items():
                d = soft_dice(torch.as_tensor(m).float(), truth, smooth=0.0)
                for i, value in enumerate(d.tolist()):
                    rows.append(
                        {
                            "class": name,
                            "snr": float(snr),
                            "box": i,
                            "method": method,
                            "dice": value,
                        }
                    )
    return pd.DataFrame(rows)


def dice_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice per class (rows) and (snr, method) (columns), with a "mean" row."""
    table = scores.pivot_table(
        index="class", columns=["snr", "method"], values="dice", aggfunc="mean"
    )
    table.loc["mean"] = table.mean()
    return table


def run_evaluation(
    model: CosNet,
    class_names: Sequence[str],
    config: EvalConfig,
    simulate: SimulateFn | None = None,
    refiners: Mapping[str, Refiner] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every classification cell and the Dice table; returns (episodes, dice scores)."""
    from tqdm.auto import tqdm

    cells = [(w, s) for s in config.snrs for w in config.ways]
    frames = []
    for ways, snr in tqdm(cells, desc="N-way cells", disable=not progress):
        frames.append(classification_episodes(model, class_names, ways, snr, config, simulate))
    episodes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if config.dice_boxes and config.dice_snrs:
        dice = dice_scores(model, class_names, config, simulate, refiners)
    else:
        dice = pd.DataFrame(columns=["class", "snr", "box", "method", "dice"])
    return episodes, dice


def _snr_label(snr: float) -> str:
    return "inf" if not math.isfinite(snr) else f"{snr:g}"


def accuracy_cells(rows: pd.DataFrame, snrs: Sequence[float]) -> list[str]:
    """``acc [lo, hi] (n=episodes)`` of ``rows`` (one method and cell) at each SNR ('' if none)."""
    cells = []
    for snr in snrs:
        row = rows[rows["snr"] == snr]
        if row.empty:
            cells.append("")
            continue
        r = row.iloc[0]
        cells.append(f"{r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] (n={int(r.episodes)})")
    return cells


def accuracy_markdown(table: pd.DataFrame) -> str:
    """Markdown: one row per (method, N), one column per SNR, ``acc [lo, hi] (n)``."""
    snrs = sorted(table["snr"].unique(), key=lambda s: -s)
    head = "| method | N | " + " | ".join(f"SNR {_snr_label(s)}" for s in snrs) + " |"
    lines = [head, "|---|---|" + "---|" * len(snrs)]
    for (method, ways), group in table.groupby(["method", "ways"], sort=True):
        cells = accuracy_cells(group, snrs)
        lines.append(f"| {method} | {ways} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dice_markdown(table: pd.DataFrame) -> str:
    """Markdown of :func:`dice_table`."""
    cols = list(table.columns)
    head = "| class | " + " | ".join(f"{m} @ SNR {_snr_label(s)}" for s, m in cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]
    for name, row in table.iterrows():
        label = f"**{name}**" if name == "mean" else str(name)
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in row.tolist()) + " |")
    return "\n".join(lines)
