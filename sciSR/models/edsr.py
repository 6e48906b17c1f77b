"""EDSR and EDSR-baseline (Lim et al., CVPRW 2017): deep residual network without batch norm."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .layers import PixelShuffleUpsampler, ResBlock, default_conv
from .registry import register_model

EDSR_PAPER = "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017"


class EDSR(SRModel):
    """Head conv → ``n_resblocks`` residual blocks + conv (global skip) → pixel-shuffle tail.

    Layer names follow the official release (``head.0``, ``body.N``, ``tail.0``, ``tail.1``) so
    its checkpoints load directly. No built-in RGB mean shift: see
    :meth:`SRModel.set_input_transform` for imported weights.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "edsr"
    paper = EDSR_PAPER
    scales = (2, 3, 4)

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_resblocks: int = 32, n_feats: int = 256, res_scale: float = 0.1, kernel_size: int = 3) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.head = nn.Sequential(default_conv(self.in_channels, n_feats, kernel_size))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, kernel_size, res_scale=res_scale) for _ in range(n_resblocks)],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.tail = nn.Sequential(
            PixelShuffleUpsampler(self.scale, n_feats),
            default_conv(n_feats, self.out_channels, kernel_size),
        )
        self.config = {"n_resblocks": n_resblocks, "n_feats": n_feats, "res_scale": res_scale}

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.body(x)
        return self.tail(x)


@register_model("edsr", paper=EDSR_PAPER, tiny={"n_resblocks": 2, "n_feats": 8})
def edsr(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> EDSR:
    """EDSR: 32 residual blocks × 256 features, residual scaling 0.1 (×2/×3/×4)."""
    return EDSR(scale, in_channels, out_channels, **kw)


@register_model("edsr_baseline", paper=EDSR_PAPER, tiny={"n_resblocks": 2, "n_feats": 8})
def edsr_baseline(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> EDSR:
    """EDSR-baseline: 16 residual blocks × 64 features, no residual scaling (×2/×3/×4)."""
    kw = {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0, **kw}
    return EDSR(scale, in_channels, out_channels, **kw)
