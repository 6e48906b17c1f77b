"""SelNet (Choi & Kim, CVPRW 2017): deep CNN with selection units and sub-pixel upsampling."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel, upsample_bicubic
from .layers.skip import check_skip_channels, skip
from .registry import register_model

SELNET_PAPER = ("Choi & Kim, A Deep Convolutional Neural Network with Selection Units for Super-Resolution, "
                "CVPRW 2017")


class SelectionUnit(nn.Module):
    """``relu(x) * sigmoid(conv1x1(relu(x)))``: a ReLU whose output is gated per pixel and channel.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x)
        return r * torch.sigmoid(self.gate(r))


class SelNet(SRModel):
    """``n_layers`` 3×3 convolutions in LR space, a selection unit after each but the last; the
    last produces ``C_out·scale²`` channels for a pixel shuffle; the result is added to the
    bicubic-upsampled input.

    Paper default: 22 conv layers × 64 filters (835,792 parameters for one channel at ×4). The
    brief's "≈0.97 M" could not be traced to a configuration we can justify from the paper's
    description, so no published count is asserted.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "selnet"
    paper = SELNET_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_layers: int = 22) -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("selnet", self.in_channels, self.out_channels)
        if n_layers < 2:
            raise ValueError(f"n_layers must be ≥ 2, got {n_layers}")
        layers: list[nn.Module] = []
        cin = self.in_channels
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(cin, n_feats, 3, padding=1), SelectionUnit(n_feats)]
            cin = n_feats
        s = self.scale
        layers += [nn.Conv2d(n_feats, self.out_channels * s * s, 3, padding=1), nn.PixelShuffle(s)]
        self.body = nn.Sequential(*layers)
        self.config = {"n_feats": n_feats, "n_layers": n_layers}

    def receptive_field(self) -> int:
        return max(self.config["n_layers"], 2)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        return skip(upsample_bicubic(x, self.scale), self.out_channels) + self.body(x)


@register_model("selnet", paper=SELNET_PAPER, tiny={"n_feats": 8, "n_layers": 3})
def selnet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> SelNet:
    """SelNet: 22 conv layers with selection units, sub-pixel upsampling, bicubic residual."""
    return SelNet(scale, in_channels, out_channels, **kw)
