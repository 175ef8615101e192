"""`demo` (the whole product on a simulated collection) and `report` (pictures of a result)."""

from __future__ import annotations

from pathlib import Path

import click

from cosnet_index.cli._options import (
    min_prob_option,
    no_crf_option,
    seed_option,
    store_options,
    top_k_option,
)

__all__ = ["demo", "report"]


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for everything the demo writes (data, store, result, report).",
)
@seed_option("Seeds everything.")
@click.option(
    "--n-tomograms", type=click.IntRange(min=1), default=3, show_default=True, help="Tomograms."
)
@click.option(
    "--shape",
    "shape_zyx",
    type=click.IntRange(min=48),
    nargs=3,
    default=(128, 256, 256),
    show_default=True,
    metavar="Z Y X",
    help="Tomogram size in voxels (1 nm).",
)
@click.option(
    "--particles",
    "n_particles",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="Molecules over the whole collection.",
)
@click.option(
    "--n-classes",
    type=click.IntRange(1, 8),
    default=8,
    show_default=True,
    help="Support classes (the first N of the demo's 8), plus one class left unnamed.",
)
@click.option(
    "--snr",
    type=float,
    default=0.5,
    show_default=True,
    help="Signal-to-noise ratio var(signal)/var(noise); inf for none.",
)
@top_k_option(8)
@min_prob_option("Open-set threshold (default: classify's default).", default=None)
@no_crf_option("Segment with the decoder alone (no dense CRF).")
@click.option("--force", is_flag=True, help="Replace the output of a previous demo in --out.")
@click.option(
    "--checkpoint",
    "weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model checkpoint (default: the shipped weights).",
)
def demo(
    out_dir: Path,
    seed: int,
    n_tomograms: int,
    shape_zyx: tuple[int, int, int],
    n_particles: int,
    n_classes: int,
    snr: float,
    top_k: int,
    min_prob: float | None,
    no_crf: bool,
    force: bool,
    weights: Path | None,
) -> None:
    """Run the whole product on a simulated collection, offline, in a few minutes on a CPU.

    Simulates tomograms of 9 molecule classes (5 real maps and 3 procedural shapes, all held
    out from training, plus 1 class nobody names), creates a store, indexes every particle,
    adds one support particle per class picked from the truth, classifies everything, searches
    the top hits of two classes and segments them (decoder + 3D dense CRF). Prints accuracy and
    confusion against the truth, the unknown rate, the Dice of the segmented hits and the time
    of every stage; writes a Markdown report with pictures in OUT/report.

    Examples:

        cosnet-index demo

        cosnet-index demo --out /tmp/demo --seed 1 --snr 0.1

        cosnet-index demo --n-tomograms 1 --shape 64 128 128 --particles 60
    """
    from cosnet_index.demo import DEMO_CLASSES, N_STAGES, DemoConfig, run_demo, summary_lines

    config = DemoConfig(
        out_dir=out_dir,
        seed=seed,
        n_tomograms=n_tomograms,
        shape_zyx=tuple(shape_zyx),  # type: ignore[arg-type]
        n_particles=n_particles,
        classes=DEMO_CLASSES[:n_classes],
        snr=snr,
        top_k=top_k,
        min_prob=min_prob,
        crf=not no_crf,
        weights=weights,
        force=force,
    )
    stages = iter(range(1, 100))

    def announce(name: str) -> None:
        click.echo(f"[{next(stages)}/{N_STAGES}] {name}...", err=True)

    result = run_demo(config, on_stage=announce)
    click.echo("\n".join(summary_lines(result)))


@click.command("report")
@store_options
@click.option(
    "--result",
    "result_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Classification table written by `cosnet-index classify --out`.",
)
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Truth table for accuracy: one row per particle with columns tomogram, x, y, z "
    "(voxels of that tomogram) and class (Parquet or CSV, e.g. the simulator's truth.parquet), "
    "or a STAR file with rlnTomoName, rlnCoordinateX/Y/Z and rlnClassName or rlnClassNumber; "
    "matched to the result by nearest coordinate.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (report.md and PNGs).",
)
@top_k_option(6)
@click.option("--no-masks", is_flag=True, help="Do not outline the hits with the decoder.")
@no_crf_option("Outline with the decoder alone (no dense CRF).")
def report(
    store_path: str,
    db_url: str | None,
    result_path: Path,
    truth_path: Path | None,
    out_dir: Path,
    top_k: int,
    no_masks: bool,
    no_crf: bool,
) -> None:
    """Write a report of a classify result: summary, confusion matrix and class galleries.

    Galleries show central XY and XZ slices of each class's support particle and of its most
    probable members, outlined by the model's decoder (+ CRF), with their probabilities. With
    --truth, the report adds accuracy, per-class recall and precision and a confusion matrix.

    Examples:

        cosnet-index report --store ./store --result result.parquet --out report/

        cosnet-index report --store ./store --result r.parquet --truth truth.parquet --out rep/
    """
    from cosnet_index.query import read_table
    from cosnet_index.report.from_store import read_truth, report_from_store
    from cosnet_index.store import Store

    result, meta = read_table(result_path)
    truth = read_truth(truth_path) if truth_path is not None else None
    with Store.open(store_path, db_url=db_url, readonly=True) as store:
        path = report_from_store(
            store,
            result,
            out_dir,
            meta=meta,
            truth=truth,
            top_k=top_k,
            masks=not no_masks,
            crf=not no_crf,
        )
    click.echo(f"wrote {path} and its pictures")
