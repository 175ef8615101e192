"""The training loop: one optimiser step per drawn step of episodes, until steps or time run out.

Each step draws ``episodes_per_step`` episodes (``_stream.py``), takes one Adam step on their
:func:`~cosnet_index.train.loss.episode_loss` at the scheduled learning rate (linear warm-up,
then cosine decay or constant), writes a ``metrics.csv`` row and checkpoints every
``checkpoint_every`` steps, at the end, and when time (``max_minutes``, ``chunk_minutes``) or a
SIGTERM / SIGINT stops it (``_checkpoints.py``). With ``ema_decay`` it also keeps a moving
average of the weights, updated after every step and checkpointed as ``ema.pt``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from cosnet_index.data.episodes import Episode, SimulateFn
from cosnet_index.errors import InputError
from cosnet_index.model import CosNet, CosNetConfig
from cosnet_index.train._checkpoints import (
    Checkpointer,
    open_metrics,
    run_metadata,
    start,
    start_ema,
)
from cosnet_index.train._stream import episode_source, episode_stream
from cosnet_index.train.config import TrainConfig
from cosnet_index.train.loss import episode_loss

__all__ = ["pick_device", "train"]

logger = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _progress(step: int, wall_s: float, config: TrainConfig) -> float:
    """Fraction of the run done: by steps, or by wall time when ``max_minutes`` is set."""
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.max_minutes:
        t = max(t, wall_s / (60 * config.max_minutes))
    return min(1.0, max(0.0, t))


def _lr_factor(step: int, config: TrainConfig, wall_s: float = 0.0, warmup_from: int = 0) -> float:
    if 0 <= step - warmup_from < config.warmup_steps:
        return (step - warmup_from + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    t = _progress(step, wall_s, config)
    low = config.lr_final_fraction
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * t))


class _StopFlag:
    """SIGTERM / SIGINT ask the loop to checkpoint and stop after the current step."""

    def __init__(self) -> None:
        self.requested: int = 0

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def handler(signum: int, _frame: Any) -> None:
            self.requested = signum

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _optimise(
    model: CosNet,
    optimizer: torch.optim.Optimizer,
    episodes: list[Episode],
    config: TrainConfig,
    step: int,
    wall_s: float,
    warmup_from: int = 0,
) -> dict[str, torch.Tensor]:
    """One optimiser step at the scheduled learning rate; returns the loss parts."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _lr_factor(step, config, wall_s, warmup_from)
    parts = episode_loss(
        model,
        episodes,
        config.dice_weight,
        config.metric_weight,
        config.decoder_fraction,
        config.channels_last,
    )
    optimizer.zero_grad(set_to_none=True)
    parts["loss"].backward()
    optimizer.step()
    return parts


def train(
    out_dir: str | os.PathLike,
    class_names: Sequence[str],
    model_config: CosNetConfig | None = None,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    device: str = "auto",
    simulate: SimulateFn | None = None,
    simulation_config: Any = None,
    progress: bool = True,
    command: str = "",
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> pathlib.Path:
    """Train COS-Net; returns the path of the final checkpoint (``out_dir/last.pt``).

    Args:
        out_dir: where checkpoints, training state and ``metrics.csv`` go.
        class_names: training classes (never the held-out ones).
        model_config: architecture (ignored when resuming: the checkpoint's is used).
        config: hyper-parameters.
        resume: continue from ``out_dir/last.pt`` + ``train_state.pt``.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...
        simulate, simulation_config: the simulator (default: the project's) and its config.
        progress: show a tqdm bar.
        command: the command line, recorded in the checkpoints.
        on_step: called with each step's metrics row.

    Raises:
        CheckpointError: ``resume`` without a previous run in ``out_dir``.
        InputError: too few classes for ``ways``.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    mix = config.imaging_mix()  # unknown presets fail here, before anything is written
    if mix.presets != ("paper",) or mix.per != "box":
        if simulate is not None:
            raise InputError("give either a simulate function or TrainConfig.imaging, not both")
        simulate = mix
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    if len(class_names) < config.ways:
        raise InputError(f"{len(class_names)} training classes < ways={config.ways}")
    model, optimizer, start_step, elapsed_before, warmup_from = start(
        out, config, model_config, resume, dev
    )
    draw = episode_source(class_names, config, simulate, simulation_config)
    metadata = run_metadata(class_names, config, command, dev, simulate, simulation_config, mix)
    if config.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    ema = start_ema(out, model, config, resume)

    metrics_fh, writer = open_metrics(out / "metrics.csv", resume)
    checkpoints = Checkpointer(
        out, model, optimizer, config, metadata, elapsed_before, metrics_fh, ema, warmup_from
    )
    step = start_step

    bar = tqdm(total=config.steps, initial=start_step, disable=not progress, desc="train")
    stop = _StopFlag()
    chunk_t0 = time.perf_counter()
    episodes_iter = episode_stream(draw, start_step, config)
    try:
        with stop.on_signals():
            for step_index, episodes in episodes_iter:
                assert step_index == step
                parts = _optimise(
                    model, optimizer, episodes, config, step, checkpoints.wall_s(), warmup_from
                )
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                row = {
                    "step": step,
                    "wall_s": round(checkpoints.wall_s(), 2),
                    "lr": optimizer.param_groups[0]["lr"],
                    **{k: round(float(v.detach()), 5) for k, v in parts.items()},
                    "snr": ";".join(f"{e.snr:g}" for e in episodes),
                }
                writer.writerow(row)
                if on_step is not None:
                    on_step(row)
                bar.update(1)
                bar.set_postfix(loss=row["loss"], acc=row["acc"], dice=row["dice"])
                out_of_time = bool(config.max_minutes) and (
                    checkpoints.wall_s() > 60 * config.max_minutes
                )
                chunk_done = bool(config.chunk_minutes) and (
                    time.perf_counter() - chunk_t0 > 60 * config.chunk_minutes
                )
                ending = out_of_time or chunk_done or stop.requested
                if step % config.checkpoint_every == 0 or step == config.steps or ending:
                    checkpoints.save(step)
                if ending:
                    logger.warning(
                        "stopping at step %d (checkpointed): %s",
                        step,
                        "--max-minutes reached"
                        if out_of_time
                        else "chunk time reached"
                        if chunk_done
                        else f"signal {stop.requested}",
                    )
                    break
                if step >= config.steps:
                    break
    finally:
        episodes_iter.close()
        bar.close()
        metrics_fh.close()
    if not checkpoints.last_path.exists():
        checkpoints.save(step)
    return checkpoints.last_path
