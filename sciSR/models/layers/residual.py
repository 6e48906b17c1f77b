"""Residual blocks."""

from __future__ import annotations

import torch
from torch import nn

from .conv import default_conv


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv(relu(conv(x)))``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self, channels: int, kernel_size: int = 3, res_scale: float = 1.0, bias: bool = True
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(channels, channels, kernel_size, bias=bias),
            nn.ReLU(inplace=True),
            default_conv(channels, channels, kernel_size, bias=bias),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + (y * self.res_scale if self.res_scale != 1 else y)
