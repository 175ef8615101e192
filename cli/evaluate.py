"""`cosnet-index evaluate`: the paper's N-way-1-shot and Dice tables on held-out classes."""

from __future__ import annotations

import click


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
    type=click.Choice(["same", "cross", "box", "map"]),
    default="same",
    show_default=True,
    help="Hard: same = an episode is one collection (supports and query share a microscope); "
    "cross = supports from one collection, query from another; box = a microscope per box "
    "(the benchmark before the campaign); map = the queries of same, each class one prototype "
    "made from its map imaged like the collection (classes add --map; --shots 1).",
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
    from cosnet_index.cli._evaluate import run_hard, run_paper

    if benchmark == "hard":
        if refine_specs or support_rotations or baseline_only or merge_paths:
            raise click.UsageError(
                "--refine, --support-rotations, --baseline-only and --merge are paper-only"
            )
        run_hard(
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
    run_paper(
        checkpoint,
        out_dir,
        episodes=episodes,
        ways=ways,
        snrs=snrs,
        dice_snrs=dice_snrs,
        dice_boxes=dice_boxes,
        baseline_episodes=baseline_episodes,
        baseline_rotations=baseline_rotations,
        support_rotations=support_rotations,
        refine_specs=refine_specs,
        baseline_only=baseline_only,
        merge_paths=merge_paths,
        heldout_procedural=heldout_procedural,
        seed=seed,
        threads=threads,
    )
