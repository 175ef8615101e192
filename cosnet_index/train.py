"""Episodic training of COS-Net on simulated subtomograms (resumable, seeded, logged).

Each step draws ``episodes_per_step`` episodes (two support sets over the same ``ways`` classes,
:class:`~cosnet_index.data.EpisodeSampler`), embeds all their boxes in one batch and scores every
(A_i, B_j) pair through the head. The match BCE is *balanced*: positives and negatives each weigh
half, whatever ``ways`` is (the authors' independent pairs gave ~1/14 positives). Dice on the
decoder masks of every box is added (the paper's unweighted sum).

Outputs in ``out_dir``: ``last.pt`` (a model checkpoint, see
:func:`~cosnet_index.model.save_checkpoint`), ``step_<k>.pt`` every ``keep_every`` steps,
``train_state.pt`` (optimizer + step, for ``--resume``)
and ``metrics.csv`` (one row per step).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import os
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cosnet_index.data.episodes import Episode, EpisodeSampler, SimulateFn
from cosnet_index.data.imaging_mix import ImagingMix, parse_imaging_mix
from cosnet_index.data.provenance import data_manifest, simulator_source_hash
from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.files import atomic_write
from cosnet_index.model import CosNet, CosNetConfig, load_checkpoint, save_checkpoint
from cosnet_index.model.losses import dice_loss
from cosnet_index.model.normalize import normalize_boxes

__all__ = ["TrainConfig", "episode_loss", "pick_device", "train"]

logger = logging.getLogger(__name__)

METRIC_FIELDS = [
    "step",
    "wall_s",
    "lr",
    "loss",
    "bce",
    "dice",
    "acc",
    "pos_p",
    "neg_p",
    "snr",
    "metric",
]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (saved into every checkpoint's metadata)."""

    steps: int = 3000
    ways: int = 8
    episodes_per_step: int = 2
    lr: float = 1e-3
    lr_final_fraction: float = 0.05  # cosine decay to lr * this at the last step
    warmup_steps: int = 50
    weight_decay: float = 0.0
    dice_weight: float = 1.0
    # weight of a softmax (prototypical) cross-entropy over each episode's head logits beside the
    # balanced BCE: every query must score its own support above the n - 1 others (0 = off)
    metric_weight: float = 0.0
    snrs: tuple[float, ...] = (math.inf, 1000.0, 10.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1)
    snr_weights: tuple[float, ...] = (1.0, 1.5, 1.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.5)
    clean_steps: int = 100  # first steps draw only SNR inf/1000 (a short curriculum)
    crowding_fraction: float = 0.25
    checkpoint_every: int = 50
    keep_every: int = 500
    # 0 = no wall-time limit; else the run ends after this long (total over resumes), and the
    # cosine schedule follows whichever of step/steps and time/max_minutes is further along
    max_minutes: float = 0.0
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # imaging of the training data: a preset (cosnet_index.simulate.microscope) or a mix
    # "paper:1,broad:3" (cosnet_index.data.imaging_mix); "paper" is the fast fixed recipe the
    # shipped weights were trained on
    imaging: str = "paper"
    # "box": a microscope per box; "collection": one per episode (support and queries share it)
    imaging_per: str = "box"
    cross_collection: float = 0.0  # fraction of episodes whose A and B sets come from 2 collections
    schedule: str = "cosine"  # or "constant": lr after warm-up (an open-ended campaign)
    channels_last: bool = True  # channels_last_3d: same maths, ~1.6x faster on CPU (bench)
    # fraction of each step's boxes the decoder (Dice) trains on; the embedding sees them all
    decoder_fraction: float = 1.0
    sim_workers: int = 0  # 0: simulate in a thread beside training; 1: in a worker process
    # 0 = no limit; else this invocation stops (checkpointed) after this long, schedule untouched
    chunk_minutes: float = 0.0
    # fine-tune: start from this checkpoint's weights and architecture ("" = random init)
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 < self.decoder_fraction <= 1.0:
            raise InputError(f"decoder_fraction must be in (0, 1], got {self.decoder_fraction}")
        if self.sim_workers not in (0, 1):
            raise InputError(f"sim_workers must be 0 or 1, got {self.sim_workers}")

    def imaging_mix(self) -> ImagingMix:
        """The episodes' imaging (:class:`~cosnet_index.data.imaging_mix.ImagingMix`)."""
        return parse_imaging_mix(self.imaging, self.imaging_per, self.cross_collection)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["snrs"] = [s if math.isfinite(s) else "inf" for s in self.snrs]
        out["snr_weights"] = list(self.snr_weights)
        return out


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _episode_logits(model: CosNet, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` head logits of every (A_i, B_j) pair."""
    diff = (f_a[:, None, :] - f_b[None, :, :]).abs()  # (n, n, d)
    return model.head_b + (diff * model.head_w).sum(-1)


def episode_loss(
    model: CosNet,
    episodes: Sequence[Episode],
    dice_weight: float = 1.0,
    metric_weight: float = 0.0,
    decoder_fraction: float = 1.0,
    channels_last: bool = False,
) -> dict[str, torch.Tensor]:
    """Balanced BCE over all pairs of every episode + Dice on the boxes' masks.

    The decoder trains on the first ``ceil(decoder_fraction * n)`` boxes of each episode's A and
    B sets (the decoder is ~40% of a step's compute; every box still trains the embedding).
    ``channels_last`` runs the convolutions in ``channels_last_3d`` (same values).

    With ``metric_weight > 0`` a prototypical term is added: for every query ``B_j`` a softmax
    cross-entropy over its head logits against the n supports ``A_i`` (and symmetrically for
    every support over the queries). The BCE asks each pair's probability to be right on an
    absolute scale; this term only asks the right support to rank first, which is what n-way
    classification and search use.

    Returns:
        ``loss`` (backpropagate this) and detached ``bce``, ``dice``, ``metric`` (the
        prototypical term, 0 when off), ``acc`` (n-way accuracy of B_j against the A support
        set), ``pos_p``/``neg_p`` (mean probabilities).
    """
    device = next(model.parameters()).device
    vols = torch.cat([torch.cat([e.volumes_a, e.volumes_b]) for e in episodes])
    x = normalize_boxes(vols.unsqueeze(1)).to(device)  # (m, 1, B, B, B)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    features = model.forward_features(x)
    f = model.forward_embedding(features)
    bce_terms, metric_terms, accs, pos_p, neg_p = [], [], [], [], []
    start = 0
    for e in episodes:
        n = len(e.classes)
        f_a, f_b = f[start : start + n], f[start + n : start + 2 * n]
        start += 2 * n
        logits = _episode_logits(model, f_a, f_b)
        eye = torch.eye(n, device=device)
        weight = eye * (0.5 / n) + (1 - eye) * (0.5 / (n * (n - 1)))
        bce_terms.append(
            F.binary_cross_entropy_with_logits(logits, eye, weight=weight, reduction="sum")
        )
        if metric_weight:
            target = torch.arange(n, device=device)
            metric_terms.append(
                0.5 * (F.cross_entropy(logits.T, target) + F.cross_entropy(logits, target))
            )
        with torch.no_grad():
            accs.append((logits.argmax(0) == torch.arange(n, device=device)).float().mean())
            p = torch.sigmoid(logits)
            pos_p.append(p.diagonal().mean())
            neg_p.append((p.sum() - p.diagonal().sum()) / (n * (n - 1)))
    bce = torch.stack(bce_terms).mean()
    metric = torch.stack(metric_terms).mean() if metric_terms else torch.zeros((), device=device)
    dice = torch.zeros((), device=device)
    keep = _decoder_rows(episodes, decoder_fraction)
    mask_logits = model.forward_decoder(features if keep is None else features[keep])
    if mask_logits is not None:
        masks = torch.cat([torch.cat([e.masks_a, e.masks_b]) for e in episodes]).to(device)
        dice = dice_loss(torch.sigmoid(mask_logits), masks if keep is None else masks[keep])
    return {
        "loss": bce + dice_weight * dice + metric_weight * metric,
        "bce": bce.detach(),
        "metric": metric.detach(),
        "dice": dice.detach(),
        "acc": torch.stack(accs).mean(),
        "pos_p": torch.stack(pos_p).mean(),
        "neg_p": torch.stack(neg_p).mean(),
    }


def _decoder_rows(episodes: Sequence[Episode], fraction: float) -> torch.Tensor | None:
    """Indices of the boxes the decoder trains on (None: all of them)."""
    if fraction >= 1.0:
        return None
    rows, start = [], 0
    for e in episodes:
        n = len(e.classes)
        k = max(1, math.ceil(fraction * n))
        rows += [*range(start, start + k), *range(start + n, start + n + k)]
        start += 2 * n
    return torch.tensor(rows, dtype=torch.long)


def _progress(step: int, wall_s: float, config: TrainConfig) -> float:
    """Fraction of the run done: by steps, or by wall time when ``max_minutes`` is set."""
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.max_minutes:
        t = max(t, wall_s / (60 * config.max_minutes))
    return min(1.0, max(0.0, t))


def _lr_factor(step: int, config: TrainConfig, wall_s: float = 0.0) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    t = _progress(step, wall_s, config)
    low = config.lr_final_fraction
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * t))


def _atomic_torch_save(obj: Any, path: pathlib.Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def _start(
    out: pathlib.Path,
    config: TrainConfig,
    model_config: CosNetConfig | None,
    resume: bool,
    dev: torch.device,
) -> tuple[CosNet, torch.optim.Optimizer, int, float]:
    """The model and optimiser to train, and the step and wall time already done (resume)."""
    start_step, elapsed_before = 0, 0.0
    state_path, last_path = out / "train_state.pt", out / "last.pt"
    state: dict[str, Any] = {}
    if resume:
        if not (state_path.is_file() and last_path.is_file()):
            raise CheckpointError(
                f"nothing to resume in {out}: no last.pt/train_state.pt; drop --resume to start"
            )
        model, _ = load_checkpoint(last_path)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        start_step = int(state["step"])
        elapsed_before = float(state.get("wall_s", 0.0))
    elif config.init_from:
        model, _ = load_checkpoint(config.init_from)
        logger.info("fine-tuning from %s (hash %s)", config.init_from, model.weights_hash[:8])
    else:
        model = CosNet(model_config or CosNetConfig())
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
    return model, optimizer, start_step, elapsed_before


def _episode_source(
    class_names: Sequence[str],
    config: TrainConfig,
    simulate: SimulateFn | None,
    simulation_config: Any,
) -> Callable[[int], list[Episode]]:
    """``draw(step)``: the episodes of a step (clean SNRs only for the first ``clean_steps``)."""
    sampler = EpisodeSampler(
        class_names,
        config.ways,
        config.snrs,
        config.snr_weights,
        config.crowding_fraction,
        seed=config.seed,
        simulate=simulate,
        simulation_config=simulation_config,
    )
    clean = EpisodeSampler(
        class_names,
        config.ways,
        [s for s in config.snrs if s >= 1000] or [math.inf],
        crowding_fraction=config.crowding_fraction,
        seed=config.seed,
        simulate=simulate,
        simulation_config=simulation_config,
    )

    def draw(step: int) -> list[Episode]:
        src = clean if step < config.clean_steps else sampler
        k = config.episodes_per_step
        return [src.episode(step * k + i) for i in range(k)]

    return draw


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


def _episode_stream(
    draw: Callable[[int], list[Episode]], start: int, config: TrainConfig
) -> Generator[tuple[int, list[Episode]], None, None]:
    """``(step, episodes)`` from ``start`` to ``config.steps``, simulated ahead of training.

    ``sim_workers=0``: one thread simulates the next step while this one trains (shares the
    interpreter and torch's thread pool). ``sim_workers=1``: a worker process (one torch thread)
    keeps up to 4 steps ready, so simulation never waits for the GIL. Episode ``k`` depends only
    on (seed, k), so both give the same episodes.
    """
    if start >= config.steps:
        return
    if config.sim_workers == 0:
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(draw, start)
        try:
            for step in range(start, config.steps):
                episodes = future.result()
                if step + 1 < config.steps:
                    future = pool.submit(draw, step + 1)
                yield step, episodes
        finally:
            future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        return
    loader = torch.utils.data.DataLoader(
        _StepDataset(draw, start, config.steps),
        batch_size=None,
        num_workers=1,
        prefetch_factor=4,
        multiprocessing_context="fork" if os.name == "posix" else None,
    )
    yield from loader


class _StepDataset(torch.utils.data.IterableDataset):
    """The episodes of steps ``start .. stop - 1``, in order (one worker)."""

    def __init__(self, draw: Callable[[int], list[Episode]], start: int, stop: int) -> None:
        self.draw, self.start, self.stop = draw, start, stop

    def __iter__(self) -> Iterator[tuple[int, list[Episode]]]:
        for step in range(self.start, self.stop):
            yield step, self.draw(step)


def _optimise(
    model: CosNet,
    optimizer: torch.optim.Optimizer,
    episodes: list[Episode],
    config: TrainConfig,
    step: int,
    wall_s: float,
) -> dict[str, torch.Tensor]:
    """One optimiser step at the scheduled learning rate; returns the loss parts."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _lr_factor(step, config, wall_s)
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


def _run_metadata(
    class_names: Sequence[str],
    config: TrainConfig,
    command: str,
    dev: torch.device,
    simulate: SimulateFn | None,
    simulation_config: Any,
    mix: ImagingMix,
) -> dict[str, Any]:
    """What every checkpoint of the run records about how it was made."""
    metadata = {
        "command": command,
        "seed": config.seed,
        "train_config": config.to_dict(),
        "classes": len(class_names),
        "device": str(dev),
        "torch": str(torch.__version__),
        "simulator_source_sha256": simulator_source_hash(),
        "data_manifest": data_manifest(class_names, mix),
    }
    if simulate is None:
        from cosnet_index.simulate import SimulationConfig

        metadata["simulation_config"] = (simulation_config or SimulationConfig()).to_dict()
    return metadata


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
    model, optimizer, start_step, elapsed_before = _start(out, config, model_config, resume, dev)
    last_path, state_path = out / "last.pt", out / "train_state.pt"
    draw = _episode_source(class_names, config, simulate, simulation_config)
    metadata = _run_metadata(class_names, config, command, dev, simulate, simulation_config, mix)
    if config.channels_last:
        model.to(memory_format=torch.channels_last_3d)

    metrics_path = out / "metrics.csv"
    new_file = not metrics_path.exists() or not resume
    metrics_fh = open(metrics_path, "a" if resume else "w", newline="")
    fields = METRIC_FIELDS
    if not new_file:  # a run started by an older release keeps its own columns
        with open(metrics_path, newline="") as fh:
            fields = next(csv.reader(fh), None) or METRIC_FIELDS
    writer = csv.DictWriter(metrics_fh, fieldnames=fields, extrasaction="ignore")
    if new_file:
        writer.writeheader()

    t0 = time.perf_counter()
    step = start_step

    def save(step_done: int) -> None:
        wall = elapsed_before + time.perf_counter() - t0
        meta = dict(metadata, step=step_done, wall_s=round(wall, 1))
        model.eval()
        model.to(memory_format=torch.contiguous_format)  # checkpoints in the default layout
        save_checkpoint(model, last_path, **meta)
        if config.keep_every and step_done % config.keep_every == 0:
            save_checkpoint(model, out / f"step_{step_done:06d}.pt", **meta)
        if config.channels_last:
            model.to(memory_format=torch.channels_last_3d)
        model.train()
        _atomic_torch_save(
            {"step": step_done, "optimizer": optimizer.state_dict(), "wall_s": wall}, state_path
        )
        metrics_fh.flush()

    bar = tqdm(total=config.steps, initial=start_step, disable=not progress, desc="train")
    stop = _StopFlag()
    chunk_t0 = time.perf_counter()
    episodes_iter = _episode_stream(draw, start_step, config)
    try:
        with stop.on_signals():
            for step_index, episodes in episodes_iter:
                assert step_index == step
                wall = elapsed_before + time.perf_counter() - t0
                parts = _optimise(model, optimizer, episodes, config, step, wall)
                step += 1
                row = {
                    "step": step,
                    "wall_s": round(elapsed_before + time.perf_counter() - t0, 2),
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
                    elapsed_before + time.perf_counter() - t0 > 60 * config.max_minutes
                )
                chunk_done = bool(config.chunk_minutes) and (
                    time.perf_counter() - chunk_t0 > 60 * config.chunk_minutes
                )
                ending = out_of_time or chunk_done or stop.requested
                if step % config.checkpoint_every == 0 or step == config.steps or ending:
                    save(step)
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
    if not last_path.exists():
        save(step)
    return last_path
