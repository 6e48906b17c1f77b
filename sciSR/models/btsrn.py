"""BTSRN (Fan et al., CVPRW 2017): balanced two-stage residual network with PConv blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel
from .layers.deconv import CenteredConvTranspose2d, cubic_kernel_1d, init_interpolation, lr_cells
from .registry import register_model

BTSRN_PAPER = "Fan et al., Balanced Two-Stage Residual Networks for Image Super-Resolution, CVPRW 2017"


class PConvBlock(nn.Module):
    """Two-layer projected-convolution residual block: ``x + conv3x3(relu(conv1x1(relu(x))))``.

    The 1×1 convolution projects the ``n_feats`` features to ``proj`` channels, the 3×3
    convolution maps them back: the block costs ``proj/n_feats`` of a plain 3×3 layer. No batch
    normalization (the paper removes it; it also breaks tiling and train/eval consistency).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, proj: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(n_feats, proj, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(proj, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BTSRN(SRModel):
    """Input conv → LR stage (``n_lr`` PConv blocks) → upsampling → HR stage (``n_hr`` PConv
    blocks) → output conv.

    The upsampling layer is the sum of nearest-neighbour upsampling and a channel-wise (depthwise)
    deconvolution with stride ``scale`` initialised to bicubic interpolation (kernel ``4·scale``,
    ``4·scale - 1`` for odd scales so it can be centred on the cell-centred grid): at
    initialisation it is "nearest + bicubic", as in the paper, and training refines it.
    Defaults follow the NTIRE 2017 model: 6 LR blocks, 4 HR blocks, 128 features projected to 64.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "btsrn"
    paper = BTSRN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 128, proj: int = 64, n_lr: int = 6, n_hr: int = 4) -> None:
        super().__init__(scale, in_channels, out_channels)
        s = self.scale
        self.head = nn.Conv2d(self.in_channels, n_feats, 3, padding=1)
        self.lr_stage = nn.Sequential(*[PConvBlock(n_feats, proj) for _ in range(n_lr)])
        k = 4 * s - (s % 2)
        self.deconv = CenteredConvTranspose2d(n_feats, n_feats, k, s, groups=n_feats)
        init_interpolation(self.deconv, cubic_kernel_1d(s, k))
        self.hr_stage = nn.Sequential(*[PConvBlock(n_feats, proj) for _ in range(n_hr)])
        self.tail = nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, self.out_channels, 3, padding=1))
        self.config = {"n_feats": n_feats, "proj": proj, "n_lr": n_lr, "n_hr": n_hr}

    def receptive_field(self) -> int:
        c = self.config
        return (1 + c["n_lr"]) + self.deconv.lr_reach() + lr_cells(c["n_hr"] + 1, self.scale)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lr_stage(self.head(x))
        s = self.scale
        x = F.interpolate(x, scale_factor=s, mode="nearest") + self.deconv(x) if s > 1 else x
        return self.tail(self.hr_stage(x))


@register_model("btsrn", paper=BTSRN_PAPER, tiny={"n_feats": 8, "proj": 4, "n_lr": 1, "n_hr": 1})
def btsrn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> BTSRN:
    """BTSRN: 6 LR + 4 HR PConv residual blocks, nearest + bicubic-initialised deconvolution."""
    return BTSRN(scale, in_channels, out_channels, **kw)
