"""COS-Net: the Siamese 3D network every stored vector comes from.

``CosNet.embed`` returns storage vectors already scaled by ``|w|`` so that the learned head is
``match_probability(L1(a, b)) = sigmoid(b - L1(a, b))``.
"""

from cosnet_index.model.checkpoint import (
    CheckpointInfo,
    compute_hash,
    default_checkpoint_path,
    load_checkpoint,
    load_default_model,
    save_checkpoint,
)
from cosnet_index.model.config import CosNetConfig
from cosnet_index.model.cosnet import CosNet
from cosnet_index.model.duse import DuSE
from cosnet_index.model.losses import cosnet_loss, dice_loss, soft_dice
from cosnet_index.model.normalize import normalize_boxes

__all__ = [
    "CheckpointInfo",
    "CosNet",
    "CosNetConfig",
    "DuSE",
    "compute_hash",
    "cosnet_loss",
    "default_checkpoint_path",
    "dice_loss",
    "load_checkpoint",
    "load_default_model",
    "normalize_boxes",
    "save_checkpoint",
    "soft_dice",
]
