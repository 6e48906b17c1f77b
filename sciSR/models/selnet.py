"""SelNet (Choi & Kim, CVPRW 2017): deep CNN with selection units and sub-pixel upsampling."""

from __future__ import annotations

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel, upsample_bicubic
from .layers.skip import check_skip_channels, skip
from .registry import register_model

SELNET_PAPER = ("Choi & Kim, A Deep Convolutional Neural Network with Selection Units for Super-Resolution, "
                "CVPRW 2017")


class SelectionUnit(nn.Module):
    """``x * sigmoid(conv1x1(relu(x)))``: the identity, gated per pixel and channel.

    The paper reads ReLU as an identity times an on/off switch and replaces the switch by a
    learned selection module (ReLU → 1×1 conv → sigmoid) that multiplies the identity path.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(torch.relu(x)))


class SelResidualUnit(nn.Module):
    """Residual unit of two 3×3 convolutions, each followed by a selection unit, plus the identity.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), SelectionUnit(channels),
            nn.Conv2d(channels, channels, 3, padding=1), SelectionUnit(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SelNet(SRModel):
    """Input conv + selection unit → ``n_units`` residual units (two conv + SU each) in LR space →
    sub-pixel layer (conv to ``64·scale²`` channels, pixel shuffle) → one 3×3 conv in HR space,
    plus the bicubic-upsampled input.

    Paper facts: 22 convolutional layers of 64 filters, a selection unit (identity gated by
    ReLU → 1×1 conv → sigmoid) after the convolutions, residual units with identity skips, a
    sub-pixel layer; ≈974 K parameters for the ×2 luminance model. Our reading, which
    reproduces that count exactly (974,849 at ×2 with one channel): 1 input conv + 20 convs in
    10 residual units + 1 HR conv = 22 layers, with selection units after the 21 LR convs, and
    the sub-pixel layer's own conv (64 → 64·s²) not counted among the 22. The pairing of convs
    into residual units, one sub-pixel stage of factor ``scale`` at every scale and the
    residual over the bicubic-upsampled input (no parameters) are our interpretation.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "selnet"
    paper = SELNET_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_units: int = 10, upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("selnet", self.in_channels, self.out_channels)
        if n_units < 0:
            raise ValueError(f"n_units must be ≥ 0, got {n_units}")
        self.upsampler = check_upsampler(upsampler)
        s = self.scale
        self.head = nn.Sequential(nn.Conv2d(self.in_channels, n_feats, 3, padding=1), SelectionUnit(n_feats))
        self.body = nn.Sequential(*[SelResidualUnit(n_feats) for _ in range(n_units)])
        self.upsample = nn.Sequential(nn.Conv2d(n_feats, n_feats * s * s, 3, padding=1), nn.PixelShuffle(s))
        self.tail = nn.Conv2d(n_feats, self.out_channels, 3, padding=1)
        self.config = {"n_feats": n_feats, "n_units": n_units, "upsampler": upsampler}

    def receptive_field(self) -> int:
        # the convolutions (structural bound) in parallel with the bicubic skip (2 LR cells)
        return max(super().receptive_field() or 0, 2 if self.scale > 1 else 0)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tail(self.upsample(self.body(self.head(x))))
        return y + skip(upsample_bicubic(x, self.scale, self.upsampler), self.out_channels)


@register_model("selnet", paper=SELNET_PAPER, tiny={"n_feats": 8, "n_units": 1})
def selnet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SelNet:
    """SelNet: 22 conv layers with selection units, residual units, sub-pixel layer + HR conv."""
    return SelNet(scale, in_channels, out_channels, **kw)
