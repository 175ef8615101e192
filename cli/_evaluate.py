"""What `cosnet-index evaluate` runs and writes: the paper's protocol and the hard benchmark.

The command and its options are in ``evaluate.py``; each run here loads the model, runs the
library's evaluation and writes ``OUT/results.md`` (also printed) beside its tables.
"""

from __future__ import annotations

import importlib
import math
import pathlib
import shlex
import sys

import click

__all__ = ["markdown_rows", "run_hard", "run_paper", "write_results"]


def _floats(text: str) -> tuple[float, ...]:
    return tuple(math.inf if t.strip().lower() == "inf" else float(t) for t in text.split(","))


def _load_refiner(spec: str):
    from cosnet_index.errors import InputError

    if spec.strip().lower() == "crf":  # the shipped dense CRF with its fitted parameters
        spec = "decoder + CRF=cosnet_index.segment.refine:refine_masks"
    name, sep, target = spec.partition("=")
    module_name, colon, attr = target.partition(":")
    if not sep or not colon:
        raise InputError(f"--refine must look like 'NAME=module:function', got {spec!r}")
    try:
        return name.strip(), getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"--refine {spec!r}: cannot import {target} ({exc})") from None


def run_paper(
    checkpoint: str | None,
    out_dir: str,
    *,
    episodes: int | None,
    ways: str | None,
    snrs: str | None,
    dice_snrs: str,
    dice_boxes: int,
    baseline_episodes: int | None,
    baseline_rotations: int,
    support_rotations: bool,
    refine_specs: tuple[str, ...],
    baseline_only: bool,
    merge_paths: tuple[str, ...],
    heldout_procedural: int,
    seed: int,
    threads: int,
) -> None:
    """`evaluate` (the paper's protocol): episodes.parquet, dice.parquet, accuracy.csv,
    results.md."""
    import pandas as pd
    import torch

    episodes = 1000 if episodes is None else episodes
    ways = ways or "2,4,6,8"
    snrs = snrs or "inf,1000,0.5,0.1"
    baseline_episodes = 100 if baseline_episodes is None else baseline_episodes

    from cosnet_index.evaluate import (
        EvalConfig,
        accuracy_markdown,
        accuracy_table,
        dice_markdown,
        dice_table,
        run_evaluation,
    )
    from cosnet_index.model import load_checkpoint, load_default_model
    from cosnet_index.simulate import default_split

    if threads:
        torch.set_num_threads(threads)
    model, info = load_checkpoint(checkpoint) if checkpoint else load_default_model()
    config = EvalConfig(
        ways=tuple(int(w) for w in ways.split(",")),
        snrs=_floats(snrs),
        episodes=episodes,
        dice_snrs=_floats(dice_snrs),
        dice_boxes=0 if baseline_only else dice_boxes,
        baseline_episodes=baseline_episodes,
        baseline_rotations=baseline_rotations,
        support_rotations=support_rotations,
        seed=seed,
        cosnet=not baseline_only,
    )
    refiners = dict(_load_refiner(s) for s in refine_specs)
    if any(getattr(fn, "__name__", "") == "refine_masks" for fn in refiners.values()):
        from cosnet_index.segment.refine import check_fitted_for

        check_fitted_for(info.hash)  # before hours of episodes, not after
    classes = default_split(n_heldout_procedural=heldout_procedural).heldout
    episodes_df, dice_df = run_evaluation(model, classes, config, refiners=refiners)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    episodes_df.to_parquet(out / "episodes.parquet", index=False)
    dice_df.to_parquet(out / "dice.parquet", index=False)
    merged = pd.concat([episodes_df, *(pd.read_parquet(p) for p in merge_paths)])
    acc = accuracy_table(merged)
    acc.to_csv(out / "accuracy.csv", index=False)
    lines = [
        f"model: {checkpoint or 'shipped weights'} (hash {info.hash[:12]})",
        f"command: cosnet-index {shlex.join(sys.argv[1:])}",
        f"held-out classes: {len(classes)}",
        *(f"merged: {p}" for p in merge_paths),
        "",
        "## N-way-1-shot accuracy (95% Wilson interval)",
        "",
        accuracy_markdown(acc),
        "",
        "seconds per embedded subtomogram (COS-Net) and per comparison (template matching):",
        "",
        acc.groupby("method")["seconds"].mean().to_string(),
        "",
    ]
    if len(dice_df):
        lines += [
            "## Dice of the masks (probability > 0.5) against the truth",
            "",
            dice_markdown(dice_table(dice_df)),
            "",
        ]
    write_results(out, lines)


