"""The training hyper-parameters: one frozen :class:`TrainConfig`, saved in every checkpoint."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cosnet_index.data.imaging_mix import ImagingMix, parse_imaging_mix
from cosnet_index.errors import InputError

__all__ = ["TrainConfig"]


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
    # 0: simulate in a thread beside training; k >= 1: in k worker processes (one torch thread
    # each; a GPU run needs several to keep up)
    sim_workers: int = 0
    # 0 = no limit; else this invocation stops (checkpointed) after this long, schedule untouched
    chunk_minutes: float = 0.0
    # fine-tune: start from this checkpoint's weights and architecture ("" = random init)
    init_from: str = ""
    # a new run from ``init_from`` continues that checkpoint's step and training-time counters
    # (its ``step`` / ``wall_s`` metadata): a campaign restarted from its committed weights keeps
    # its hours, and its episode stream goes on instead of replaying the first steps' episodes;
    # the learning-rate warm-up still runs (a fresh optimiser), counted from the restart
    continue_counters: bool = False
    # 0 = off; else an exponential moving average of the weights (and BatchNorm statistics) is
    # kept with this decay per step and written as ``ema.pt`` beside ``last.pt``: the averaged
    # weights are what a constant-learning-rate campaign evaluates and ships (``last.pt`` is the
    # noisy iterate that training continues from)
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 < self.decoder_fraction <= 1.0:
            raise InputError(f"decoder_fraction must be in (0, 1], got {self.decoder_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.sim_workers < 0:
            raise InputError(f"sim_workers must be >= 0, got {self.sim_workers}")

    def imaging_mix(self) -> ImagingMix:
        """The episodes' imaging (:class:`~cosnet_index.data.imaging_mix.ImagingMix`)."""
        return parse_imaging_mix(self.imaging, self.imaging_per, self.cross_collection)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["snrs"] = [s if math.isfinite(s) else "inf" for s in self.snrs]
        out["snr_weights"] = list(self.snr_weights)
        return out
