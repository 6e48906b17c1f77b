"""Sub-pixel (pixel-shuffle) upsamplers (Shi et al. 2016), as used by EDSR, RCAN, CARN..."""

from __future__ import annotations

import math

from torch import nn

from .conv import default_conv


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


class PixelShuffleUpsampler(nn.Sequential):
    """Upsample features ×scale: ×2 stages for powers of two, else one ×scale stage.

    Each stage is ``conv(c → c·r²)`` then ``PixelShuffle(r)``, optionally followed by an
    activation. Layer indices follow the EDSR layout so published checkpoints map onto it.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """

    def __init__(
        self,
        scale: int,
        channels: int,
        bias: bool = True,
        act: nn.Module | None = None,
        kernel_size: int = 3,
        groups: int = 1,
    ) -> None:
        layers: list[nn.Module] = []
        stages = [2] * int(math.log2(scale)) if _is_power_of_two(scale) and scale > 1 else [scale]
        for r in stages:
            if r == 1:
                continue
            layers.append(default_conv(channels, channels * r * r, kernel_size, bias=bias, groups=groups))
            layers.append(nn.PixelShuffle(r))
            if act is not None:
                layers.append(act)
        super().__init__(*layers)
