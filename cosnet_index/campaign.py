"""The training campaign: a model for any microscope, trained in resumable chunks on 2 CPU cores.

One chunk (:func:`run_chunk`) resumes the run in ``run_dir`` (or starts it from the last committed
campaign weights, else the shipped weights), trains for ``minutes`` with :func:`campaign_config`
and checkpoints every few minutes and on SIGTERM / Ctrl-C. After a chunk that ran its full time,
:func:`evaluate_candidate` scores the checkpoint on the learning-curve tables (held-out molecules,
size-matched tier, 10-way 1-shot, SNR 1000 / 0.5 / 0.1, fixed seed):

- ``shifted/same``: the ``shifted`` imaging (never trained on: the ``broad`` training preset
  leaves a gap around each of its ranges), one microscope per episode (the headline);
- ``shifted/cross``: the same, the supports from one collection and the query from another (a
  class reused on another microscope);
- ``paper/same``: the ``paper`` imaging (it must not be forgotten);

and :func:`append_curve` adds the row (training hours, step, boxes seen, every cell with its 95%
Wilson interval and episode count) to ``run_dir/curve.csv``; :func:`plot_curve` draws it.
The commands: ``cosnet-index campaign run|eval|plot`` (docs/training.md).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import pathlib
import time
from typing import Any

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write
from cosnet_index.train import TrainConfig

__all__ = [
    "CAMPAIGN_CLASSES",
    "CURVE_TABLES",
    "append_curve",
    "campaign_config",
    "evaluate_candidate",
    "export_fp16",
    "plot_curve",
    "run_chunk",
    "start_weights",
]

logger = logging.getLogger(__name__)

# the shipped real maps and library molecules of the training side of the split, and 2,000
# procedural classes (never a held-out id, never a RESERVED entry: training_classes refuses them)
CAMPAIGN_CLASSES = "train-real,lib-train,proc:0-1999"
# (imaging preset, microscope per ...) of each learning-curve table
CURVE_TABLES: tuple[tuple[str, str], ...] = (
    ("shifted", "same"),
    ("shifted", "cross"),
    ("paper", "same"),
)
CURVE_SNRS: tuple[float, ...] = (1000.0, 0.5, 0.1)
REPO_TRAINING = pathlib.Path(__file__).resolve().parent.parent / "training" / "campaign"
COMMITTED_WEIGHTS = "weights_fp16.pt"


def campaign_config(
    chunk_minutes: float,
    threads: int = 0,
    seed: int = 0,
    init_from: str = "",
    sim_workers: int = 1,
) -> TrainConfig:
    """The campaign's training configuration (fixed across chunks: only the chunk length and the
    thread count are the caller's).

    - imaging: ``paper`` in 1 episode of 3 (so it is not forgotten: at 1 in 4, chunk 1 lost
      0.14 on the paper table), ``broad`` in 2; one microscope per episode (support and queries
      share it), 1 episode in 5 across two collections;
    - a constant learning rate after 50 warm-up steps (an open-ended run; the schedule does not
      depend on how many chunks there will be): 3e-4 to step 36,553 (chunks 1-5), then 1e-4
      (the headline was flat over chunk 5's 2 hours while the training accuracy still rose;
      docs/training.md), then 3e-5 from step 76,737 (chunk 11: the headline was flat over the
      4 hours to chunk 10), and an exponential moving average of the
      weights (decay 0.999, a horizon of ~1,000 steps): the average is what is evaluated and
      shipped, the noisy iterate is what training continues from (chunk 2 on);
    - the decoder trains on a quarter of the boxes, masks of the molecular volume; the
      simulation runs in ``sim_workers`` worker processes (1 on 2 CPU cores; a GPU machine
      needs more to keep up); ``channels_last_3d``.
    """
    return TrainConfig(
        steps=10**9,
        ways=8,
        episodes_per_step=2,
        lr=3e-5,  # 3e-4 in chunks 1-5 (to step 36,553), 1e-4 in chunks 6-10 (to step 76,737)
        warmup_steps=50,
        schedule="constant",
        clean_steps=0,
        crowding_fraction=0.25,
        imaging="paper:1,broad:2",
        imaging_per="collection",
        cross_collection=0.2,
        decoder_fraction=0.25,
        channels_last=True,
        sim_workers=sim_workers,
        checkpoint_every=100,
        keep_every=2000,
        chunk_minutes=chunk_minutes,
        threads=threads,
        seed=seed,
        init_from=init_from,
        # a restart from committed weights keeps the campaign's hours and steps (the curve's
        # x axis) and draws new episodes, not chunk 1's again
        continue_counters=True,
        ema_decay=0.999,
    )


def start_weights() -> pathlib.Path:
    """Where a new campaign run starts: the last committed campaign weights
    (``training/campaign/weights_fp16.pt``) when the checkout has them, else the shipped ones."""
    committed = REPO_TRAINING / COMMITTED_WEIGHTS
    if committed.is_file():
        return committed
    from cosnet_index.model.checkpoint import default_checkpoint_path

    return default_checkpoint_path()


def run_chunk(
    run_dir: str | os.PathLike,
    minutes: float,
    *,
    threads: int = 0,
    seed: int = 0,
    init_from: str | None = None,
    classes: str = CAMPAIGN_CLASSES,
    device: str = "auto",
    sim_workers: int = 1,
    progress: bool = True,
    command: str = "",
) -> tuple[pathlib.Path, bool]:
    """Train one chunk; returns (the checkpoint to evaluate, whether the chunk ran its full time).

    The checkpoint to evaluate is the weight average (``ema.pt``) when the run keeps one, else
    the last iterate (``last.pt``).

    Resumes ``run_dir`` when it holds a run; otherwise starts from ``init_from`` or
    :func:`start_weights`.

    Raises:
        InputError: ``minutes`` not > 0.
    """
    from cosnet_index.simulate.split import training_classes
    from cosnet_index.train import train

    if not minutes > 0:
        raise InputError(f"minutes must be > 0, got {minutes}")
    out = pathlib.Path(run_dir)
    resume = (out / "train_state.pt").is_file() and (out / "last.pt").is_file()
    start = "" if resume else str(init_from or start_weights())
    if not resume:
        logger.info("new campaign run in %s from %s", out, start)
    config = campaign_config(minutes, threads, seed, start, sim_workers)
    t0 = time.perf_counter()
    path = train(
        out,
        training_classes(classes),
        config=config,
        resume=resume,
        device=device,
        progress=progress,
        command=command,
    )
    full = time.perf_counter() - t0 >= 0.98 * 60 * minutes
    averaged = out / "ema.pt"
    return (averaged if config.ema_decay and averaged.is_file() else path), full


def evaluate_candidate(
    checkpoint: str | os.PathLike | None,
    *,
    episodes: int = 200,
    seed: int = 0,
    tables: tuple[tuple[str, str], ...] = CURVE_TABLES,
    progress: bool = False,
) -> dict[str, Any]:
    """The learning-curve cells of a checkpoint (None: the shipped weights).

    Returns:
        ``{"model_hash", "step", "train_hours", "eval_seconds", "cells": {"<imaging>/<collection>
        /<snr>": {"accuracy", "ci_low", "ci_high", "episodes"}}}``.
    """
    from cosnet_index.benchmark import (
        HardConfig,
        benchmark_molecules,
        hard_accuracy_table,
        hard_tiers,
        run_hard_benchmark,
    )
    from cosnet_index.model import load_checkpoint, load_default_model

    t0 = time.perf_counter()
    model, info = load_checkpoint(checkpoint) if checkpoint else load_default_model()
    model.eval()
    tiers = hard_tiers(benchmark_molecules("auto"), ("size-matched",))
    cells: dict[str, dict[str, float]] = {}
    for imaging, collection in tables:
        config = HardConfig(
            tiers=("size-matched",),
            ways=(10,),
            shots=(1,),
            snrs=CURVE_SNRS,
            episodes=episodes,
            baseline_episodes=0,
            imaging=imaging,
            collection=collection,
            seed=seed,
        )
        frame, _ = run_hard_benchmark(model, tiers, config, progress=progress)
        table = hard_accuracy_table(frame)
        for _, row in table.iterrows():
            key = f"{imaging}/{collection}/{row['snr']:g}"
            cells[key] = {
                "accuracy": float(row["accuracy"]),
                "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"]),
                "episodes": int(row["episodes"]),
            }
    meta = info.metadata or {}
    return {
        "model_hash": info.hash,
        "step": int(meta.get("step", 0)),
        # hours of THIS campaign (the shipped weights are its hour 0)
        "train_hours": round(float(meta.get("wall_s", 0.0)) / 3600.0, 3) if checkpoint else 0.0,
        "eval_seconds": round(time.perf_counter() - t0, 1),
        "cells": cells,
    }


def _curve_fields() -> list[str]:
    fields = ["label", "model_hash", "step", "train_hours", "boxes_seen", "eval_seconds"]
    for imaging, collection in CURVE_TABLES:
        for snr in CURVE_SNRS:
            key = f"{imaging}/{collection}/{snr:g}"
            fields += [f"{key}/{k}" for k in ("accuracy", "ci_low", "ci_high", "episodes")]
    return fields


def _read_curve(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append_curve(curve_csv: str | os.PathLike, result: dict[str, Any], label: str) -> None:
    """Append one evaluated checkpoint to the learning-curve CSV (atomic rewrite)."""
    path = pathlib.Path(curve_csv)
    rows = _read_curve(path) if path.is_file() else []
    steps_per_box = 2 * 8 * 2  # episodes_per_step * 2 sets * ways
    row: dict[str, Any] = {
        "label": label,
        "model_hash": result["model_hash"][:12],
        "step": result["step"],
        "train_hours": result["train_hours"],
        "boxes_seen": result["step"] * steps_per_box,
        "eval_seconds": result["eval_seconds"],
    }
    for key, cell in result["cells"].items():
        for k, v in cell.items():
            row[f"{key}/{k}"] = round(v, 4) if isinstance(v, float) else v
    rows.append(row)
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_curve_fields(), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_curve(curve_csv: str | os.PathLike, png: str | os.PathLike) -> None:
    """Accuracy (with 95% intervals) against training hours, one line per table and SNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_curve(pathlib.Path(curve_csv))
    if not rows:
        raise InputError(f"{curve_csv} has no rows yet: run `cosnet-index campaign eval` first")
    hours = [float(r["train_hours"]) for r in rows]
    fig, axes = plt.subplots(1, len(CURVE_TABLES), figsize=(5 * len(CURVE_TABLES), 3.6))
    for ax, (imaging, collection) in zip(axes, CURVE_TABLES, strict=True):
        for snr in CURVE_SNRS:
            key = f"{imaging}/{collection}/{snr:g}"
            acc = [float(r.get(f"{key}/accuracy") or math.nan) for r in rows]
            lo = [float(r.get(f"{key}/ci_low") or math.nan) for r in rows]
            hi = [float(r.get(f"{key}/ci_high") or math.nan) for r in rows]
            line = ax.plot(hours, acc, marker="o", label=f"SNR {snr:g}")[0]
            ax.fill_between(hours, lo, hi, color=line.get_color(), alpha=0.15)
        where = {"same": "one microscope per episode", "cross": "supports on another microscope"}
        ax.set_title(f"{imaging} imaging, {where.get(collection, collection)}", fontsize=9)
        ax.set_xlabel("campaign training hours (2 CPU cores)")
        ax.set_ylabel("10-way 1-shot accuracy (held-out molecules)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(pathlib.Path(png)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def export_fp16(checkpoint: str | os.PathLike, out: str | os.PathLike) -> pathlib.Path:
    """The checkpoint's weights stored as fp16 (half the bytes, for git: ``training/campaign``).

    It is an ordinary checkpoint whose hash covers the fp16 tensors; ``load_checkpoint`` loads it
    into an fp32 model. The metadata (step, training hours, data manifest) is kept.
    """
    from cosnet_index.model import load_checkpoint, save_checkpoint

    model, info = load_checkpoint(checkpoint)
    out_path = pathlib.Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model.half(), out_path, **info.metadata, exported_from=str(checkpoint))
    return out_path
