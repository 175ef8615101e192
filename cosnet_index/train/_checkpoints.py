"""Where a run starts and what it leaves: resume or fine-tune, checkpoints, state, metrics.

Outputs in ``out_dir``: ``last.pt`` (a model checkpoint, see
:func:`~cosnet_index.model.save_checkpoint`), ``step_<k>.pt`` every ``keep_every`` steps,
``train_state.pt`` (optimizer + step + wall time, for ``--resume``), ``metrics.csv`` (one row
per step) and, with ``TrainConfig.ema_decay``, ``ema.pt``: the exponential moving average of the
weights (:func:`start_ema`). Every checkpoint records how the run was made (:func:`run_metadata`).
"""

from __future__ import annotations

import csv
import logging
import pathlib
import time
from collections.abc import Sequence
from typing import IO, Any

import torch

from cosnet_index.data.episodes import SimulateFn
from cosnet_index.data.imaging_mix import ImagingMix
from cosnet_index.data.provenance import data_manifest, simulator_source_hash
from cosnet_index.errors import CheckpointError
from cosnet_index.files import atomic_write
from cosnet_index.model import CosNet, CosNetConfig, load_checkpoint, save_checkpoint
from cosnet_index.train.config import TrainConfig

__all__ = ["METRIC_FIELDS", "Checkpointer", "open_metrics", "run_metadata", "start", "start_ema"]

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


def _atomic_torch_save(obj: Any, path: pathlib.Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def start(
    out: pathlib.Path,
    config: TrainConfig,
    model_config: CosNetConfig | None,
    resume: bool,
    dev: torch.device,
) -> tuple[CosNet, torch.optim.Optimizer, int, float, int]:
    """The model and optimiser to train, the step and wall time already done (resume, or
    ``TrainConfig.continue_counters``), and the step the learning-rate warm-up counts from."""
    start_step, elapsed_before, warmup_from = 0, 0.0, 0
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
        warmup_from = int(state.get("warmup_from", 0))
    elif config.init_from:
        model, info = load_checkpoint(config.init_from)
        logger.info("fine-tuning from %s (hash %s)", config.init_from, model.weights_hash[:8])
        if config.continue_counters:
            meta = info.metadata or {}
            start_step = int(meta.get("step", 0))
            elapsed_before = float(meta.get("wall_s", 0.0))
            warmup_from = start_step
            logger.info(
                "continuing its counters: step %d, %.2f h", start_step, elapsed_before / 3600
            )
    else:
        model = CosNet(model_config or CosNetConfig())
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
    return model, optimizer, start_step, elapsed_before, warmup_from


def start_ema(
    out: pathlib.Path, model: CosNet, config: TrainConfig, resume: bool
) -> torch.optim.swa_utils.AveragedModel | None:
    """The moving average of ``model``'s weights and buffers (None when ``ema_decay`` is 0).

    torch's own :class:`~torch.optim.swa_utils.AveragedModel` does the averaging. A resumed run
    continues the average saved in ``out/ema.pt``; a run without one (a new run, or one started
    before the average existed) starts it from the current weights.
    """
    if not config.ema_decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
    )
    saved = out / "ema.pt"
    if resume and saved.is_file():
        averaged, _ = load_checkpoint(saved)
        ema.module.load_state_dict(averaged.state_dict())
        ema.n_averaged.fill_(1)  # continue the average, do not restart it from the iterate
        logger.info("continuing the weight average of %s", saved)
    return ema


def run_metadata(
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


def open_metrics(path: pathlib.Path, resume: bool) -> tuple[IO[str], csv.DictWriter]:
    """``metrics.csv`` opened for this run's rows (appended to when resuming) and its writer.

    A run started by an older release keeps its own columns.
    """
    new_file = not path.exists() or not resume
    handle = open(path, "a" if resume else "w", newline="")
    fields = METRIC_FIELDS
    if not new_file:
        with open(path, newline="") as fh:
            fields = next(csv.reader(fh), None) or METRIC_FIELDS
    writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
    if new_file:
        writer.writeheader()
    return handle, writer


class Checkpointer:
    """Saves the model, its optimizer state and the metrics so far, and keeps the run's clock.

    ``last.pt`` every time, ``step_<k>.pt`` every ``keep_every`` steps, ``train_state.pt``
    (step, optimizer, wall time, warm-up start); the wall time counts from its creation plus
    what the resumed run had already spent.
    """

    def __init__(
        self,
        out: pathlib.Path,
        model: CosNet,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        metadata: dict[str, Any],
        elapsed_before: float,
        metrics: IO[str],
        ema: torch.optim.swa_utils.AveragedModel | None = None,
        warmup_from: int = 0,
    ) -> None:
        self.out, self.model, self.optimizer, self.config = out, model, optimizer, config
        self.ema = ema
        self.metadata, self.elapsed_before, self.metrics = metadata, elapsed_before, metrics
        self.last_path, self.state_path = out / "last.pt", out / "train_state.pt"
        self.t0 = time.perf_counter()
        # the step the learning-rate warm-up counts from (saved with the state: a resumed run
        # keeps it; 0 for runs saved before it was recorded)
        self.warmup_from = warmup_from

    def wall_s(self) -> float:
        """Seconds of training over every resume of the run."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def _save_model(self, model: CosNet, name: str, step_done: int, meta: dict[str, Any]) -> None:
        model.eval()
        model.to(memory_format=torch.contiguous_format)  # checkpoints in the default layout
        save_checkpoint(model, self.out / f"{name}.pt", **meta)
        if self.config.keep_every and step_done % self.config.keep_every == 0:
            suffix = "" if name == "last" else f"_{name}"
            save_checkpoint(model, self.out / f"step_{step_done:06d}{suffix}.pt", **meta)
        if self.config.channels_last:
            model.to(memory_format=torch.channels_last_3d)
        model.train()

    def save(self, step_done: int) -> None:
        """Checkpoint after ``step_done`` steps (in the default memory layout)."""
        wall = self.wall_s()
        meta = dict(self.metadata, step=step_done, wall_s=round(wall, 1))
        if self.ema is not None:
            # the average first: a run killed between the two files resumes the iterate one
            # checkpoint back and the average is a few steps ahead, never the other way round
            ema_meta = dict(meta, ema_decay=self.config.ema_decay)
            self._save_model(self.ema.module, "ema", step_done, ema_meta)
        self._save_model(self.model, "last", step_done, meta)
        state = {
            "step": step_done,
            "optimizer": self.optimizer.state_dict(),
            "wall_s": wall,
            "warmup_from": self.warmup_from,
        }
        _atomic_torch_save(state, self.state_path)
        self.metrics.flush()
