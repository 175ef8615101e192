"""The identity of a model: a content hash of its config and weights.

Every stored vector records the hash of the model that made it (``CosNet.weights_hash``,
checked again by ``load_checkpoint``). This module needs only the config and the state dict, so
both ``cosnet.py`` and ``checkpoint.py`` import it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import torch

from cosnet_index.model.config import CosNetConfig

if TYPE_CHECKING:
    from torch import nn

__all__ = ["compute_hash"]


def _hash_state(state: dict[str, torch.Tensor], config: CosNetConfig) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"\n{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def compute_hash(model: nn.Module) -> str:
    """sha256 over the config JSON and every state-dict tensor (name, dtype, shape, bytes) in
    sorted key order: the identity of the model that made a stored vector.

    Args:
        model: a ``CosNet`` (anything with ``state_dict()`` and a ``config: CosNetConfig``).
    """
    return _hash_state(model.state_dict(), model.config)  # type: ignore[arg-type]
