"""Convolution helpers with 'same' padding."""

from __future__ import annotations

from torch import nn


def default_conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A ``kernel_size`` convolution with ``kernel_size // 2`` zero padding (keeps H, W)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias, groups=groups)


def conv3x3(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    """3×3 convolution, stride 1, padding 1."""
    return default_conv(in_ch, out_ch, 3, bias=bias)
