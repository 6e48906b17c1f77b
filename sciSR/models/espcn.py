"""ESPCN (Shi et al., CVPR 2016): convolutions in LR space and a sub-pixel convolution layer."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .registry import register_model


class ESPCN(SRModel):
    """5×5 (64) tanh → 3×3 (32) tanh → 3×3 (C·s²) → PixelShuffle(s).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "espcn"
    paper = (
        "Shi et al., Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN, "
        "CVPR 2016"
    )

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: tuple[int, int] = (64, 32),
        kernels: tuple[int, int, int] = (5, 3, 3),
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        n1, n2 = channels
        k1, k2, k3 = kernels
        s = self.scale
        self.body = nn.Sequential(
            nn.Conv2d(self.in_channels, n1, k1, padding=k1 // 2),
            nn.Tanh(),
            nn.Conv2d(n1, n2, k2, padding=k2 // 2),
            nn.Tanh(),
            nn.Conv2d(n2, self.out_channels * s * s, k3, padding=k3 // 2),
        )
        self.shuffle = nn.PixelShuffle(s)
        self.config = {"channels": list(channels), "kernels": list(kernels)}

    def receptive_field(self) -> int:
        return sum(k // 2 for k in self.config["kernels"])

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x))


@register_model("espcn", paper=ESPCN.paper, tiny={"channels": (8, 4)})
def espcn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> ESPCN:
    """ESPCN, sub-pixel convolution with tanh activations (any integer scale)."""
    return ESPCN(scale, in_channels, out_channels, **kw)
