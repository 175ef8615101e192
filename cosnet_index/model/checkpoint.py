"""One-file checkpoints: weights + frozen config + content hash (+ metadata), loaded safely."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from cosnet_index.errors import CheckpointError
from cosnet_index.files import atomic_write
from cosnet_index.model.config import CosNetConfig
from cosnet_index.model.cosnet import CosNet
from cosnet_index.model.identity import _hash_state, compute_hash

__all__ = [
    "CheckpointInfo",
    "compute_hash",
    "default_checkpoint_path",
    "load_checkpoint",
    "load_default_model",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT = "cosnet-index-checkpoint/1"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself."""

    hash: str
    config: CosNetConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(model: CosNet, path: str | os.PathLike, **metadata: Any) -> str:
    """Write ``model`` to ``path`` atomically (``cosnet_index.files.atomic_write``).

    Args:
        model: the model.
        path: destination file (``.pt``).
        **metadata: JSON-compatible facts to keep with it (training command, seed, step...).

    Returns:
        The content hash (also readable as ``model.weights_hash``).

    Raises:
        CheckpointError: metadata that is not JSON-compatible.
    """
    try:
        # a JSON round trip leaves only plain types, which weights_only loading accepts
        metadata = json.loads(json.dumps(metadata))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint metadata must be JSON-compatible (str, numbers, lists, dicts): {exc}"
        ) from None
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    digest = _hash_state(state, model.config)
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": state,
        "hash": digest,
        "metadata": metadata,
    }
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    logger.info("saved checkpoint %s (hash %s)", path, digest[:12])
    return digest


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[CosNet, CheckpointInfo]:
    """Load a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``:
    a file holding arbitrary pickled objects is refused, never executed).

    Returns:
        ``(model, info)``; the model is in eval mode on ``map_location``.

    Raises:
        CheckpointError: missing file, not a checkpoint, unsafe pickle, wrong format,
            or weights that do not match the recorded hash.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: pass the path of a .pt file written by "
            "`cosnet-index train`"
        )
    try:
        with warnings.catch_warnings():
            # foreign pickles (other protocols) warn before being refused: the error says enough
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged or foreign files raise many types (IndexError, KeyError...)
        text = str(exc).strip()
        first = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
            # keep torch's reason, not its advice to load with weights_only=False
            reason = text.split("WeightsUnpickler error:", 1)[1].strip()
            first = "refused by the safe loader: " + reason.splitlines()[0].split(". ")[0]
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unsafe to load ({first}); "
            "use a checkpoint written by `cosnet-index train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a cosnet-index checkpoint (format {FORMAT!r} expected); "
            "use a checkpoint written by `cosnet-index train`"
        )
    try:
        config = CosNetConfig.from_dict(payload["config"])
        state = payload["state_dict"]
        recorded = str(payload["hash"])
        metadata = dict(payload.get("metadata") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is incomplete or malformed ({exc})") from None
    actual = _hash_state(state, config)
    if actual != recorded:
        raise CheckpointError(
            f"checkpoint {path} does not match its recorded hash (recorded {recorded[:12]}, "
            f"content {actual[:12]}): the file was modified or damaged; restore the original"
        )
    model = CosNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} weights do not fit its config: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    model.to(map_location)
    return model, CheckpointInfo(hash=recorded, config=config, metadata=metadata)


def default_checkpoint_path() -> pathlib.Path:
    """The shipped, trained checkpoint: ``cosnet_index/weights/cosnet.pt``."""
    return pathlib.Path(__file__).resolve().parent.parent / "weights" / "cosnet.pt"


def load_default_model(map_location: str | torch.device = "cpu") -> tuple[CosNet, CheckpointInfo]:
    """Load the shipped model.

    Raises:
        CheckpointError: the weights are not shipped in this installation (or are damaged).
    """
    path = default_checkpoint_path()
    if not path.is_file():
        raise CheckpointError(
            f"no shipped weights at {path}: train a model with `cosnet-index train` and pass "
            "its checkpoint with --checkpoint"
        )
    return load_checkpoint(path, map_location=map_location)