def run_hard(
    checkpoint: str | None,
    out_dir: str,
    *,
    episodes: int,
    ways: str,
    snrs: str,
    shots: str,
    tiers: str,
    molecules: str,
    max_classes: int | None,
    imaging: str,
    collection: str,
    crowding: bool,
    baseline_episodes: int,
    baseline_rotations: int,
    seed: int,
    threads: int,
) -> None:
    """`evaluate --benchmark hard`: episodes.parquet, accuracy.csv, config.json, results.md."""
    import dataclasses
    import json
    import time

    import torch

    from cosnet_index.benchmark import (
        HardConfig,
        benchmark_molecules,
        confused_pairs,
        hard_accuracy_table,
        hard_markdown,
        hard_tiers,
        paired_markdown,
        run_hard_benchmark,
    )
    from cosnet_index.model import load_checkpoint, load_default_model

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, info = load_checkpoint(checkpoint) if checkpoint else load_default_model()
    config = HardConfig(
        tiers=tuple(t.strip() for t in tiers.split(",") if t.strip()),
        ways=tuple(int(w) for w in ways.split(",")),
        shots=tuple(int(k) for k in shots.split(",")),
        snrs=_floats(snrs),
        episodes=episodes,
        baseline_episodes=baseline_episodes,
        baseline_rotations=baseline_rotations,
        imaging=imaging,
        collection=collection,
        crowding=crowding,
        seed=seed,
    )
    rows = benchmark_molecules(molecules)
    tier_list = hard_tiers(rows, config.tiers, max_classes=max_classes)
    episodes_df, notes = run_hard_benchmark(model, tier_list, config)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    episodes_df.to_parquet(out / "episodes.parquet", index=False)
    acc = hard_accuracy_table(episodes_df)
    acc.to_csv(out / "accuracy.csv", index=False)
    wall = time.perf_counter() - t0
    provenance = {
        "model_hash": info.hash,
        "config": dataclasses.asdict(config),
        "tiers": {t.name: dict(zip(t.classes, t.masses_kda, strict=True)) for t in tier_list},
        "notes": notes,
        "wall_seconds": wall,
        "threads": torch.get_num_threads(),
    }
    (out / "config.json").write_text(json.dumps(provenance, indent=2, default=str))
    lines = [
        f"model: {checkpoint or 'shipped weights'} (hash {info.hash[:12]})",
        f"command: cosnet-index {shlex.join(sys.argv[1:])}",
        f"imaging: {imaging}, "
        + (
            "supports made from the classes' maps, imaged like each episode's collection"
            if collection == "map"
            else f"microscope per {collection} collection"
        )
        + f"{', crowded' if crowding else ''}; K-shot rule: {config.reduce}; "
        f"template matching: {baseline_rotations} rotations, first {baseline_episodes} episodes",
        f"molecules: {', '.join(sorted(set(rows['source'])))}",
        *(
            f"tier {t.name}: {len(t.classes)} classes "
            f"({', '.join(f'{c} {m:g} kDa' for c, m in zip(t.classes, t.masses_kda, strict=True))})"
            for t in tier_list
        ),
        f"wall time: {wall / 60:.1f} min, {torch.get_num_threads()} threads",
        *(f"note: {n}" for n in notes),
        "",
        "## Hard benchmark: N-way K-shot accuracy (95% Wilson interval)",
        "",
        hard_markdown(acc),
        "",
        "## On the episodes both methods scored: COS-Net vs template matching",
        "",
        paired_markdown(episodes_df),
        "",
        "## Most frequent mistakes (true -> predicted, all cells)",
        "",
        markdown_rows(confused_pairs(episodes_df)),
        "",
    ]
    write_results(out, lines)


def write_results(out: pathlib.Path, lines: list[str]) -> None:
    """Write ``out/results.md`` atomically and print it."""
    from cosnet_index.files import atomic_write

    text = "\n".join(lines)
    with atomic_write(out / "results.md") as tmp:
        tmp.write_text(text)
    click.echo(text)


def markdown_rows(frame) -> str:  # type: ignore[no-untyped-def]
    """A small DataFrame as a Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    lines = [head, "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
