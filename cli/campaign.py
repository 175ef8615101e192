"""`cosnet-index campaign`: the training campaign in resumable chunks, and its learning curve."""

from __future__ import annotations

import shlex
import sys

import click

from cosnet_index.cli._options import seed_option


@click.group()
def campaign() -> None:
    """Train the model for any microscope in chunks, and keep its learning curve.

    A chunk resumes RUN_DIR (or starts it from the last committed campaign weights,
    training/campaign/weights_fp16.pt, else the shipped weights), trains for --minutes, then
    evaluates the checkpoint on the learning-curve tables and appends the row to
    RUN_DIR/curve.csv. docs/training.md has the campaign's configuration and its curve.
    """


@campaign.command("run")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--minutes", type=float, required=True, help="Length of this chunk (training time).")
@click.option("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Start a NEW run from this checkpoint [the committed campaign weights, else shipped].",
)
@click.option(
    "--eval/--no-eval",
    "do_eval",
    default=True,
    show_default=True,
    help="Evaluate the checkpoint after a chunk that ran its full time.",
)
@click.option("--episodes", type=int, default=200, show_default=True, help="Per curve cell.")
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA if present), cpu, cuda."
)
@click.option(
    "--sim-workers",
    type=int,
    default=1,
    show_default=True,
    help="Simulation worker processes (1 on 2 cores; more on a GPU machine).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@seed_option("Seed of the episodes (keep it across chunks).")
def run(
    run_dir: str,
    minutes: float,
    threads: int,
    init_from: str | None,
    do_eval: bool,
    episodes: int,
    device: str,
    sim_workers: int,
    no_progress: bool,
    seed: int,
) -> None:
    """Train one chunk of the campaign in RUN_DIR (resumed when it holds a run).

    SIGTERM or Ctrl-C stops it after the current step with a checkpoint (no evaluation then);
    run the same command again to go on.

    Examples:

        nohup cosnet-index campaign run runs/campaign --minutes 150 --threads 2 > chunk.log &

        kill -TERM <pid>        # stop cleanly (checkpointed) to time something else
    """
    import pathlib

    from cosnet_index.campaign import append_curve, evaluate_candidate, plot_curve, run_chunk

    command = "cosnet-index " + shlex.join(sys.argv[1:])
    path, full = run_chunk(
        run_dir,
        minutes,
        threads=threads,
        seed=seed,
        init_from=init_from,
        device=device,
        sim_workers=sim_workers,
        progress=not no_progress,
        command=command,
    )
    click.echo(f"checkpoint: {path}")
    if not (do_eval and full):
        click.echo("chunk stopped early or --no-eval: no evaluation (run `campaign eval` later)")
        return
    result = evaluate_candidate(path, episodes=episodes, seed=0)
    curve = pathlib.Path(run_dir) / "curve.csv"
    append_curve(curve, result, label=f"step {result['step']}")
    plot_curve(curve, pathlib.Path(run_dir) / "curve.png")
    _echo_cells(result)


@campaign.command("eval")
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--curve",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append the result to this learning-curve CSV (and redraw its PNG beside it).",
)
@click.option("--label", default=None, help="The row's label [step N, or 'shipped weights'].")
@click.option("--episodes", type=int, default=200, show_default=True, help="Per curve cell.")
@click.option("--threads", type=int, default=0, help="torch threads (0 = torch's default).")
@seed_option("Seed of the benchmark episodes (the curve uses 0).")
def eval_command(
    checkpoint: str | None,
    curve: str | None,
    label: str | None,
    episodes: int,
    threads: int,
    seed: int,
) -> None:
    """Score CHECKPOINT (default: the shipped weights) on the learning-curve tables.

    Held-out molecules of the size-matched tier, 10-way 1-shot, SNR 1000 / 0.5 / 0.1, with the
    'shifted' imaging and with the 'paper' imaging, one microscope per episode; 95% Wilson
    intervals.

    Examples:

        cosnet-index campaign eval --curve runs/campaign/curve.csv --label "shipped weights"

        cosnet-index campaign eval runs/campaign/last.pt --curve runs/campaign/curve.csv
    """
    import pathlib

    import torch

    from cosnet_index.campaign import append_curve, evaluate_candidate, plot_curve

    if threads:
        torch.set_num_threads(threads)
    result = evaluate_candidate(checkpoint, episodes=episodes, seed=seed)
    _echo_cells(result)
    if curve:
        name = label or (f"step {result['step']}" if checkpoint else "shipped weights")
        append_curve(curve, result, label=name)
        plot_curve(curve, pathlib.Path(curve).with_suffix(".png"))
        click.echo(f"appended to {curve}")


@campaign.command("plot")
@click.argument("curve", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
def plot(curve: str, out: str) -> None:
    """Draw the learning curve CURVE (a curve.csv) as a PNG.

    Examples:

        cosnet-index campaign plot training/campaign/curve.csv --out docs/training_curve.png
    """
    from cosnet_index.campaign import plot_curve

    plot_curve(curve, out)
    click.echo(f"wrote {out}")


@campaign.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="fp16 .pt to write.")
def export(checkpoint: str, out: str) -> None:
    """Write CHECKPOINT's weights as fp16 (for git), metadata kept.

    Examples:

        cosnet-index campaign export runs/campaign/last.pt --out training/campaign/weights_fp16.pt
    """
    from cosnet_index.campaign import export_fp16

    click.echo(f"wrote {export_fp16(checkpoint, out)}")


def _echo_cells(result: dict) -> None:
    click.echo(
        f"model {result['model_hash'][:12]}, step {result['step']}, "
        f"{result['train_hours']:.2f} training hours, evaluated in {result['eval_seconds']:.0f} s"
    )
    for key, cell in result["cells"].items():
        click.echo(
            f"  {key}: {cell['accuracy']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}] "
            f"({cell['episodes']} episodes)"
        )
