"""The frozen configuration of a COS-Net model, saved next to its weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosnet_index.errors import CheckpointError, InputError
from cosnet_index.frozen import frozen_from_dict, frozen_to_dict

__all__ = ["CosNetConfig"]


@dataclass(frozen=True)
class CosNetConfig:
    """Architecture of a :class:`~cosnet_index.model.CosNet`.

    Attributes:
        widths: output channels of the three encoder levels (the decoder mirrors them).
        strides: downsampling stride of each encoder level's convolution (1 or 2);
            the default takes a 32^3 box to a ``widths[-1] x 8^3`` bottleneck like the paper.
        convs_per_level: 3x3x3 convolutions per encoder level (the first one carries the stride).
        embed_dim: size of the embedding (the paper's 512).
        box: side of the cubic input box in voxels.
        voxel_size_nm: native voxel size the model was trained at.
        feature_pool: the bottleneck is average-pooled to ``feature_pool^3`` before the first
            Linear of the feature encoder (0 = no pooling: the paper's flatten of the
            full bottleneck).
        use_decoder: build the mask decoder (ablation switch).
        use_duse: a DuSE block after every encoder/decoder level (ablation switch).
        duse_reduction: channel reduction ratio of the channel-SE branch.
        mask_upsample: 1 = the decoder's last level works at full resolution; 2 = it works at
            half resolution and the mask logits are trilinearly upsampled to the box (faster).
        duse_combine: how the channel-SE and spatial-SE branches are merged: ``"max"`` (the
            authors' code, Roy et al.'s best) or ``"add"`` (the paper's text).
    """

    widths: tuple[int, int, int] = (16, 32, 64)
    strides: tuple[int, int, int] = (2, 2, 1)
    convs_per_level: int = 2
    embed_dim: int = 512
    box: int = 32
    voxel_size_nm: float = 1.0
    feature_pool: int = 4
    use_decoder: bool = True
    use_duse: bool = True
    duse_reduction: int = 2
    duse_combine: str = "add"
    mask_upsample: int = 2

    def __post_init__(self) -> None:
        if len(self.widths) != 3 or any(int(w) < 1 for w in self.widths):
            raise InputError(f"widths must be 3 positive ints, got {self.widths!r}")
        if len(self.strides) != 3 or any(s not in (1, 2) for s in self.strides):
            raise InputError(f"strides must be 3 values of 1 or 2, got {self.strides!r}")
        down = 1
        for s in self.strides:
            down *= s
        if self.box % down:
            raise InputError(f"box {self.box} is not divisible by the total stride {down}")
        if self.feature_pool and (self.box // down) % self.feature_pool:
            raise InputError(
                f"feature_pool {self.feature_pool} must divide the bottleneck side "
                f"{self.box // down}"
            )
        if self.mask_upsample not in (1, 2) or (self.mask_upsample == 2 and 2 not in self.strides):
            raise InputError("mask_upsample must be 1, or 2 with at least one stride-2 level")
        if self.duse_combine not in ("max", "add"):
            raise InputError(f"duse_combine must be 'max' or 'add', got {self.duse_combine!r}")
        # tuples even when built from JSON lists
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))

    @property
    def bottleneck_side(self) -> int:
        """Side of the encoder's bottleneck in voxels."""
        side = self.box
        for s in self.strides:
            side //= s
        return side

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (tuples become lists); ``from_dict`` inverts it."""
        return frozen_to_dict(self, lists=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CosNetConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            CheckpointError: unknown keys (a checkpoint from a newer cosnet-index).
        """
        return frozen_from_dict(
            cls,
            data,
            label="model config fields",
            error=CheckpointError,
            hint="the checkpoint was written by a newer cosnet-index: upgrade cosnet-index to "
            "load it",
        )
