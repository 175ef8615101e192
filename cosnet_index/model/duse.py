"""Dual Squeeze-and-Excitation (Roy et al. 2018, "concurrent spatial and channel SE")."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DuSE"]


class DuSE(nn.Module):
    """Channel SE (spatial squeeze, channel excitation) and spatial SE (channel squeeze, spatial
    excitation) applied concurrently to a ``(n, c, d, h, w)`` feature map and merged.

    Args:
        channels: number of channels ``c``.
        reduction: reduction ratio of the channel branch's bottleneck.
        combine: ``"max"`` (element-wise maximum of the two recalibrated maps) or ``"add"``.
        act_layer: activation of the channel branch's bottleneck.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        combine: str = "max",
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.combine = combine
        self.fc1 = nn.Linear(channels, hidden)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, channels)
        self.spatial = nn.Conv3d(channels, 1, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:  # (n, c, d, h, w)
        n, c = x.shape[:2]
        squeeze = x.mean(dim=(2, 3, 4))  # (n, c)
        channel_gate = torch.sigmoid(self.fc2(self.act(self.fc1(squeeze)))).view(n, c, 1, 1, 1)
        spatial_gate = torch.sigmoid(self.spatial(x))  # (n, 1, d, h, w)
        x_channel = x * channel_gate
        x_spatial = x * spatial_gate
        if self.combine == "max":
            return torch.maximum(x_channel, x_spatial)
        return x_channel + x_spatial
