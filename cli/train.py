"""`cosnet-index train`: episodic training of COS-Net on simulated subtomograms."""

from __future__ import annotations

import shlex
import sys

import click

from cosnet_index.cli._options import seed_option


@click.command("train")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--steps", type=int, default=3000, show_default=True, help="Optimiser steps.")
@click.option("--ways", type=int, default=8, show_default=True, help="Classes per episode.")
@click.option(
    "--episodes-per-step", type=int, default=2, show_default=True, help="Episodes per batch."
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option(
    "--widths", default="16,32,64", show_default=True, help="Encoder widths of the 3 levels."
)
@click.option(
    "--convs-per-level",
    type=int,
    default=2,
    show_default=True,
    help="3x3x3 convolutions per encoder level.",
)
@click.option("--no-decoder", is_flag=True, help="Ablation: no mask decoder (no Dice loss).")
@click.option("--no-duse", is_flag=True, help="Ablation: no DuSE blocks.")
@click.option(
    "--train-procedural",
    type=int,
    default=400,
    show_default=True,
    help="Procedural training classes (plus the real training maps).",
)
@click.option(
    "--classes",
    "classes_spec",
    default=None,
    help="Training classes instead of the default split's: names and presets, e.g. "
    "'train-real,lib-train,proc:0-399' (held-out classes are refused).",
)
@click.option(
    "--imaging",
    default="paper",
    show_default=True,
    help="Imaging preset of the training data: paper (the fixed recipe) or realistic "
    "(a microscope drawn per box; docs/simulation.md).",
)
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Fine-tune: start from this checkpoint's weights (its architecture is kept).",
)
@click.option(
    "--crowding",
    type=float,
    default=0.25,
    show_default=True,
    help="Fraction of episodes with neighbour molecules in the boxes.",
)
@click.option(
    "--max-minutes",
    type=float,
    default=0.0,
    show_default=True,
    help="Stop (and save) after this wall time; 0 = no limit.",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=50,
    show_default=True,
    help="Save a resumable checkpoint every this many steps.",
)
@seed_option("Seed of the weights and episodes.")
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda."
)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0 = default).")
@click.option(
    "--metric-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Weight of a prototypical (softmax over the episode's supports) loss beside the BCE.",
)
@click.option(
    "--resume", is_flag=True, help="Continue the run in OUT_DIR from its last checkpoint."
)
def train(
    out_dir: str,
    steps: int,
    ways: int,
    episodes_per_step: int,
    lr: float,
    widths: str,
    convs_per_level: int,
    no_decoder: bool,
    no_duse: bool,
    train_procedural: int,
    classes_spec: str | None,
    imaging: str,
    init_from: str | None,
    crowding: float,
    max_minutes: float,
    checkpoint_every: int,
    seed: int,
    device: str,
    threads: int,
    metric_weight: float,
    resume: bool,
) -> None:
    """Train COS-Net episodically (n-way-1-shot, balanced pairs, BCE + Dice).

    Data are simulated on the fly from the training classes of the fixed split (held-out classes
    are never used). OUT_DIR receives last.pt (a checkpoint usable with --checkpoint anywhere),
    step_*.pt snapshots, train_state.pt (for --resume) and metrics.csv.

    Examples:

        cosnet-index train runs/cosnet --steps 3000 --max-minutes 55 --seed 0

        cosnet-index train runs/cosnet --resume

        cosnet-index train runs/no-duse --no-duse --steps 1000

        cosnet-index train runs/real --imaging realistic --classes train-real,lib-train,proc:0-399
    """
    from cosnet_index.errors import InputError
    from cosnet_index.model import CosNetConfig
    from cosnet_index.simulate import default_split
    from cosnet_index.simulate.split import training_classes
    from cosnet_index.train import TrainConfig
    from cosnet_index.train import train as run_training

    try:
        width_tuple = tuple(int(w) for w in widths.split(","))
    except ValueError:
        raise InputError(f"--widths must be 3 comma-separated ints, got {widths!r}") from None
    model_config = CosNetConfig(
        widths=width_tuple,
        convs_per_level=convs_per_level,
        use_decoder=not no_decoder,
        use_duse=not no_duse,
    )
    config = TrainConfig(
        steps=steps,
        ways=ways,
        episodes_per_step=episodes_per_step,
        lr=lr,
        crowding_fraction=crowding,
        max_minutes=max_minutes,
        checkpoint_every=checkpoint_every,
        seed=seed,
        threads=threads,
        imaging=imaging,
        init_from=init_from or "",
        metric_weight=metric_weight,
    )
    if classes_spec is None:
        classes = default_split(n_train_procedural=train_procedural).train
    else:
        classes = training_classes(classes_spec)
    command = "cosnet-index " + shlex.join(sys.argv[1:])
    path = run_training(
        out_dir, classes, model_config, config, resume=resume, device=device, command=command
    )
    click.echo(f"checkpoint: {path}")
