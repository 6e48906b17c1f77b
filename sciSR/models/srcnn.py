"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convolutions on the bicubic-upsampled input."""

from __future__ import annotations

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel
from .registry import register_model


class SRCNN(SRModel):
    """Patch extraction (f1), non-linear mapping (f2), reconstruction (f3).

    The paper's 9-5-5 network uses ``n1=64, n2=32`` and ``kernels=(9, 5, 5)``; the original
    9-1-5 uses ``kernels=(9, 1, 5)``. Zero "same" padding keeps the output size (the paper's
    network uses valid convolutions and a smaller output). The paper's input is the MATLAB
    bicubic-interpolated image: ``upsampler="matlab"`` reproduces it (needed to run the original
    weights); the default is torch bicubic (see :mod:`sciSR.resize`).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "srcnn"
    paper = "Dong et al., Image Super-Resolution Using Deep Convolutional Networks, ECCV 2014"
    upsampling = "pre"

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: tuple[int, int] = (64, 32),
        kernels: tuple[int, int, int] = (9, 5, 5),
        upsampler: str = "bicubic",
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.upsampler = check_upsampler(upsampler)
        n1, n2 = channels
        k1, k2, k3 = kernels
        self.features = nn.Sequential(
            nn.Conv2d(self.in_channels, n1, k1, padding=k1 // 2), nn.ReLU(inplace=True)
        )
        self.mapping = nn.Sequential(nn.Conv2d(n1, n2, k2, padding=k2 // 2), nn.ReLU(inplace=True))
        self.reconstruction = nn.Conv2d(n2, self.out_channels, k3, padding=k3 // 2)
        self.config = {"channels": list(channels), "kernels": list(kernels), "upsampler": upsampler}

    def receptive_field(self) -> int:
        # HR half-width (k1+k2+k3-3)/2, seen through the bicubic (2 LR px), in LR pixels
        k1, k2, k3 = self.config["kernels"]
        return -(-((k1 + k2 + k3 - 3) // 2) // self.scale) + 2

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction(self.mapping(self.features(x)))


@register_model("srcnn", paper=SRCNN.paper, tiny={"channels": (8, 4)})
def srcnn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SRCNN:
    """SRCNN 9-5-5 (pre-upsampling; any integer scale)."""
    return SRCNN(scale, in_channels, out_channels, **kw)
