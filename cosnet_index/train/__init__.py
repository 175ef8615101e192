"""Episodic training of COS-Net on simulated subtomograms (resumable, seeded, logged).

Each step draws ``episodes_per_step`` episodes (two support sets over the same ``ways`` classes,
:class:`~cosnet_index.data.EpisodeSampler`), embeds all their boxes in one batch and scores every
(A_i, B_j) pair through the head. The match BCE is *balanced*: positives and negatives each weigh
half, whatever ``ways`` is (the authors' independent pairs gave ~1/14 positives). Dice on the
decoder masks of every box is added (the paper's unweighted sum).

Where the parts are:

- ``config.py``: :class:`TrainConfig`, the hyper-parameters saved in every checkpoint;
- ``loss.py``: :func:`episode_loss`, the loss of one step;
- ``_stream.py``: the seeded episodes of each step, simulated ahead in a thread or a worker;
- ``_checkpoints.py``: start, resume or fine-tune; ``last.pt``, ``step_<k>.pt``,
  ``train_state.pt`` (optimizer + step, for ``--resume``) and ``metrics.csv``;
- ``loop.py``: :func:`train`, the loop itself (schedule, stop on time or signal).
"""

from cosnet_index.train.config import TrainConfig
from cosnet_index.train.loop import pick_device, train
from cosnet_index.train.loss import episode_loss

__all__ = ["TrainConfig", "episode_loss", "pick_device", "train"]
