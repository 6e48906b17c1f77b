"""Channel attention (squeeze-and-excitation, Hu et al. 2018; RCAN, Zhang et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Global average pool → 1×1 conv reduce → ReLU → 1×1 conv expand → sigmoid → rescale.

    The global pooling makes networks using it non-translation-equivariant with an unbounded
    receptive field: tile them with blending.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, max(1, channels // reduction), 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(max(1, channels // reduction), channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))
