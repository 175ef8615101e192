"""`cosnet-index evaluate`: the paper's N-way-1-shot and Dice tables on held-out classes."""

from __future__ import annotations

import importlib
import math
import pathlib
import shlex
import sys

import click


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


@click.command("evaluate")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Model checkpoint (default: the shipped weights).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for episodes.parquet, dice.parquet and results tables.",
)
@click.option(
    "--benchmark",
    type=click.Choice(["paper", "hard"]),
    default="paper",
    show_default=True,
    help="paper: the paper's protocol on the default split's held-out classes (1-shot, Dice). "
    "hard: held-out real molecules in a size-matched (80-200 kDa) and a large (2-5 MDa) tier, "
    "imaged with the 'shifted' preset, N-way K-shot beside template matching "
    "(docs/results.md#hard-benchmark).",
)
@click.option(
    "--episodes",
    type=int,
    default=None,
    help="Episodes per cell [paper: 1000; hard: 100].",
)
@click.option("--ways", default=None, help="N of the N-way cells [paper: 2,4,6,8; hard: 2,5,10].")
@click.option("--snrs", default=None, help="SNRs [paper: inf,1000,0.5,0.1; hard: 1000,0.5,0.1].")
@click.option("--shots", default="1,5", show_default=True, help="Hard: K of the K-shot cells.")
@click.option(
    "--tiers",
    default="size-matched,large",
    show_default=True,
    help="Hard: which tiers.",
)
@click.option(
    "--molecules",
    type=click.Choice(["auto", "library", "split"]),
    default="auto",
    show_default=True,
    help="Hard: held-out molecules from the real-molecule library, or split.py's held-out real "
    "maps (auto: the library when installed).",
)
@click.option(
    "--max-classes",
    type=int,
    default=None,
    help="Hard: at most this many (the lightest) classes per tier, for quick runs.",
)
@click.option(
    "--imaging",
    default="shifted",
    show_default=True,
    help="Hard: imaging preset every subtomogram is drawn from.",
)
@click.option(
    "--collection",
    type=click.Choice(["same", "cross", "box"]),
    default="same",
    show_default=True,
    help="Hard: same = an episode is one collection (supports and query share a microscope); "
    "cross = supports from one collection, query from another; box = a microscope per box "
    "(the benchmark before the campaign).",
)
@click.option("--crowding", is_flag=True, help="Hard: neighbour molecules touch the particles.")
@click.option(
    "--dice-snrs",
    default="inf,1000,0.5",
    show_default=True,
    help="Paper: SNR levels of the Dice table.",
)
@click.option(
    "--dice-boxes",
    type=int,
    default=20,
    show_default=True,
    help="Subtomograms per held-out class and SNR for Dice.",
)
@click.option(
    "--baseline-episodes",
    type=int,
    default=None,
    help="Episodes per cell also scored by template matching (0 = none) [paper: 100; hard: 40].",
)
@click.option(
    "--baseline-rotations",
    type=int,
    default=100,
    show_default=True,
    help="Rotations searched by template matching.",
)
@click.option(
    "--support-rotations",
    is_flag=True,
    help="Also score COS-Net with test-time rotation of the support (4 wedge-"
    "preserving 180-degree rotations, best match kept).",
)
@click.option(
    "--refine",
    "refine_specs",
    multiple=True,
    help="Extra Dice column: 'crf' (the shipped dense CRF, parameters from $COSNET_CRF_PARAMS or "
    "weights/crf.json) or 'NAME=module:function', function(volumes, probs)->masks.",
)
@click.option(
    "--baseline-only",
    is_flag=True,
    help="Only run template matching (no COS-Net, no Dice); add it to a run with --merge.",
)
@click.option(
    "--merge",
    "merge_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Add the rows of another run's episodes.parquet to the accuracy table.",
)
@click.option(
    "--heldout-procedural",
    type=int,
    default=24,
    show_default=True,
    help="Paper: procedural classes held out of training that join the real held-out maps.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the episodes and boxes."
)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0 = default).")
def evaluate(
    checkpoint: str | None,
    out_dir: str,
    benchmark: str,
    episodes: int | None,
    ways: str | None,
    snrs: str | None,
    shots: str,
    tiers: str,
    molecules: str,
    max_classes: int | None,
    imaging: str,
    collection: str,
    crowding: bool,
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
    """Evaluate a model on held-out classes never seen in training (paper protocol or hard).

    Prints N-way-1-shot accuracy with 95% Wilson intervals (COS-Net and the template-matching
    baseline on the same episodes) and per-class Dice of the decoder masks; writes every
    episode to OUT/episodes.parquet, every Dice to OUT/dice.parquet, and OUT/results.md.

    With --benchmark hard: held-out real molecules only (a size-matched 80-200 kDa tier whose
    episodes stay within a mass factor 1.5, and a 2-5 MDa tier), every subtomogram imaged with
    the --imaging preset, N-way K-shot accuracy of COS-Net (K shots combined as the store does)
    and of template matching with the same references; writes OUT/episodes.parquet,
    OUT/accuracy.csv, OUT/config.json and OUT/results.md (no Dice).

    Examples:

        cosnet-index evaluate --out runs/eval

        cosnet-index evaluate --checkpoint runs/cosnet/last.pt --out runs/eval --episodes 200

        cosnet-index evaluate --out runs/eval --refine crf

        cosnet-index evaluate --out runs/eval --refine "my CRF=mypkg.crf:refine"

        cosnet-index evaluate --benchmark hard --episodes 100 --seed 0 --out runs/hard
    """
    import pandas as pd
    import torch

    if benchmark == "hard":
        if refine_specs or support_rotations or baseline_only or merge_paths:
            raise click.UsageError(
                "--refine, --support-rotations, --baseline-only and --merge are paper-only"
            )
        _evaluate_hard(
            checkpoint,
            out_dir,
            episodes=100 if episodes is None else episodes,
            ways=ways or "2,5,10",
            snrs=snrs or "1000,0.5,0.1",
            shots=shots,
            tiers=tiers,
            molecules=molecules,
            max_classes=max_classes,
            imaging=imaging,
            collection=collection,
            crowding=crowding,
            baseline_episodes=40 if baseline_episodes is None else baseline_episodes,
            baseline_rotations=baseline_rotations,
            seed=seed,
            threads=threads,
        )
        return
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
    _write_results(out, lines)


def _evaluate_hard(
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
        f"imaging: {imaging}, microscope per {collection} collection"
        f"{', crowded' if crowding else ''}; K-shot rule: {config.reduce}; "
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
        _markdown_rows(confused_pairs(episodes_df)),
        "",
    ]
    _write_results(out, lines)


def _write_results(out: pathlib.Path, lines: list[str]) -> None:
    """Write ``out/results.md`` atomically and print it."""
    from cosnet_index.files import atomic_write

    text = "\n".join(lines)
    with atomic_write(out / "results.md") as tmp:
        tmp.write_text(text)
    click.echo(text)


def _markdown_rows(frame) -> str:  # type: ignore[no-untyped-def]
    """A small DataFrame as a Markdown table."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    lines = [head, "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
