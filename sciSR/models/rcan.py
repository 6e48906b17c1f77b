"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of channel-attention blocks."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .layers import ChannelAttention, PixelShuffleUpsampler, default_conv
from .registry import register_model


class RCAB(nn.Module):
    """Residual channel attention block: ``x + CA(conv(relu(conv(x)))) * res_scale``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self, n_feats: int, kernel_size: int = 3, reduction: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size),
            ChannelAttention(n_feats, reduction),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + (y * self.res_scale if self.res_scale != 1 else y)


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a short skip connection.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(
        self,
        n_feats: int,
        n_resblocks: int,
        kernel_size: int = 3,
        reduction: int = 16,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(n_feats, kernel_size, reduction, res_scale) for _ in range(n_resblocks)],
            default_conv(n_feats, n_feats, kernel_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(SRModel):
    """Head → ``n_resgroups`` residual groups + conv (long skip) → pixel-shuffle tail.

    Layer names follow the official release (``head.0``, ``body.G.body.B.body.*``, ``tail.*``).
    Channel attention pools globally, so RCAN is not translation-equivariant: tiled inference
    blends overlapping tiles (DESIGN §5).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "rcan"
    paper = (
        "Zhang et al., Image Super-Resolution Using Very Deep Residual Channel Attention Networks, ECCV 2018"
    )
    equivariant = False
    scales = (2, 3, 4, 8)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        res_scale: float = 1.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.head = nn.Sequential(default_conv(self.in_channels, n_feats, kernel_size))
        self.body = nn.Sequential(
            *[
                ResidualGroup(n_feats, n_resblocks, kernel_size, reduction, res_scale)
                for _ in range(n_resgroups)
            ],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.tail = nn.Sequential(
            PixelShuffleUpsampler(self.scale, n_feats),
            default_conv(n_feats, self.out_channels, kernel_size),
        )
        self.config = {
            "n_resgroups": n_resgroups,
            "n_resblocks": n_resblocks,
            "n_feats": n_feats,
            "reduction": reduction,
            "res_scale": res_scale,
        }

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.body(x)
        return self.tail(x)


@register_model(
    "rcan", paper=RCAN.paper, tiny={"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}
)
def rcan(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> RCAN:
    """RCAN: 10 residual groups × 20 channel-attention blocks, 64 features (×2/×3/×4/×8)."""
    return RCAN(scale, in_channels, out_channels, **kw)
